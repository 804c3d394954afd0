"""Daily batch scoring: a day's uploads -> one prediction-log partition (parquet).

The prediction log is what monitoring reads: per upload its id (sha256 of the bytes), per-class
scores, the decisions at the model's operating thresholds, the model version, a fixed random
projection of the model's embedding (for embedding drift) and the image's properties (for
property drift). Files that cannot be scored go to the day's quarantine with their reason.

A partition is keyed by day and model version (``day=YYYY-MM-DD/model_version=V/``), written
to temporary names and renamed, and holds no wall-clock value: scoring a day again with the
same model rewrites byte-identical content, and a new champion adds its own partition beside.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from modops.data.datasets import ImageReader, make_loader
from modops.data.store import atomic_write_parquet
from modops.models.predictor import Predictor
from modops.scoring.uploads import UploadBatch, UploadDataset, collate_uploads

__all__ = [
    "PROPERTY_COLUMNS",
    "ScoredDay",
    "embedding_projection",
    "score_uploads",
    "partition_dir",
    "write_partition",
    "reference_dir",
    "read_partition",
    "parse_day",
]

#: Image properties logged per upload (numerical, except ``format``).
PROPERTY_COLUMNS = ("width", "height", "aspect_ratio", "brightness", "file_bytes", "format")
QUARANTINE_COLUMNS = ("uri", "image_id", "reason", "detail", "file_bytes")


@dataclass(frozen=True)
class ScoredDay:
    """What scoring a set of uploads produced.

    Attributes:
        predictions: One row per scored upload, sorted by ``uri`` (columns: see :func:`score_uploads`).
        quarantine: One row per upload that could not be scored: ``uri, image_id, reason, detail, file_bytes``.
    """

    predictions: pd.DataFrame
    quarantine: pd.DataFrame


def parse_day(day: str | date) -> date:
    """``YYYY-MM-DD`` -> date, with an error that says the expected form."""
    if isinstance(day, date):
        return day
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day or ""):
        raise ValueError(f"day must look like YYYY-MM-DD, got {day!r}")
    try:
        return date.fromisoformat(day)
    except ValueError as exc:
        raise ValueError(f"day {day!r} is not a calendar date: {exc}") from None


def embedding_projection(dim: int, *, dims: int, seed: int) -> np.ndarray:
    """A fixed Gaussian random projection float32 [dim, dims] (Johnson-Lindenstrauss).

    The same ``seed`` gives the same matrix on every machine (numpy's PCG64), so the reference
    and every day are projected alike; ``dims >= dim`` keeps the embedding as it is.
    """
    if dims >= dim:
        return np.eye(dim, dtype=np.float32)
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((dim, dims)) / np.sqrt(dims)).astype(np.float32)


def score_uploads(
    predictor: Predictor,
    reader: ImageReader,
    keys: Sequence[str],
    *,
    uris: Sequence[str] | None = None,
    min_side: int = 1,
    batch_size: int = 256,
    workers: int = 0,
    embedding_dims: int = 32,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> ScoredDay:
    """Score uploads read by ``keys`` through ``reader``; nothing is dropped.

    Args:
        predictor: The model (single or cascade); its ``spec.thresholds`` are the decisions'.
        reader: Returns a key's bytes (a :class:`~modops.scoring.uploads.SourceReader` for raw
            uploads, an ``ImageStore`` for stored images).
        keys: What ``reader`` reads, shape [N].
        uris: How each key is logged (defaults to the keys).
        min_side: Shorter images are quarantined (``too_small``).
        batch_size: Images per forward pass.
        workers: Decoding worker processes (0 = in this process).
        embedding_dims: Width of the logged embedding projection (columns ``emb_00`` ...).
        seed: Seed of the projection matrix.
        progress: Called with the number of files handled per batch.

    Returns:
        :class:`ScoredDay`. Prediction columns: ``uri, image_id, p_<class>`` for every class,
        ``flag_<category>`` for every category, ``flagged``, ``category`` (the highest-scoring
        flagged category, "" when none), ``stage2``, ``predicted_loss`` (the loss head's ranking
        score, NaN without a head), :data:`PROPERTY_COLUMNS`, ``emb_NN``.
    """
    uris = list(keys if uris is None else uris)
    if len(uris) != len(keys):
        raise ValueError(f"keys and uris differ in length: {len(keys)} vs {len(uris)}")
    dataset = UploadDataset(reader, keys, preset=predictor.preset(), min_side=min_side)
    workers = workers if len(keys) > batch_size else 0
    loader = make_loader(dataset, batch_size=batch_size, workers=workers, collate_fn=collate_uploads)
    rows, bad, embeddings, projection = [], [], [], None
    for batch in loader:
        scored, emb = _score_batch(predictor, batch)
        if emb is not None:
            projection = (
                projection
                if projection is not None
                else embedding_projection(emb.shape[1], dims=embedding_dims, seed=seed)
            )
            embeddings.append(emb @ projection)
        for item in batch.items:
            if item.reason:
                bad.append((uris[item.index], item.image_id, item.reason, item.detail, item.nbytes))
        rows.extend(scored)
        if progress:
            progress(len(batch.items))
    return ScoredDay(
        predictions=_predictions_frame(rows, embeddings, predictor=predictor, uris=uris, dims=embedding_dims),
        quarantine=pd.DataFrame(bad, columns=list(QUARANTINE_COLUMNS)).sort_values("uri", ignore_index=True),
    )


def _score_batch(predictor: Predictor, batch: UploadBatch) -> tuple[list[tuple], np.ndarray | None]:
    """Scores and embeddings of a batch's decoded images: ``([(item, probs, stage2, loss)], emb [B_ok, D])``."""
    ok = batch.ok
    if not ok.any():
        return [], None
    pred, emb = predictor.predict_and_embed(batch.images[ok])
    good = [it for it in batch.items if not it.reason]
    loss = pred.loss if pred.loss is not None else np.full(len(good), np.nan, dtype=np.float32)
    return [(it, pred.probs[k], bool(pred.stage2[k]), float(loss[k])) for k, it in enumerate(good)], emb


