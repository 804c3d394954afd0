"""An append-only label store: labels are events, never overwritten in place.

Event model:
    Every labelling decision is one *event*: image ``image_id`` got ``label`` from ``source``,
    given by ``who``, at ``when``, in labelling ``round``. A relabel is a newer event for the same
    image; a retraction is an event whose label is None. Nothing is ever edited or deleted, so the
    labelled set at *any* past moment can be rebuilt exactly (:meth:`LabelStore.snapshot` with
    ``as_of``), and a trained model only has to record the :class:`LabelVersion` id of the events
    it was trained on to be reproducible and auditable ("which labels did model X see?").

Event columns (:data:`BATCH_COLUMNS`, plus ``batch`` when read back, :data:`EVENT_COLUMNS`):
    event_id: sha256 hex (64 chars) of the canonical event fields (:func:`canonical_event_id`),
        so the same event written twice is recognised and counted once.
    image_id: sha256 hex (64 lowercase chars) of the image bytes, the image store key.
    label: A label name (str), or None meaning "label retracted".
    source: One of :data:`EVENT_SOURCES`: ``upload`` (came with the upload, e.g. labels.csv),
        ``seed`` (cold-start seed set), ``retrieval`` (propagated by similarity search),
        ``reviewer`` (a human decision).
    who: Free text naming the giver: a reviewer name, ``labels.csv``, ``demo-oracle``...
    when: When the decision was made, datetime64[ns, UTC]. Naive timestamps are rejected:
        a label's place in history must not depend on the writer's local clock.
    round: Labelling round (int64 >= 0): 0 for upload labels and cold-start retrieval,
        active-learning relabel rounds count from 1.
    batch: (read side only) the name of the batch file the event was read from.

Storage:
    The store root is a folder of immutable *batches*, one parquet file ``<name>.parquet`` each
    (name: ``[A-Za-z0-9][A-Za-z0-9._-]*``, chosen by the writer). Rows in a file are sorted by
    (when, image_id, source, event_id), so the same events always give byte-identical files,
    which keeps DVC hashes stable across re-runs. Files other than ``*.parquet`` and hidden files
    (the atomic writer's temporaries) are ignored; a ``*.parquet`` file that cannot be read is an
    error naming it, never "no labels". ``rounds/round-NNNNNN.json`` records what each relabel
    round was (the model that selected it, the day, the review batch): :meth:`LabelStore.record_round`.

Ordering:
    Events are totally ordered by ``when``, then batch name, then row order within the batch.
    For each image the last event in that order wins. Ties at the same ``when`` are therefore
    decided by batch name (and, inside one batch, by source then event_id), so producers whose
    decisions may supersede each other should give them distinct timestamps.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from modops.data.store import atomic_write_parquet, atomic_write_text

__all__ = [
    "BATCH_COLUMNS",
    "EVENT_COLUMNS",
    "EVENT_SOURCES",
    "SNAPSHOT_COLUMNS",
    "UPLOAD_BATCH",
    "BatchReadError",
    "LabelBatch",
    "LabelStore",
    "LabelVersion",
    "canonical_event_id",
    "events_from_frame",
    "upload_events",
]

EVENT_SOURCES: tuple[str, ...] = ("upload", "seed", "retrieval", "reviewer")
#: The batch ingest writes from the labels file (``upload`` and ``seed`` events).
UPLOAD_BATCH = "upload"
_ROUNDS_DIR = "rounds"
#: What identifies a round's record: the model whose selection the reviewers labelled.
_ROUND_IDENTITY = ("model_name", "model_version")
# What a batch file holds; ``batch`` is derived from the file name on read, never stored.
BATCH_COLUMNS: tuple[str, ...] = ("event_id", "image_id", "label", "source", "who", "when", "round")
EVENT_COLUMNS: tuple[str, ...] = (*BATCH_COLUMNS, "batch")
SNAPSHOT_COLUMNS: tuple[str, ...] = ("image_id", "label", "source", "who", "when", "round")

# Bumping this tag changes every event id; only do so together with a migration of stored batches.
_EVENT_ID_SCHEME = "modops-label-event/1"
# Compact, ASCII-escaped JSON: one spelling per payload, and cheaper than json.dumps per row.
_JSON = json.JSONEncoder(separators=(",", ":"))
_IMAGE_ID = re.compile(r"[0-9a-f]{64}")
# A leading alphanumeric keeps batch files apart from the atomic writer's hidden ``.name.*.tmp`` files.
_BATCH_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SUFFIX = ".parquet"
_WHEN_DTYPE = "datetime64[ns, UTC]"


class BatchReadError(ValueError):
    """A batch file exists but cannot be read or is not a valid label batch; the message names it."""


@dataclass(frozen=True)
class LabelBatch:
    """One stored batch file.

    Attributes:
        name: Batch name (the file name without ``.parquet``).
        path: The parquet file.
        n_events: Rows in the file.
        sha256: sha256 hex of the batch's event ids in file order (newline-joined): identifies the
            content independently of the parquet encoder version that wrote the bytes.
    """

    name: str
    path: Path
    n_events: int
    sha256: str


@dataclass(frozen=True)
class LabelVersion:
    """The identity of a set of label events, recorded by whatever was trained on it.

    Attributes:
        id: ``"lv-"`` + first 16 hex of the sha256 over the sorted, newline-joined event ids:
            the same events give the same id whatever batches they are stored in.
        n_events: Distinct events used.
        n_labelled: Images in the snapshot built from them (retracted images excluded).
        as_of: The latest ``when`` among the events used (UTC), or None when there are none.
        counts: ``{label: number of images}`` of the snapshot, sorted by label.
    """

    id: str
    n_events: int
    n_labelled: int
    as_of: pd.Timestamp | None
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (``as_of`` as an ISO-8601 string or None)."""
        return {
            "id": self.id,
            "n_events": self.n_events,
            "n_labelled": self.n_labelled,
            "as_of": None if self.as_of is None else self.as_of.isoformat(),
            "counts": dict(self.counts),
        }


