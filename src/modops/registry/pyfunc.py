"""The MLflow pyfunc wrapper: ``mlflow.pyfunc.load_model("models:/NAME@champion").predict(df)``.

Input: a DataFrame with a column ``image`` (raw bytes or base64 text). Output: one row per
input with ``p_<class>`` probabilities, the per-category ``flag_<category>`` decisions at the
evaluated thresholds, ``flagged`` (any category) and ``category`` (the flagged category with
the highest score, or empty), plus ``error`` for inputs that could not be decoded (those rows
are not flagged, and say why).

Every input is decoded by the model's own preset under the decode limits in its
``model.json`` (byte and pixel caps, allowed formats): the limits its training data was
ingested under.

A served model reads no files by default: the caller sends the bytes. A ``path`` column
(files on the serving host) works only when the server sets ``MODOPS_PYFUNC_PATH_ROOT`` to
a folder, and then only for regular files inside it (symlinks resolved, ``..`` refused).
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd

from modops.data.images import DecodeLimits, FileTooLargeError, describe_error
from modops.data.sources import read_uri

__all__ = [
    "PATH_ROOT_ENV",
    "ModerationModel",
    "files_frame",
    "path_root_from_env",
    "predict_frame",
    "served_decode_limits",
]

#: The environment variable naming the only folder whose files the ``path`` column may read.
PATH_ROOT_ENV = "MODOPS_PYFUNC_PATH_ROOT"


class ModerationModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper around a modops model folder: a single network or a cascade, one predictor."""

    def load_context(self, context) -> None:  # noqa: ANN001 - mlflow's PythonModelContext
        from modops.models.predictor import load_predictor

        self._predictor = load_predictor(context.artifacts["model_dir"])
        self._path_root = path_root_from_env()

    @property
    def decode_limits(self) -> DecodeLimits:
        """The caps every input is decoded under (from ``model.json``)."""
        return self._predictor.spec.decode_limits

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:  # noqa: ANN001
        return predict_frame(self._predictor, model_input, path_root=self._path_root)


def path_root_from_env(env: Mapping[str, str] | None = None) -> Path | None:
    """The folder named by ``MODOPS_PYFUNC_PATH_ROOT`` (resolved), or None when unset: no paths.

    Raises:
        NotADirectoryError: When the variable names something that is not a folder, so a
            typo fails at model load rather than refusing every request.
    """
    value = (os.environ if env is None else env).get(PATH_ROOT_ENV, "")
    if not value:
        return None
    root = Path(value).resolve()
    if not root.is_dir():
        raise NotADirectoryError(f"{PATH_ROOT_ENV}={value!r} is not a folder; unset it or name an existing folder")
    return root


def served_decode_limits(model) -> DecodeLimits:  # noqa: ANN001 - a loaded mlflow.pyfunc.PyFuncModel
    """The decode limits a loaded modops pyfunc enforces (defaults for one registered before they were recorded)."""
    return getattr(model.unwrap_python_model(), "decode_limits", None) or DecodeLimits()


def files_frame(paths: Sequence[Path], *, max_bytes: int) -> pd.DataFrame:
    """A model input of local files sent as bytes: ``{"image": [base64 text]}``, one row per path.

    What ``modops predict`` sends: the caller reads its own files, the model reads none.

    Raises:
        FileTooLargeError: A file is larger than ``max_bytes`` (found before it is read).
        FileNotFoundError: A file does not exist.
    """
    images = [base64.b64encode(read_uri(str(p), max_bytes=max_bytes)).decode("ascii") for p in paths]
    return pd.DataFrame({"image": images})


def _image_bytes(value: object, *, max_bytes: int) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    text = str(value)
    # Base64 holds 3 bytes per 4 characters: refuse an oversized image before decoding it.
    if len(text) > 4 * (max_bytes // 3 + 1):
        raise FileTooLargeError(len(text) * 3 // 4, max_bytes, exact=False)
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError("column 'image' must hold bytes or base64 text") from exc


def _path_bytes(value: object, *, root: Path, max_bytes: int) -> bytes:
    path = (root / str(value)).resolve()  # an absolute value replaces root; resolve() follows symlinks
    if not path.is_relative_to(root):
        # The message leaves the root out: it is the server's business, not the caller's.
        raise PermissionError(f"path {str(value)!r} is outside the folder the server allows ({PATH_ROOT_ENV})")
    return read_uri(str(path), max_bytes=max_bytes)


def _given(row: pd.Series, column: str) -> bool:
    # A frame with both columns has None or NaN where a row uses the other one.
    return column in row and row[column] is not None and bool(pd.notna(row[column])) and row[column] != ""


def _row_bytes(row: pd.Series, *, path_root: Path | None, max_bytes: int) -> bytes:
    if _given(row, "image"):
        return _image_bytes(row["image"], max_bytes=max_bytes)
    if _given(row, "path") and path_root is not None:  # predict_frame refuses paths up front when off
        return _path_bytes(row["path"], root=path_root, max_bytes=max_bytes)
    raise ValueError("each row needs 'image' (bytes/base64) or 'path'")


def _paths_disabled() -> str:
    return (
        "the 'path' column reads files on the serving host, which is off by default; send the bytes in "
        f"'image' (base64), or set {PATH_ROOT_ENV}=/a/folder on the server to allow files under that folder"
    )


def predict_frame(predictor, frame: pd.DataFrame, *, path_root: Path | None = None) -> pd.DataFrame:  # noqa: ANN001
    """Score a DataFrame of images; see the module docstring for columns.

    Args:
        predictor: A modops predictor; its preset carries the model's decode limits.
        frame: Rows with ``image`` (bytes or base64 text) or, when ``path_root`` is set, ``path``.
        path_root: The only folder ``path`` values may read from (resolved); None = no paths.

    Raises:
        ValueError: When the frame has neither column, or uses ``path`` while paths are off.
    """
    import torch

    if not {"image", "path"} & set(frame.columns):
        raise ValueError(f"input needs an 'image' or 'path' column, got {list(frame.columns)}")
    if path_root is None and "path" in frame.columns and any(_given(row, "path") for _, row in frame.iterrows()):
        raise ValueError(_paths_disabled())
    spec, preset = predictor.spec, predictor.preset()
    tensors, errors = [], []
    for _, row in frame.iterrows():
        try:
            tensors.append(preset(_row_bytes(row, path_root=path_root, max_bytes=preset.limits.max_bytes)))
            errors.append("")
        except Exception as exc:  # noqa: BLE001 - one bad image must not fail the whole batch
            tensors.append(torch.zeros((3, spec.image_size, spec.image_size), dtype=torch.uint8))
            errors.append(describe_error(exc))  # names the class; no server file names
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
