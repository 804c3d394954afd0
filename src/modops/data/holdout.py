"""The golden holdout: its content hash, and its publication on the DVC remote.

The holdout is what every promotion is judged on, so it must be the same set everywhere: in
a second clone, on another worker, a year later. After the split stage freezes it, the
``publish`` step pushes it (with the image store) to the DVC remote and writes a *pointer*
next to the remote's objects, ``<remote>/modops/holdout.json``: the holdout's content hash
and the md5 under which DVC stored the file. A split stage anywhere that finds the pointer
takes the published holdout from the remote instead of drawing a new one. The pointer is
written once; replacing it (re-baselining) needs a reason, which is recorded with it.

Layouts read here are DVC 3's: a remote stores a file with md5 ``abcd...`` at
``<remote>/files/md5/ab/cd...``.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from modops.data.sources import is_s3

__all__ = [
    "HoldoutConflictError",
    "HoldoutPointer",
    "fetch_published",
    "holdout_hash",
    "read_pointer",
    "write_pointer",
]

POINTER = "modops/holdout.json"


class HoldoutConflictError(RuntimeError):
    """A different holdout is already published; replacing it needs an explicit re-baseline."""


def holdout_hash(frame: pd.DataFrame) -> str:
    """Content hash of a holdout's ``(image_id, label)`` set, independent of row order.

    Args:
        frame: Columns ``image_id`` and ``label`` (other columns are ignored).

    Returns:
        ``"hd-"`` + the first 16 hex digits of a sha256 over the sorted ``id<TAB>label`` lines.
    """
    lines = sorted(f"{i}\t{label}" for i, label in zip(frame["image_id"], frame["label"], strict=True))
    return "hd-" + hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class HoldoutPointer:
    """What the remote says the published holdout is.

    Attributes:
        hash: :func:`holdout_hash` of the published set.
        md5: md5 of ``holdout.parquet`` (DVC's object name on the remote).
        n: Number of holdout images.
        labels: Images per label.
        published_at: ISO 8601 UTC time of publication.
        by: Who published it.
        rebaseline_reason: Why an earlier holdout was replaced (None for the first one).
        replaced: The hash of the holdout this one replaced, if any.
    """

    hash: str
    md5: str
    n: int
    labels: dict[str, int]
    published_at: str
    by: str
    rebaseline_reason: str | None = None
    replaced: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


def make_pointer(holdout_path: Path, *, by: str, now: datetime | None = None) -> HoldoutPointer:
    """The pointer for the local holdout file ``holdout_path``."""
    frame = pd.read_parquet(holdout_path)
    when = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return HoldoutPointer(
        hash=holdout_hash(frame),
        md5=_md5(holdout_path.read_bytes()),
        n=len(frame),
        labels={str(k): int(v) for k, v in frame["label"].value_counts().sort_index().items()},
        published_at=when,
        by=by,
    )


def read_pointer(remote: str, *, s3_endpoint_url: str | None = None) -> HoldoutPointer | None:
    """The published holdout's pointer, or None when nothing is published on ``remote`` yet.

    Raises:
        OSError / botocore errors: When the remote cannot be read (never read as "none").
    """
    raw = _read(remote, POINTER, s3_endpoint_url=s3_endpoint_url, missing_ok=True)
    if raw is None:
        return None
    data = json.loads(raw)
    return HoldoutPointer(**{k: data.get(k) for k in HoldoutPointer.__dataclass_fields__})


def fetch_published(remote: str, pointer: HoldoutPointer, *, s3_endpoint_url: str | None = None) -> pd.DataFrame:
    """The published holdout (``image_id``, ``label``), checked against its pointer.

    Raises:
        FileNotFoundError: The pointer names an object the remote does not hold.
        ValueError: The object's md5 or content hash differs from the pointer's.
    """
    rel = f"files/md5/{pointer.md5[:2]}/{pointer.md5[2:]}"
    data = _read(remote, rel, s3_endpoint_url=s3_endpoint_url, missing_ok=True)
    if data is None:
        raise FileNotFoundError(
            f"the published holdout's object {rel} is missing from the DVC remote {remote}; "
            "re-publish it from the clone that made it (`modops publish`)"
        )
    if _md5(data) != pointer.md5:
        raise ValueError(f"{remote}/{rel} does not match its md5 {pointer.md5}: the remote is damaged")
    frame = pd.read_parquet(io.BytesIO(data))
    if holdout_hash(frame) != pointer.hash:
        raise ValueError(f"the published holdout hashes to {holdout_hash(frame)}, its pointer says {pointer.hash}")
    return frame


def write_pointer(
    remote: str,
    pointer: HoldoutPointer,
    *,
    rebaseline_reason: str | None = None,
    s3_endpoint_url: str | None = None,
) -> HoldoutPointer:
    """Publish ``pointer`` unless the same holdout is published already.

    Returns:
        The pointer now on the remote.

    Raises:
        HoldoutConflictError: Another holdout is published and no ``rebaseline_reason`` is given.
    """
    current = read_pointer(remote, s3_endpoint_url=s3_endpoint_url)
    if current is not None and current.hash == pointer.hash:
        return current
    if current is not None:
        if not rebaseline_reason:
            raise HoldoutConflictError(
                f"the DVC remote {remote} already holds holdout {current.hash} ({current.n} images, "
                f"published {current.published_at} by {current.by}); this clone's holdout is {pointer.hash}. "
                "Take the published one (delete data/holdout.parquet and run `dvc repro --force split`), "
                "or replace it on purpose: `modops publish --rebaseline 'why'`"
            )
        archived = f"modops/holdout-{current.hash}.json"
        _write(remote, archived, current.to_json().encode(), s3_endpoint_url=s3_endpoint_url)
        pointer = HoldoutPointer(
            **{**asdict(pointer), "rebaseline_reason": rebaseline_reason, "replaced": current.hash}
        )
    _write(remote, POINTER, pointer.to_json().encode(), s3_endpoint_url=s3_endpoint_url)
    return pointer


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _read(remote: str, rel: str, *, s3_endpoint_url: str | None, missing_ok: bool) -> bytes | None:
    if is_s3(remote):
        from botocore.exceptions import ClientError

        from modops.data.sources import s3_client

        bucket, _, prefix = remote.removeprefix("s3://").partition("/")
        key = f"{prefix.rstrip('/')}/{rel}" if prefix else rel
        try:
            return s3_client(s3_endpoint_url).get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if missing_ok and exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
    path = Path(remote) / rel
    if missing_ok and not path.exists():
        return None
    return path.read_bytes()


def _write(remote: str, rel: str, data: bytes, *, s3_endpoint_url: str | None) -> None:
    if is_s3(remote):
        from modops.data.sources import s3_client

        bucket, _, prefix = remote.removeprefix("s3://").partition("/")
        key = f"{prefix.rstrip('/')}/{rel}" if prefix else rel
        s3_client(s3_endpoint_url).put_object(Bucket=bucket, Key=key, Body=data)
        return
    from modops.data.store import atomic_write_bytes

    atomic_write_bytes(Path(remote) / rel, data)
