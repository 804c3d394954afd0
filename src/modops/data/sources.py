"""Where uploads come from: a local folder or an ``s3://bucket/prefix`` (any S3-compatible server).

A source yields *items* (a uri plus its path relative to the source root, which is the
key the labels file uses) and reads their bytes. boto3 clients are created lazily per
process, never at import.

A local item's uri is its path relative to the source root, never an absolute path, so the
same files ingested from another checkout or mount point give byte-identical outputs; readers
resolve it against the root they are given (:func:`read_uri`). Reads are size-checked before
any byte is read (a file's ``stat``, an object's ``ContentLength``), and never read more than
``max_bytes + 1`` bytes.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import pandas as pd

from modops.data.images import FileTooLargeError

__all__ = ["SourceItem", "is_s3", "list_source", "read_uri", "read_labels", "s3_client"]

LABEL_COLUMNS_REQUIRED = ("path", "label")
LABEL_COLUMNS_OPTIONAL = ("label_source", "uploader_id", "business_category", "uploaded_at")


@dataclass(frozen=True)
class SourceItem:
    """One file found in a source.

    Attributes:
        uri: Where the file is, independent of where the source sits: for a local source its
            posix path relative to the source root (equal to ``rel``), for S3 ``s3://bucket/key``.
            Read it with ``read_uri(uri, root=source)``.
        rel: Path relative to the source root, posix style (the labels-file key).
    """

    uri: str
    rel: str


def is_s3(source: str) -> bool:
    """True for ``s3://`` uris."""
    return source.startswith("s3://")


def _split_s3(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an s3 uri: {uri!r}; expected s3://bucket/prefix")
    return parsed.netloc, parsed.path.lstrip("/")


@cache
def s3_client(endpoint_url: str | None = None):  # noqa: ANN201 - boto3 client type is dynamic
    """A cached boto3 S3 client (one per process and endpoint); credentials from the environment."""
    import boto3  # imported here so that local-only runs never pay for it

    return boto3.client("s3", endpoint_url=endpoint_url or None)


def list_source(source: str, *, exclude: tuple[str, ...] = (), s3_endpoint_url: str | None = None) -> list[SourceItem]:
    """List every file under ``source``, sorted by relative path.

    Hidden files (a path part starting with ``.``) are skipped: they are editor and OS
    litter, not uploads. ``exclude`` names relative paths to skip (the labels file).

    Raises:
        FileNotFoundError: When a local source folder does not exist.
    """
    if is_s3(source):
        bucket, prefix = _split_s3(source)
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        paginator = s3_client(s3_endpoint_url).get_paginator("list_objects_v2")
        items = []
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(prefix) :]
                if rel and not rel.endswith("/") and not _hidden(rel) and rel not in exclude:
                    items.append(SourceItem(uri=f"s3://{bucket}/{obj['Key']}", rel=rel))
        return sorted(items, key=lambda i: i.rel)
    root = Path(source)
    if not root.is_dir():
        raise FileNotFoundError(f"source folder not found: {root.resolve()} (set ingest.source in params.yaml)")
    items = []
    for p in root.rglob("*"):  # rglob does not descend into symlinked folders: no loops
        rel = p.relative_to(root).as_posix()
        # A symlinked folder is listed (and quarantined as not a regular file) rather than
        # silently skipped, so every entry of the upload folder is accounted for.
        if (p.is_symlink() or not p.is_dir()) and not _hidden(rel) and rel not in exclude:
            items.append(SourceItem(uri=rel, rel=rel))
    return sorted(items, key=lambda i: i.rel)


def _hidden(rel: str) -> bool:
    return any(part.startswith(".") for part in rel.split("/"))


def read_uri(
    uri: str, *, root: str | Path | None = None, max_bytes: int | None = None, s3_endpoint_url: str | None = None
) -> bytes:
    """Read the bytes behind a uri, refusing an oversized file before reading it.

    Args:
        uri: ``s3://bucket/key``, an absolute local path, or a path relative to ``root`` (how
            the manifest records local files).
        root: The local source folder that relative uris are resolved against.
        max_bytes: When set, a larger file raises :class:`FileTooLargeError` from its size
            alone (``stat`` or ``ContentLength``), and at most ``max_bytes + 1`` bytes are ever read.
        s3_endpoint_url: S3-compatible endpoint (None = AWS).

    Raises:
        FileTooLargeError: The file is larger than ``max_bytes``.
        FileNotFoundError: No such local file.
        OSError: The local path is not a regular file (a folder, FIFO or device), or a
            relative uri leads outside ``root`` through a symlink.
        ValueError: A relative uri without ``root``, or one that climbs out of it.
    """
    if is_s3(uri):
        return _read_s3(uri, max_bytes=max_bytes, s3_endpoint_url=s3_endpoint_url)
    return _read_local(_local_path(uri, root), max_bytes=max_bytes)


