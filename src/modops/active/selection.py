"""Active-learning selection: which scored uploads reviewers should label next, under a budget.

Strategies are chosen by name (:data:`SELECTORS`, ``select.strategy`` in ``params.yaml``); each
takes the prediction log's rows and returns a priority per row (higher = label sooner) and
the category it is selected for; :func:`select` then takes the budget, optionally spreading
it over the embedding space (k-center greedy) so a batch is not a pile of near-duplicates.

- ``random``: the baseline every other strategy must beat.
- ``entropy``: the most uncertain predictions (Shannon entropy of the class probabilities).
- ``confidence_band``: images whose highest category score falls in ``[low, high]``, the band
  where the model's flags are unsure (the seed paper's band), ranked by the loss the model's
  loss-prediction head expects (``predicted_loss``, "Learning Loss for Active Learning", Yoo and
  Kweon 2019); a model without a head ranks the band most central first.
- ``loss``: the paper's own rule, the highest predicted loss anywhere, no band.

A drift-triggered round can spend part of its budget on **novelty** (``novelty_fraction``):
the core-set greedy of Sener and Savarese (2018) seeded with the *reference* embeddings (what
the model was judged on), so it first takes the day's images farthest from anything the model
has seen, then spreads. A new spam style is by definition far from the reference; a model that
does not recognise it scores it low, out of every confidence band.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["SELECTORS", "Priority", "k_center_greedy", "novelty_order", "select"]


@dataclass(frozen=True)
class Priority:
    """A strategy's verdict on every row: ``score`` [N] (higher first; -inf = never), ``category`` [N]."""

    score: np.ndarray
    category: np.ndarray


def _probs(frame: pd.DataFrame, classes: tuple[str, ...]) -> np.ndarray:
    return frame[[f"p_{c}" for c in classes]].to_numpy(dtype=np.float64)


def _top_category(probs: np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
    return np.asarray(classes[1:], dtype=object)[probs[:, 1:].argmax(axis=1)]


def _random(frame: pd.DataFrame, *, classes: tuple[str, ...], seed: int, **_: float) -> Priority:
    probs = _probs(frame, classes)
    return Priority(np.random.default_rng(seed).random(len(frame)), _top_category(probs, classes))


def _entropy(frame: pd.DataFrame, *, classes: tuple[str, ...], **_: float) -> Priority:
    probs = _probs(frame, classes).clip(1e-12, 1.0)
    return Priority(-(probs * np.log(probs)).sum(axis=1), _top_category(probs, classes))


def _predicted_loss(frame: pd.DataFrame) -> np.ndarray | None:
    """The loss head's scores [N], or None when the model that scored the rows has no head."""
    if "predicted_loss" not in frame:
        return None
    loss = frame["predicted_loss"].to_numpy(dtype=np.float64)
    return loss if len(loss) and np.isfinite(loss).all() else None


def _confidence_band(frame: pd.DataFrame, *, classes: tuple[str, ...], low: float, high: float, **_: float) -> Priority:
    probs = _probs(frame, classes)
    top = probs[:, 1:].max(axis=1)
    inside = (top >= low) & (top <= high)
    loss = _predicted_loss(frame)
    # Without a head, most central first: the scores the flag decision is least sure of.
    rank = 1.0 - np.abs(top - (low + high) / 2) / max(high - low, 1e-9) if loss is None else loss
    return Priority(np.where(inside, rank, -np.inf), _top_category(probs, classes))


def _loss(frame: pd.DataFrame, *, classes: tuple[str, ...], **_: float) -> Priority:
    loss = _predicted_loss(frame)
    if loss is None:
        raise ValueError(
            "strategy 'loss' needs predicted losses, but these rows have none (predicted_loss is missing or NaN): "
            "train the model with train.loss_prediction.enabled: true, or choose confidence_band, entropy or random"
        )
    return Priority(loss, _top_category(_probs(frame, classes), classes))


Selector = Callable[..., Priority]

#: Selection strategies by name (``select.strategy``).
SELECTORS: dict[str, Selector] = {
    "random": _random,
    "entropy": _entropy,
    "confidence_band": _confidence_band,
    "loss": _loss,
}


def k_center_greedy(points: np.ndarray, k: int, *, first: int = 0) -> np.ndarray:
    """Indices of ``k`` rows of ``points`` [N, D] chosen by farthest-point (k-center greedy) order.

    Starts at row ``first`` (the highest-priority candidate) and repeatedly adds the row
    farthest from everything chosen so far (Sener and Savarese 2018, the core-set greedy).
    """
    n = len(points)
    if k >= n:
        return np.arange(n)
    x = np.asarray(points, dtype=np.float64)
    chosen = [first]
    dist = np.linalg.norm(x - x[first], axis=1)
    for _ in range(k - 1):
        nxt = int(dist.argmax())
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(x - x[nxt], axis=1))
    return np.asarray(chosen)


