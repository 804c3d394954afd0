"""The predictor seam: images in, per-category scores out, for a single network or a cascade.

Evaluation, the registered pyfunc, batch scoring, ``modops predict`` and ``modops explain``
all go through :func:`load_predictor`, so a cascade is scored, registered and served exactly
like a single model. Inputs are uint8 batches [N, 3, S, S] made by the eval preset at
``spec.image_size`` with ``spec.resize``; outputs are class probabilities [N, C] whose rows
sum to 1.

A cascade routes an image to stage 2 only when stage 1 is unsure (any violating category's
stage-1 score inside the uncertainty band), and fuses the two stages' probabilities there;
elsewhere stage 1 decides alone, so stage 2 costs only what reaches it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from modops.data.transforms import EvalPreset, normalize
from modops.models.backbones import get_backbone
from modops.models.io import ModelSpec, load_members
from modops.models.loss_head import get_loss_head, stage_features
from modops.runtime import Runtime

__all__ = [
    "COMBINERS",
    "Prediction",
    "Predictor",
    "SingleModel",
    "Cascade",
    "band_route",
    "fuse",
    "fuse_columns",
    "load_predictor",
    "build_predictor",
]


@dataclass(frozen=True)
class Prediction:
    """Scores of one batch.

    Attributes:
        probs: float32 [N, C] class probabilities, rows summing to 1.
        stage2: bool [N], True where a cascade's stage 2 contributed (all False for a single model).
        loss: float32 [N], the loss the model expects to have on each image (a ranking score from
            its loss-prediction head, :mod:`modops.models.loss_head`), or None without a head or
            when not asked for (:meth:`Predictor.predict` leaves it out; ``predict_and_embed``
            fills it).
    """

    probs: np.ndarray
    stage2: np.ndarray
    loss: np.ndarray | None = None


class Predictor(Protocol):
    """Images in, per-category scores out."""

    spec: ModelSpec
    runtime: Runtime

    def predict(self, images: torch.Tensor) -> Prediction:
        """Score uint8 images [N, 3, S, S] (S = ``spec.image_size``)."""
        ...

    def embed(self, images: torch.Tensor) -> np.ndarray:
        """Embeddings float32 [N, D]: the pooled feature layer of the first member."""
        ...

    def predict_and_embed(self, images: torch.Tensor) -> tuple[Prediction, np.ndarray]:
        """:meth:`predict` and :meth:`embed` with one forward pass of the first member."""
        ...

    @property
    def members(self) -> list:
        """The networks with their input sizes and backbones, stage 1 first."""
        ...

    def preset(self) -> EvalPreset:
        """The eval preset that turns image bytes into this predictor's input."""
        ...


def _prepare(images: torch.Tensor, *, size: int, spec: ModelSpec, runtime: Runtime) -> torch.Tensor:
    x = images.to(runtime.device, non_blocking=True)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        x = x.round().clamp(0, 255).to(torch.uint8)
    return normalize(x, mean=spec.mean, std=spec.std)


class _Member:
    """One network of a predictor, with its input size and backbone (feature and Grad-CAM layers)."""

    def __init__(self, name: str, net: nn.Module, *, size: int, backbone: str, runtime: Runtime) -> None:
        self.name, self.size, self.backbone = name, size, backbone
        self.net = net.to(runtime.device, memory_format=torch.channels_last).eval()

    def inputs(self, images: torch.Tensor, *, spec: ModelSpec, runtime: Runtime) -> torch.Tensor:
        """uint8 [N, 3, S, S] -> this member's normalised float input [N, 3, size, size]."""
        return _prepare(images, size=self.size, spec=spec, runtime=runtime)

    def probs(self, images: torch.Tensor, *, spec: ModelSpec, runtime: Runtime) -> torch.Tensor:
        with runtime.inference():
            logits = self.net(_prepare(images, size=self.size, spec=spec, runtime=runtime))
        return torch.softmax(logits.float(), dim=1)

    def probs_and_embeddings(
        self, images: torch.Tensor, *, spec: ModelSpec, runtime: Runtime
    ) -> tuple[torch.Tensor, np.ndarray, np.ndarray | None]:
        """One forward pass: probabilities [N, C], pooled feature-layer embeddings float32 [N, D]
        and, when the network has a loss-prediction head, its predicted losses float32 [N] (else None).
        """
        head = get_loss_head(self.net)
        feature_layer = (get_backbone(self.backbone).feature_layer,)
        with (
            stage_features(self.net, feature_layer) as out,
            stage_features(self.net, head.layers if head else ()) as stages,
            runtime.inference(),
        ):
            logits = self.net(_prepare(images, size=self.size, spec=spec, runtime=runtime))
            loss = head(stages).float().cpu().numpy().astype(np.float32) if head is not None else None
        emb = out[0].float().mean(dim=(2, 3)).cpu().numpy().astype(np.float32)
        return torch.softmax(logits.float(), dim=1), emb, loss

    def embed(self, images: torch.Tensor, *, spec: ModelSpec, runtime: Runtime) -> np.ndarray:
        return self.probs_and_embeddings(images, spec=spec, runtime=runtime)[1]


