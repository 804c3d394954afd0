"""Tests for the synthetic demo pool generator (modops.data.demo)."""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modops.config import LabelsConfig
from modops.data import demo
from modops.data.demo import BUSINESS_CATEGORIES, COLUMNS, POOL_SIZES, DemoSummary, generate_pool

LABELS = (demo.NEGATIVE, *demo.CATEGORIES)


def _rows(summary: DemoSummary) -> list[dict[str, str]]:
    with summary.labels_file.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32)


def test_label_names_match_the_config_defaults() -> None:
    cfg = LabelsConfig()
    assert cfg.negative == demo.NEGATIVE
    assert cfg.categories == demo.CATEGORIES
    assert POOL_SIZES["small"] <= 2_000 and POOL_SIZES["default"] == 20_000


def test_same_arguments_give_identical_bytes_whatever_the_worker_count(tmp_path: Path) -> None:
    kwargs = dict(n_images=40, seed=3, positive_rate=0.2, noise_rate=0.1)
    a = generate_pool(tmp_path / "a", workers=1, **kwargs)
    b = generate_pool(tmp_path / "b", workers=2, **kwargs)  # spawn pool, 3 chunks
    assert a.labels_file.read_bytes() == b.labels_file.read_bytes()
    for row in _rows(a):
        assert (a.out_dir / row["path"]).read_bytes() == (b.out_dir / row["path"]).read_bytes()

    c = generate_pool(tmp_path / "c", workers=1, **{**kwargs, "seed": 4})
    assert c.labels_file.read_bytes() != a.labels_file.read_bytes()
    first = _rows(a)[0]["path"]
    assert (c.out_dir / first).read_bytes() != (a.out_dir / first).read_bytes()


def test_pool_layout_columns_counts_and_files(tmp_path: Path) -> None:
    calls: list[int] = []
    s = generate_pool(
        tmp_path, size="small", n_images=150, positive_rate=0.02, seed=1, day=2, workers=1, progress=calls.append
    )
    rows = _rows(s)
    with s.labels_file.open() as fh:
        assert fh.readline().strip() == ",".join(COLUMNS)
    assert s.n_images == len(rows) == 150
    # 150 * 0.02 = 3 violations: exactly one per category, even in a tiny pool.
    assert s.true_counts == {"clean": 147, "promo_spam": 1, "disgusting": 1, "weapon": 1}
    assert s.counts == s.true_counts and s.n_flipped == 0
    assert Counter(r["true_label"] for r in rows) == Counter(s.true_counts)
    assert calls == sorted(calls) and calls[-1] == 150

    formats = set()
    for r in rows:
        assert r["label"] in LABELS and r["true_label"] in LABELS
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


@pytest.mark.parametrize(
    ("n", "rate", "expected"),
    [
        (3_000, 0.001, (1, 1, 1)),
        (1_500, 0.01, (5, 5, 5)),
        (20_000, 0.01, (67, 67, 66)),
        (100, 0.02, (1, 1, 0)),  # below 3 violations a category may be empty
        (50, 0.0, (0, 0, 0)),
    ],
)
def test_positive_rate_gives_exact_counts(n: int, rate: float, expected: tuple[int, ...]) -> None:
    plan = demo._plan(n, seed=0, day=0, positive_rate=rate, noise_rate=0.0, drift=False)
    counts = Counter(s.label for s in plan.specs)
    assert tuple(counts[c] for c in demo.CATEGORIES) == expected
    assert counts[demo.NEGATIVE] == n - sum(expected)


def test_noise_flips_exactly_the_expected_number_mostly_false_negatives(tmp_path: Path) -> None:
    s = generate_pool(tmp_path / "noisy", n_images=200, positive_rate=0.15, noise_rate=0.05, seed=2, workers=1)
    rows = _rows(s)
    flipped = [r for r in rows if r["label"] != r["true_label"]]
    assert s.n_flipped == len(flipped) == 10  # round(200 * 0.05)
    false_neg = sum(r["label"] == "clean" for r in flipped)
    assert false_neg == 8 and len(flipped) - false_neg == 2  # 75 % missed violations
    assert s.true_counts == {"clean": 170, "promo_spam": 10, "disgusting": 10, "weapon": 10}

    clean_run = generate_pool(tmp_path / "clean", n_images=200, positive_rate=0.15, seed=2, workers=1)
    for a, b in zip(rows, _rows(clean_run), strict=True):  # noise never touches an image
        assert a["path"] == b["path"] and a["true_label"] == b["label"]
        assert (s.out_dir / a["path"]).read_bytes() == (clean_run.out_dir / b["path"]).read_bytes()


def test_heavy_noise_keeps_every_category_learnable() -> None:
    plan = demo._plan(2_000, seed=5, day=0, positive_rate=0.01, noise_rate=0.05, drift=False)
    true = [s.label for s in plan.specs]
    assert sum(o != t for o, t in zip(plan.observed, true, strict=True)) == 100
    for cat in demo.CATEGORIES:
        n_true = true.count(cat)
        kept = sum(o == t == cat for o, t in zip(plan.observed, true, strict=True))
        assert kept >= n_true / 2
    # False positives prefer the matching hard negative (benign text -> promo_spam, ...).
    fp = [(s.variant, o) for s, o in zip(plan.specs, plan.observed, strict=True) if s.label == "clean" and o != "clean"]
    assert fp and all(demo._CONFUSED_WITH.get(v, o) == o for v, o in fp)


def test_spam_comes_mostly_from_a_few_uploaders() -> None:
    plan = demo._plan(6_000, seed=0, day=0, positive_rate=0.05, noise_rate=0.0, drift=False)
    by_label: dict[str, Counter[str]] = {"promo_spam": Counter(), "clean": Counter()}
    for spec, uploader in zip(plan.specs, plan.uploaders, strict=True):
        if spec.label in by_label:
            by_label[spec.label][uploader] += 1

    def top3_share(c: Counter[str]) -> float:
        return sum(k for _, k in c.most_common(3)) / sum(c.values())

    assert top3_share(by_label["promo_spam"]) > 0.7
    assert top3_share(by_label["clean"]) < 0.2


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
        arrs = [_pixels(s.out_dir / r["path"]) for r in _rows(s) if r["true_label"] == "promo_spam"]
        assert len(arrs) == 8
        brightness = float(np.mean([a.mean() for a in arrs]))
        blue_minus_green = float(np.mean([(a[..., 2] - a[..., 1]).mean() for a in arrs]))
        return brightness, blue_minus_green

    (b_light, b_blue), (d_light, d_blue) = spam_stats(base), spam_stats(drifted)
    assert d_light < 0.6 * b_light  # dark neon graphics instead of bright banners
    assert d_blue > b_blue  # magenta/violet palette

    def beauty_share(drift: bool) -> float:
        plan = demo._plan(4_000, seed=0, day=1, positive_rate=0.0, noise_rate=0.0, drift=drift)
        return plan.business.count("beauty") / len(plan.business)

    assert beauty_share(True) > beauty_share(False) + 0.05
