"""Backbone registry: ``create_model(name, num_classes=...)``, in the spirit of timm.

Each entry builds a torchvision classifier and swaps its head for ``num_classes``.
Weights: ``"none"`` (random init; tests and air-gapped runs), ``"imagenet"`` (torchvision's
weights API; needs the internet or a warm torch hub cache) or ``"path"`` (a local file of
ImageNet weights, ``.safetensors`` or a ``weights_only`` torch checkpoint).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torchvision
from torch import nn

__all__ = ["BACKBONES", "register_backbone", "create_model", "load_state_dict_file"]

HeadSwap = Callable[[nn.Module, int], None]
BACKBONES: dict[str, HeadSwap] = {}


def register_backbone(name: str) -> Callable[[HeadSwap], HeadSwap]:
    """Register a head-swap function for the torchvision model ``name``."""

    def deco(fn: HeadSwap) -> HeadSwap:
        BACKBONES[name] = fn
        return fn

    return deco


def _swap_last_linear(seq: nn.Sequential, num_classes: int) -> None:
    last = seq[-1]
    seq[-1] = nn.Linear(last.in_features, num_classes)


@register_backbone("mobilenet_v2")
@register_backbone("mobilenet_v3_small")
@register_backbone("mobilenet_v3_large")
@register_backbone("efficientnet_b0")
def _classifier_seq(model: nn.Module, num_classes: int) -> None:
    _swap_last_linear(model.classifier, num_classes)


@register_backbone("resnet18")
@register_backbone("resnet50")
def _resnet(model: nn.Module, num_classes: int) -> None:
    model.fc = nn.Linear(model.fc.in_features, num_classes)


@register_backbone("densenet121")
@register_backbone("densenet161")
def _densenet(model: nn.Module, num_classes: int) -> None:
    model.classifier = nn.Linear(model.classifier.in_features, num_classes)


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state dict safely: safetensors, or torch with ``weights_only=True`` (no pickle code)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"weights file not found: {p} (train.weights_path)")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(p))
    state = torch.load(p, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    return state


def create_model(
    name: str, *, num_classes: int, pretrained: str = "none", weights_path: str | None = None
) -> nn.Module:
    """Build backbone ``name`` with a fresh ``num_classes``-way head.

    Args:
        name: A key of :data:`BACKBONES`.
        num_classes: Output logits, shape [B, num_classes].
        pretrained: ``"none"``, ``"imagenet"`` or ``"path"``.
        weights_path: ImageNet-shaped weights file when ``pretrained == "path"``.

    Returns:
        The model, in train mode, on the CPU.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)} (train.backbone)")
    if pretrained == "imagenet":
        weights = torchvision.models.get_model_weights(name).DEFAULT
        model = torchvision.models.get_model(name, weights=weights)
    elif pretrained in ("none", "path"):
        model = torchvision.models.get_model(name, weights=None)
        if pretrained == "path":
            if not weights_path:
                raise ValueError("pretrained='path' needs weights_path")
            model.load_state_dict(load_state_dict_file(weights_path))
    else:
        raise ValueError(f"pretrained must be 'none', 'imagenet' or 'path', got {pretrained!r}")
    BACKBONES[name](model, num_classes)
    return model
