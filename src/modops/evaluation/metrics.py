"""One-vs-rest metrics per violating category, threshold choice on val, Wilson intervals.

The model emits, per image, a softmax over ``labels.all`` = (negative, *categories). Each
violating category is judged one-vs-rest: ``y_true = (label == category)`` and the score is
the probability of that category. Thresholds are chosen on the VAL split to meet a target
precision and then applied, unchanged, to the HOLDOUT split, so holdout numbers are honest.

Everything here is pure: arrays in, frozen dataclasses and plain dicts out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve

__all__ = [
    "ThresholdChoice",
    "CategoryMetrics",
    "EvaluationReport",
    "choose_threshold",
    "category_metrics",
    "wilson_interval",
    "pr_curve_points",
    "evaluate",
]

# Float slack when comparing a precision such as 19/20 against a target such as 0.95, so a
# target that is met exactly is not missed by the last bit of rounding.
_EPS = 1e-12


@dataclass(frozen=True)
class ThresholdChoice:
    """A decision threshold chosen on val.

    Attributes:
        threshold: Score at or above which the category is predicted (``score >= threshold``).
        val_precision: Precision on val at ``threshold``, in [0, 1].
        val_recall: Recall on val at ``threshold``, in [0, 1].
        met_target: Whether ``val_precision`` reaches the target precision.
    """

    threshold: float
    val_precision: float
    val_recall: float
    met_target: bool


@dataclass(frozen=True)
class CategoryMetrics:
    """Holdout metrics for one violating category at a fixed threshold.

    Attributes:
        category: The category name.
        threshold: The threshold applied (chosen on val).
        precision: ``tp / (tp + fp)``; 0.0 when nothing is predicted (see ``category_metrics``).
        recall: ``tp / (tp + fn)``.
        f1: Harmonic mean of precision and recall; 0.0 when both are 0.
        pr_auc: Average precision over all thresholds (threshold-free).
        precision_ci: Wilson score interval ``(low, high)`` for precision.
        recall_ci: Wilson score interval ``(low, high)`` for recall.
        support: Number of positives (``tp + fn``).
        tp: True positives.
        fp: False positives.
        fn: False negatives.
        val_met_target: Whether the threshold met the target precision on val.
    """

    category: str
    threshold: float
    precision: float
    recall: float
    f1: float
    pr_auc: float
    precision_ci: tuple[float, float]
    recall_ci: tuple[float, float]
    support: int
    tp: int
    fp: int
    fn: int
    val_met_target: bool

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-ready dict; each interval becomes ``<name>_ci_low`` / ``<name>_ci_high``."""
        out = asdict(self)
        for name in ("precision", "recall"):
            low, high = out.pop(f"{name}_ci")
            out[f"{name}_ci_low"], out[f"{name}_ci_high"] = float(low), float(high)
        return out


@dataclass(frozen=True)
class EvaluationReport:
    """Holdout metrics for every violating category.

    Attributes:
        categories: Category name -> holdout metrics, in label order.
        thresholds: Category name -> threshold chosen on val.
        n_holdout: Number of holdout images.
        n_val: Number of val images.
    """

    categories: dict[str, CategoryMetrics]
    thresholds: dict[str, float]
    n_holdout: int
    n_val: int

    def to_metrics_json(self) -> dict[str, Any]:
        """The content of ``metrics.json``.

        Returns:
            ``{"holdout": {category: {precision, recall, f1, pr_auc, threshold, support, tp,
            fp, fn, precision_ci_low, precision_ci_high, recall_ci_low, recall_ci_high,
            val_met_target}}, "macro": {precision, recall, f1, pr_auc}, "thresholds":
            {category: threshold}, "n_holdout": int, "n_val": int}``. ``macro`` is the
            unweighted mean over categories.
        """
        holdout = {}
        for name, cm in self.categories.items():
            row = cm.to_dict()
            del row["category"]  # it is the key already
            holdout[name] = row
        keys = ("precision", "recall", "f1", "pr_auc")
        macro = {k: float(np.mean([getattr(c, k) for c in self.categories.values()])) for k in keys}
        return {
            "holdout": holdout,
            "macro": macro,
            "thresholds": dict(self.thresholds),
            "n_holdout": self.n_holdout,
            "n_val": self.n_val,
        }