# --------------------------------------------------------------------------- event construction


def _canonical_when(when: Any) -> pd.Timestamp:
    """``when`` as a UTC Timestamp; rejects naive and missing values (they have no place in history)."""
    ts = pd.Timestamp(when)
    if ts is pd.NaT:
        raise ValueError("when is missing; every label event needs a timestamp")
    if ts.tzinfo is None:
        raise ValueError(
            f"when={when!r} has no timezone; pass a tz-aware timestamp, e.g. pd.Timestamp('...', tz='UTC')"
        )
    return ts.tz_convert("UTC")


def canonical_event_id(
    image_id: str, label: str | None, *, source: str, who: str, when: pd.Timestamp | datetime | str, round: int
) -> str:
    """The deterministic id of one event: sha256 hex (64 chars) of its canonical JSON.

    ``when`` is canonicalised to UTC with nanoseconds, so the same instant written with another
    offset or as a ``datetime`` gets the same id.
    """
    when_iso = _canonical_when(when).isoformat(timespec="nanoseconds")
    return _event_id(image_id, label, source, who, when_iso, int(round))


def _event_id(image_id: str, label: str | None, source: str, who: str, when_iso: str, round: int) -> str:
    """sha256 hex of the canonical JSON; ``when_iso`` is UTC with nanoseconds and a ``+00:00`` suffix."""
    payload = [_EVENT_ID_SCHEME, image_id, label, source, who, when_iso, round]
    return hashlib.sha256(_JSON.encode(payload).encode("utf-8")).hexdigest()


def _iso_utc_ns(whens: pd.DatetimeIndex) -> list[str]:
    """Vectorised ``Timestamp.isoformat(timespec="nanoseconds")`` for a UTC index (reads stay fast)."""
    naive = whens.tz_convert("UTC").tz_localize(None).to_numpy(dtype="datetime64[ns]")
    return [f"{s}+00:00" for s in np.datetime_as_string(naive, unit="ns")]


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value)


def _fail(context: str, column: str, bad: list[tuple[Any, Any]], hint: str) -> None:
    """Raise one ValueError listing (up to 5) offending rows, so a bad import is fixable in one pass."""
    if bad:
        shown = ", ".join(f"row {i}: {v!r}" for i, v in bad[:5])
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise ValueError(f"{context}: bad {column} in {len(bad)} row(s): {shown}{more}; {hint}")


