"""generate_pool end to end: determinism, layout, argument checks, drift, worker imports."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modops.config import LabelsConfig
from modops.demo import (
    BUSINESS_CATEGORIES,
    CATEGORIES,
    COLUMNS,
    LABELS,
    NEGATIVE,
    POOL_SIZES,
    DemoSummary,
    generate_pool,
)
from modops.demo.plan import plan_pool
from tests.demo.conftest import pixels, rows


def test_label_names_match_the_config_defaults() -> None:
    cfg = LabelsConfig()
    assert cfg.negative == NEGATIVE
    assert cfg.categories == CATEGORIES
    assert (NEGATIVE, *CATEGORIES) == LABELS
    assert POOL_SIZES["small"] <= 2_000 and POOL_SIZES["default"] == 20_000


def test_same_arguments_give_identical_bytes_whatever_the_worker_count(tmp_path: Path) -> None:
    kwargs = dict(n_images=40, seed=3, positive_rate=0.2, noise_rate=0.1, seeds_per_category=1)
    a = generate_pool(tmp_path / "a", workers=1, **kwargs)
    b = generate_pool(tmp_path / "b", workers=2, **kwargs)  # spawn pool, 3 chunks
    assert a.labels_file.read_bytes() == b.labels_file.read_bytes()
    assert len(rows(a)) == 43  # 40 pool images and one seed per category
    for row in rows(a):
        assert (a.out_dir / row["path"]).read_bytes() == (b.out_dir / row["path"]).read_bytes()

    c = generate_pool(tmp_path / "c", workers=1, **{**kwargs, "seed": 4})
    assert c.labels_file.read_bytes() != a.labels_file.read_bytes()
    first = rows(a)[0]["path"]
    assert (c.out_dir / first).read_bytes() != (a.out_dir / first).read_bytes()


def test_pool_layout_columns_counts_and_files(tmp_path: Path) -> None:
    calls: list[int] = []
    s = generate_pool(
        tmp_path, size="small", n_images=150, positive_rate=0.02, seed=1, day=2, workers=1, progress=calls.append
    )
    table = rows(s)
    with s.labels_file.open() as fh:
        assert fh.readline().strip() == ",".join(COLUMNS)
    assert s.n_images == len(table) == 150
    assert s.n_seeds == 0 and s.n_labelled == 150 and not (tmp_path / "seeds").exists()
    # 150 * 0.02 = 3 violations: exactly one per category, even in a tiny pool.
    assert s.true_counts == {"clean": 147, "promo_spam": 1, "disgusting": 1, "weapon": 1}
    assert s.counts == s.true_counts and s.n_flipped == 0
    assert Counter(r["true_label"] for r in table) == Counter(s.true_counts)
    assert calls == sorted(calls) and calls[-1] == 150

    formats = set()
    for r in table:
        assert r["label"] in LABELS and r["true_label"] in LABELS
        assert r["label_source"] == ""  # ingest's default: "import" when labelled
        assert re.fullmatch(r"u\d{4,}", r["uploader_id"])
        assert r["business_category"] in BUSINESS_CATEGORIES
        assert re.fullmatch(r"2026-11-03T\d\d:\d\d:\d\dZ", r["uploaded_at"])  # day=2
        assert not Path(r["path"]).is_absolute() and r["path"].startswith("images/")
        with Image.open(s.out_dir / r["path"]) as im:
            im.load()
            assert im.mode == "RGB" and 96 <= im.width <= 200 and 96 <= im.height <= 200
            assert im.format == {".jpg": "JPEG", ".png": "PNG"}[Path(r["path"]).suffix]
            formats.add(im.format)
    assert formats == {"JPEG", "PNG"}
    leftovers = [p for p in tmp_path.rglob(".*")]
    assert leftovers == [], "temporary files must be renamed away"


def test_noise_flips_exactly_the_expected_number_mostly_false_negatives(tmp_path: Path) -> None:
    s = generate_pool(tmp_path / "noisy", n_images=200, positive_rate=0.15, noise_rate=0.05, seed=2, workers=1)
    table = rows(s)
    flipped = [r for r in table if r["label"] != r["true_label"]]
    assert s.n_flipped == len(flipped) == 10  # round(200 * 0.05)
    false_neg = sum(r["label"] == "clean" for r in flipped)
    assert false_neg == 8 and len(flipped) - false_neg == 2  # 75 % missed violations
    assert s.true_counts == {"clean": 170, "promo_spam": 10, "disgusting": 10, "weapon": 10}

    clean_run = generate_pool(tmp_path / "clean", n_images=200, positive_rate=0.15, seed=2, workers=1)
    for a, b in zip(table, rows(clean_run), strict=True):  # noise never touches an image
        assert a["path"] == b["path"] and a["true_label"] == b["label"]
        assert (s.out_dir / a["path"]).read_bytes() == (clean_run.out_dir / b["path"]).read_bytes()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": "large"}, "size"),
        ({"n_images": 0}, "n_images"),
        ({"n_images": -3}, "n_images"),
        ({"n_images": 2.5}, "n_images"),
        ({"positive_rate": 1.0}, "positive_rate"),
        ({"positive_rate": -0.1}, "positive_rate"),
        ({"positive_rate": "0.1"}, "positive_rate"),
        ({"noise_rate": 1.0}, "noise_rate"),
        ({"seed": -1}, "seed"),
        ({"day": -2}, "day"),
        ({"workers": -1}, "workers"),
        ({"labelled_fraction": 0.0}, "labelled_fraction"),
        ({"labelled_fraction": 0}, "labelled_fraction"),
        ({"labelled_fraction": -0.5}, "labelled_fraction"),
        ({"labelled_fraction": 1.01}, "labelled_fraction"),
        ({"labelled_fraction": float("nan")}, "labelled_fraction"),
        ({"labelled_fraction": "0.5"}, "labelled_fraction"),
        ({"labelled_fraction": True}, "labelled_fraction"),
        ({"seeds_per_category": -1}, "seeds_per_category"),
        ({"seeds_per_category": 51}, "seeds_per_category"),
        ({"seeds_per_category": 2.0}, "seeds_per_category"),
        ({"seeds_per_category": True}, "seeds_per_category"),
        ({"seeds_per_category": None}, "seeds_per_category"),
    ],
)
def test_bad_arguments_raise_before_writing(tmp_path: Path, kwargs: dict, match: str) -> None:
    out = tmp_path / "pool"
    with pytest.raises(ValueError, match=match):
        generate_pool(out, **{"n_images": 10, **kwargs})
    assert not out.exists()


def test_drift_changes_spam_style_and_business_mix(tmp_path: Path) -> None:
    kwargs = dict(n_images=40, positive_rate=0.6, seed=0, day=1, workers=1)
    base = generate_pool(tmp_path / "base", drift=False, **kwargs)
    drifted = generate_pool(tmp_path / "drift", drift=True, **kwargs)

    def spam_stats(s: DemoSummary) -> tuple[float, float]:
        arrs = [pixels(s.out_dir / r["path"]) for r in rows(s) if r["true_label"] == "promo_spam"]
        assert len(arrs) == 8
        brightness = float(np.mean([a.mean() for a in arrs]))
        blue_minus_green = float(np.mean([(a[..., 2] - a[..., 1]).mean() for a in arrs]))
        return brightness, blue_minus_green

    (b_light, b_blue), (d_light, d_blue) = spam_stats(base), spam_stats(drifted)
    assert d_light < 0.6 * b_light  # dark neon graphics instead of bright banners
    assert d_blue > b_blue  # magenta/violet palette

    def beauty_share(drift: bool) -> float:
        plan = plan_pool(4_000, seed=0, day=1, positive_rate=0.0, noise_rate=0.0, drift=drift)
        return plan.business.count("beauty") / len(plan.business)

    assert beauty_share(True) > beauty_share(False) + 0.05


def test_workers_import_only_numpy_pillow_and_the_demo_package() -> None:
    # Spawned workers import modops.demo.writer to unpickle their task; torch or the rest of
    # modops would add seconds to every pool start.
    code = (
        "import sys, modops.demo.writer\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'pandas', 'mlflow')\n"
        "    or (m.startswith('modops.') and not m.startswith('modops.demo')))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
