"""Tests for the paired bootstrap comparison of a candidate and the champion."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from modops.evaluation.compare import METRICS, ScoredHoldout, paired_differences
from modops.evaluation.gate import gate
from modops.evaluation.metrics import category_metrics

NAMES = ("clean", "promo_spam", "disgusting", "weapon")
CATS = NAMES[1:]


def _labels(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).choice(len(NAMES), size=n, p=[0.55, 0.15, 0.15, 0.15])


def _probs(y: np.ndarray, signal: float, seed: int) -> np.ndarray:
    """Softmax outputs [N, 4]: the true class gets ``signal`` extra logit."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(y), len(NAMES)))
    logits[np.arange(len(y)), y] += signal
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def _scored(probs: np.ndarray, y: np.ndarray, *, names=NAMES, ids=None, threshold: float = 0.4, **kw) -> ScoredHoldout:
    ids = np.array([f"img{i:05d}" for i in range(len(y))]) if ids is None else ids
    cats = [n for n in names if n != "clean"]
    return ScoredHoldout.from_probs(
        image_ids=ids, y_index=y, probs=probs, class_names=names, thresholds=dict.fromkeys(cats, threshold), **kw
    )


def _compare(cand: ScoredHoldout, champ: ScoredHoldout, *, metric: str = "pr_auc", n: int = 300, seed: int = 0):
    return paired_differences(cand, champ, metric=metric, n_resamples=n, confidence=0.95, seed=seed)


@pytest.mark.parametrize("metric", METRICS)
def test_identical_models_differ_by_exactly_zero(metric):
    y = _labels(400)
    scored = _scored(_probs(y, 2.0, seed=0), y)
    for d in _compare(scored, scored, metric=metric).values():
        assert (d.point, d.ci_low, d.ci_high, d.p_worse) == (0.0, 0.0, 0.0, 0.0)
        assert d.n_resamples == 300 and d.n_skipped == 0


@pytest.mark.parametrize("metric", METRICS)
def test_clearly_worse_candidate_has_an_interval_below_zero(metric):
    y = _labels(600)
    good, weak = _scored(_probs(y, 3.0, seed=0), y), _scored(_probs(y, 0.5, seed=1), y)
    for cat, d in _compare(weak, good, metric=metric).items():
        assert d.point < 0 and d.ci_low <= d.point <= d.ci_high < 0, (cat, d)
        assert d.p_worse == 1.0
        assert d.point == pytest.approx(d.candidate - d.champion)


def _swapped_recall(n_pos: int = 100, n_neg: int = 300, flips: int = 10) -> tuple[ScoredHoldout, ScoredHoldout]:
    """Two models with the SAME recall that miss different positives: a noisy tie.

    Both catch the first ``n_pos - 2 * flips`` positives; the champion also catches the next
    ``flips``, the candidate the ``flips`` after those. Full-set recall is equal, but on a
    resample the two disagreement sets are drawn unevenly, so the difference is noisy.
    """
    names = ("clean", "weapon")
    y = np.r_[np.ones(n_pos, dtype=int), np.zeros(n_neg, dtype=int)]
    shared = n_pos - 2 * flips
    champ = np.r_[np.ones(shared + flips), np.zeros(flips), np.zeros(n_neg)]
    cand = np.r_[np.ones(shared), np.zeros(flips), np.ones(flips), np.zeros(n_neg)]

    def holdout(hit: np.ndarray) -> ScoredHoldout:
        probs = np.c_[1 - 0.9 * hit, 0.9 * hit]
        return _scored(probs, y, names=names, threshold=0.5)

    return holdout(cand), holdout(champ)


def test_noisy_tie_passes_on_point_but_not_on_the_lower_bound():
    cand, champ = _swapped_recall()
    d = _compare(cand, champ, metric="recall", n=1000)["weapon"]
    assert d.point == 0.0
    assert d.ci_low < -0.02 < 0.02 < d.ci_high  # 20 disagreements in 100 positives: about +-0.09
    assert 0.3 < d.p_worse < 0.7
    row = {"precision": 1.0, "recall": 0.9, "f1": 0.95, "pr_auc": 0.9, "support": 100}
    row |= {"precision_ci_low": 0.96, "recall_ci_low": 0.83}
    metrics = {"weapon": row}
    common = {"min_precision": 0.8, "min_recall": 0.8, "regression_metric": "recall", "champion": metrics}
    assert gate(metrics, **common, paired={"weapon": d}, decide_on="point").passed
    strict = gate(metrics, **common, paired={"weapon": d}, decide_on="lower_bound")
    assert not strict.passed
    assert [(c["category"], c["check"]) for c in strict.checks if not c["passed"]] == [("weapon", "regression")]