def _normalize(frame: pd.DataFrame, *, context: str, allowed_labels: Iterable[str] | None = None) -> pd.DataFrame:
    """Validate label events and return them with :data:`BATCH_COLUMNS` and canonical dtypes.

    ``frame`` needs image_id, label, source, who, when, round; ``event_id`` is optional (computed,
    or checked when given) and ``batch`` is dropped (so :meth:`LabelStore.events` output can be
    re-written). Exact duplicate events (same event_id) are kept once. Row order is preserved.
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{context}: expected a pandas DataFrame of label events, got {type(frame).__name__}")
    required = [c for c in BATCH_COLUMNS if c != "event_id"]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{context}: missing columns {missing}; label events need {required} "
            "(events_from_frame builds them from a frame of image_id and label)"
        )
    extra = [c for c in frame.columns if c not in EVENT_COLUMNS]
    if extra:
        raise ValueError(f"{context}: unexpected columns {extra}; keep only {list(BATCH_COLUMNS)}")
    rows = frame.reset_index(drop=True)
    idx = range(len(rows))

    image_ids = rows["image_id"].tolist()
    _fail(
        context,
        "image_id",
        [(i, v) for i, v in zip(idx, image_ids, strict=True) if not (isinstance(v, str) and _IMAGE_ID.fullmatch(v))],
        "image ids are the 64-character lowercase sha256 hex of the image bytes (the image store key)",
    )

    labels = [None if _is_missing(v) else v for v in rows["label"].tolist()]
    _fail(
        context,
        "label",
        [(i, v) for i, v in zip(idx, labels, strict=True) if v is not None and not (isinstance(v, str) and v)],
        "a label is a non-empty label name, or None to retract the image's label",
    )
    if allowed_labels is not None:
        allowed = set(allowed_labels)
        _fail(
            context,
            "label",
            [(i, v) for i, v in zip(idx, labels, strict=True) if v is not None and v not in allowed],
            f"allowed labels are {sorted(allowed)} (params.yaml: labels) or None to retract",
        )

    sources = rows["source"].tolist()
    _fail(
        context,
        "source",
        [(i, v) for i, v in zip(idx, sources, strict=True) if v not in EVENT_SOURCES],
        f"source must be one of {list(EVENT_SOURCES)}",
    )

    whos = rows["who"].tolist()
    _fail(
        context,
        "who",
        [(i, v) for i, v in zip(idx, whos, strict=True) if not (isinstance(v, str) and v.strip())],
        "who names the giver of the label (a reviewer name, 'labels.csv', ...) and must be non-empty text",
    )

    whens = _when_column(rows["when"], context=context)

    rounds_raw = rows["round"].tolist()
    rounds: list[int] = []
    bad_rounds: list[tuple[Any, Any]] = []
    for i, v in zip(idx, rounds_raw, strict=True):
        # bool is an int subclass but never a round number; integral floats come from NaN-widened columns.
        ok = not isinstance(v, bool) and (
            (hasattr(v, "__index__") and int(v) >= 0) or (isinstance(v, float) and v.is_integer() and v >= 0)
        )
        if ok:
            rounds.append(int(v))
        else:
            bad_rounds.append((i, v))
    _fail(
        context,
        "round",
        bad_rounds,
        "round is an integer >= 0 (0: upload labels and cold-start retrieval; active-learning rounds from 1)",
    )

    event_ids = [
        _event_id(*fields) for fields in zip(image_ids, labels, sources, whos, _iso_utc_ns(whens), rounds, strict=True)
    ]
    if "event_id" in rows.columns:
        given = rows["event_id"].tolist()
        _fail(
            context,
            "event_id",
            [(i, g) for i, g, e in zip(idx, given, event_ids, strict=True) if g != e],
            "event_id must equal canonical_event_id of the row's fields; drop the column to have it computed",
        )

    out = pd.DataFrame(
        {
            "event_id": pd.Series(event_ids, dtype=object),
            "image_id": pd.Series(image_ids, dtype=object),
            "label": pd.Series(labels, dtype=object),
            "source": pd.Series(sources, dtype=object),
            "who": pd.Series(whos, dtype=object),
            "when": pd.Series(whens, dtype=_WHEN_DTYPE),
            "round": pd.Series(rounds, dtype="int64"),
        }
    )
    return out.drop_duplicates("event_id", keep="first").reset_index(drop=True)


def _when_column(values: pd.Series, *, context: str) -> pd.DatetimeIndex:
    """A column of timestamps as a UTC DatetimeIndex (ns); naive or missing values are errors."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        converted = pd.DatetimeIndex(values).tz_convert("UTC")
        _fail(
            context,
            "when",
            [(int(i), pd.NaT) for i in np.flatnonzero(converted.isna())],
            "every label event needs a timestamp",
        )
        return converted.astype(_WHEN_DTYPE)
    if pd.api.types.is_datetime64_dtype(values.dtype):
        raise ValueError(
            f"{context}: when is a naive datetime column; localise it first, e.g. frame['when'].dt.tz_localize('UTC')"
        )
    parsed: list[pd.Timestamp] = []
    bad: list[tuple[Any, Any]] = []
    for i, v in enumerate(values.tolist()):
        try:
            parsed.append(_canonical_when(v))
        except (ValueError, TypeError):
            bad.append((i, v))
    _fail(context, "when", bad, "timestamps must be tz-aware (e.g. '2026-11-22T10:15:00Z'), never naive or missing")
    return pd.DatetimeIndex(parsed, dtype=_WHEN_DTYPE) if parsed else pd.DatetimeIndex([], dtype=_WHEN_DTYPE)


