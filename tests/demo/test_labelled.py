"""labelled_fraction: only a subset of the pool keeps its label; images never change."""

from __future__ import annotations

from pathlib import Path

from modops.demo import generate_pool
from tests.demo.conftest import digests, rows


def test_labelled_fraction_empties_labels_but_keeps_truth_and_pixels(tmp_path: Path) -> None:
    kwargs = dict(n_images=60, positive_rate=0.2, noise_rate=0.1, seed=4, workers=1)
    full = generate_pool(tmp_path / "full", **kwargs)
    part = generate_pool(tmp_path / "part", labelled_fraction=0.35, **kwargs)
    again = generate_pool(tmp_path / "again", labelled_fraction=0.35, **kwargs)

    assert part.n_labelled == 21 and full.n_labelled == 60  # round(60 * 0.35)
    assert again.labels_file.read_bytes() == part.labels_file.read_bytes()
    assert digests(part.out_dir, "images/*") == digests(full.out_dir, "images/*")
    # counts, true_counts and n_flipped describe the pool's observed labels, shown or not.
    assert (part.counts, part.true_counts, part.n_flipped) == (full.counts, full.true_counts, full.n_flipped)

    shown = 0
    for p, f in zip(rows(part), rows(full), strict=True):
        assert {k: v for k, v in p.items() if k != "label"} == {k: v for k, v in f.items() if k != "label"}
        assert p["label"] in ("", f["label"])
        shown += p["label"] != ""
    assert shown == part.n_labelled
