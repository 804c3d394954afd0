"""Classification losses by name (``train.supervised.loss``): cross-entropy and OHEM.

Each factory returns ``loss(logits, targets, progress) -> scalar`` where ``progress`` in [0, 1]
is the fraction of training done, so schedules such as OHEM's warm-up need no extra state.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["LOSSES", "LossFn", "make_loss", "ohem_select", "ohem_cross_entropy"]

LossFn = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]


def ohem_select(losses: torch.Tensor, *, keep_fraction: float) -> torch.Tensor:
    """Indices of the hardest ``ceil(keep_fraction * B)`` samples (at least one), hardest first.

    Args:
        losses: Per-sample losses [B].
        keep_fraction: In (0, 1].
    """
    if not 0 < keep_fraction <= 1:
        raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction}")
    k = max(1, int(torch.ceil(torch.tensor(keep_fraction * len(losses))).item()))
    return torch.topk(losses, k=min(k, len(losses)), sorted=True).indices


def ohem_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, *, keep_fraction: float, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Online hard example mining: cross-entropy averaged over the hardest fraction of the batch.

    Easy negatives, the vast majority at a low prevalence, stop diluting the gradient.

    Args:
        logits: [B, C].
        targets: Class indices [B].
        keep_fraction: Fraction of the batch kept, in (0, 1].
        weight: Optional class weights [C]; the kept losses are then averaged with those weights.
    """
    per_sample = F.cross_entropy(logits, targets, weight=weight, reduction="none")
    kept = ohem_select(per_sample.detach(), keep_fraction=keep_fraction)
    if weight is None:
        return per_sample[kept].mean()
    # Normalise like F.cross_entropy(weight=...) (by the kept samples' weights), so keep_fraction=1
    # equals weighted cross-entropy and the loss does not jump when the warm-up ends.
    return per_sample[kept].sum() / weight[targets[kept]].sum()


def _cross_entropy(*, weight: torch.Tensor | None = None, **_: float) -> LossFn:
    def loss(logits: torch.Tensor, targets: torch.Tensor, progress: float) -> torch.Tensor:
        return F.cross_entropy(logits, targets, weight=weight)

    return loss


def _ohem(*, weight: torch.Tensor | None = None, keep_fraction: float = 0.5, warmup_fraction: float = 0.2) -> LossFn:
    def loss(logits: torch.Tensor, targets: torch.Tensor, progress: float) -> torch.Tensor:
        if progress < warmup_fraction:  # early on every sample is hard; mining would only add noise
            return F.cross_entropy(logits, targets, weight=weight)
        return ohem_cross_entropy(logits, targets, keep_fraction=keep_fraction, weight=weight)

    return loss


LOSSES: dict[str, Callable[..., LossFn]] = {"cross_entropy": _cross_entropy, "ohem": _ohem}


def make_loss(name: str, **kwargs: object) -> LossFn:
    """Build the loss registered as ``name`` with its settings (unused settings are ignored)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)} (train.supervised.loss)")
    return LOSSES[name](**kwargs)