def events_from_frame(
    frame: pd.DataFrame,
    *,
    source: str,
    who: str,
    when: pd.Timestamp | datetime | str,
    round: int | str = 0,
) -> pd.DataFrame:
    """Build well-typed label events from a frame of ``image_id`` and ``label``.

    Args:
        frame: Has ``image_id`` and ``label`` columns (label None/NaN retracts); other columns are
            only read when named below.
        source: One of :data:`EVENT_SOURCES`, the same for every row.
        who: The giver for every row, or the name of a column of ``frame`` holding it
            (a string that names a column is read as that column).
        when: A tz-aware timestamp for every row, or the name of a column holding them.
        round: The labelling round for every row, or the name of a column holding it.

    Returns:
        Events with :data:`BATCH_COLUMNS` (event_id computed), one per input row in input order
        (exact duplicates kept once), ready for :meth:`LabelStore.write_batch` / :meth:`LabelStore.append`.
    """
    missing = [c for c in ("image_id", "label") if c not in frame.columns]
    if missing:
        raise ValueError(f"events_from_frame: missing columns {missing}; the frame needs image_id and label")
    n = len(frame)

    def column_or_scalar(value: Any) -> list[Any]:
        if isinstance(value, str) and value in frame.columns:
            return frame[value].tolist()
        return [value] * n

    built = pd.DataFrame(
        {
            "image_id": frame["image_id"].tolist(),
            "label": pd.Series(frame["label"].tolist(), dtype=object),
            "source": [source] * n,
            "who": column_or_scalar(who),
            "round": pd.Series(column_or_scalar(round), dtype=object),
        }
    )
    if isinstance(when, str) and when in frame.columns:
        built["when"] = frame[when].reset_index(drop=True)
    else:
        built["when"] = pd.Series([when] * n, dtype=object)
    return _normalize(built, context="events_from_frame")


def _content_sha256(event_ids: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(event_ids).encode("ascii")).hexdigest()


def _as_of(as_of: pd.Timestamp | datetime | str | None) -> pd.Timestamp | None:
    if as_of is None:
        return None
    try:
        return _canonical_when(as_of)
    except ValueError as exc:
        raise ValueError(f"as_of: {exc}") from None


def _empty_events() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in EVENT_COLUMNS})
    return frame.astype({"when": _WHEN_DTYPE, "round": "int64"})


# --------------------------------------------------------------------------- the store