def test_same_seed_same_result_other_seed_other_interval():
    y = _labels(300)
    cand, champ = _scored(_probs(y, 1.5, seed=0), y), _scored(_probs(y, 1.5, seed=1), y)
    first, again, other = _compare(cand, champ, seed=7), _compare(cand, champ, seed=7), _compare(cand, champ, seed=8)
    assert first == again
    assert all(first[c].point == other[c].point for c in CATS)  # the full-set difference has no randomness
    assert any(first[c].ci_low != other[c].ci_low for c in CATS)


def test_categories_and_images_in_another_order_give_the_same_result():
    y = _labels(300)
    probs_cand, probs_champ = _probs(y, 1.5, seed=0), _probs(y, 1.5, seed=1)
    cand, champ = _scored(probs_cand, y), _scored(probs_champ, y)
    reference = _compare(cand, champ)
    # The champion's label order is different (columns and names permuted together) and its
    # images come in another order: matched by name and id, nothing changes.
    perm, rows = [0, 3, 1, 2], np.random.default_rng(5).permutation(len(y))
    ids = np.array([f"img{i:05d}" for i in range(len(y))])
    shuffled = _scored(
        probs_champ[rows][:, perm],
        np.argsort(perm)[y[rows]],
        names=tuple(NAMES[i] for i in perm),
        ids=ids[rows],
    )
    assert shuffled.categories == ("weapon", "promo_spam", "disgusting")
    result = _compare(cand, shuffled)
    assert list(result) == list(CATS)  # the candidate's order
    for c in CATS:
        assert result[c].point == pytest.approx(reference[c].point)
        assert (result[c].ci_low, result[c].ci_high) == pytest.approx((reference[c].ci_low, reference[c].ci_high))
    # Had the columns been matched by position, the champion's promo_spam would be its weapon
    # scores: a spurious difference this large (the guard that makes this test able to fail).
    by_position = _scored(probs_champ[:, perm], y, names=NAMES)
    assert abs(_compare(cand, by_position)["promo_spam"].point) > 0.3


def test_a_category_the_champion_lacks_is_absent():
    y = _labels(200)
    cand = _scored(_probs(y, 2.0, seed=0), y)
    probs = _probs(y, 2.0, seed=0)
    champ = ScoredHoldout.from_probs(
        image_ids=cand.image_ids,
        y_index=y,
        probs=probs,
        class_names=NAMES,
        thresholds={"promo_spam": 0.4, "disgusting": 0.4},
    )
    assert set(_compare(cand, champ)) == {"promo_spam", "disgusting"}


def test_other_images_are_not_the_same_holdout():
    y = _labels(200)
    probs = _probs(y, 2.0, seed=0)
    cand = _scored(probs, y)
    fewer = _scored(probs[:-1], y[:-1])
    with pytest.raises(ValueError, match=r"not the same holdout: 1 images only in the candidate's.*img00199"):
        _compare(cand, fewer)
    renamed = _scored(probs, y, ids=np.array([f"other{i}" for i in range(len(y))]))
    with pytest.raises(ValueError, match="not the same holdout"):
        _compare(cand, renamed)


def test_other_labels_are_not_the_same_holdout():
    y = _labels(200)
    probs = _probs(y, 2.0, seed=0)
    relabelled = y.copy()
    relabelled[3] = (y[3] + 1) % len(NAMES)
    with pytest.raises(ValueError, match=r"not the same holdout: 1 images carry different labels.*img00003"):
        _compare(_scored(probs, y), _scored(probs, relabelled))


def test_other_threshold_policy_is_rejected():
    y = _labels(200)
    probs = _probs(y, 2.0, seed=0)
    a = _scored(probs, y, threshold_policy="val precision >= 0.95")
    b = _scored(probs, y, threshold_policy="val precision >= 0.90")
    with pytest.raises(ValueError, match="different policies"):
        _compare(a, b)
    assert _compare(a, _scored(probs, y))  # an unrecorded policy is not a conflict


