"""Ingestion: source files -> content-addressed store + manifest, bad files -> quarantine.

Invariant: ``ingested + quarantined == found``. Nothing is silently dropped: a file that
cannot be read, decoded, or is an exact duplicate of another ingested file is written to
``quarantine.parquet`` with a reason code from :data:`modops.data.images.QUARANTINE_REASONS`.
Whatever reading or decoding one file raises quarantines that file (``read_error`` or a decode
reason, the exception class in ``detail``); only a failure of the store itself stops the run.

The outputs record where files are relative to the source (``uri``), never where the source
sits, so the same files give byte-identical outputs from any folder or checkout. The decode
limits the run enforced are recorded in ``ingest_summary.json``: training copies them into
the model, so everything downstream decodes under the same limits (:func:`read_decode_limits`).
"""

from __future__ import annotations

import functools
import json
import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pandas as pd

from modops.config import IngestConfig
from modops.data.images import DecodeLimits, FileTooLargeError, QuarantineError, decode_image, describe_error
from modops.data.manifest import MANIFEST_COLUMNS, QUARANTINE_COLUMNS, empty_manifest
from modops.data.sources import SourceItem, is_s3, list_source, read_labels, read_uri
from modops.data.store import ImageStore, atomic_write_parquet, atomic_write_text

__all__ = ["REVIEWED_PREFIX", "IngestSummary", "ingest", "read_decode_limits"]

SUMMARY_FILE = "ingest_summary.json"
#: The manifest rows of ``ingest.source`` alone (no reviewed uploads): what cold start bootstraps from.
SOURCE_MANIFEST_FILE = "source_manifest.parquet"
#: Manifest paths of images from the reviewed source start with this: no real upload path can
#: (a source's own paths are relative, never starting with '@'), so the two never collide.
REVIEWED_PREFIX = "@reviewed/"


@dataclass(frozen=True)
class IngestSummary:
    """Counts from one ingestion run (``found == ingested + quarantined``), and the decode limits it enforced."""

    found: int
    ingested: int
    quarantined: int
    new_in_store: int
    unlabeled: int
    labels_without_image: int
    quarantine_reasons: dict[str, int]
    decode_limits: dict[str, Any]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Outcome:
    item: SourceItem
    nbytes: int
    image_id: str | None = None
    created: bool = False
    width: int = 0
    height: int = 0
    format: str = ""
    phash: str = ""
    reason: str | None = None
    detail: str = ""


def _process(item: SourceItem, *, source: str, store_root: str, cfg: IngestConfig, endpoint: str | None) -> _Outcome:
    """Read, check, decode and store one file; never raises for a bad file (a store failure does raise)."""
    limits = cfg.decode_limits()
    try:
        data = read_uri(item.uri, root=source, max_bytes=limits.max_bytes, s3_endpoint_url=endpoint)
    except FileTooLargeError as exc:
        return _Outcome(item, exc.size, reason=exc.reason, detail=exc.detail)
    except Exception as exc:  # a vanished, unreadable or special file must not stop the run
        return _Outcome(item, 0, reason="read_error", detail=describe_error(exc))
    try:
        img = decode_image(data, limits=limits, min_side=cfg.min_side)
    except QuarantineError as exc:  # decode_image raises nothing else, whatever the bytes
        return _Outcome(item, len(data), reason=exc.reason, detail=exc.detail)
    image_id, created = ImageStore(store_root).put(data)
    return _Outcome(
        item,
        len(data),
        image_id=image_id,
        created=created,
        width=img.width,
        height=img.height,
        format=img.format,
        phash=img.phash,
    )


def _process_chunk(
    items: list[SourceItem], source: str, store_root: str, cfg: IngestConfig, endpoint: str | None
) -> list[_Outcome]:
    return [_process(i, source=source, store_root=store_root, cfg=cfg, endpoint=endpoint) for i in items]


def _run_all(
    items: list[SourceItem],
    source: str,
    *,
    store: ImageStore,
    cfg: IngestConfig,
    s3_endpoint_url: str | None,
    progress: Callable[[int], None] | None,
) -> list[_Outcome]:
    workers = cfg.workers or os.cpu_count() or 1
    chunk = 64
    chunks = [items[i : i + chunk] for i in range(0, len(items), chunk)]
    root = str(store.root)
    if workers == 1 or len(chunks) <= 1:
        results = []
        for c in chunks:
            results.extend(_process_chunk(c, source, root, cfg, s3_endpoint_url))
            if progress:
                progress(len(c))
        return results
    # spawn, not fork: the parent may hold threads (boto3, torch) that fork would copy mid-lock.
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        results = []
        work = functools.partial(_process_chunk, source=source, store_root=root, cfg=cfg, endpoint=s3_endpoint_url)
        for c, res in zip(chunks, pool.map(work, chunks), strict=True):
            results.extend(res)
            if progress:
                progress(len(c))
        return results


