"""Models: the backbone registry, CBAM, the saved-model format and the predictor seam."""

from modops.models.backbones import BACKBONES, BackboneSpec, create_model, get_backbone, register_backbone
from modops.models.io import MemberSpec, ModelSpec, load_members, read_spec, save_members
from modops.models.predictor import Cascade, Prediction, Predictor, SingleModel, build_predictor, load_predictor

__all__ = [
    "BACKBONES",
    "BackboneSpec",
    "create_model",
    "get_backbone",
    "register_backbone",
    "MemberSpec",
    "ModelSpec",
    "load_members",
    "read_spec",
    "save_members",
    "Cascade",
    "Prediction",
    "Predictor",
    "SingleModel",
    "build_predictor",
    "load_predictor",
]
