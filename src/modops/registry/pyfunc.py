"""The MLflow pyfunc wrapper: ``mlflow.pyfunc.load_model("models:/NAME@champion").predict(df)``.

Input: a DataFrame with a column ``image`` (raw bytes or base64 text) or ``path`` (a local
file). Output: one row per input with ``p_<class>`` probabilities, the per-category
``flag_<category>`` decisions at the evaluated thresholds, ``flagged`` (any category) and
``category`` (the flagged category with the highest score, or empty), plus ``error`` for
inputs that could not be decoded (those rows are not flagged, and say why).
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd

__all__ = ["ModerationModel", "predict_frame"]


class ModerationModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper around a modops model folder: a single network or a cascade, one predictor."""

    def load_context(self, context) -> None:  # noqa: ANN001 - mlflow's PythonModelContext
        from modops.models.predictor import load_predictor

        self._predictor = load_predictor(context.artifacts["model_dir"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:  # noqa: ANN001
        return predict_frame(self._predictor, model_input)


def _to_bytes(row: pd.Series) -> bytes:
    if "image" in row and row["image"] is not None:
        value = row["image"]
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
        try:
            return base64.b64decode(str(value), validate=True)
        except binascii.Error as exc:
            raise ValueError("column 'image' must hold bytes or base64 text") from exc
    if "path" in row and row["path"]:
        return Path(str(row["path"])).read_bytes()
    raise ValueError("each row needs 'image' (bytes/base64) or 'path'")


def predict_frame(predictor, frame: pd.DataFrame) -> pd.DataFrame:  # noqa: ANN001 - a modops Predictor
    """Score a DataFrame of images; see the module docstring for columns."""
    import torch

    if not {"image", "path"} & set(frame.columns):
        raise ValueError(f"input needs an 'image' or 'path' column, got {list(frame.columns)}")
    spec, preset = predictor.spec, predictor.preset()
    tensors, errors = [], []
    for _, row in frame.iterrows():
        try:
            tensors.append(preset(_to_bytes(row)))
            errors.append("")
        except Exception as exc:  # one bad image must not fail the whole batch
            tensors.append(torch.zeros((3, spec.image_size, spec.image_size), dtype=torch.uint8))
            errors.append(f"{type(exc).__name__}: {exc}")
    probs = predictor.predict(torch.stack(tensors)).probs if tensors else np.zeros((0, len(spec.classes)))
    out = pd.DataFrame({f"p_{c}": probs[:, i] for i, c in enumerate(spec.classes)})
    ok = np.array([e == "" for e in errors], dtype=bool)
    best, best_score = np.array([""] * len(out), dtype=object), np.full(len(out), -1.0)
    for i, cat in enumerate(spec.classes[1:], start=1):
        flag = ok & (probs[:, i] >= spec.thresholds.get(cat, 1.0 + 1e-9))
        out[f"flag_{cat}"] = flag
        better = flag & (probs[:, i] > best_score)
        best[better], best_score[better] = cat, probs[better, i]
    out["flagged"] = best != ""
    out["category"] = best
    out["error"] = errors
    return out