def ingest(
    source: str,
    out_dir: Path,
    *,
    store: ImageStore,
    cfg: IngestConfig,
    s3_endpoint_url: str | None = None,
    now: pd.Timestamp | None = None,
    progress: Callable[[int], None] | None = None,
    on_found: Callable[[int], None] | None = None,
    reviewed_source: str | None = None,
) -> IngestSummary:
    """Ingest every file under ``source``, and under ``reviewed_source`` when given.

    Writes ``out_dir/manifest.parquet`` (one row per distinct image, sorted by ``image_id``),
    ``out_dir/source_manifest.parquet`` (its rows from ``source`` alone: a relabel round's reviewed
    uploads leave it byte-identical, so stages that bootstrap from the uploads' own labels stay
    fresh in DVC), ``out_dir/quarantine.parquet`` (columns ``uri``, ``reason``, ``detail``, ``bytes``) and
    ``out_dir/ingest_summary.json`` (counts and the decode limits). A local file's ``uri`` is its
    path relative to ``source``, so the outputs do not depend on where ``source`` or the store sit.
    Re-running on the same files rewrites identical outputs: ``ingested_at`` comes from the
    store's first-seen index, not the clock.

    Args:
        source: Local folder or ``s3://bucket/prefix``.
        out_dir: Output folder.
        store: The content-addressed image store.
        cfg: Ingestion limits.
        s3_endpoint_url: S3-compatible endpoint (None = AWS).
        now: Timestamp recorded for images new to the store (default: current UTC time).
        progress: Called with the number of files just processed.
        on_found: Called once with the number of files found.
        reviewed_source: Folder or ``s3://`` prefix of uploads that reviewers labelled after
            scoring (``modops relabel`` copies them there); their labels are in the label
            store, not in a labels file. A missing local folder means none yet. Their manifest
            paths start with :data:`REVIEWED_PREFIX`; a copy of a ``source`` file is a duplicate.

    Returns:
        The run's counts.
    """
    items = list_source(source, exclude=(cfg.labels_file,), s3_endpoint_url=s3_endpoint_url)
    extra = _reviewed_items(reviewed_source, s3_endpoint_url=s3_endpoint_url)
    if on_found:
        on_found(len(items) + len(extra))
    outcomes = _run_all(items, source, store=store, cfg=cfg, s3_endpoint_url=s3_endpoint_url, progress=progress)
    if extra:
        reviewed = _run_all(
            extra, str(reviewed_source), store=store, cfg=cfg, s3_endpoint_url=s3_endpoint_url, progress=progress
        )
        outcomes += [replace(o, item=_prefixed(o.item)) for o in reviewed]
    items = items + [_prefixed(i) for i in extra]
    labels = read_labels(source, cfg.labels_file, s3_endpoint_url=s3_endpoint_url)
    labelled_rels = set(labels["path"]) if labels is not None else set()
    good, bad = _dedupe(outcomes, prefer=labelled_rels)
    first_seen = store.first_seen([o.image_id for o in good], now=now or pd.Timestamp.now(tz="UTC"))
    manifest = _manifest(good, labels, first_seen)
    quarantine = pd.DataFrame(
        [{"uri": o.item.uri, "reason": o.reason, "detail": o.detail, "bytes": o.nbytes} for o in bad],
        columns=list(QUARANTINE_COLUMNS),
    ).astype({"bytes": "int64"})
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_parquet(out_dir / "manifest.parquet", manifest)
    # By the kept path (an s3:// reviewed uri keeps its own name, only its rel is prefixed).
    reviewed_ids = {o.image_id for o in good if o.item.rel.startswith(REVIEWED_PREFIX)}
    from_source = ~manifest["image_id"].isin(reviewed_ids)
    atomic_write_parquet(out_dir / SOURCE_MANIFEST_FILE, manifest[from_source].reset_index(drop=True))
    atomic_write_parquet(out_dir / "quarantine.parquet", quarantine)
    summary = IngestSummary(
        found=len(items),
        ingested=len(manifest),
        quarantined=len(quarantine),
        new_in_store=len({o.image_id for o in outcomes if o.created}),
        unlabeled=int(manifest["label"].isna().sum()),
        labels_without_image=len(labelled_rels - {i.rel for i in items}),
        quarantine_reasons=dict(sorted(Counter(quarantine["reason"]).items())),
        decode_limits=cfg.decode_limits().to_dict(),
    )
    if summary.found != summary.ingested + summary.quarantined:  # the accounting invariant
        raise AssertionError(f"ingest lost files: {summary}")
    # new_in_store depends on what earlier runs stored, so it stays out of the file: a
    # re-ingest of the same files must rewrite byte-identical outputs.
    recorded = {k: v for k, v in summary.to_dict().items() if k != "new_in_store"}
    atomic_write_text(out_dir / SUMMARY_FILE, json.dumps(recorded, indent=2) + "\n")
    return summary


