"""Registry errors, importable without MLflow (the CLI catches them on every command)."""

from __future__ import annotations

__all__ = ["ModelNotRegistered", "PromotionError", "RegistryError"]


class RegistryError(RuntimeError):
    """The registry or tracking server could not be read or written; nothing was decided."""


class PromotionError(ValueError):
    """A manual promotion or rollback was refused (the message says why and how to proceed)."""


class ModelNotRegistered(LookupError):
    """No model of that name is registered yet (run the training pipeline first)."""
