"""Paired bootstrap comparison of a candidate and the champion on the same holdout.

Both models score the *same* frozen holdout images. Each bootstrap resample draws image
indices with replacement once and applies them to both models, so the noise that comes from
which images happen to be in the holdout cancels in the difference (that is what "paired"
means). The percentile interval of the candidate-minus-champion difference says whether a
drop is real or within what a different draw of the same size could give.

Everything here is pure numpy: arrays in, frozen dataclasses out. No sklearn call sits in the
resampling loop: average precision is computed for a whole chunk of resamples at once by
weighting each image with how often the resample drew it (identical to sklearn's
``average_precision_score(y, s, sample_weight=counts)``, which in turn equals the score on
the duplicated images).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["METRICS", "PairedDifference", "ScoredHoldout", "paired_differences"]

METRICS = ("pr_auc", "recall", "precision", "f1")
# A candidate counts as worse on a resample only when it is below the champion by more than
# float noise, so two identical models give p_worse == 0, not a coin flip on rounding.
_TIE = 1e-12
# Resample weights held in memory at once, in floats: chunks of resamples keep a
# 2000-image holdout fully vectorised and a 100k-image one within ~16 MB per array.
_CHUNK_CELLS = 2_000_000


@dataclass(frozen=True, eq=False)
class ScoredHoldout:
    """One model's scores on the frozen holdout, by image and by category NAME.

    Attributes:
        image_ids: Image identifiers, shape [N], str; unique.
        labels: True label name of each image, shape [N], str (the negative class included).
        scores: Category name -> scores, each shape [N], finite floats (e.g. softmax
            probabilities). Only violating categories; the negative class needs none.
        thresholds: Category name -> operating threshold (predict when ``score >= threshold``),
            chosen on val. Same keys as ``scores``.
        threshold_policy: How the thresholds were chosen, e.g. ``"val precision >= 0.95"``.
            When both sides of a comparison set it, they must match; None = not recorded.

    Arrays are copied and made read-only, so a holdout cannot change after it was checked.
    """

    image_ids: np.ndarray
    labels: np.ndarray
    scores: Mapping[str, np.ndarray]
    thresholds: Mapping[str, float]
    threshold_policy: str | None = None

    def __post_init__(self) -> None:
        ids = _frozen(np.asarray(self.image_ids).astype(str))
        labels = _frozen(np.asarray(self.labels).astype(str))
        if ids.ndim != 1 or labels.shape != ids.shape:
            raise ValueError(f"image_ids and labels must be 1-D of equal length, got {ids.shape} and {labels.shape}")
        if len(ids) == 0:
            raise ValueError("the holdout is empty: nothing to compare")
        if len(np.unique(ids)) != len(ids):
            raise ValueError("image_ids must be unique: deduplicate the holdout before scoring it")
        if set(self.scores) != set(self.thresholds):
            raise ValueError(
                f"scores and thresholds must name the same categories, got {sorted(self.scores)} "
                f"and {sorted(self.thresholds)}"
            )
        scores = {cat: _frozen(_check_scores(s, cat, len(ids))) for cat, s in self.scores.items()}
        thresholds = {cat: float(t) for cat, t in self.thresholds.items()}
        bad = {cat: t for cat, t in thresholds.items() if not np.isfinite(t)}
        if bad:
            raise ValueError(f"thresholds must be finite, got {bad}")
        object.__setattr__(self, "image_ids", ids)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "thresholds", thresholds)

    @property
    def categories(self) -> tuple[str, ...]:
        """The scored categories, in the order given."""
        return tuple(self.scores)

    @classmethod
    def from_probs(
        cls,
        *,
        image_ids: Sequence[str] | np.ndarray,
        y_index: np.ndarray,
        probs: np.ndarray,
        class_names: Sequence[str],
        thresholds: Mapping[str, float],
        threshold_policy: str | None = None,
    ) -> ScoredHoldout:
        """Build from a model's softmax outputs, mapping columns to categories by name.

        Args:
            image_ids: Image identifiers, shape [N].
            y_index: True class index of each image into ``class_names``, shape [N], int.
            probs: Softmax outputs, shape [N, C], column j is ``class_names[j]``.
            class_names: This model's label order (``LabelsConfig.all`` when it was trained).
            thresholds: Category -> threshold; its keys choose which columns are scored, so the
                negative class (which has no threshold) is left out.
            threshold_policy: See :class:`ScoredHoldout`.

        Raises:
            ValueError: On shape mismatches, out-of-range indices, or a threshold for a name
                that is not in ``class_names``.
        """
        names = list(class_names)
        y, p = np.asarray(y_index), np.asarray(probs, dtype=float)
        if p.ndim != 2 or p.shape[1] != len(names):
            raise ValueError(f"probs must have shape [N, {len(names)}] (one column per class name), got {p.shape}")
        if y.ndim != 1 or len(y) != len(p) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"y_index must be [N={len(p)}] integer class indices, got {y.dtype} {y.shape}")
        if len(y) and (y.min() < 0 or y.max() >= len(names)):
            raise ValueError(f"y_index must be in [0, {len(names)}), got [{y.min()}, {y.max()}]")
        unknown = sorted(set(thresholds) - set(names))
        if unknown:
            raise ValueError(f"thresholds name categories {unknown} that are not in class_names {names}")
        return cls(
            image_ids=np.asarray(image_ids),
            labels=np.asarray(names, dtype=str)[y],
            scores={cat: p[:, names.index(cat)] for cat in thresholds},
            thresholds=dict(thresholds),
            threshold_policy=threshold_policy,
        )


@dataclass(frozen=True)
class PairedDifference:
    """Candidate minus champion on one category, with its paired bootstrap interval.

    Attributes:
        category: The category name.
        metric: One of :data:`METRICS`.
        candidate: The candidate's metric on the full holdout.
        champion: The champion's metric on the full holdout.
        point: ``candidate - champion`` on the full holdout (negative = the candidate is worse).
        ci_low, ci_high: Percentile interval of the difference over the used resamples, at
            ``confidence``. NaN when no resample could be used.
        p_worse: Share of used resamples where the candidate is worse (by more than 1e-12).
        confidence: Two-sided level of the interval, e.g. 0.95.
        n_resamples: Resamples used.
        n_skipped: Resamples dropped because they drew no positive of this category (recall,
            precision and AP are undefined or degenerate there for both models alike).
    """

    category: str
    metric: str
    candidate: float
    champion: float
    point: float
    ci_low: float
    ci_high: float
    p_worse: float
    confidence: float
    n_resamples: int
    n_skipped: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (plain floats and ints)."""
        return {
            "category": self.category,
            "metric": self.metric,
            "candidate": float(self.candidate),
            "champion": float(self.champion),
            "point": float(self.point),
            "ci_low": float(self.ci_low),
            "ci_high": float(self.ci_high),
            "p_worse": float(self.p_worse),
            "confidence": float(self.confidence),
            "n_resamples": int(self.n_resamples),
            "n_skipped": int(self.n_skipped),
        }


