"""Tests for threshold choice, Wilson intervals, PR curves and end-to-end evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modops.config import LabelsConfig
from modops.evaluation.metrics import (
    CategoryMetrics,
    category_metrics,
    choose_threshold,
    evaluate,
    pr_curve_points,
    wilson_interval,
)

# Scores 0.1..0.7; positives at 0.3, 0.5, 0.6, 0.7. Per threshold t (predict score >= t):
#   t:         0.1   0.2   0.3   0.4   0.5   0.6   0.7
#   precision  4/7   4/6   0.8   0.75  1     1     1
#   recall     1     1     1     0.75  0.75  0.5   0.25
Y = np.array([0, 0, 1, 0, 1, 1, 1])
S = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])


def _naive_choice(y: np.ndarray, s: np.ndarray, target: float) -> tuple[float, bool]:
    """Brute-force reference implementation of the documented rule."""
    rows = []
    for t in np.unique(s):
        pred = s >= t
        tp, fp = int(np.sum(pred & (y == 1))), int(np.sum(pred & (y == 0)))
        rows.append((t, tp / (tp + fp), tp / int(y.sum())))
    ok = [r for r in rows if r[1] >= target]
    if ok:
        return max(ok, key=lambda r: (r[2], r[0]))[0], True
    return max(rows, key=lambda r: (r[1], r[2]))[0], False


@pytest.mark.parametrize(
    ("target", "threshold", "precision", "recall"),
    [(0.8, 0.3, 0.8, 1.0), (0.9, 0.5, 1.0, 0.75), (1.0, 0.5, 1.0, 0.75), (0.5, 0.3, 0.8, 1.0)],
)
def test_choose_threshold_exact(target, threshold, precision, recall):
    choice = choose_threshold(Y, S, target_precision=target)
    assert choice.threshold == pytest.approx(threshold)
    assert choice.val_precision == pytest.approx(precision)
    assert choice.val_recall == pytest.approx(recall)
    assert choice.met_target


def test_choose_threshold_recall_tie_goes_to_highest_threshold():
    # Recall is 1.0 at t = 0.1, 0.2 and 0.8; 0.8 has no false positives.
    y = np.array([0, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.8, 0.9])
    choice = choose_threshold(y, s, target_precision=0.5)
    assert choice.threshold == pytest.approx(0.8)
    assert (choice.val_precision, choice.val_recall) == (1.0, 1.0)


def test_choose_threshold_exact_target_is_met():
    # Scores 0..19; only score 1 is negative. At t=0 precision is exactly 19/20 = 0.95 with
    # recall 1; t=1 gives 18/19 < 0.95; t=2 gives precision 1 but recall 18/19.
    y = np.array([1, 0] + [1] * 18)
    s = np.arange(20, dtype=float)
    choice = choose_threshold(y, s, target_precision=0.95)
    assert choice.met_target
    assert choice.threshold == 0.0
    assert choice.val_precision == pytest.approx(0.95)
    assert choice.val_recall == 1.0


def test_choose_threshold_unmet_target_picks_best_precision_then_recall():
    # The top score is a negative, so no threshold reaches 0.95. Best precision is 0.5,
    # at t=0.8 (recall 0.5) and t=0.6 (recall 1.0): the tie goes to higher recall.
    y = np.array([0, 1, 0, 1])
    s = np.array([0.9, 0.8, 0.7, 0.6])
    choice = choose_threshold(y, s, target_precision=0.95)
    assert not choice.met_target
    assert choice.threshold == pytest.approx(0.6)
    assert choice.val_precision == pytest.approx(0.5)
    assert choice.val_recall == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(8))
def test_choose_threshold_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(60) < 0.3).astype(int)
    y[0] = 1
    s = np.round(rng.random(60) * 0.6 + 0.4 * y, 2)  # rounded: forces tied scores
    for target in (0.6, 0.8, 0.95, 1.0):
        choice = choose_threshold(y, s, target_precision=target)
        expected, met = _naive_choice(y, s, target)
        assert (choice.threshold, choice.met_target) == (pytest.approx(expected), met)


def test_choose_threshold_no_positives_raises():
    with pytest.raises(ValueError, match="no positive samples"):
        choose_threshold(np.zeros(5, dtype=int), np.linspace(0, 1, 5), target_precision=0.9)


@pytest.mark.parametrize(
    ("y", "s", "match"),
    [
        (np.array([0, 1]), np.array([0.1, 0.2, 0.3]), "equal length"),
        (np.array([0, 2, 1]), np.array([0.1, 0.2, 0.3]), "binary"),
        (np.array([0, 1, 1]), np.array([0.1, np.nan, 0.3]), "NaN"),
        (np.array([], dtype=int), np.array([]), "empty"),
    ],
)
def test_choose_threshold_bad_input(y, s, match):
    with pytest.raises(ValueError, match=match):
        choose_threshold(y, s, target_precision=0.9)


def test_choose_threshold_bad_target():
    with pytest.raises(ValueError, match="target_precision"):
        choose_threshold(Y, S, target_precision=0.0)


def test_wilson_known_value():
    low, high = wilson_interval(8, 10, confidence=0.95)
    assert low == pytest.approx(0.4902, abs=5e-4)
    assert high == pytest.approx(0.9433, abs=5e-4)


def test_wilson_edges_and_width():
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)
    narrow = wilson_interval(80, 100, confidence=0.9)
    wide = wilson_interval(80, 100, confidence=0.99)
    assert wide[0] < narrow[0] < 0.8 < narrow[1] < wide[1]
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 10, confidence=1.0)


def test_category_metrics_counts_and_ci():
    m = category_metrics(Y, S, category="weapon", threshold=0.4)
    # Predicted at 0.4: scores 0.4..0.7 -> labels 0,1,1,1.
    assert (m.tp, m.fp, m.fn, m.support) == (3, 1, 1, 4)
    assert m.precision == pytest.approx(0.75)
    assert m.recall == pytest.approx(0.75)
    assert m.f1 == pytest.approx(0.75)
    assert m.precision_ci == wilson_interval(3, 4)
    assert m.recall_ci == wilson_interval(3, 4)
    assert 0 < m.pr_auc <= 1
    d = m.to_dict()
    assert d["precision_ci_low"] == m.precision_ci[0]
    assert "precision_ci" not in d
    json.dumps(d)


def test_category_metrics_never_fires_has_zero_precision():
    m = category_metrics(Y, S, category="weapon", threshold=2.0)
    assert (m.tp, m.fp, m.precision, m.recall, m.f1) == (0, 0, 0.0, 0.0, 0.0)
    assert m.precision_ci == (0.0, 1.0)


def test_category_metrics_no_positives_names_category():
    with pytest.raises(ValueError, match="'weapon'"):
        category_metrics(np.zeros(4, dtype=int), np.ones(4), category="weapon", threshold=0.5)


def test_pr_curve_thinning():
    rng = np.random.default_rng(0)
    y = (rng.random(1000) < 0.2).astype(int)
    s = rng.random(1000)
    full = pr_curve_points(y, s, max_points=10_000)
    thin = pr_curve_points(y, s, max_points=50)
    assert len(full) == 1000  # one point per distinct score
    assert len(thin) == 50
    assert thin[0] == full[0] and thin[-1] == full[-1]
    thresholds = [p["threshold"] for p in thin]
    assert thresholds == sorted(thresholds)
    assert set(thin[0]) == {"threshold", "precision", "recall"}
    json.dumps(thin)
    with pytest.raises(ValueError, match="max_points"):
        pr_curve_points(y, s, max_points=1)


# --- end to end -------------------------------------------------------------------------

NAMES = LabelsConfig().all  # ("clean", "promo_spam", "disgusting", "weapon")


def _split(rng: np.random.Generator, n: int, signal: float) -> tuple[np.ndarray, np.ndarray]:
    """Labels [n] and softmax probs [n, 4]; ``signal`` is the logit bonus of the true class."""
    labels = rng.choice(len(NAMES), size=n, p=[0.55, 0.15, 0.15, 0.15])
    logits = rng.normal(size=(n, len(NAMES)))
    logits[np.arange(n), labels] += signal
    probs = np.exp(logits)
    return labels, probs / probs.sum(axis=1, keepdims=True)


def _run(signal: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    val, hold = _split(rng, 800, signal), _split(rng, 800, signal)
    return evaluate(*val, *hold, class_names=NAMES, negative="clean", target_precision=0.95)


def test_evaluate_good_scorer():
    report, curves = _run(signal=4.0)
    assert list(report.categories) == ["promo_spam", "disgusting", "weapon"]
    assert (report.n_val, report.n_holdout) == (800, 800)
    for name, m in report.categories.items():
        assert isinstance(m, CategoryMetrics)
        assert m.val_met_target
        assert m.threshold == report.thresholds[name]
        assert m.pr_auc > 0.95 and m.precision > 0.9 and m.recall > 0.8
        assert m.precision_ci[0] <= m.precision <= m.precision_ci[1]
        assert curves[name] and len(curves[name]) <= 200
    out = report.to_metrics_json()
    json.dumps(out)
    assert set(out) == {"holdout", "macro", "thresholds", "n_holdout", "n_val"}
    row = out["holdout"]["weapon"]
    assert {
        "precision",
        "recall",
        "f1",
        "pr_auc",
        "threshold",
        "support",
        "tp",
        "fp",
        "fn",
        "precision_ci_low",
        "precision_ci_high",
        "recall_ci_low",
        "recall_ci_high",
    } <= set(row)
    assert out["macro"]["pr_auc"] == pytest.approx(np.mean([m.pr_auc for m in report.categories.values()]))


def test_evaluate_random_scorer_has_low_pr_auc():
    report, _ = _run(signal=0.0)
    for m in report.categories.values():
        assert m.pr_auc < 0.3  # about the 15% prevalence
        assert m.precision < 0.5


def test_evaluate_is_deterministic():
    a, _ = _run(signal=2.0, seed=3)
    b, _ = _run(signal=2.0, seed=3)
    assert a.to_metrics_json() == b.to_metrics_json()


def _good():
    rng = np.random.default_rng(1)
    return _split(rng, 200, 4.0), _split(rng, 200, 4.0)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda v, h: ((v[0], v[1][:, :3]), h), r"shape \[N, C\] = \[200, 4\]"),
        (lambda v, h: ((v[0][:-1], v[1]), h), r"shape \[N, C\]"),
        (lambda v, h: (v, (h[0].reshape(20, 10), h[1])), "1-D"),
        (lambda v, h: ((v[0].astype(float), v[1]), h), "integer"),
        (lambda v, h: ((v[0] + 4, v[1]), h), r"in \[0, 4\)"),
        (lambda v, h: ((v[0], v[1] * 2), h), "sum to 1"),
        (lambda v, h: (v, (np.where(h[0] == 3, 0, h[0]), h[1])), "holdout.*'weapon'"),
        (lambda v, h: ((np.where(v[0] == 2, 0, v[0]), v[1]), h), "val.*'disgusting'"),
    ],
)
def test_evaluate_bad_input(mutate, match):
    val, hold = mutate(*_good())
    with pytest.raises(ValueError, match=match):
        evaluate(*val, *hold, class_names=NAMES, negative="clean", target_precision=0.9)


def test_evaluate_bad_class_names():
    val, hold = _good()
    with pytest.raises(ValueError, match="negative label 'ok'"):
        evaluate(*val, *hold, class_names=NAMES, negative="ok", target_precision=0.9)
    with pytest.raises(ValueError, match="distinct"):
        evaluate(*val, *hold, class_names=("a", "a", "b", "c"), negative="a", target_precision=0.9)


def test_threshold_for_recall_flags_enough_positives():
    from modops.evaluation.metrics import threshold_for_recall

    y = np.array([1, 1, 1, 1, 0, 0])
    s = np.array([0.9, 0.8, 0.3, 0.1, 0.5, 0.05])
    assert threshold_for_recall(y, s, target_recall=0.5) == 0.8
    assert threshold_for_recall(y, s, target_recall=0.75) == 0.3
    assert threshold_for_recall(y, s, target_recall=1.0) == 0.1
    assert threshold_for_recall(np.zeros(3), s[:3], target_recall=0.9) == float("inf")
    with pytest.raises(ValueError):
        threshold_for_recall(y, s, target_recall=0)


def test_review_load_routes_each_image_once():
    from modops.evaluation.metrics import review_load

    names = ("clean", "spam", "weapon")
    probs = np.array(
        [
            [0.9, 0.05, 0.05],  # allowed
            [0.1, 0.85, 0.05],  # blocked (spam >= 0.8)
            [0.4, 0.5, 0.1],  # review (spam between 0.3 and 0.8)
            [0.5, 0.1, 0.4],  # review (weapon between 0.2 and 0.9)
            [0.0, 0.0, 1.0],  # blocked
        ]
    )
    labels = np.array([0, 1, 0, 2, 0])
    load = review_load(
        labels,
        probs,
        class_names=names,
        negative="clean",
        block_thresholds={"spam": 0.8, "weapon": 0.9},
        review_thresholds={"spam": 0.3, "weapon": 0.2},
    )
    assert (load["auto_allowed"], load["auto_blocked"], load["human_review"]) == (0.2, 0.4, 0.4)
    assert load["review_reduction"] == pytest.approx(0.6)
    assert load["missed_violations"] == 0.0 and load["wrongly_blocked"] == pytest.approx(1 / 3)
    assert load["n"] == 5
