"""Training: the trainer registry. Trainers return results; callers log them (no MLflow here)."""

# Importing a trainer module registers it.
from modops.training import cascade as _cascade  # noqa: F401
from modops.training import mean_teacher as _mean_teacher  # noqa: F401
from modops.training import supervised as _supervised  # noqa: F401
from modops.training.base import TRAINERS, TrainData, TrainResult, get_trainer, register_trainer

__all__ = ["TRAINERS", "TrainData", "TrainResult", "get_trainer", "register_trainer"]
