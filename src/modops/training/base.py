"""Trainer registry and the data/result types every trainer shares. No MLflow here."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from modops.config import TrainConfig
from modops.data.datasets import ImageReader
from modops.data.images import DecodeLimits
from modops.models.io import MemberSpec, ModelSpec

__all__ = [
    "TrainData",
    "TrainResult",
    "Trainer",
    "InitStates",
    "member_init",
    "TRAINERS",
    "register_trainer",
    "get_trainer",
    "Progress",
]

#: ``progress(phase, done, total)``, called once per optimisation step.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class TrainData:
    """What a trainer trains on: image ids and labels, read lazily through ``reader``.

    Attributes:
        reader: Returns an image id's bytes (the image store).
        train_ids: Labelled training images, shape [N].
        train_y: Their class indices (int64), shape [N].
        val_ids: Validation images, shape [M] (best-epoch selection).
        val_y: Their class indices, shape [M].
        unlabeled_ids: Images without labels, for semi-supervised trainers, shape [U]; never
            near-duplicates of val or holdout images (the split stage excludes those).
        decode_limits: Byte and pixel caps and allowed formats every image is decoded under:
            the limits ingest enforced (:func:`modops.data.ingest.read_decode_limits`). An
            image outside them counts as unreadable, as a corrupt one does.
        train_weight: Optional sampling weight of each training image, float [N] (the noise
            check's ``downweight``: a likely mislabelled image is drawn less often within its
            class); None = every image alike.
    """

    reader: ImageReader
    train_ids: Sequence[str]
    train_y: np.ndarray
    val_ids: Sequence[str]
    val_y: np.ndarray
    unlabeled_ids: Sequence[str] = ()
    decode_limits: DecodeLimits = DecodeLimits()
    train_weight: np.ndarray | None = None

    def __post_init__(self) -> None:
        if len(self.train_ids) != len(self.train_y) or len(self.val_ids) != len(self.val_y):
            raise ValueError("image ids and labels differ in length")
        if self.train_weight is not None and len(self.train_weight) != len(self.train_ids):
            raise ValueError("train_weight needs one weight per training image")
        if len(self.train_ids) == 0 or len(self.val_ids) == 0:
            raise ValueError("training needs non-empty train and val sets; check the split stage")


@dataclass
class TrainResult:
    """What a trainer hands back; the caller saves and logs it.

    Attributes:
        networks: Trained networks by member name, eval mode, on the CPU.
        members: Their member specs, in order (stage 1 first for a cascade).
        kind: ``single`` or ``cascade``.
        combine: A cascade's combination rule, else None.
        history: One dict per epoch (loss, val_loss, val_macro_pr_auc, seconds, ...).
        best_epoch: 1-based epoch whose weights were kept (of the last-trained member).
        seconds: Wall time of training.
        train_images_per_s: Training samples per second over all steps.
        info: Trainer-specific figures (stage-2 share on val, hard examples mined, images
            that could not be decoded, ...).
    """

    networks: dict[str, nn.Module]
    members: tuple[MemberSpec, ...]
    kind: str = "single"
    combine: dict[str, Any] | None = None
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0
    train_images_per_s: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    def spec(self, classes: tuple[str, ...], *, trainer: str, label_version: str | None) -> ModelSpec:
        """The :class:`ModelSpec` describing these networks."""
        return ModelSpec(
            classes=classes,
            members=self.members,
            kind=self.kind,
            combine=self.combine,
            trainer=trainer,
            label_version=label_version,
        )


#: Saved weights to start each member from (``train.warm_start``): ``{member name: state dict}``.
InitStates = Mapping[str, Mapping[str, torch.Tensor]]


class Trainer(Protocol):
    def __call__(
        self,
        data: TrainData,
        *,
        cfg: TrainConfig,
        class_names: tuple[str, ...],
        progress: Progress | None = None,
        init: InitStates | None = None,
    ) -> TrainResult: ...


def member_init(init: InitStates | None, name: str, *, members: Sequence[str]) -> Mapping[str, torch.Tensor] | None:
    """The warm-start weights of member ``name``, None for a fresh start.

    Raises:
        ValueError: When ``init`` names members this trainer does not build (another trainer's model).
    """
    if init is None:
        return None
    unknown = sorted(set(init) - set(members))
    if unknown:
        raise ValueError(
            f"the warm-start model has members {sorted(init)} but this trainer builds {list(members)}: it was "
            "trained by another trainer; train from scratch once (train.warm_start.init: none)"
        )
    return init.get(name)


TRAINERS: dict[str, Trainer] = {}


def register_trainer(name: str) -> Callable[[Trainer], Trainer]:
    """Register a trainer under ``name`` (``train.trainer``; its settings live in ``train.<name>``)."""

    def deco(fn: Trainer) -> Trainer:
        TRAINERS[name] = fn
        return fn

    return deco


def get_trainer(name: str) -> Trainer:
    """Look up a trainer, with the known names in the error."""
    if name not in TRAINERS:
        raise ValueError(f"unknown trainer {name!r}; choose one of {sorted(TRAINERS)} (train.trainer)")
    return TRAINERS[name]