class SingleModel:
    """A :class:`Predictor` over one network."""

    def __init__(self, spec: ModelSpec, net: nn.Module, *, runtime: Runtime | None = None) -> None:
        self.spec, self.runtime = spec, runtime or Runtime(torch.device("cpu"))
        m = spec.members[0]
        self.member = _Member(m.name, net, size=m.image_size, backbone=m.backbone, runtime=self.runtime)

    @property
    def networks(self) -> dict[str, nn.Module]:
        return {self.member.name: self.member.net}

    @property
    def members(self) -> list[_Member]:
        return [self.member]

    def predict(self, images: torch.Tensor) -> Prediction:
        probs = self.member.probs(images, spec=self.spec, runtime=self.runtime).cpu().numpy()
        return Prediction(probs.astype(np.float32), np.zeros(len(probs), dtype=bool))

    def embed(self, images: torch.Tensor) -> np.ndarray:
        return self.member.embed(images, spec=self.spec, runtime=self.runtime)

    def predict_and_embed(self, images: torch.Tensor) -> tuple[Prediction, np.ndarray]:
        """:meth:`predict` and :meth:`embed` from one forward pass."""
        probs, emb, loss = self.member.probs_and_embeddings(images, spec=self.spec, runtime=self.runtime)
        return Prediction(probs.cpu().numpy().astype(np.float32), np.zeros(len(probs), dtype=bool), loss), emb

    def preset(self) -> EvalPreset:
        return EvalPreset(self.spec.image_size, resize=self.spec.resize, limits=self.spec.decode_limits)


def band_route(stage1: torch.Tensor, *, low: float, high: float, columns: list[int] | None = None) -> torch.Tensor:
    """Rows that reach stage 2: any of the ``columns``' stage-1 scores in ``[low, high]``.

    Args:
        stage1: Probabilities [N, C]; column 0 is the negative class.
        columns: The categories stage 2 re-scores (default: every violating category).

    Returns:
        bool [N].
    """
    cats = stage1[:, columns if columns is not None else slice(1, None)]
    return ((cats >= low) & (cats <= high)).any(dim=1)


def fuse(p1: torch.Tensor, p2: torch.Tensor, *, how: str) -> torch.Tensor:
    """Fuse two stages' probabilities [N, C] into rows that still sum to 1.

    ``mean``: the average; ``geometric``: the renormalised geometric mean (either stage can
    veto); ``stage2``: stage 2 alone.
    """
    if how == "mean":
        return (p1 + p2) / 2
    if how == "geometric":
        g = torch.sqrt(p1.clamp(min=1e-12) * p2.clamp(min=1e-12))
        return g / g.sum(dim=1, keepdim=True)
    if how == "stage2":
        return p2
    raise ValueError(f"unknown fuse {how!r}; choose mean, geometric or stage2")


def fuse_columns(p1: torch.Tensor, p2: torch.Tensor, *, columns: list[int], how: str) -> torch.Tensor:
    """Fuse only ``columns`` (a specialist stage 2); the negative class absorbs the change.

    Each listed category's score becomes the ``mean``, geometric mean (``geometric``) or stage-2
    value (``stage2``) of the two stages' scores for it; other categories keep stage 1's scores;
    column 0 is set so the row sums to 1 (violating scores are scaled down if they exceed 1).
    """
    a, b = p1[:, columns], p2[:, columns]
    if how == "mean":
        fused = (a + b) / 2
    elif how == "geometric":
        fused = torch.sqrt(a.clamp(min=0) * b.clamp(min=0))
    elif how == "stage2":
        fused = b
    else:
        raise ValueError(f"unknown fuse {how!r}; choose mean, geometric or stage2")
    out = p1.clone()
    out[:, columns] = fused
    cats = out[:, 1:].sum(dim=1, keepdim=True)
    scale = torch.where(cats > 1, 1 / cats.clamp(min=1e-12), torch.ones_like(cats))
    out[:, 1:] = out[:, 1:] * scale
    out[:, 0] = (1 - out[:, 1:].sum(dim=1)).clamp(min=0)
    return out


