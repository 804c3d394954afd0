"""Reviewed uploads join the training pool: each image a relabel round decided is copied to the
reviewed source (``ingest.reviewed_source``), named by the sha256 of its bytes.

Scored uploads live in day folders (``score.source``) that ingest never reads; a reviewer's
label refers to an image by id, so for the label to reach training the image must be in the
pool too. Copies are content-addressed, so a re-run writes nothing new and two rounds that
reviewed the same image share one file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from modops.data.sources import is_s3, read_uri, s3_client
from modops.data.store import atomic_write_bytes

__all__ = ["AdmitSummary", "admit_reviewed"]


@dataclass(frozen=True)
class AdmitSummary:
    """What :func:`admit_reviewed` did: files written, already there, and images it could not copy (with why)."""

    written: int = 0
    present: int = 0
    failed: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _name(image_id: str, uri: str) -> str:
    suffix = PurePosixPath(uri).suffix.lower()
    return f"{image_id[:2]}/{image_id}{suffix if suffix.isascii() and len(suffix) <= 6 else ''}"


def admit_reviewed(
    image_ids: Sequence[str],
    uris: Sequence[str],
    *,
    source: str,
    dest: str,
    max_bytes: int,
    s3_endpoint_url: str | None = None,
) -> AdmitSummary:
    """Copy the reviewed images from the scored day's ``source`` to ``dest`` (a folder or ``s3://`` prefix).

    Args:
        image_ids: The images reviewers decided (sha256 of their bytes), shape [N].
        uris: Where each is under ``source`` (the prediction log's ``uri``), shape [N].
        source: The scored day's folder or ``s3://`` prefix.
        dest: ``ingest.reviewed_source``.
        max_bytes: Ingest's byte cap: nothing larger is read.

    Returns:
        Counts; an image whose bytes are gone or no longer match its id is listed in ``failed``
        (its label stays in the label store, it just cannot train until the file is back).
    """
    written, present, failed = 0, 0, {}
    for image_id, uri in zip(image_ids, uris, strict=True):
        name = _name(image_id, uri)
        target = f"{dest.rstrip('/')}/{name}"
        if _exists(target, s3_endpoint_url=s3_endpoint_url):
            present += 1
            continue
        try:
            data = read_uri(uri, root=source, max_bytes=max_bytes, s3_endpoint_url=s3_endpoint_url)
        except Exception as exc:  # noqa: BLE001 - a vanished or unreadable upload is reported, not fatal
            failed[image_id] = f"{type(exc).__name__}: {exc}"
            continue
        if hashlib.sha256(data).hexdigest() != image_id:
            failed[image_id] = f"{uri} changed since it was scored (its sha256 is no longer the image id)"
            continue
        _write(target, data, s3_endpoint_url=s3_endpoint_url)
        written += 1
    return AdmitSummary(written, present, failed)


def _exists(target: str, *, s3_endpoint_url: str | None) -> bool:
    if not is_s3(target):
        return Path(target).is_file()
    bucket, _, key = target.removeprefix("s3://").partition("/")
    try:
        s3_client(s3_endpoint_url).head_object(Bucket=bucket, Key=key)
    except Exception as exc:  # botocore's ClientError: 404 means absent, anything else is a real failure
        if "404" in str(exc) or "Not Found" in str(exc):
            return False
        raise
    return True


def _write(target: str, data: bytes, *, s3_endpoint_url: str | None) -> None:
    if is_s3(target):
        bucket, _, key = target.removeprefix("s3://").partition("/")
        s3_client(s3_endpoint_url).put_object(Bucket=bucket, Key=key, Body=data)
    else:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(Path(target), data)
