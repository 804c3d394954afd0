"""Models: the backbone registry and the saved-model format."""

from modops.models.backbones import BACKBONES, create_model, register_backbone
from modops.models.io import ModelSpec, load_model, save_model

__all__ = ["BACKBONES", "create_model", "register_backbone", "ModelSpec", "load_model", "save_model"]