def _local_path(uri: str, root: str | Path | None) -> Path:
    if Path(uri).is_absolute():
        return Path(uri)
    if root is None:
        raise ValueError(f"relative uri {uri!r} needs the source root it was listed under (root=...)")
    if ".." in PurePosixPath(uri).parts:
        raise ValueError(f"uri {uri!r} climbs out of its source root {root}")
    path = Path(root) / uri
    # An upload folder is untrusted: a symlink in it must not make ingest read files from
    # elsewhere on the machine (keys, other tenants' images). Links inside the root are fine.
    try:
        target = path.resolve()
    except (RuntimeError, OSError) as exc:
        # Python 3.11 raises RuntimeError on a loop, 3.13 OSError (ELOOP); both messages hold
        # the absolute path, which must not reach the quarantine rows (they name the uri).
        if isinstance(exc, OSError) and exc.errno != errno.ELOOP:
            raise
        raise OSError("a symlink loop (not followed)") from None
    if not target.is_relative_to(Path(root).resolve()):
        raise OSError("a symlink that points outside the source folder (not followed)")
    return path


def _read_local(path: Path, *, max_bytes: int | None) -> bytes:
    # O_NONBLOCK: opening a FIFO planted among the uploads must not hang the run (it has no
    # effect on regular files); fstat on the open descriptor then decides, so nothing can swap
    # the file between the checks and the read.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # the message names no path: quarantine rows carry the uri
            raise OSError(f"not a regular file (mode {stat.filemode(info.st_mode)})")
        if max_bytes is not None and info.st_size > max_bytes:
            raise FileTooLargeError(info.st_size, max_bytes)
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read() if max_bytes is None else f.read(max_bytes + 1)
    finally:
        os.close(fd)
    if max_bytes is not None and len(data) > max_bytes:  # it grew after the stat
        raise FileTooLargeError(len(data), max_bytes, exact=False)
    return data


def _read_s3(uri: str, *, max_bytes: int | None, s3_endpoint_url: str | None) -> bytes:
    bucket, key = _split_s3(uri)
    response = s3_client(s3_endpoint_url).get_object(Bucket=bucket, Key=key)
    body = response["Body"]
    try:
        size = response.get("ContentLength")
        if max_bytes is not None and size is not None and size > max_bytes:
            raise FileTooLargeError(int(size), max_bytes)  # the body is closed unread
        data = body.read() if max_bytes is None else body.read(max_bytes + 1)
    finally:
        body.close()
    if max_bytes is not None and len(data) > max_bytes:  # no or a wrong ContentLength
        raise FileTooLargeError(len(data), max_bytes, exact=False)
    return data


def read_labels(source: str, labels_file: str, *, s3_endpoint_url: str | None = None) -> pd.DataFrame | None:
    """Read the labels CSV at ``source/labels_file``, or None when the source has none.

    The CSV needs columns ``path`` (relative to the source root) and ``label``; the optional
    columns ``label_source``, ``uploader_id``, ``business_category`` and ``uploaded_at`` are
    carried into the manifest. Other columns are ignored.

    Raises:
        ValueError: When required columns are missing or a path is listed twice.
    """
    uri = f"{source.rstrip('/')}/{labels_file}"
    try:
        raw = read_uri(uri if is_s3(source) else labels_file, root=source, s3_endpoint_url=s3_endpoint_url)
    except FileNotFoundError:
        return None
    except Exception as exc:  # botocore's NoSuchKey is created dynamically per client
        if type(exc).__name__ in ("NoSuchKey", "ClientError") and "NoSuchKey" in repr(exc) + type(exc).__name__:
            return None
        raise
    frame = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False, na_values=[""])
    missing = [c for c in LABEL_COLUMNS_REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(
            f"labels file {uri} lacks column(s) {missing}; it needs 'path' (relative to the source) "
            f"and 'label', optionally {list(LABEL_COLUMNS_OPTIONAL)}"
        )
    dup = frame["path"][frame["path"].duplicated()].tolist()
    if dup:
        raise ValueError(f"labels file {uri} lists {len(dup)} path(s) twice, e.g. {dup[:3]}; keep one row per file")
    return frame