def _nearest_distance(points: np.ndarray, reference: np.ndarray, *, block: int = 1024) -> np.ndarray:
    """Euclidean distance of each row of ``points`` [N, D] to its nearest row of ``reference`` [M, D], shape [N]."""
    best = np.full(len(points), np.inf)
    p2 = (points**2).sum(axis=1)[:, None]
    for i in range(0, len(reference), block):
        r = reference[i : i + block]
        d2 = p2 - 2 * points @ r.T + (r**2).sum(axis=1)[None, :]
        best = np.minimum(best, d2.min(axis=1))
    return np.sqrt(np.clip(best, 0, None))


def novelty_order(points: np.ndarray, reference: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``k`` rows of ``points`` [N, D] by core-set greedy seeded with ``reference`` [M, D].

    Each step takes the row farthest from the reference *and* from the rows already taken.

    Returns:
        ``(indices [k], distance to the reference and earlier picks when taken [k])``.
    """
    x = np.asarray(points, dtype=np.float64)
    dist = _nearest_distance(x, np.asarray(reference, dtype=np.float64))
    chosen, gaps = [], []
    for _ in range(min(k, len(x))):
        nxt = int(dist.argmax())
        chosen.append(nxt)
        gaps.append(dist[nxt])
        dist = np.minimum(dist, np.linalg.norm(x - x[nxt], axis=1))
        dist[nxt] = -np.inf
    return np.asarray(chosen, dtype=np.int64), np.asarray(gaps)


def _emb_columns(frame: pd.DataFrame) -> list[str]:
    return sorted(c for c in frame.columns if c.startswith("emb_"))


def select(
    frame: pd.DataFrame,
    *,
    classes: tuple[str, ...],
    strategy: str,
    budget: int,
    low: float = 0.2,
    high: float = 0.8,
    diversity: bool = True,
    pool_factor: int = 4,
    seed: int = 0,
    reference: pd.DataFrame | None = None,
    novelty_fraction: float = 0.0,
) -> pd.DataFrame:
    """Choose at most ``budget`` rows of a prediction log for review.

    Args:
        frame: Prediction-log rows (``image_id``, ``p_<class>``, ``emb_*`` columns).
        classes: The model's classes, negative first.
        strategy: A key of :data:`SELECTORS`.
        budget: How many images reviewers will label.
        low, high: The confidence band (``confidence_band``).
        diversity: Spread the budget with k-center greedy over the embeddings of the
            ``pool_factor x budget`` highest-priority candidates (``random`` never needs it).
        pool_factor: How many candidates per selected image diversity chooses from.
        seed: For ``random``.
        reference: Rows the model was judged on (its holdout scores), with the same ``emb_*``
            projection; needed for ``novelty_fraction``.
        novelty_fraction: Share of the budget taken first by novelty (module docstring); the
            strategy spends the rest on the other images.

    Returns:
        The selected rows with ``category`` (what they were selected for), ``priority``,
        ``reason`` (``novelty`` or the strategy) and ``rank`` (1-based), ordered by rank; one
        row per image id.

    Raises:
        ValueError: For an unknown strategy (naming the known ones) or a negative budget.
    """
    if strategy not in SELECTORS:
        raise ValueError(f"unknown selection strategy {strategy!r}; choose one of {sorted(SELECTORS)}")
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    if not 0 <= low < high <= 1:
        raise ValueError(f"the confidence band needs 0 <= low < high <= 1, got [{low}, {high}]")
    if not 0 <= novelty_fraction <= 1:
        raise ValueError(f"novelty_fraction must be in [0, 1], got {novelty_fraction}")
    rows = frame.drop_duplicates("image_id").reset_index(drop=True)
    prio = SELECTORS[strategy](rows, classes=classes, low=low, high=high, seed=seed)
    novel, gaps = _novel(rows, reference, k=round(novelty_fraction * budget))
    order = np.argsort(-prio.score, kind="stable")
    order = order[np.isfinite(prio.score[order]) & ~np.isin(order, novel)]
    rest = budget - len(novel)
    if diversity and strategy != "random" and len(order) > rest:
        pool = order[: rest * pool_factor]
        emb = rows.loc[pool, _emb_columns(rows)].to_numpy()
        order = pool[k_center_greedy(emb, rest)] if emb.shape[1] and rest else order
    picked = np.concatenate([novel, order[:rest]]).astype(np.int64)
    out = rows.loc[picked].copy()
    out["category"] = prio.category[picked]
    out["priority"] = np.concatenate([gaps, prio.score[order[:rest]]])
    out["reason"] = ["novelty"] * len(novel) + [strategy] * (len(picked) - len(novel))
    out["rank"] = np.arange(1, len(out) + 1)
    return out.reset_index(drop=True)


def _novel(rows: pd.DataFrame, reference: pd.DataFrame | None, *, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The novelty share's row indices and their distances; none without a reference or a budget for it."""
    columns = _emb_columns(rows)
    if k <= 0 or reference is None or not len(reference) or not columns:
        return np.empty(0, dtype=np.int64), np.empty(0)
    missing = sorted(set(columns) - set(reference.columns))
    if missing:
        raise ValueError(f"the reference lacks the day's embedding columns {missing[:3]}: score both with one version")
    return novelty_order(rows[columns].to_numpy(), reference[columns].to_numpy(), k)