def choose_threshold(y_true: np.ndarray, scores: np.ndarray, *, target_precision: float) -> ThresholdChoice:
    """Pick the val threshold with the highest recall whose precision meets a target.

    Candidate thresholds are the distinct score values; a sample is predicted positive when
    ``score >= threshold``. Among candidates with precision >= ``target_precision`` the one
    with the highest recall wins; ties on recall go to the highest threshold, which has the
    fewest false positives (hence the best precision) for the same recall. If no candidate
    meets the target, the one with the best precision wins (ties -> higher recall) and
    ``met_target`` is False, so the caller can report the miss instead of hiding it.

    Args:
        y_true: Binary labels, shape [N] (bool or 0/1).
        scores: Scores for the positive class, shape [N], finite floats.
        target_precision: Required precision, in (0, 1].

    Returns:
        The chosen threshold with its val precision and recall.

    Raises:
        ValueError: On bad shapes or values, or when ``y_true`` has no positives.
    """
    if not 0.0 < target_precision <= 1.0:
        raise ValueError(f"target_precision must be in (0, 1], got {target_precision}")
    y, s = _check_binary(y_true, scores)
    precision, recall, thresholds = precision_recall_curve(y, s)
    # sklearn appends a final (precision=1, recall=0) point with no threshold; drop it.
    precision, recall = precision[:-1], recall[:-1]
    meets = precision >= target_precision - _EPS
    if meets.any():
        idx = np.flatnonzero(meets)
        # lexsort: last key is primary. Max recall, then max threshold.
        best = idx[np.lexsort((thresholds[idx], recall[idx]))[-1]]
    else:
        best = int(np.lexsort((recall, precision))[-1])  # max precision, then max recall
    return ThresholdChoice(
        threshold=float(thresholds[best]),
        val_precision=float(precision[best]),
        val_recall=float(recall[best]),
        met_target=bool(meets.any()),
    )


