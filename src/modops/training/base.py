"""Trainer registry and the data/result types every trainer shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn

from modops.config import TrainConfig

__all__ = ["TrainData", "TrainResult", "Trainer", "TRAINERS", "register_trainer", "get_trainer", "class_weights"]


@dataclass(frozen=True)
class TrainData:
    """Preloaded tensors for one training run.

    Attributes:
        train_x: uint8 images, shape [N, 3, S, S].
        train_y: int64 class indices, shape [N].
        val_x: uint8 images, shape [M, 3, S, S].
        val_y: int64 class indices, shape [M].
        unlabeled_x: Optional uint8 images for semi-supervised trainers, shape [U, 3, S, S].
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    unlabeled_x: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if len(self.train_x) != len(self.train_y) or len(self.val_x) != len(self.val_y):
            raise ValueError("images and labels differ in length")
        if len(self.train_x) == 0 or len(self.val_x) == 0:
            raise ValueError("training needs non-empty train and val sets; check the split stage")


@dataclass
class TrainResult:
    """What a trainer hands back.

    Attributes:
        model: The trained model (best epoch by val macro PR-AUC), eval mode.
        history: One dict per epoch (loss, val_loss, val_macro_pr_auc, seconds, ...).
        best_epoch: 1-based epoch whose weights were kept.
        seconds: Wall time of training.
        train_images_per_s: Throughput over all epochs.
    """

    model: nn.Module
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0
    train_images_per_s: float = 0.0


class Trainer(Protocol):
    def __call__(
        self,
        data: TrainData,
        *,
        cfg: TrainConfig,
        class_names: tuple[str, ...],
        progress: Callable[[str, int, int], None] | None = None,
    ) -> TrainResult: ...


TRAINERS: dict[str, Trainer] = {}


def register_trainer(name: str) -> Callable[[Trainer], Trainer]:
    """Register a trainer under ``name`` (selected by ``train.trainer`` in params.yaml)."""

    def deco(fn: Trainer) -> Trainer:
        TRAINERS[name] = fn
        return fn

    return deco


def get_trainer(name: str) -> Trainer:
    """Look up a trainer, with the known names in the error."""
    if name not in TRAINERS:
        raise ValueError(f"unknown trainer {name!r}; choose one of {sorted(TRAINERS)} (train.trainer)")
    return TRAINERS[name]


def class_weights(labels: torch.Tensor, *, num_classes: int, cap: float) -> torch.Tensor:
    """Inverse-frequency class weights relative to the largest class, capped at ``cap``.

    Full inverse-frequency balancing at 1 % positives would repeat each positive ~100x per
    epoch and overfit them; the cap bounds that (Yelp and Alibaba both balance, not equalise).

    Returns:
        float32 weights, shape [num_classes]; the largest class gets 1.0; absent classes 0.
    """
    counts = torch.bincount(labels, minlength=num_classes).float()
    weights = torch.where(counts > 0, counts.max() / counts.clamp(min=1), torch.zeros_like(counts))
    return weights.clamp(max=cap)