def _predictions_frame(
    rows: list[tuple], embeddings: list[np.ndarray], *, predictor: Predictor, uris: list[str], dims: int
) -> pd.DataFrame:
    spec = predictor.spec
    classes, categories = list(spec.classes), list(spec.classes[1:])
    probs = np.stack([p for _, p, *_ in rows]) if rows else np.zeros((0, len(classes)), np.float32)
    frame = pd.DataFrame(
        {
            "uri": [uris[it.index] for it, *_ in rows],
            "image_id": [it.image_id for it, *_ in rows],
            **{f"p_{c}": probs[:, i].astype(np.float64) for i, c in enumerate(classes)},
        }
    )
    flags = np.zeros((len(rows), len(categories)), dtype=bool)
    for j, cat in enumerate(categories):
        # A category without an evaluated threshold never flags (as in the served model).
        flags[:, j] = probs[:, j + 1] >= spec.thresholds.get(cat, np.inf)
        frame[f"flag_{cat}"] = flags[:, j]
    frame["flagged"] = flags.any(axis=1)
    masked = np.where(flags, probs[:, 1:], -1.0)
    frame["category"] = [
        categories[k] if f else "" for k, f in zip(masked.argmax(axis=1), frame["flagged"], strict=True)
    ]
    frame["stage2"] = [r[2] for r in rows]
    # NaN for a model without a loss-prediction head: selection then ranks without it.
    frame["predicted_loss"] = np.asarray([r[3] for r in rows], dtype=np.float64)
    frame["width"] = [it.width for it, *_ in rows]
    frame["height"] = [it.height for it, *_ in rows]
    frame["aspect_ratio"] = (frame["width"] / frame["height"].where(frame["height"] > 0)).astype(np.float64)
    frame["brightness"] = [it.brightness for it, *_ in rows]
    frame["file_bytes"] = [it.nbytes for it, *_ in rows]
    frame["format"] = [it.format for it, *_ in rows]
    emb = np.concatenate(embeddings) if embeddings else np.zeros((0, dims), np.float32)
    for k in range(emb.shape[1] if len(emb) else dims):
        frame[f"emb_{k:02d}"] = emb[:, k].astype(np.float64) if len(emb) else np.zeros(0)
    return frame.sort_values("uri", ignore_index=True)


def partition_dir(log_dir: str | Path, *, day: str | date, model_version: str) -> Path:
    """``log_dir/day=YYYY-MM-DD/model_version=V``: one day scored by one model version."""
    if not re.fullmatch(r"[A-Za-z0-9._-]+", str(model_version)):
        raise ValueError(f"model version {model_version!r} may hold only letters, digits, '.', '_' and '-'")
    return Path(log_dir) / f"day={parse_day(day).isoformat()}" / f"model_version={model_version}"


def reference_dir(log_dir: str | Path, *, model_version: str) -> Path:
    """``log_dir/reference/model_version=V``: the version's scores on the holdout (drift's reference)."""
    return (
        partition_dir(log_dir, day="2000-01-01", model_version=model_version).parent.parent
        / "reference"
        / (f"model_version={model_version}")
    )


def write_partition(
    log_dir: str | Path, scored: ScoredDay, *, day: str | date, model_version: str, extra: dict | None = None
) -> Path:
    """Write (or rewrite) a day's partition: ``predictions.parquet`` and ``quarantine.parquet``.

    Each file is written to a temporary name and renamed, so a killed run leaves the previous
    partition or the new one, never half of one. ``extra`` columns (constants such as the
    model's name) are added to every prediction row.
    """
    out = partition_dir(log_dir, day=day, model_version=model_version)
    out.mkdir(parents=True, exist_ok=True)
    predictions = scored.predictions.assign(day=parse_day(day).isoformat(), model_version=str(model_version))
    for key, value in (extra or {}).items():
        predictions[key] = value
    atomic_write_parquet(out / "predictions.parquet", predictions)
    atomic_write_parquet(out / "quarantine.parquet", scored.quarantine)
    return out


def read_partition(log_dir: str | Path, *, day: str | date, model_version: str) -> ScoredDay:
    """Read a partition back.

    Raises:
        FileNotFoundError: When that day was not scored by that version, naming what was.
    """
    out = partition_dir(log_dir, day=day, model_version=model_version)
    if not (out / "predictions.parquet").is_file():
        scored = sorted(p.name for p in out.parent.glob("model_version=*")) if out.parent.is_dir() else []
        raise FileNotFoundError(
            f"no prediction log for day {parse_day(day)} and model version {model_version} under {log_dir} "
            f"(that day has: {scored or 'nothing'}); run `modops score SOURCE --day {parse_day(day)}` first"
        )
    return ScoredDay(pd.read_parquet(out / "predictions.parquet"), pd.read_parquet(out / "quarantine.parquet"))


def remove_partition(log_dir: str | Path, *, day: str | date, model_version: str) -> None:
    """Delete a partition (for retention jobs and tests)."""
    shutil.rmtree(partition_dir(log_dir, day=day, model_version=model_version), ignore_errors=True)
