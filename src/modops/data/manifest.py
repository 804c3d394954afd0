"""The manifest schema: one row per ingested image, the contract between every stage.

Columns:
    image_id: sha256 of the bytes (64 lowercase hex), the store key.
    uri: Where the file was found, independent of where the source sits: the posix path
        relative to the source root for a local source, ``s3://bucket/key`` for S3. Resolve a
        relative one against the source root (``modops.data.sources.read_uri(uri, root=...)``).
    width, height: Pixels (int64).
    format: PIL format name.
    bytes: File size in bytes (int64).
    phash: 64-bit perceptual hash, 16 hex characters (near-duplicate detection).
    label: A label from ``params.yaml: labels`` or None (unlabeled).
    label_source: ``demo`` | ``seed`` | ``reviewer`` | ``import`` | ``none``.
    uploader_id, business_category: Upload metadata, or None.
    uploaded_at: Upload time (UTC) or NaT.
    ingested_at: When the store first saw these bytes (UTC).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["MANIFEST_COLUMNS", "QUARANTINE_COLUMNS", "LABEL_SOURCES", "empty_manifest", "read_manifest"]

MANIFEST_COLUMNS: tuple[str, ...] = (
    "image_id",
    "uri",
    "width",
    "height",
    "format",
    "bytes",
    "phash",
    "label",
    "label_source",
    "uploader_id",
    "business_category",
    "uploaded_at",
    "ingested_at",
)
#: ``quarantine.parquet``: ``uri`` as in the manifest, ``reason`` (a code of
#: :data:`modops.data.images.QUARANTINE_REASONS`), ``detail`` (specifics; the exception class
#: when one was raised) and ``bytes`` (the file's size; for ``read_error`` 0).
QUARANTINE_COLUMNS: tuple[str, ...] = ("uri", "reason", "detail", "bytes")
LABEL_SOURCES: tuple[str, ...] = ("demo", "seed", "reviewer", "import", "none")


def empty_manifest() -> pd.DataFrame:
    """A zero-row manifest with the right columns and dtypes."""
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in MANIFEST_COLUMNS})
    frame = frame.astype({"width": "int64", "height": "int64", "bytes": "int64"})
    for col in ("uploaded_at", "ingested_at"):
        frame[col] = pd.Series(dtype="datetime64[ns, UTC]")
    return frame


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read ``manifest.parquet``, failing clearly when it is missing or malformed."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"manifest not found: {p}; run `modops ingest SOURCE --out {p.parent}` first")
    frame = pd.read_parquet(p)
    missing = [c for c in MANIFEST_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{p} is not a modops manifest: missing columns {missing}")
    return frame
