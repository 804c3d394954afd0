"""The saved-model format: ``model.safetensors`` + ``model.json`` in one folder.

safetensors holds only tensors, so loading a model can never run code (unlike pickle);
``model.json`` holds everything needed to rebuild and preprocess (backbone, classes,
input size, normalisation) and, once evaluation has run, the per-category thresholds.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import nn

from modops.data.store import atomic_write_text
from modops.models.backbones import create_model

__all__ = ["ModelSpec", "save_model", "load_model", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelSpec:
    """What is needed to rebuild and feed a saved model.

    Attributes:
        backbone: Registry name.
        classes: Class names; index i is logit i. The first is the negative class.
        image_size: Square input side in pixels.
        mean, std: Per-channel normalisation of [0, 1] RGB input.
        thresholds: Per-category decision thresholds on softmax scores (set by evaluation).
    """

    backbone: str
    classes: tuple[str, ...]
    image_size: int
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    thresholds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"format_version": FORMAT_VERSION, **asdict(self)}, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        data = json.loads(text)
        version = data.pop("format_version", None)
        if version != FORMAT_VERSION:
            raise ValueError(f"model.json format_version {version} is not supported (expected {FORMAT_VERSION})")
        data["classes"] = tuple(data["classes"])
        data["mean"], data["std"] = tuple(data["mean"]), tuple(data["std"])
        return cls(**data)


def save_model(model: nn.Module, spec: ModelSpec, out_dir: Path) -> None:
    """Write ``out_dir/model.safetensors`` and ``out_dir/model.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = out_dir / ".model.safetensors.tmp"
    save_file(state, str(tmp))
    tmp.replace(out_dir / "model.safetensors")
    atomic_write_text(out_dir / "model.json", spec.to_json())


def load_model(model_dir: str | Path) -> tuple[nn.Module, ModelSpec]:
    """Rebuild a saved model in eval mode on the CPU.

    Raises:
        FileNotFoundError: When the folder lacks ``model.json`` or ``model.safetensors``.
    """
    d = Path(model_dir)
    for name in ("model.json", "model.safetensors"):
        if not (d / name).is_file():
            raise FileNotFoundError(f"{d / name} is missing; is {d} a modops model folder (from `modops train`)?")
    spec = ModelSpec.from_json((d / "model.json").read_text())
    model = create_model(spec.backbone, num_classes=len(spec.classes))
    model.load_state_dict(load_file(str(d / "model.safetensors")))
    return model.eval(), spec
