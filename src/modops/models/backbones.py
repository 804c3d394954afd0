"""Backbone registry: ``create_model(name, num_classes=...)``, in the spirit of timm.

Each entry records what the rest of modops needs to know about a backbone:

- how to build it with a ``num_classes``-way head (torchvision models, or modops' own);
- its *feature layer*: embeddings are the global-average-pooled output of this module
  (retrieval, drift monitoring);
- its *Grad-CAM layer*: the last convolutional block, whose maps Grad-CAM weighs;
- its *stage layers*: the ends of its resolution stages, where CBAM is inserted and where
  multi-level features are read;
- its default input size.

Weights: ``"none"`` (random init; tests and air-gapped runs), ``"imagenet"`` (torchvision's
weights API; needs the internet or a warm torch hub cache) or ``"path"`` (a local file of
ImageNet weights, ``.safetensors`` or a ``weights_only`` torch checkpoint).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn

from modops.models.cnn import SmallCNN

__all__ = [
    "BACKBONES",
    "BackboneSpec",
    "register_backbone",
    "get_backbone",
    "create_model",
    "load_state_dict_file",
]


@dataclass(frozen=True)
class BackboneSpec:
    """What modops knows about one backbone.

    Attributes:
        name: Registry name (``train.backbone``).
        build: ``build(num_classes, weights)`` -> model with a ``num_classes`` head; ``weights``
            is ``"imagenet"`` or None (random initialisation).
        feature_layer: Dotted module path; embeddings are its globally average-pooled output.
        gradcam_layer: Dotted module path of the Grad-CAM target layer.
        stage_layers: Dotted paths of the ends of the resolution stages (CBAM goes after each).
        input_size: Default square input side in pixels.
    """

    name: str
    build: Callable[[int, str | None], nn.Module]
    feature_layer: str
    gradcam_layer: str
    stage_layers: tuple[str, ...]
    input_size: int = 224


BACKBONES: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Add ``spec`` to the registry (selected by ``train.backbone`` in params.yaml)."""
    BACKBONES[spec.name] = spec
    return spec


def get_backbone(name: str) -> BackboneSpec:
    """Look up a backbone, with the known names in the error."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)} (train.backbone)")
    return BACKBONES[name]


def _torchvision(name: str, head: Callable[[nn.Module, int], None]) -> Callable[[int, str | None], nn.Module]:
    def build(num_classes: int, weights: str | None) -> nn.Module:
        w = torchvision.models.get_model_weights(name).DEFAULT if weights == "imagenet" else None
        model = torchvision.models.get_model(name, weights=w)
        head(model, num_classes)
        return model

    return build


def _classifier_last(model: nn.Module, num_classes: int) -> None:
    last = model.classifier[-1]
    model.classifier[-1] = nn.Linear(last.in_features, num_classes)


def _fc(model: nn.Module, num_classes: int) -> None:
    model.fc = nn.Linear(model.fc.in_features, num_classes)


def _classifier(model: nn.Module, num_classes: int) -> None:
    model.classifier = nn.Linear(model.classifier.in_features, num_classes)


def _small_cnn(num_classes: int, weights: str | None) -> nn.Module:
    if weights == "imagenet":
        raise ValueError("cnn_small has no ImageNet weights; use pretrained: none or path")
    return SmallCNN(num_classes)


for _spec in (
    BackboneSpec(
        "cnn_small",
        _small_cnn,
        "features",
        "features.stage4",
        ("features.stage1", "features.stage2", "features.stage3", "features.stage4"),
        128,
    ),
    BackboneSpec(
        "mobilenet_v2",
        _torchvision("mobilenet_v2", _classifier_last),
        "features",
        "features.18",
        ("features.3", "features.6", "features.13", "features.17"),
    ),
    BackboneSpec(
        "mobilenet_v3_small",
        _torchvision("mobilenet_v3_small", _classifier_last),
        "features",
        "features.12",
        ("features.1", "features.3", "features.8", "features.11"),
    ),
    BackboneSpec(
        "mobilenet_v3_large",
        _torchvision("mobilenet_v3_large", _classifier_last),
        "features",
        "features.16",
        ("features.3", "features.6", "features.12", "features.15"),
    ),
    BackboneSpec(
        "efficientnet_b0",
        _torchvision("efficientnet_b0", _classifier_last),
        "features",
        "features.8",
        ("features.2", "features.3", "features.5", "features.7"),
    ),
    BackboneSpec(
        "resnet18", _torchvision("resnet18", _fc), "layer4", "layer4", ("layer1", "layer2", "layer3", "layer4")
    ),
    BackboneSpec(
        "resnet50", _torchvision("resnet50", _fc), "layer4", "layer4", ("layer1", "layer2", "layer3", "layer4")
    ),
    *(
        BackboneSpec(
            name,
            _torchvision(name, _classifier),
            "features",
            "features.norm5",
            tuple(f"features.denseblock{i}" for i in range(1, 5)),
        )
        for name in ("densenet121", "densenet161")
    ),
):
    register_backbone(_spec)


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
    name: str,
    *,
    num_classes: int,
    pretrained: str = "none",
    weights_path: str | None = None,
    cbam: bool = False,
    input_size: int | None = None,
    loss_head: int = 0,
) -> nn.Module:
    """Build backbone ``name`` with a fresh ``num_classes``-way head.

    Args:
        name: A key of :data:`BACKBONES`.
        num_classes: Output logits, shape [B, num_classes].
        pretrained: ``"none"``, ``"imagenet"`` or ``"path"``.
        weights_path: ImageNet-shaped weights file when ``pretrained == "path"``; its
            classifier head is dropped when its size differs from ``num_classes``.
        cbam: Insert CBAM attention after each of the backbone's stage layers (after the
            pretrained weights are loaded, so they still fit).
        input_size: Input side used to size the CBAM blocks (default: the backbone's).
        loss_head: Units per stage branch of a loss-prediction head over the stage layers
            (:mod:`modops.models.loss_head`), attached as ``model.loss_head``; 0 = none.

    Returns:
        The model, in train mode, on the CPU.
    """
    spec = get_backbone(name)
    if pretrained not in ("none", "imagenet", "path"):
        raise ValueError(f"pretrained must be 'none', 'imagenet' or 'path', got {pretrained!r}")
    if pretrained == "imagenet":
        model = spec.build(num_classes, "imagenet")
    else:
        model = spec.build(num_classes, None)
        if pretrained == "path":
            if not weights_path:
                raise ValueError("pretrained='path' needs weights_path")
            _load_backbone_weights(model, load_state_dict_file(weights_path))
    if cbam:
        from modops.models.cbam import insert_cbam

        insert_cbam(model, spec.stage_layers, input_size=min(input_size or spec.input_size, 128))
    if loss_head:
        from modops.models.loss_head import attach_loss_head

        attach_loss_head(model, spec.stage_layers, input_size=min(input_size or spec.input_size, 128), hidden=loss_head)
    return model


def _load_backbone_weights(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load ImageNet weights into a model whose head has another size: the head stays fresh."""
    own = model.state_dict()
    mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    for key in mismatched:
        del state[key]
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(k not in mismatched for k in missing):
        raise ValueError(
            f"weights do not fit this backbone: missing {sorted(set(missing) - set(mismatched))[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}; is train.weights_path for train.backbone?"
        )