def wilson_interval(successes: int, trials: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    Unlike the normal (Wald) interval it stays inside [0, 1] and does not collapse to a
    point at 0/n or n/n, which matters for the small per-category counts of a holdout.

    Args:
        successes: Number of successes k, 0 <= k <= trials.
        trials: Number of trials n >= 0.
        confidence: Two-sided confidence level, in (0, 1).

    Returns:
        ``(low, high)`` in [0, 1]. With ``trials == 0`` nothing is known: ``(0.0, 1.0)``.

    Raises:
        ValueError: On counts or a confidence level out of range.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if trials < 0 or not 0 <= successes <= max(trials, 0):
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if trials == 0:
        return (0.0, 1.0)
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    n, p = float(trials), successes / trials
    denom = 1.0 + z * z / n
    center = (p + z * z / (2.0 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denom
    # At 0/n and n/n the bound is exactly 0 or 1; set it so float rounding cannot leave 1e-17.
    low = 0.0 if successes == 0 else max(0.0, center - half)
    high = 1.0 if successes == trials else min(1.0, center + half)
    return (low, high)


def category_metrics(
    y_true: np.ndarray,
    scores: np.ndarray,
    *,
    category: str,
    threshold: float,
    confidence: float = 0.95,
    val_met_target: bool = True,
) -> CategoryMetrics:
    """Holdout metrics for one category at a fixed threshold.

    Precision when nothing is predicted (``tp + fp == 0``) is reported as 0.0, not 1.0 or
    NaN: a model that never fires must not pass a precision floor by vacuity, and NaN would
    break ``metrics.json`` comparisons. Its Wilson interval is then ``(0.0, 1.0)``, which
    says honestly that there is no evidence either way.

    Args:
        y_true: Binary labels, shape [N].
        scores: Scores for this category, shape [N].
        category: Category name, used in error messages and the result.
        threshold: Predict positive when ``score >= threshold``.
        confidence: Confidence level of the Wilson intervals, in (0, 1).
        val_met_target: Passed through from :func:`choose_threshold`.

    Returns:
        The metrics.

    Raises:
        ValueError: On bad shapes, or when there are no positives for ``category``.
    """
    y, s = _check_binary(y_true, scores, what=f"category '{category}'")
    pred = s >= threshold
    tp = int(np.sum(pred & y))
    fp = int(np.sum(pred & ~y))
    fn = int(np.sum(~pred & y))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return CategoryMetrics(
        category=category,
        threshold=float(threshold),
        precision=float(precision),
        recall=float(recall),
        f1=float(f1),
        pr_auc=float(average_precision_score(y, s)),
        precision_ci=wilson_interval(tp, tp + fp, confidence=confidence),
        recall_ci=wilson_interval(tp, tp + fn, confidence=confidence),
        support=tp + fn,
        tp=tp,
        fp=fp,
        fn=fn,
        val_met_target=bool(val_met_target),
    )


def pr_curve_points(y_true: np.ndarray, scores: np.ndarray, *, max_points: int = 200) -> list[dict[str, float]]:
    """Precision-recall curve as rows for a DVC plot.

    Args:
        y_true: Binary labels, shape [N].
        scores: Scores, shape [N].
        max_points: Keep at most this many points (>= 2), evenly spaced along the curve;
            the lowest and highest thresholds are always kept.

    Returns:
        ``[{"threshold", "precision", "recall"}, ...]`` ordered by increasing threshold.
    """
    if max_points < 2:
        raise ValueError(f"max_points must be >= 2, got {max_points}")
    y, s = _check_binary(y_true, scores)
    precision, recall, thresholds = precision_recall_curve(y, s)
    n = len(thresholds)
    keep = np.unique(np.linspace(0, n - 1, num=min(n, max_points)).round().astype(int))
    return [
        {
            "threshold": float(thresholds[i]),
            "precision": float(precision[i]),
            "recall": float(recall[i]),
        }
        for i in keep
    ]


def evaluate(
    val_labels: np.ndarray,
    val_probs: np.ndarray,
    holdout_labels: np.ndarray,
    holdout_probs: np.ndarray,
    *,
    class_names: Sequence[str],
    negative: str,
    target_precision: float | Mapping[str, float],
    confidence: float = 0.95,
) -> tuple[EvaluationReport, dict[str, list[dict[str, float]]]]:
    """Choose thresholds on val, then measure every violating category on holdout.

    Args:
        val_labels: Class indices into ``class_names``, shape [N_val], integer dtype.
        val_probs: Softmax outputs, shape [N_val, C] with C = len(class_names); rows sum to 1.
        holdout_labels: As ``val_labels``, shape [N_holdout].
        holdout_probs: As ``val_probs``, shape [N_holdout, C].
        class_names: Every label in model order (``LabelsConfig.all``).
        negative: The acceptable label; every other name is a violating category.
        target_precision: Val precision each threshold must reach, in (0, 1]; one value, or
            one per category (a mapping from category name).
        confidence: Confidence level of the Wilson intervals.

    Returns:
        The report, and per-category holdout PR-curve points (see :func:`pr_curve_points`).

    Raises:
        ValueError: On bad shapes or values, or when a category has no positives in val or
            holdout (the split must guarantee some).
    """
    names = list(class_names)
    if len(set(names)) != len(names):
        raise ValueError(f"class_names must be distinct, got {names}")
    if negative not in names:
        raise ValueError(f"negative label '{negative}' is not in class_names {names}")
    if len(names) < 2:
        raise ValueError(f"class_names needs the negative and at least one category, got {names}")
    val_labels, val_probs = _check_split("val", val_labels, val_probs, len(names))
    holdout_labels, holdout_probs = _check_split("holdout", holdout_labels, holdout_probs, len(names))

    categories: dict[str, CategoryMetrics] = {}
    thresholds: dict[str, float] = {}
    curves: dict[str, list[dict[str, float]]] = {}
    for idx, name in enumerate(names):
        if name == negative:
            continue
        try:
            target = target_precision[name] if isinstance(target_precision, Mapping) else target_precision
            choice = choose_threshold(val_labels == idx, val_probs[:, idx], target_precision=target)
        except ValueError as exc:
            raise ValueError(f"val split, category '{name}': {exc}") from exc
        y_hold, s_hold = holdout_labels == idx, holdout_probs[:, idx]
        try:
            categories[name] = category_metrics(
                y_hold,
                s_hold,
                category=name,
                threshold=choice.threshold,
                confidence=confidence,
                val_met_target=choice.met_target,
            )
        except ValueError as exc:
            raise ValueError(f"holdout split: {exc}") from exc
        thresholds[name] = choice.threshold
        curves[name] = pr_curve_points(y_hold, s_hold)
    report = EvaluationReport(
        categories=categories,
        thresholds=thresholds,
        n_holdout=int(len(holdout_labels)),
        n_val=int(len(val_labels)),
    )
    return report, curves


def _check_binary(y_true: np.ndarray, scores: np.ndarray, *, what: str = "y_true") -> tuple[np.ndarray, np.ndarray]:
    """Validate a one-vs-rest problem; return (bool labels [N], float scores [N])."""
    y, s = np.asarray(y_true), np.asarray(scores, dtype=float)
    if y.ndim != 1 or s.ndim != 1 or len(y) != len(s):
        raise ValueError(f"y_true and scores must be 1-D arrays of equal length, got shapes {y.shape} and {s.shape}")
    if len(y) == 0:
        raise ValueError("y_true and scores are empty: nothing to evaluate")
    if y.dtype != bool:
        if not np.isin(y, (0, 1)).all():
            raise ValueError(f"y_true must be binary (bool or 0/1), got values {np.unique(y)[:5]}")
        y = y.astype(bool)
    if not np.isfinite(s).all():
        raise ValueError(f"scores contain {int(np.sum(~np.isfinite(s)))} NaN/inf values")
    if not y.any():
        raise ValueError(
            f"{what} has no positive samples, so precision and recall are undefined; "
            "make sure the split contains examples of every category"
        )
    return y, s


def _check_split(split: str, labels: np.ndarray, probs: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate one split; return (labels [N] int, probs [N, n_classes] float) as arrays."""
    labels, probs = np.asarray(labels), np.asarray(probs)
    if labels.ndim != 1:
        raise ValueError(f"{split} labels must be 1-D class indices, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{split} labels must be integer class indices, got dtype {labels.dtype}; "
            "map names to indices with class_names.index(name)"
        )
    if probs.ndim != 2 or probs.shape != (len(labels), n_classes):
        raise ValueError(
            f"{split} probs must have shape [N, C] = [{len(labels)}, {n_classes}] "
            f"(one column per class name), got {probs.shape}"
        )
    if len(labels) == 0:
        raise ValueError(f"{split} split is empty")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"{split} labels must be in [0, {n_classes}), got range [{labels.min()}, {labels.max()}]")
    if not np.isfinite(probs).all():
        raise ValueError(f"{split} probs contain NaN or inf")
    # Softmax rows sum to 1; a looser sum means logits or sigmoid outputs were passed.
    sums = probs.sum(axis=1)
    if not np.allclose(sums, 1.0, atol=1e-3):
        worst = float(sums[np.argmax(np.abs(sums - 1.0))])
        raise ValueError(
            f"{split} probs rows must sum to 1 (softmax outputs), found a row summing to "
            f"{worst:.4f}; apply softmax to the logits first"
        )
    return labels, probs.astype(float, copy=False)


def threshold_for_recall(y_true: np.ndarray, scores: np.ndarray, *, target_recall: float) -> float:
    """The highest threshold whose recall reaches ``target_recall`` (``score >= t`` is flagged).

    Args:
        y_true: Binary labels, shape [N].
        scores: Scores for the positive class, shape [N].
        target_recall: In (0, 1].

    Returns:
        The threshold; with no positives, +inf (nothing needs catching, nothing is flagged).
    """
    if not 0 < target_recall <= 1:
        raise ValueError(f"target_recall must be in (0, 1], got {target_recall}")
    pos = np.sort(np.asarray(scores, dtype=np.float64)[np.asarray(y_true, dtype=bool)])[::-1]
    if pos.size == 0:
        return float("inf")
    # Flag the top ceil(target * P) positives: the threshold is the score of the last of them.
    k = int(np.ceil(target_recall * pos.size - 1e-9))
    return float(pos[max(k, 1) - 1])


def review_load(
    labels: np.ndarray,
    probs: np.ndarray,
    *,
    class_names: Sequence[str],
    negative: str,
    block_thresholds: Mapping[str, float],
    review_thresholds: Mapping[str, float],
) -> dict[str, Any]:
    """Where uploads go under a two-threshold policy, against sending everything to review.

    An image is auto-blocked when any category's score reaches its block threshold (the
    precision operating point), sent to human review when it is not blocked but some score
    reaches that category's review threshold (the high-recall point), and allowed otherwise.

    Args:
        labels: Class indices into ``class_names``, shape [N].
        probs: Scores, shape [N, C].
        class_names: Every label in column order.
        negative: The acceptable label.
        block_thresholds, review_thresholds: Per violating category.

    Returns:
        Shares of the N images (``auto_allowed``, ``auto_blocked``, ``human_review``),
        ``review_reduction`` (1 - human_review: the manual work saved against reviewing every
        upload), ``missed_violations`` (violations auto-allowed / all violations),
        ``wrongly_blocked`` (acceptable images auto-blocked / all acceptable ones), ``n``, and
        both threshold maps.
    """
    cats = [c for c in class_names if c != negative and c in block_thresholds]
    cols = [list(class_names).index(c) for c in cats]
    scores = np.asarray(probs, dtype=np.float64)[:, cols]
    block = (scores >= np.array([block_thresholds[c] for c in cats])).any(axis=1)
    flag = (scores >= np.array([review_thresholds.get(c, block_thresholds[c]) for c in cats])).any(axis=1)
    review = flag & ~block
    allowed = ~(block | review)
    bad = np.asarray(labels) != list(class_names).index(negative)
    n = len(bad)

    def share(mask: np.ndarray, of: np.ndarray | None = None) -> float:
        base = np.ones(n, bool) if of is None else of
        return float(mask[base].mean()) if base.any() else 0.0

    return {
        "n": int(n),
        "auto_allowed": share(allowed),
        "auto_blocked": share(block),
        "human_review": share(review),
        "review_reduction": 1.0 - share(review),
        "missed_violations": share(allowed, bad),
        "wrongly_blocked": share(block, ~bad),
        "block_thresholds": {c: float(block_thresholds[c]) for c in cats},
        "review_thresholds": {c: float(review_thresholds.get(c, block_thresholds[c])) for c in cats},
    }