def paired_differences(
    candidate: ScoredHoldout,
    champion: ScoredHoldout,
    *,
    metric: str,
    n_resamples: int,
    confidence: float,
    seed: int,
) -> dict[str, PairedDifference]:
    """Paired bootstrap of ``metric`` (candidate minus champion) for every shared category.

    Categories are matched by name, never by position: a champion trained with another label
    order compares correctly. A category the champion does not score is absent from the
    result (the gate reports candidate-only and champion-only categories itself). Recall,
    precision and F1 use each model's own threshold (the same policy, e.g. the val target
    precision, chose both); ``pr_auc`` is average precision, threshold-free. Precision with no
    predicted positive is 0.0, as in :func:`modops.evaluation.metrics.category_metrics`.

    Every category sees the same resamples. A resample that draws no positive of a category
    is skipped for that category (for both models) and counted in ``n_skipped``; on a holdout
    with no positive at all every value is NaN, which the gate treats as a failure.

    Args:
        candidate: The candidate's scores on the holdout.
        champion: The champion's scores on the same holdout, in any image or category order.
        metric: One of :data:`METRICS`.
        n_resamples: Bootstrap resamples, >= 1 (the gate uses >= 100).
        confidence: Two-sided level of the percentile interval, in (0, 1).
        seed: Seed of the resampling; the same inputs and seed give the same result.

    Returns:
        Category name -> difference, in the candidate's category order.

    Raises:
        ValueError: When the two are not the same holdout (other images, or other labels for
            an image), when their threshold policies differ, or on a bad argument.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got '{metric}'")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    order = _align(candidate, champion)
    shared = [c for c in candidate.categories if c in champion.scores]
    labels = candidate.labels
    models = {
        c: (
            _Scored(candidate.scores[c], labels == c, candidate.thresholds[c]),
            _Scored(champion.scores[c][order], labels == c, champion.thresholds[c]),
        )
        for c in shared
    }
    ones = np.ones((1, len(labels)))
    diffs: dict[str, list[np.ndarray]] = {c: [] for c in shared}
    for weights in _resample_weights(len(labels), n_resamples=n_resamples, seed=seed):
        for c, (cand, champ) in models.items():
            diffs[c].append(cand.metric(weights, metric) - champ.metric(weights, metric))
    out = {}
    for c, (cand, champ) in models.items():
        cand_point, champ_point = float(cand.metric(ones, metric)[0]), float(champ.metric(ones, metric)[0])
        out[c] = _summarise(
            c,
            np.concatenate(diffs[c]),
            metric=metric,
            candidate=cand_point,
            champion=champ_point,
            confidence=confidence,
        )
    return out


class _Scored:
    """One model on one category, prepared once so every chunk of resamples reuses it."""

    def __init__(self, scores: np.ndarray, positive: np.ndarray, threshold: float) -> None:
        self.positive = positive.astype(float)
        predicted = scores >= threshold
        self.tp_mask = (predicted & positive).astype(float)
        self.fp_mask = (predicted & ~positive).astype(float)
        # Sorted once: the ranking does not depend on the resample, only the weights do.
        self.order = np.argsort(-scores, kind="stable")
        self.sorted_positive = self.positive[self.order]
        # The last image of each run of equal scores closes one threshold.
        self.ends = np.r_[np.flatnonzero(np.diff(scores[self.order]) != 0), len(scores) - 1]

    def metric(self, weights: np.ndarray, metric: str) -> np.ndarray:
        """``metric`` per resample; ``weights`` [B, N] = draw counts. NaN where no positive was drawn."""
        positives = weights @ self.positive
        if metric == "pr_auc":
            value = self._average_precision(weights)
        else:
            tp, fp = weights @ self.tp_mask, weights @ self.fp_mask
            precision = _ratio(tp, tp + fp)
            recall = _ratio(tp, positives)
            f1 = _ratio(2 * precision * recall, precision + recall)
            value = {"precision": precision, "recall": recall, "f1": f1}[metric]
        return np.where(positives > 0, value, np.nan)

    def _average_precision(self, weights: np.ndarray) -> np.ndarray:
        """Weighted average precision per resample, [B], as sklearn computes it.

        ``AP = sum_k (R_k - R_{k-1}) P_k`` over distinct thresholds in decreasing order. Tied
        scores form one threshold (sklearn's convention), so ties are never broken by order.
        A resample without positives gives 0 here; :meth:`metric` masks it to NaN.
        """
        w = weights[:, self.order]
        tp = np.cumsum(w * self.sorted_positive, axis=1)[:, self.ends]
        drawn = np.cumsum(w, axis=1)[:, self.ends]
        precision = _ratio(tp, drawn)
        recall = _ratio(tp, tp[:, -1:])
        gains = np.diff(recall, axis=1, prepend=0.0)
        return np.sum(gains * precision, axis=1)


def _resample_weights(n: int, *, n_resamples: int, seed: int):
    """Yield [B, n] draw counts, ``n_resamples`` rows in all; each row sums to ``n``.

    One index draw per resample shared by every model and category: that is the pairing.
    """
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_resamples, _CHUNK_CELLS // n))
    done = 0
    while done < n_resamples:
        b = min(chunk, n_resamples - done)
        idx = rng.integers(0, n, size=(b, n))
        # Offsetting each row by row * n turns one bincount into b independent ones.
        counts = np.bincount((idx + np.arange(b)[:, None] * n).ravel(), minlength=b * n)
        yield counts.reshape(b, n).astype(float)
        done += b


def _summarise(
    category: str,
    diffs: np.ndarray,
    *,
    metric: str,
    candidate: float,
    champion: float,
    confidence: float,
) -> PairedDifference:
    """Reduce per-resample differences (NaN = skipped) to a :class:`PairedDifference`."""
    used = diffs[~np.isnan(diffs)]
    if len(used):
        alpha = (1.0 - confidence) / 2.0
        low, high = (float(q) for q in np.quantile(used, [alpha, 1.0 - alpha]))
        p_worse = float(np.mean(used < -_TIE))
    else:
        low = high = p_worse = float("nan")
    return PairedDifference(
        category=category,
        metric=metric,
        candidate=candidate,
        champion=champion,
        point=candidate - champion,
        ci_low=low,
        ci_high=high,
        p_worse=p_worse,
        confidence=float(confidence),
        n_resamples=int(len(used)),
        n_skipped=int(len(diffs) - len(used)),
    )


def _align(candidate: ScoredHoldout, champion: ScoredHoldout) -> np.ndarray:
    """Indices that put the champion's images in the candidate's order; check it is the same holdout."""
    if (
        candidate.threshold_policy is not None
        and champion.threshold_policy is not None
        and candidate.threshold_policy != champion.threshold_policy
    ):
        raise ValueError(
            f"the models' thresholds were chosen under different policies ('{candidate.threshold_policy}' vs "
            f"'{champion.threshold_policy}'): re-choose the champion's thresholds on val under the candidate's policy"
        )
    only_cand = np.setdiff1d(candidate.image_ids, champion.image_ids)
    only_champ = np.setdiff1d(champion.image_ids, candidate.image_ids)
    if len(only_cand) or len(only_champ):
        raise ValueError(
            f"not the same holdout: {len(only_cand)} images only in the candidate's (e.g. {list(only_cand[:3])}), "
            f"{len(only_champ)} only in the champion's (e.g. {list(only_champ[:3])}); "
            "score both models on the same frozen holdout"
        )
    by_id = np.argsort(champion.image_ids)
    order = by_id[np.searchsorted(champion.image_ids[by_id], candidate.image_ids)]
    differ = candidate.labels != champion.labels[order]
    if differ.any():
        raise ValueError(
            f"not the same holdout: {int(differ.sum())} images carry different labels "
            f"(e.g. {list(candidate.image_ids[differ][:3])}); score both models against the same label version"
        )
    return order


def _check_scores(scores: Any, category: str, n: int) -> np.ndarray:
    s = np.asarray(scores, dtype=float)
    if s.shape != (n,):
        raise ValueError(f"scores of '{category}' must have shape [{n}], got {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError(
            f"scores of '{category}' contain {int(np.sum(~np.isfinite(s)))} NaN/inf values: "
            "the model's outputs are broken; fix the model or its preprocessing before comparing"
        )
    return s


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.flags.writeable = False
    return a


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with 0.0 where ``den == 0`` (no prediction -> precision 0, as in metrics.py)."""
    num, den = np.broadcast_arrays(np.asarray(num, dtype=float), np.asarray(den, dtype=float))
    return np.divide(num, den, out=np.zeros(num.shape), where=den > 0)