class LabelStore:
    """A folder of immutable label-event batches; see the module docstring for the model.

    Args:
        root: The store folder. Nothing is read or created until a method needs it; a missing or
            empty folder is an empty store.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LabelStore({str(self.root)!r})"

    # ----------------------------------------------------------------- files

    def _batch_path(self, name: str) -> Path:
        if not isinstance(name, str) or not _BATCH_NAME.fullmatch(name):
            raise ValueError(
                f"bad batch name {name!r}: use letters, digits, '.', '_' and '-', starting with a letter or digit "
                "(e.g. 'upload' or 'retrieval-r000')"
            )
        return self.root / f"{name}{_SUFFIX}"

    def _batch_files(self) -> list[Path]:
        """Batch files sorted by name; a missing root is an empty store."""
        if not self.root.exists():
            return []
        if not self.root.is_dir():
            raise NotADirectoryError(f"label store root {self.root} is not a folder")
        files = []
        for p in self.root.iterdir():
            # Hidden files are the atomic writer's temporaries (or editor droppings), never batches.
            if p.name.startswith(".") or not p.name.endswith(_SUFFIX) or not p.is_file():
                continue
            if not _BATCH_NAME.fullmatch(p.name[: -len(_SUFFIX)]):
                raise BatchReadError(
                    f"{p} is in the label store but its name is not a batch name ([A-Za-z0-9][A-Za-z0-9._-]*); "
                    "rename it or move it out of the store"
                )
            files.append(p)
        return sorted(files, key=lambda p: p.name[: -len(_SUFFIX)])

    @staticmethod
    def _read_batch(path: Path) -> pd.DataFrame:
        """Read and re-validate one batch file (:data:`BATCH_COLUMNS`, file order)."""
        hint = "restore it (e.g. `dvc checkout`) or move it out of the store; it is never read as 'no labels'"
        try:
            raw = pd.read_parquet(path)
        except Exception as exc:  # any reader failure means the same thing: this file is unusable
            raise BatchReadError(f"cannot read label batch {path}: {exc}; {hint}") from exc
        if list(raw.columns) != list(BATCH_COLUMNS):
            raise BatchReadError(
                f"{path} is not a label batch: columns {list(raw.columns)}, expected {list(BATCH_COLUMNS)}; {hint}"
            )
        try:
            # Re-validating (event ids included) catches hand edits that would silently rewrite history.
            frame = _normalize(raw, context=f"label batch {path}")
        except (ValueError, TypeError) as exc:
            raise BatchReadError(f"{exc}; {hint}") from exc
        if len(frame) != len(raw):
            raise BatchReadError(f"label batch {path} holds duplicate events; {hint}")
        return frame

    def batches(self) -> list[LabelBatch]:
        """Every stored batch, sorted by name (reads each file's event ids to hash its content)."""
        out = []
        for p in self._batch_files():
            try:
                n = pq.read_metadata(p).num_rows
                ids = pq.read_table(p, columns=["event_id"]).column("event_id").to_pylist()
            except Exception as exc:
                raise BatchReadError(f"cannot read label batch {p}: {exc}; restore it or move it out") from exc
            out.append(LabelBatch(name=p.name[: -len(_SUFFIX)], path=p, n_events=n, sha256=_content_sha256(ids)))
        return out

    # ----------------------------------------------------------------- relabel rounds

    def _round_path(self, round: int) -> Path:
        if isinstance(round, bool) or not isinstance(round, int | np.integer) or round < 1:
            raise ValueError(
                f"a relabel round is an integer >= 1 (round 0 is upload and retrieval labels), got {round!r}"
            )
        return self.root / _ROUNDS_DIR / f"round-{int(round):06d}.json"

    def record_round(self, round: int, meta: dict[str, Any]) -> Path:
        """Record what relabel ``round`` was, e.g. ``{"model_name", "model_version", "day", "batch"}``.

        Recording the same round again with the same ``model_name`` and ``model_version`` rewrites
        the record (idempotent re-imports); a different model for a recorded round is an error,
        because the round's labels were chosen by the first one.

        Returns:
            The record's path (``rounds/round-NNNNNN.json`` under the store root).
        """
        path = self._round_path(round)
        record = {"round": int(round), **{k: v for k, v in meta.items() if k != "round"}}
        old = self.rounds().get(int(round))
        if old is not None:
            clash = {k: (old.get(k), record.get(k)) for k in _ROUND_IDENTITY if old.get(k) != record.get(k)}
            if clash:
                raise ValueError(
                    f"relabel round {round} is already recorded with {clash} (recorded, new) in {path}; "
                    "a round belongs to the model that selected it: start a new round instead"
                )
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True, default=str) + "\n")
        return path

    def rounds(self) -> dict[int, dict[str, Any]]:
        """Every recorded relabel round by number (empty when none is recorded)."""
        folder = self.root / _ROUNDS_DIR
        if not folder.is_dir():
            return {}
        out: dict[int, dict[str, Any]] = {}
        for p in sorted(folder.glob("round-*.json")):
            try:
                record = json.loads(p.read_text())
                out[int(record["round"])] = record
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise BatchReadError(
                    f"cannot read relabel round record {p}: {exc}; restore it (it names the model that "
                    "selected the round) or move it out of the store"
                ) from exc
        return out

    # ----------------------------------------------------------------- writing

    def write_batch(
        self,
        events: pd.DataFrame,
        *,
        name: str,
        replace: bool = False,
        allowed_labels: Iterable[str] | None = None,
    ) -> LabelBatch:
        """Validate ``events`` and store them as batch ``name``, atomically.

        Args:
            events: Label events (image_id, label, source, who, when, round; event_id optional and
                checked; a ``batch`` column is ignored). Exact duplicates are stored once.
            name: Batch name, ``[A-Za-z0-9][A-Za-z0-9._-]*``; the file is ``ROOT/<name>.parquet``.
            replace: Allow overwriting an existing batch of that name whose content differs. Only
                for producers that re-derive their whole batch from their own source (e.g. ingest
                from labels.csv); decisions (reviewers, imports) go through :meth:`append`.
            allowed_labels: When given, any non-None label outside it is rejected.

        Returns:
            The stored batch. Rows are sorted by (when, image_id, source, event_id), so the same
            events always give byte-identical files; an identical existing batch is left untouched.

        Raises:
            ValueError: Invalid events or name (the message lists bad rows and how to fix them).
            FileExistsError: The batch exists with different content and ``replace`` is False.
        """
        path = self._batch_path(name)
        frame = _normalize(events, context=f"label batch {name!r}", allowed_labels=allowed_labels)
        frame = frame.sort_values(["when", "image_id", "source", "event_id"], kind="mergesort").reset_index(drop=True)
        ids = frame["event_id"].tolist()
        if path.exists():
            try:
                same = self._read_batch(path)["event_id"].tolist() == ids
            except BatchReadError:
                if not replace:
                    raise
                same = False
            if not same and not replace:
                raise FileExistsError(
                    f"label batch {path} already exists with different events and the store is append-only; "
                    "write new decisions with LabelStore.append (or a new batch name), or pass replace=True if "
                    "this producer re-derives the whole batch from its own source"
                )
            if same:
                # Leave the file alone: its bytes (and DVC hash, mtime) stay as they are.
                return LabelBatch(name=name, path=path, n_events=len(frame), sha256=_content_sha256(ids))
        atomic_write_parquet(path, frame)
        return LabelBatch(name=name, path=path, n_events=len(frame), sha256=_content_sha256(ids))

    def append(
        self,
        events: pd.DataFrame,
        *,
        source_name: str,
        allowed_labels: Iterable[str] | None = None,
    ) -> LabelBatch | None:
        """Store new decisions (reviewers, imports) as a new batch; re-importing is a no-op.

        An event is dropped when it is already stored (same event_id), or when its (image_id,
        label, source, who, round) equals the latest stored event of that image from the same
        source, so re-running an import of the same decisions with fresh timestamps adds nothing.

        Args:
            events: Label events, as for :meth:`write_batch`.
            source_name: Prefix of the batch name, e.g. ``reviewer`` or ``import-vendor``.
            allowed_labels: As for :meth:`write_batch`.

        Returns:
            The new batch, named ``<source_name>-<max when, UTC, YYYYMMDDTHHMMSSZ>-<first 8 hex of its
            content sha256>``, or None when nothing was new.
        """
        self._batch_path(source_name)  # validate the prefix before any work
        frame = _normalize(events, context=f"append to {source_name!r}", allowed_labels=allowed_labels)
        stored = self.events()
        if len(stored) and len(frame):
            latest = stored.drop_duplicates(["image_id", "source"], keep="last")
            key = ["image_id", "label", "source", "who", "round"]
            # Merge on the key; label None must match None, so compare via a filled sentinel.
            sentinel = "\x00retracted"
            left = frame[key].assign(label=frame["label"].fillna(sentinel), _row=range(len(frame)))
            right = latest[key].assign(label=latest["label"].fillna(sentinel))
            repeated = set(left.merge(right, on=key, how="inner")["_row"])
            known = set(stored["event_id"])
            keep = [i not in repeated and e not in known for i, e in enumerate(frame["event_id"])]
            frame = frame[keep].reset_index(drop=True)
        if frame.empty:
            return None
        frame = frame.sort_values(["when", "image_id", "source", "event_id"], kind="mergesort").reset_index(drop=True)
        stamp = frame["when"].max().strftime("%Y%m%dT%H%M%SZ")
        name = f"{source_name}-{stamp}-{_content_sha256(frame['event_id'])[:8]}"
        return self.write_batch(frame, name=name)

    # ----------------------------------------------------------------- reading

    def events(self, *, as_of: pd.Timestamp | datetime | str | None = None) -> pd.DataFrame:
        """Every stored event, once, in the store's total order.

        Args:
            as_of: A tz-aware timestamp; keep only events with ``when <= as_of``. None: all events.

        Returns:
            :data:`EVENT_COLUMNS` (strings as object, ``when`` datetime64[ns, UTC], ``round`` int64),
            deduplicated by event_id (first occurrence kept), ordered by when, then batch name,
            then row order within the batch; a fresh RangeIndex.
        """
        cutoff = _as_of(as_of)
        frames = []
        for p in self._batch_files():
            frame = self._read_batch(p)
            frames.append(frame.assign(batch=p.name[: -len(_SUFFIX)], _row=range(len(frame))))
        if not frames:
            return _empty_events()
        allev = pd.concat(frames, ignore_index=True)
        if cutoff is not None:
            allev = allev[allev["when"] <= cutoff]
        allev = allev.sort_values(["when", "batch", "_row"], kind="mergesort")
        allev = allev.drop_duplicates("event_id", keep="first").drop(columns="_row")
        out = allev.reset_index(drop=True)[list(EVENT_COLUMNS)]
        return out.astype({"batch": object, "when": _WHEN_DTYPE, "round": "int64"})

    def snapshot(
        self,
        *,
        as_of: pd.Timestamp | datetime | str | None = None,
        sources: Iterable[str] | None = None,
    ) -> pd.DataFrame:
        """The labelled set at a moment: each image's latest event, retracted images dropped.

        Args:
            as_of: As for :meth:`events`.
            sources: Only events from these sources count (e.g. ``["upload"]``); None: all.

        Returns:
            One row per labelled image, :data:`SNAPSHOT_COLUMNS`, sorted by image_id, fresh index.
        """
        ev = self.events(as_of=as_of)
        if sources is not None:
            wanted = list(sources) if not isinstance(sources, str) else [sources]
            unknown = [s for s in wanted if s not in EVENT_SOURCES]
            if unknown:
                raise ValueError(f"unknown sources {unknown}; choose from {list(EVENT_SOURCES)}")
            ev = ev[ev["source"].isin(wanted)]
        return self.snapshot_of(ev)

    def version(self, *, as_of: pd.Timestamp | datetime | str | None = None) -> LabelVersion:
        """The :class:`LabelVersion` of the events up to ``as_of`` (all events when None)."""
        ev = self.events(as_of=as_of)
        snap = self.snapshot_of(ev)
        counts = snap["label"].value_counts()
        return LabelVersion(
            id="lv-" + _content_sha256(sorted(ev["event_id"]))[:16],
            n_events=len(ev),
            n_labelled=len(snap),
            as_of=None if ev.empty else ev["when"].max(),
            counts={str(k): int(counts[k]) for k in sorted(counts.index)},
        )

    @staticmethod
    def snapshot_of(events: pd.DataFrame) -> pd.DataFrame:
        """:meth:`snapshot` of an already-read, ordered :meth:`events` frame (avoids re-reading)."""
        latest = events.drop_duplicates("image_id", keep="last")
        labelled = latest[latest["label"].notna()]
        return labelled.sort_values("image_id", kind="mergesort").reset_index(drop=True)[list(SNAPSHOT_COLUMNS)]