def _band(
    p1: torch.Tensor, stage2: Callable[[torch.Tensor], torch.Tensor], cfg: dict[str, Any], classes: tuple
) -> tuple:
    cats = cfg.get("categories")
    columns = [classes.index(c) for c in cats] if cats else None
    route = band_route(p1, low=cfg["low"], high=cfg["high"], columns=columns)
    out = p1.clone()
    if route.any():
        p2 = stage2(route)
        if columns is None:
            out[route] = fuse(p1[route], p2, how=cfg["fuse"])
        else:
            out[route] = fuse_columns(p1[route], p2, columns=columns, how=cfg["fuse"])
    return out, route


#: Combination rules by name (``train.ohem_cascade.combine.rule``): ``rule(p1, stage2, cfg, classes)``
#: -> (probabilities [N, C], routed bool [N]); ``stage2(mask)`` scores only the masked rows.
COMBINERS: dict[str, Callable[..., tuple[torch.Tensor, torch.Tensor]]] = {"band": _band}


class Cascade:
    """A :class:`Predictor` over stage 1 and stage 2 with a combination rule from :data:`COMBINERS`."""

    def __init__(
        self, spec: ModelSpec, stage1: nn.Module, stage2: nn.Module, *, runtime: Runtime | None = None
    ) -> None:
        rule = (spec.combine or {}).get("rule")
        if rule not in COMBINERS:
            raise ValueError(f"unknown cascade combination rule {rule!r}; choose one of {sorted(COMBINERS)}")
        unknown = sorted(set((spec.combine or {}).get("categories") or ()) - set(spec.classes[1:]))
        if unknown:
            raise ValueError(f"cascade combine.categories {unknown} are not categories of the model {spec.classes[1:]}")
        self.spec, self.runtime = spec, runtime or Runtime(torch.device("cpu"))
        m1, m2 = spec.members
        self.stage1 = _Member(m1.name, stage1, size=m1.image_size, backbone=m1.backbone, runtime=self.runtime)
        self.stage2 = _Member(m2.name, stage2, size=m2.image_size, backbone=m2.backbone, runtime=self.runtime)

    @property
    def networks(self) -> dict[str, nn.Module]:
        return {self.stage1.name: self.stage1.net, self.stage2.name: self.stage2.net}

    @property
    def members(self) -> list[_Member]:
        return [self.stage1, self.stage2]

    def predict(self, images: torch.Tensor) -> Prediction:
        return self._combine(images, self.stage1.probs(images, spec=self.spec, runtime=self.runtime))

    def predict_and_embed(self, images: torch.Tensor) -> tuple[Prediction, np.ndarray]:
        """:meth:`predict` and stage 1's embeddings [N, D], with one stage-1 forward pass."""
        p1, emb, loss = self.stage1.probs_and_embeddings(images, spec=self.spec, runtime=self.runtime)
        return replace(self._combine(images, p1), loss=loss), emb

    def _combine(self, images: torch.Tensor, p1: torch.Tensor) -> Prediction:
        def second(mask: torch.Tensor) -> torch.Tensor:
            return self.stage2.probs(images[mask.cpu()], spec=self.spec, runtime=self.runtime)

        probs, routed = COMBINERS[self.spec.combine["rule"]](p1, second, self.spec.combine, self.spec.classes)
        return Prediction(probs.cpu().numpy().astype(np.float32), routed.cpu().numpy())

    def embed(self, images: torch.Tensor) -> np.ndarray:
        return self.stage1.embed(images, spec=self.spec, runtime=self.runtime)

    def preset(self) -> EvalPreset:
        return EvalPreset(self.spec.image_size, resize=self.spec.resize, limits=self.spec.decode_limits)


def build_predictor(
    networks: dict[str, nn.Module], spec: ModelSpec, *, runtime: Runtime | None = None
) -> SingleModel | Cascade:
    """Wrap trained networks (by member name) as the predictor ``spec`` describes."""
    if spec.kind == "single":
        return SingleModel(spec, networks[spec.members[0].name], runtime=runtime)
    return Cascade(spec, networks[spec.members[0].name], networks[spec.members[1].name], runtime=runtime)


def load_predictor(model_dir: str | Path, *, runtime: Runtime | None = None) -> SingleModel | Cascade:
    """Load a saved model folder (any format) as a :class:`Predictor`."""
    networks, spec = load_members(model_dir)
    return build_predictor(networks, spec, runtime=runtime)