def _reviewed_items(source: str | None, *, s3_endpoint_url: str | None) -> list[SourceItem]:
    """The reviewed source's files; none when it is unset or a local folder that does not exist yet."""
    if not source:
        return []
    if not is_s3(source) and not Path(source).exists():
        return []
    return list_source(source, s3_endpoint_url=s3_endpoint_url)


def _prefixed(item: SourceItem) -> SourceItem:
    """A reviewed file as the manifest records it: its path under :data:`REVIEWED_PREFIX`."""
    uri = item.uri if is_s3(item.uri) else REVIEWED_PREFIX + item.uri
    return SourceItem(uri=uri, rel=REVIEWED_PREFIX + item.rel)


def read_decode_limits(out_dir: Path) -> DecodeLimits:
    """The decode limits the ingest run that wrote ``out_dir`` enforced (training records them in the model).

    A summary written before the limits were recorded gives the defaults, which such runs enforced
    unless ``params.yaml: ingest`` changed them.

    Raises:
        FileNotFoundError: When ``out_dir`` holds no ingest summary.
    """
    path = Path(out_dir) / SUMMARY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; run `modops ingest SOURCE --out {Path(out_dir)}` first")
    recorded = json.loads(path.read_text()).get("decode_limits")
    return DecodeLimits() if recorded is None else DecodeLimits.from_dict(recorded)


def _dedupe(outcomes: list[_Outcome], *, prefer: set[str]) -> tuple[list[_Outcome], list[_Outcome]]:
    """Split outcomes into ingested (one uri per image id) and quarantined.

    Among copies of the same bytes, a labelled path wins over an unlabelled one, then the
    first path in sort order, so the choice is deterministic and keeps the label.
    """
    good: dict[str, _Outcome] = {}
    bad: list[_Outcome] = []
    # A labelled path first, then the source's own paths before reviewed copies, then path order.
    key = lambda o: (o.item.rel not in prefer, o.item.rel.startswith(REVIEWED_PREFIX), o.item.rel)  # noqa: E731
    for o in sorted(outcomes, key=key):
        if o.reason is not None:
            bad.append(o)
        elif o.image_id in good:
            first = good[o.image_id].item.uri
            bad.append(_Outcome(o.item, o.nbytes, reason="duplicate_content", detail=f"same bytes as {first}"))
        else:
            good[o.image_id] = o
    return list(good.values()), bad


def _manifest(good: list[_Outcome], labels: pd.DataFrame | None, first_seen) -> pd.DataFrame:
    if not good:
        return empty_manifest()
    rows = pd.DataFrame(
        {
            "image_id": [o.image_id for o in good],
            "uri": [o.item.uri for o in good],
            "rel": [o.item.rel for o in good],
            "width": [o.width for o in good],
            "height": [o.height for o in good],
            "format": [o.format for o in good],
            "bytes": [o.nbytes for o in good],
            "phash": [o.phash for o in good],
        }
    )
    if labels is not None:
        rows = rows.merge(labels, how="left", left_on="rel", right_on="path")
    for col in ("label", "uploader_id", "business_category", "uploaded_at", "label_source"):
        if col not in rows.columns:
            rows[col] = None
    rows["label"] = rows["label"].where(rows["label"].notna(), None)
    default_source = rows["label"].notna().map({True: "import", False: "none"})
    rows["label_source"] = rows["label_source"].where(rows["label_source"].notna(), default_source)
    rows["uploaded_at"] = pd.to_datetime(rows["uploaded_at"], utc=True, errors="coerce")
    rows["ingested_at"] = pd.to_datetime(rows["image_id"].map(first_seen), utc=True)
    rows = rows.astype({"width": "int64", "height": "int64", "bytes": "int64"})
    return rows[list(MANIFEST_COLUMNS)].sort_values("image_id").reset_index(drop=True)
