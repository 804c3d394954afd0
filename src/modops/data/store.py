"""Content-addressed image store: an image's id is the sha256 of its bytes.

Content addressing makes ingestion idempotent (writing the same bytes twice is a no-op),
deduplicates exact re-uploads for free, and lets a manifest of ids pin a data version
exactly, so DVC versions the small manifest rather than every image.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

__all__ = ["ImageStore", "sha256_hex", "atomic_write_bytes", "atomic_write_parquet", "atomic_write_text"]


# mkstemp creates files 0600; outputs (reports, manifests, images) are meant to be shared.
_FILE_MODE = 0o644


def sha256_hex(data: bytes) -> str:
    """Return the lowercase hex sha256 of ``data`` (64 characters)."""
    return hashlib.sha256(data).hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Text variant of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_parquet(path: Path, frame: pd.DataFrame) -> None:
    """Write ``frame`` to parquet atomically, without the pandas index."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        frame.to_parquet(tmp, index=False)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ImageStore:
    """A local folder of images keyed by sha256, with a first-seen index.

    Layout: ``ROOT/ab/abcdef…`` (two-character fan-out keeps folders small) and
    ``ROOT/_index.parquet`` recording when each id was first ingested, so the manifest's
    ``ingested_at`` survives re-ingestion unchanged.
    """

    INDEX = "_index.parquet"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, image_id: str) -> Path:
        """Where the bytes of ``image_id`` live (whether or not they exist yet)."""
        if len(image_id) != 64 or any(c not in "0123456789abcdef" for c in image_id):
            raise ValueError(f"not a sha256 hex image id: {image_id!r}")
        return self.root / image_id[:2] / image_id

    def put(self, data: bytes) -> tuple[str, bool]:
        """Store ``data`` unless present.

        Returns:
            ``(image_id, created)``; ``created`` is False when the bytes were already stored.
        """
        image_id = sha256_hex(data)
        target = self.path(image_id)
        if target.exists():
            return image_id, False
        atomic_write_bytes(target, data)
        return image_id, True

    def get(self, image_id: str) -> bytes:
        """Return the stored bytes of ``image_id``.

        Raises:
            FileNotFoundError: With a hint when the store lacks the image.
        """
        p = self.path(image_id)
        if not p.is_file():
            raise FileNotFoundError(
                f"image {image_id} is not in the store at {self.root}; re-run `modops ingest` "
                "(or `dvc repro ingest`) on the source that holds it"
            )
        return p.read_bytes()

    def __contains__(self, image_id: str) -> bool:
        return self.path(image_id).is_file()

    def first_seen(self, image_ids: Iterable[str], *, now: pd.Timestamp) -> Mapping[str, pd.Timestamp]:
        """Record ``now`` as the first-ingestion time of ids not seen before.

        Args:
            image_ids: Ids ingested in this run.
            now: The run's timestamp (UTC).

        Returns:
            Each id's first-ingestion timestamp (earlier runs' times are kept).
        """
        index_path = self.root / self.INDEX
        known = (
            pd.read_parquet(index_path)
            if index_path.is_file()
            else pd.DataFrame({"image_id": pd.Series(dtype=str), "ingested_at": pd.Series(dtype="datetime64[ns, UTC]")})
        )
        seen = dict(zip(known["image_id"], known["ingested_at"], strict=True))
        new = [i for i in dict.fromkeys(image_ids) if i not in seen]
        if new:
            seen.update({i: now for i in new})
            frame = pd.DataFrame({"image_id": list(seen), "ingested_at": pd.to_datetime(list(seen.values()), utc=True)})
            atomic_write_parquet(index_path, frame.sort_values("image_id"))
        return seen
