"""Loss-prioritised, class-balanced sampling: hard examples are drawn more often.

At a low prevalence the useful negatives are few (a drill among product photos, a knife's
look-alike spatula) and class balancing alone draws them about as often as the easy ones. This
sampler keeps each class's share of the draws exactly as class balancing sets it, and within a
class draws each image in proportion to a priority that grows with its recent training loss
(online batch selection, Loshchilov and Hutter 2015; the data-level counterpart of OHEM). A
blend with the uniform draw and a cap on the priority keep every image in play and bound how
much a mislabelled image (whose loss stays high) can be repeated.

The loss memory lives for the whole run and is updated after every optimiser step from the
batch's per-sample losses; each epoch's sampler reads it as it draws, batch by batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

__all__ = ["LossMemory", "PrioritySampler", "combine_weights", "priorities", "source_weights"]


def source_weights(sources: Sequence[str | None], weights: Mapping[str, float]) -> np.ndarray | None:
    """Per-image sampling weights [N] from each label's source: ``weights[source]``, else 1.

    Returns None when no image's source is listed (training draws as usual).
    """
    if not weights:
        return None
    w = np.array([float(weights.get(s, 1.0)) if s is not None else 1.0 for s in sources], dtype=np.float64)
    return None if (w == 1.0).all() else w


def combine_weights(*weights: np.ndarray | None) -> np.ndarray | None:
    """The product of per-image weight vectors [N]; None entries count as all ones (None when all are)."""
    given = [np.asarray(w, dtype=np.float64) for w in weights if w is not None]
    if not given:
        return None
    out = given[0].copy()
    for w in given[1:]:
        if w.shape != out.shape:
            raise ValueError(f"weight vectors differ in length: {out.shape} vs {w.shape}")
        out *= w
    return out


class LossMemory:
    """A running (exponentially averaged) training loss per dataset position.

    Args:
        n: Dataset size.
        decay: Weight of the previous value in the average, in [0, 1); 0 keeps the latest loss.
    """

    def __init__(self, n: int, *, decay: float = 0.5) -> None:
        if not 0 <= decay < 1:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.loss = np.full(n, np.nan, dtype=np.float64)
        self.decay = decay

    def update(self, index: torch.Tensor | np.ndarray, losses: torch.Tensor | np.ndarray) -> None:
        """Fold per-sample ``losses`` [B] of dataset positions ``index`` [B] into the memory."""
        idx = np.asarray(index, dtype=np.int64)
        new = np.asarray(losses, dtype=np.float64)
        old = self.loss[idx]
        self.loss[idx] = np.where(np.isnan(old), new, self.decay * old + (1 - self.decay) * new)


def priorities(loss: np.ndarray, y: np.ndarray, *, mix: float, max_ratio: float) -> np.ndarray:
    """Within-class priorities [N]: ``(1 - mix) + mix * min(loss / class mean loss, max_ratio)``.

    An image not yet seen (NaN loss) counts as its class's mean (priority 1); a class with no
    loss seen yet, or a zero mean, is drawn uniformly.
    """
    q = np.ones(len(y), dtype=np.float64)
    for c in np.unique(y):
        members = y == c
        seen = loss[members]
        mean = np.nanmean(seen) if np.isfinite(seen).any() else np.nan
        if not np.isfinite(mean) or mean <= 0:
            continue
        ratio = np.where(np.isnan(seen), 1.0, seen / mean)
        q[members] = (1 - mix) + mix * np.minimum(ratio, max_ratio)
    return q


class PrioritySampler(Sampler[int]):
    """``num_samples`` draws with replacement: classes by ``class_weight``, images by loss priority.

    Each class gets the same expected share of draws as :func:`modops.data.datasets.balanced_sampler`
    with the same ``class_weight`` [C]; inside a class, images are drawn in proportion to
    :func:`priorities`. Draws are made ``chunk`` at a time from the memory as it is then, so
    losses recorded during an epoch steer the rest of it.
    """

    def __init__(
        self,
        labels: np.ndarray,
        *,
        class_weight: torch.Tensor,
        memory: LossMemory,
        num_samples: int,
        mix: float,
        max_ratio: float,
        seed: int,
        chunk: int = 64,
    ) -> None:
        self.y = np.asarray(labels, dtype=np.int64)
        if len(memory.loss) != len(self.y):
            raise ValueError(f"loss memory holds {len(memory.loss)} images, the dataset {len(self.y)}")
        counts = np.bincount(self.y, minlength=len(class_weight)).astype(np.float64)
        # Class mass as in the balanced sampler: weight x count, shared out over the class's images.
        self.mass = np.asarray(class_weight, dtype=np.float64)[self.y]
        self.counts = counts[self.y]
        self.memory, self.num_samples, self.chunk = memory, num_samples, max(1, chunk)
        self.mix, self.max_ratio = mix, max_ratio
        self.generator = torch.Generator().manual_seed(seed)

    def weights(self) -> np.ndarray:
        """Current draw probabilities [N] (they sum to 1)."""
        q = priorities(self.memory.loss, self.y, mix=self.mix, max_ratio=self.max_ratio)
        class_q = np.bincount(self.y, weights=q)[self.y]  # sum of priorities of each image's class
        w = self.mass * self.counts * q / class_q
        return w / w.sum()

    def __iter__(self) -> Iterator[int]:
        left = self.num_samples
        while left > 0:
            k = min(self.chunk, left)
            w = torch.from_numpy(self.weights())
            yield from torch.multinomial(w, k, replacement=True, generator=self.generator).tolist()
            left -= k

    def __len__(self) -> int:
        return self.num_samples