def test_point_values_match_the_holdout_metrics():
    y = _labels(500)
    probs = np.round(_probs(y, 1.0, seed=0), 2)  # rounding makes ties: AP must group them like sklearn
    probs /= probs.sum(axis=1, keepdims=True)
    zeros = _scored(np.full_like(probs, 0.25), y)  # the champion: a constant model
    for metric in METRICS:
        diffs = _compare(_scored(probs, y), zeros, metric=metric, n=100)
        for c in CATS:
            j = NAMES.index(c)
            expected = category_metrics(y == j, probs[:, j], category=c, threshold=0.4)
            assert diffs[c].candidate == pytest.approx(getattr(expected, metric), abs=1e-12)
    ap = _compare(_scored(probs, y), zeros, n=100)["weapon"].candidate
    assert ap == pytest.approx(average_precision_score(y == 3, probs[:, 3]), abs=1e-12)


def test_resamples_without_positives_are_skipped_and_counted():
    names = ("clean", "weapon")
    y = np.r_[1, np.zeros(9, dtype=int)]  # one positive in ten: ~35 % of resamples draw none
    probs = np.c_[np.linspace(0.9, 0.1, 10), np.linspace(0.1, 0.9, 10)]
    d = _compare(_scored(probs, y, names=names), _scored(probs[::-1], y, names=names), n=500)["weapon"]
    assert d.n_skipped > 100 and d.n_resamples + d.n_skipped == 500
    assert np.isfinite([d.ci_low, d.ci_high, d.p_worse]).all()


def test_no_positive_at_all_gives_nan_and_the_gate_fails_closed():
    names = ("clean", "weapon")
    y = np.zeros(20, dtype=int)
    probs = np.c_[np.full(20, 0.6), np.full(20, 0.4)]
    d = _compare(_scored(probs, y, names=names), _scored(probs, y, names=names))["weapon"]
    assert d.n_resamples == 0 and d.n_skipped == 300
    assert np.isnan([d.point, d.ci_low, d.ci_high, d.p_worse]).all()
    row = {"precision": 1.0, "recall": 1.0, "f1": 1.0, "pr_auc": 1.0, "support": 0}
    v = gate(
        {"weapon": row},
        min_precision=0,
        min_recall=0,
        min_support=0,
        decide_on="point",
        champion={"weapon": row},
        paired={"weapon": d},
    )
    assert not v.passed


def test_to_dict_is_json_ready():
    y = _labels(100)
    scored = _scored(_probs(y, 2.0, seed=0), y)
    row = _compare(scored, scored)["weapon"].to_dict()
    assert all(type(v) in (str, int, float) for v in row.values())
    json.dumps(row)


def test_a_thousand_resamples_of_two_thousand_images_is_fast():
    y = _labels(2000)
    cand, champ = _scored(_probs(y, 1.5, seed=0), y), _scored(_probs(y, 1.5, seed=1), y)
    start = time.perf_counter()
    result = paired_differences(cand, champ, metric="pr_auc", n_resamples=1000, confidence=0.95, seed=0)
    elapsed = time.perf_counter() - start
    assert len(result) == 3
    assert elapsed < 3.0, f"paired bootstrap took {elapsed:.2f} s"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"metric": "accuracy"}, "metric must be one of"),
        ({"n_resamples": 0}, "n_resamples"),
        ({"confidence": 1.0}, "confidence"),
    ],
)
def test_bad_arguments(kwargs, match):
    y = _labels(50)
    scored = _scored(_probs(y, 2.0, seed=0), y)
    args = {"metric": "pr_auc", "n_resamples": 10, "confidence": 0.95, "seed": 0} | kwargs
    with pytest.raises(ValueError, match=match):
        paired_differences(scored, scored, **args)


def test_scored_holdout_rejects_broken_inputs():
    y = _labels(20)
    probs = _probs(y, 2.0, seed=0)
    broken = probs.copy()
    broken[4, 2] = np.nan
    with pytest.raises(ValueError, match="NaN/inf"):
        _scored(broken, y)
    with pytest.raises(ValueError, match="unique"):
        _scored(probs, y, ids=np.array(["same"] * len(y)))
    with pytest.raises(ValueError, match="not in class_names"):
        ScoredHoldout.from_probs(
            image_ids=np.arange(20).astype(str), y_index=y, probs=probs, class_names=NAMES, thresholds={"kitten": 0.5}
        )
    with pytest.raises(ValueError, match=r"probs must have shape \[N, 4\]"):
        _scored(probs[:, :3], y)


def test_scored_holdout_is_read_only():
    y = _labels(20)
    scored = _scored(_probs(y, 2.0, seed=0), y)
    with pytest.raises(ValueError, match="read-only"):
        scored.scores["weapon"][0] = 1.0
