"""Training: the trainer registry. Trainers return results; callers log them (no MLflow here)."""

# Importing the module registers its trainer.
from modops.training import supervised as _supervised  # noqa: E402,F401
from modops.training.base import TRAINERS, TrainData, TrainResult, get_trainer, register_trainer

__all__ = ["TRAINERS", "TrainData", "TrainResult", "get_trainer", "register_trainer"]
