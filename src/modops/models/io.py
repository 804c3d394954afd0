"""The saved-model format: one folder with ``model.json`` and one safetensors file per member.

safetensors holds only tensors, so loading a model can never run code (unlike pickle);
``model.json`` holds everything needed to rebuild and feed it: its kind (a single network or a
cascade), its members (backbone, input size, CBAM, weights file), the combination rule,
classes, resizing and normalisation, the decode limits its inputs are held to (those its
training data was ingested under), the per-category thresholds (once evaluation has run), and
the label version it was trained on.

Format 1 (one ``model.safetensors``, images stretched to a square) still loads, so a champion
registered before format 2 can be re-scored by the gate; a ``model.json`` without
``decode_limits`` (saved before they were recorded) loads with the default limits.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from modops.data.images import DecodeLimits
from modops.data.store import atomic_write_text
from modops.data.transforms import IMAGENET_MEAN, IMAGENET_STD, RESIZE_MODES
from modops.models.backbones import create_model

__all__ = [
    "MemberSpec",
    "ModelSpec",
    "save_members",
    "load_members",
    "load_member_states",
    "read_spec",
    "FORMAT_VERSION",
]

FORMAT_VERSION = 2
KINDS = ("single", "cascade")


@dataclass(frozen=True)
class MemberSpec:
    """One network of a saved model.

    Attributes:
        name: ``model`` for a single network; ``stage1`` / ``stage2`` in a cascade.
        backbone: Registry name.
        image_size: The member's square input side in pixels.
        cbam: Whether CBAM attention was inserted.
        weights: File name of its safetensors weights inside the model folder.
        loss_head: Units per branch of its loss-prediction head (``loss_head.*`` weights); 0 = none.
    """

    name: str
    backbone: str
    image_size: int
    cbam: bool = False
    weights: str = "model.safetensors"
    loss_head: int = 0


@dataclass(frozen=True)
class ModelSpec:
    """What is needed to rebuild and feed a saved model.

    Attributes:
        classes: Class names; index i is output column i. The first is the negative class.
        members: The networks; one for ``single``, stage 1 then stage 2 for ``cascade``.
        kind: ``single`` or ``cascade``.
        combine: The cascade's combination rule (``CombineConfig`` fields), else None.
        resize: ``letterbox`` (keeps the aspect ratio) or ``stretch`` (format 1 models).
        mean, std: Per-channel normalisation of [0, 1] RGB input.
        thresholds: Per-category decision thresholds on the output probabilities.
        trainer: The trainer that produced it.
        label_version: Id of the label-store version it was trained on.
        decode_limits: Byte and pixel caps and allowed formats for every input it scores: the
            ingest limits of its training data (``model.json``: ``decode_limits``, a dict).
    """

    classes: tuple[str, ...]
    members: tuple[MemberSpec, ...]
    kind: str = "single"
    combine: dict[str, Any] | None = None
    resize: str = "letterbox"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    thresholds: dict[str, float] = field(default_factory=dict)
    trainer: str = "supervised"
    label_version: str | None = None
    decode_limits: DecodeLimits = DecodeLimits()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"model kind must be one of {KINDS}, got {self.kind!r}")
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {RESIZE_MODES}, got {self.resize!r}")
        expected = 1 if self.kind == "single" else 2
        if len(self.members) != expected:
            raise ValueError(f"a {self.kind} model has {expected} member(s), got {len(self.members)}")
        if self.kind == "cascade" and not self.combine:
            raise ValueError("a cascade needs its combination rule ('combine')")

    @property
    def image_size(self) -> int:
        """Side at which images are decoded: the largest member input (others are resized down)."""
        return max(m.image_size for m in self.members)

    @property
    def backbone(self) -> str:
        """The first member's backbone (the one that embeds and explains)."""
        return self.members[0].backbone

    def with_thresholds(self, thresholds: dict[str, float]) -> ModelSpec:
        return replace(self, thresholds=dict(thresholds))

    def to_json(self) -> str:
        data = asdict(self)
        data["members"] = [asdict(m) for m in self.members]
        data["decode_limits"] = self.decode_limits.to_dict()
        return json.dumps({"format_version": FORMAT_VERSION, **data}, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        data = json.loads(text)
        version = data.pop("format_version", None)
        if version == 1:
            return cls._from_v1(data)
        if version != FORMAT_VERSION:
            raise ValueError(f"model.json format_version {version} is not supported (expected 1 or {FORMAT_VERSION})")
        data["classes"] = tuple(data["classes"])
        data["mean"], data["std"] = tuple(data["mean"]), tuple(data["std"])
        data["members"] = tuple(MemberSpec(**m) for m in data["members"])
        # Absent from models saved before the limits were recorded: those get the defaults.
        data["decode_limits"] = DecodeLimits.from_dict(data.get("decode_limits") or {})
        return cls(**data)

    @classmethod
    def _from_v1(cls, data: dict[str, Any]) -> ModelSpec:
        member = MemberSpec("model", data["backbone"], int(data["image_size"]))
        return cls(
            classes=tuple(data["classes"]),
            members=(member,),
            resize="stretch",
            mean=tuple(data["mean"]),
            std=tuple(data["std"]),
            thresholds=dict(data.get("thresholds", {})),
        )


def save_members(networks: dict[str, nn.Module], spec: ModelSpec, out_dir: Path) -> None:
    """Write each member's weights (``spec.members[i].weights``) and ``model.json`` to ``out_dir``.

    Raises:
        ValueError: When ``networks`` does not hold exactly the members ``spec`` names.
    """
    names = [m.name for m in spec.members]
    if sorted(networks) != sorted(names):
        raise ValueError(f"networks {sorted(networks)} do not match the spec's members {names}")
    out_dir.mkdir(parents=True, exist_ok=True)
    for member in spec.members:
        state = {k: v.detach().cpu().contiguous() for k, v in networks[member.name].state_dict().items()}
        tmp = out_dir / f".{member.weights}.tmp"
        save_file(state, str(tmp))
        tmp.replace(out_dir / member.weights)
    atomic_write_text(out_dir / "model.json", spec.to_json())


def read_spec(model_dir: str | Path) -> ModelSpec:
    """Read ``model.json`` of a model folder.

    Raises:
        FileNotFoundError: When the folder is not a modops model folder.
    """
    path = Path(model_dir) / "model.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; is {Path(model_dir)} a modops model folder (from `modops train`)?")
    return ModelSpec.from_json(path.read_text())


def load_members(model_dir: str | Path) -> tuple[dict[str, nn.Module], ModelSpec]:
    """Rebuild every member of a saved model, in eval mode on the CPU.

    Returns:
        ``({member name: network}, spec)``.
    """
    states, spec = load_member_states(model_dir)
    networks = {}
    for member in spec.members:
        net = create_model(
            member.backbone,
            num_classes=len(spec.classes),
            cbam=member.cbam,
            input_size=member.image_size,
            loss_head=member.loss_head,
        )
        net.load_state_dict(states[member.name])
        networks[member.name] = net.eval()
    return networks, spec


def load_member_states(model_dir: str | Path) -> tuple[dict[str, dict[str, torch.Tensor]], ModelSpec]:
    """Every member's saved weights, without building the networks (to warm-start a new training).

    Returns:
        ``({member name: state dict on the CPU}, spec)``.
    """
    d = Path(model_dir)
    spec = read_spec(d)
    states = {}
    for member in spec.members:
        weights = d / member.weights
        if not weights.is_file():
            raise FileNotFoundError(f"{weights} is missing; the model folder {d} is incomplete")
        states[member.name] = load_file(str(weights))
    return states, spec
