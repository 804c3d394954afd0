"""Seed images: a few per category, from their own streams, the same for any pool."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
from PIL import Image

from modops.config import IngestConfig
from modops.data.ingest import ingest
from modops.data.store import ImageStore
from modops.demo import CATEGORIES, generate_pool
from tests.demo.conftest import digests, rows


def test_seeds_are_written_listed_and_never_copies_of_pool_images(tmp_path: Path) -> None:
    s = generate_pool(tmp_path, n_images=80, positive_rate=0.3, seed=5, seeds_per_category=3, workers=1)
    assert s.n_seeds == 9 and s.n_images == 80
    assert s.true_counts["weapon"] == 8  # counts cover pool rows only
    expected = {f"seeds/{c}/{c}_{k:02d}.jpg" for c in CATEGORIES for k in range(3)}
    seeds = digests(tmp_path, "seeds/*/*")
    assert set(seeds) == expected

    seed_rows = [r for r in rows(s) if r["label_source"] == "seed"]
    assert {r["path"] for r in seed_rows} == expected
    assert all(r["label"] == r["true_label"] == r["path"].split("/")[1] for r in seed_rows)
    assert all(r["uploader_id"] == r["business_category"] == r["uploaded_at"] == "" for r in seed_rows)
    assert Counter(r["label_source"] for r in rows(s)) == {"": 80, "seed": 9}

    pool = digests(tmp_path, "images/*")
    assert len(pool) == 80 and not set(seeds.values()) & set(pool.values())
    assert len(set(seeds.values())) == 9
    for rel in expected:
        with Image.open(tmp_path / rel) as im:
            assert im.format == "JPEG" and im.mode == "RGB" and 96 <= min(im.size) <= max(im.size) <= 200


def test_seeds_do_not_depend_on_the_pool_and_leave_its_images_alone(tmp_path: Path) -> None:
    a = generate_pool(tmp_path / "a", n_images=30, positive_rate=0.1, seed=6, seeds_per_category=2, workers=1)
    b = generate_pool(
        tmp_path / "b",
        n_images=50,
        positive_rate=0.4,
        noise_rate=0.1,
        labelled_fraction=0.5,
        day=3,
        drift=True,
        seed=6,
        seeds_per_category=3,
        workers=1,
    )
    plain = generate_pool(tmp_path / "plain", n_images=30, positive_rate=0.1, seed=6, workers=1)
    other_seed = generate_pool(tmp_path / "c", n_images=30, positive_rate=0.1, seed=7, seeds_per_category=2, workers=1)

    seeds_a, seeds_b = digests(a.out_dir, "seeds/*/*"), digests(b.out_dir, "seeds/*/*")
    assert len(seeds_a) == 6 and len(seeds_b) == 9
    assert {k: seeds_b[k] for k in seeds_a} == seeds_a  # seed k does not depend on how many are asked for
    assert digests(a.out_dir, "images/*") == digests(plain.out_dir, "images/*")
    assert [r for r in rows(a) if r["label_source"] == ""] == rows(plain)
    assert not set(digests(other_seed.out_dir, "seeds/*/*").values()) & set(seeds_a.values())


def test_ingest_reads_seeds_and_unlabelled_rows(tmp_path: Path) -> None:
    src = tmp_path / "pool"
    s = generate_pool(
        src, n_images=20, positive_rate=0.2, seed=8, labelled_fraction=0.5, seeds_per_category=1, workers=1
    )
    summary = ingest(str(src), tmp_path / "out", store=ImageStore(tmp_path / "store"), cfg=IngestConfig(workers=1))
    assert summary.ingested == 23 and summary.quarantined == 0 and summary.unlabeled == 10
    manifest = pd.read_parquet(tmp_path / "out" / "manifest.parquet")
    assert Counter(manifest["label_source"]) == {"seed": 3, "import": s.n_labelled, "none": 10}
    seeds = manifest[manifest["uri"].str.startswith("seeds/")]  # uris are relative to the source
    assert len(seeds) == 3 and set(seeds["label_source"]) == {"seed"}
    assert sorted(seeds["label"]) == sorted(CATEGORIES)