def upload_events(manifest: pd.DataFrame) -> pd.DataFrame:
    """The label events implied by a manifest's labels (``labels.csv`` at ingest): the store's first events.

    Rows labelled with ``label_source == "seed"`` become ``seed`` events, other labelled rows
    ``upload`` events, given by ``labels.csv`` in round 0. ``when`` is the upload time when the
    labels file gave one, else the time the image store first saw the image, so re-ingesting the
    same files yields the same events.

    Args:
        manifest: Rows with ``image_id``, ``label``, ``label_source``, ``uploaded_at``, ``ingested_at``.

    Returns:
        Events with :data:`BATCH_COLUMNS`, one per labelled manifest row.
    """
    labelled = manifest[manifest["label"].notna()].copy()
    labelled["when"] = labelled["uploaded_at"].where(labelled["uploaded_at"].notna(), labelled["ingested_at"])
    parts = [
        events_from_frame(rows, source=source, who="labels.csv", when="when")
        for source, rows in (
            ("seed", labelled[labelled["label_source"] == "seed"]),
            ("upload", labelled[labelled["label_source"] != "seed"]),
        )
        if len(rows)
    ]
    if not parts:
        return _empty_events()[list(BATCH_COLUMNS)]
    return pd.concat(parts, ignore_index=True)
