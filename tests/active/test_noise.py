"""The noisy-label check: out-of-fold probabilities, confident learning, the per-label cap, images end to end."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
import torch

from modops.active.noise import check_labels, find_issues, out_of_fold_probs, sample_weights
from modops.config import NoiseConfig
from modops.data.datasets import MemoryReader
from modops.data.images import DecodeLimits


def _blobs(n: int = 600, *, flip: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three separable Gaussian classes (70/15/15 %) in 8 dims; ``flip`` of the labels replaced by another class."""
    rng = np.random.default_rng(seed)
    true = rng.choice(3, size=n, p=[0.7, 0.15, 0.15])
    centres = rng.normal(0, 4, size=(3, 8))
    x = centres[true] + rng.normal(0, 1, size=(n, 8))
    given = true.copy()
    flipped = rng.choice(n, size=int(flip * n), replace=False)
    given[flipped] = (true[flipped] + rng.integers(1, 3, size=len(flipped))) % 3
    return x.astype(np.float32), given, np.isin(np.arange(n), flipped)


def test_out_of_fold_probs_predict_each_row_without_its_own_label():
    x, given, _ = _blobs(flip=0.0)
    probs = out_of_fold_probs(x, given, num_classes=4, folds=5, seed=0)
    assert probs.shape == (len(x), 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs[:, 3] == 0).all()  # a class nobody has gets nothing
    assert (probs.argmax(axis=1) == given).mean() > 0.97
    # A row whose label is flipped is still predicted as its true class: it was held out when its fold was fit.
    x2, given2, flipped = _blobs(flip=0.1, seed=1)
    p2 = out_of_fold_probs(x2, given2, num_classes=3, folds=5, seed=0)
    assert (p2[flipped].argmax(axis=1) != given2[flipped]).mean() > 0.9


def test_out_of_fold_probs_refuse_a_class_with_one_image_and_say_how_to_fix():
    x, given, _ = _blobs(flip=0.0)
    given = given.copy()
    given[0] = 3
    with pytest.raises(ValueError, match="noise.enabled: false"):
        out_of_fold_probs(x, given, num_classes=4, folds=5, seed=0)


def test_confident_learning_finds_flipped_labels():
    x, given, flipped = _blobs(flip=0.05, seed=2)
    probs = out_of_fold_probs(x, given, num_classes=3, folds=5, seed=0)
    found = find_issues(given, probs, filter_by="prune_by_noise_rate", max_fraction=1.0)
    hit = found["issue"].to_numpy()
    assert hit[flipped].mean() >= 0.8  # recall of the flips
    assert flipped[hit].mean() >= 0.8  # precision of the flags
    assert (found.loc[hit, "suggested"] != found.loc[hit, "label"]).all()
    assert found.loc[hit, "label_quality"].max() < found.loc[~hit, "label_quality"].median()


def test_the_cap_keeps_the_lowest_quality_flags_of_each_label():
    x, given, _ = _blobs(flip=0.2, seed=3)
    probs = out_of_fold_probs(x, given, num_classes=3, folds=5, seed=0)
    free = find_issues(given, probs, filter_by="prune_by_noise_rate", max_fraction=1.0)
    capped = find_issues(given, probs, filter_by="prune_by_noise_rate", max_fraction=0.05)
    for c in range(3):
        rows = capped["label"] == c
        assert capped.loc[rows, "issue"].sum() <= int(np.ceil(0.05 * rows.sum()))
        kept = capped.loc[rows & capped["issue"], "label_quality"]
        dropped = free.loc[rows & free["issue"] & ~capped["issue"], "label_quality"]
        if len(kept) and len(dropped):
            assert kept.max() <= dropped.min()


def test_sample_weights_only_touch_flagged_images():
    issues = pd.DataFrame({"image_id": ["a", "b", "c"], "issue": [False, True, False]})
    np.testing.assert_allclose(sample_weights(["a", "b", "c", "d"], issues, weight=0.25), [1, 0.25, 1, 1])
    assert sample_weights(["a", "c"], issues, weight=0.25) is None
    assert sample_weights(["a"], None, weight=0.25) is None


def _images(n: int = 120, *, seed: int = 0) -> tuple[MemoryReader, list[str], np.ndarray]:
    """Dark noise; every third image has a bright red square (class 1)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 90, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    y = (torch.arange(n) % 3 == 0).long()
    for i in torch.nonzero(y).flatten():
        r, c = torch.randint(0, 16, (2,), generator=g)
        x[i, 0, r : r + 14, c : c + 14] = 255
    reader, ids = MemoryReader.from_uint8(x)
    hashed = {hashlib.sha256(v).hexdigest(): v for v in reader.images.values()}
    return MemoryReader(hashed), [hashlib.sha256(reader.images[i]).hexdigest() for i in ids], y.numpy()


def test_check_labels_flags_images_whose_label_contradicts_their_pixels():
    reader, ids, y = _images()
    given = y.copy()
    wrong = [0, 3, 1, 4]  # two red squares called clean, two clean images called red
    given[wrong] = 1 - given[wrong]
    cfg = NoiseConfig(image_size=32, steps=60, batch_size=16, workers=0, folds=4, max_fraction=0.2)
    result = check_labels(reader, ids, given, classes=("clean", "red"), cfg=cfg, limits=DecodeLimits())
    issues = result.issues
    assert len(issues) == len(ids) and list(issues["image_id"]) == ids
    flagged = set(np.flatnonzero(issues["issue"].to_numpy()))
    assert len(flagged & set(wrong)) >= 3
    assert len(flagged - set(wrong)) <= 3
    assert result.info["checked"] == len(ids) and result.info["flagged"] == len(flagged)
    assert (
        issues.loc[list(flagged & set(wrong)), "suggested_label"] != issues.loc[list(flagged & set(wrong)), "label"]
    ).all()


def test_an_unreadable_image_is_kept_and_not_flagged():
    reader, ids, y = _images(60)
    reader.images[ids[5]] = b"not an image"
    cfg = NoiseConfig(image_size=32, steps=10, batch_size=16, workers=0, folds=3)
    result = check_labels(reader, ids, y, classes=("clean", "red"), cfg=cfg, limits=DecodeLimits())
    row = result.issues.iloc[5]
    assert not row["issue"] and np.isnan(row["label_quality"])
    assert result.info["unreadable"] == 1


def test_downweighted_images_come_up_less_often_and_every_class_keeps_its_share():
    from modops.data.datasets import balanced_sampler

    y = np.array([0] * 80 + [1] * 20)
    weight = np.ones(100)
    weight[:40] = 0.1  # half the clean images flagged
    draws = np.bincount(
        list(balanced_sampler(y, num_classes=2, cap=100.0, num_samples=40_000, seed=0, item_weight=weight)),
        minlength=100,
    )
    plain = np.bincount(list(balanced_sampler(y, num_classes=2, cap=100.0, num_samples=40_000, seed=0)), minlength=100)
    assert abs(draws[y == 1].sum() - plain[y == 1].sum()) < 800  # class shares unchanged (~20,000 each)
    assert draws[:40].mean() < 0.2 * draws[40:80].mean()  # flagged drawn ~10x less within their class
