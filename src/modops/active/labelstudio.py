"""Label Studio interchange as plain JSON and CSV: config, import tasks, export parsing.

No ``label-studio-sdk`` here (it pulls OpenCV, nltk and more); the formats are small:

- the labelling config is one ``<Image>`` and one single-choice ``<Choices>`` named ``label``;
- an import task carries ``data.image`` (a URL Label Studio can load), ``data.image_id`` (our
  key, which comes back in every export) and one pre-annotation from the model;
- exports come as JSON (tasks with ``annotations[]``), JSON_MIN (one flat record per
  annotation) or CSV (one row per annotation); all three reduce to one label per image.

Retrieval candidates (``modops.active.retrieval.retrieve_candidates``) are the usual input.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import numpy as np
import pandas as pd

__all__ = [
    "FROM_NAME",
    "TO_NAME",
    "EXPORT_COLUMNS",
    "labeling_config",
    "import_tasks",
    "local_files_url",
    "parse_export",
    "parse_export_csv",
    "export_csv",
]

#: Name of the ``<Choices>`` control; results and JSON_MIN/CSV columns are keyed by it.
FROM_NAME = "label"
#: Name of the ``<Image>`` object the choices refer to.
TO_NAME = "image"
#: Columns of the frame returned by :func:`parse_export` and :func:`parse_export_csv`.
EXPORT_COLUMNS = ("image_id", "label", "who", "when", "n_annotations")

_CANDIDATE_COLUMNS = ("category", "image_id", "score", "rank")


def labeling_config(classes: Sequence[str]) -> str:
    """The Label Studio labelling config (XML) for single-choice image classification.

    Args:
        classes: Class names shown as choices, in display order; non-empty, unique, non-blank.

    Returns:
        ``<View><Image name="image" value="$image"/><Choices name="label" toName="image"
        choice="single" showInline="true"><Choice value="..."/>...</Choices></View>``, indented,
        with every value XML-escaped (quotes, ``&``, ``<`` and newlines are safe).

    Raises:
        ValueError: On a bare string, an empty list, blank or duplicate names.
    """
    if isinstance(classes, str | bytes):
        raise ValueError("classes must be a sequence of class names, not a single string")
    names = [str(c) for c in classes]
    if not names:
        raise ValueError("classes is empty")
    if any(not n.strip() for n in names):
        raise ValueError(f"class names must not be blank; got {names}")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate class names: {duplicates}")
    choices = "\n".join(f"    <Choice value={quoteattr(n)}/>" for n in names)
    return (
        "<View>\n"
        f'  <Image name="{TO_NAME}" value="$image"/>\n'
        f'  <Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="single" showInline="true">\n'
        f"{choices}\n"
        "  </Choices>\n"
        "</View>\n"
    )


def _require_columns(frame: pd.DataFrame, columns: Iterable[str], *, name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing columns {missing}; has {list(frame.columns)}")


def _choice_result(label: str) -> list[dict[str, Any]]:
    return [{"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices", "value": {"choices": [label]}}]


def import_tasks(
    candidates: pd.DataFrame,
    *,
    image_url: Callable[[str], str],
    model_version: str,
    scores: pd.DataFrame | None = None,
) -> list[dict[str, Any]]:
    """Label Studio import tasks with pre-annotations, one per distinct candidate image.

    Args:
        candidates: Frame with ``category``, ``image_id``, ``score`` (retrieval cosine) and
            ``rank`` (1-based within category); an image may appear under several categories.
        image_url: Maps an image_id to a URL Label Studio can load (e.g. via :func:`local_files_url`).
        model_version: Recorded on each prediction, so Label Studio can compare model versions.
        scores: Optional frame with ``image_id`` and one ``p_<class>`` column per class (the model's
            probabilities). When given, the pre-annotation is the argmax class (first column on
            ties) and its probability; every candidate image must have exactly one row.
            Without it, the pre-annotation is the retrieved category with the highest retrieval
            score (then best rank, then name), scored by that cosine similarity.

    Returns:
        ``[{"data": {...}, "predictions": [{...}]}, ...]`` ordered by (best rank, image_id), where
        ``data`` = ``{"image": url, "image_id": str, "categories": [str, ...] (best score first),
        "retrieval_score": float (max over categories)}`` and the single prediction is
        ``{"model_version": str, "score": float, "result": [{"from_name": "label", "to_name":
        "image", "type": "choices", "value": {"choices": [cls]}}]}``. Only plain ``str``, ``int``,
        ``float`` and lists/dicts of them, so ``json.dumps`` works.

    Raises:
        ValueError: On missing columns, NaN scores, or a ``scores`` frame that lacks ``p_`` columns,
            repeats an image, or misses a candidate image.
    """
    _require_columns(candidates, _CANDIDATE_COLUMNS, name="candidates")
    if candidates.empty:
        return []
    df = candidates[list(_CANDIDATE_COLUMNS)].copy()
    df["image_id"] = df["image_id"].astype(str)
    df["category"] = df["category"].astype(str)
    df["score"] = df["score"].astype(float)
    if df["score"].isna().any():
        raise ValueError("candidates has missing scores")
    # Within an image: the category it matched best comes first (ties: better rank, then name).
    df = df.sort_values(
        ["image_id", "score", "rank", "category"], ascending=[True, False, True, True], kind="mergesort"
    )

    probs: pd.DataFrame | None = None
    classes: list[str] = []
    if scores is not None:
        _require_columns(scores, ["image_id"], name="scores")
        p_cols = [c for c in scores.columns if isinstance(c, str) and c.startswith("p_")]
        if not p_cols:
            raise ValueError("scores has no p_<class> columns")
        classes = [c[2:] for c in p_cols]
        probs = scores[["image_id", *p_cols]].astype({"image_id": str}).set_index("image_id")
        if probs.index.duplicated().any():
            raise ValueError(f"scores repeats image ids: {sorted(set(probs.index[probs.index.duplicated()]))[:5]}")
        absent = sorted(set(df["image_id"]) - set(probs.index))
        if absent:
            raise ValueError(f"scores has no row for {len(absent)} candidate image(s), e.g. {absent[:5]}")
        if probs.isna().to_numpy().any():
            raise ValueError("scores has missing probabilities")

    tasks: list[tuple[int, str, dict[str, Any]]] = []
    for image_id, group in df.groupby("image_id", sort=False):
        categories = list(dict.fromkeys(group["category"]))
        best_rank = int(group["rank"].min())
        retrieval_score = float(group["score"].iloc[0])
        if probs is not None:
            row = probs.loc[image_id].to_numpy(dtype=np.float64)
            best = int(np.argmax(row))
            predicted, pred_score = classes[best], float(row[best])
        else:
            # A cosine can be negative; Label Studio validates prediction scores in [0, 1].
            predicted, pred_score = categories[0], min(max(retrieval_score, 0.0), 1.0)
        task = {
            "data": {
                "image": str(image_url(image_id)),
                "image_id": str(image_id),
                "categories": categories,
                "retrieval_score": retrieval_score,
            },
            "predictions": [
                {"model_version": str(model_version), "score": pred_score, "result": _choice_result(predicted)}
            ],
        }
        tasks.append((best_rank, str(image_id), task))
    tasks.sort(key=lambda t: (t[0], t[1]))
    return [t[2] for t in tasks]


def local_files_url(path_under_root: str, *, prefix: str = "/data/local-files/?d=") -> str:
    """URL for a file served by Label Studio's local-files storage.

    Label Studio serves ``LOCAL_FILES_DOCUMENT_ROOT/<d>`` at ``/data/local-files/?d=<d>`` when
    ``LOCAL_FILES_SERVING_ENABLED=true``.

    Args:
        path_under_root: POSIX path relative to the document root, e.g. ``"pool/ab/abc123.jpg"``.
        prefix: URL prefix up to and including ``d=``.

    Returns:
        ``prefix`` + the percent-encoded path (slashes kept; spaces, ``&``, ``?``, ``#``, ``%``
        and non-ASCII characters encoded).

    Raises:
        ValueError: On an empty or absolute path, or one containing ``..``.
    """
    path = str(path_under_root)
    parts = PurePosixPath(path).parts
    if not path or not parts:
        raise ValueError("path_under_root is empty")
    if path.startswith("/"):
        raise ValueError(f"path_under_root must be relative to the document root; got {path!r}")
    if ".." in parts:
        raise ValueError(f"path_under_root must not contain '..'; got {path!r}")
    return prefix + quote(path, safe="/")


# ---------------------------------------------------------------------------------------------
# Export parsing


def _load_json(data: list[dict[str, Any]] | str | bytes | Path) -> list[Any]:
    """The export as a list of records; a str is JSON text when it starts with [ or {, else a path."""
    if isinstance(data, Path):
        loaded = json.loads(data.read_text(encoding="utf-8"))
    elif isinstance(data, bytes | bytearray):
        loaded = json.loads(bytes(data).decode("utf-8"))
    elif isinstance(data, str):
        text = data.lstrip()
        loaded = json.loads(text) if text.startswith(("[", "{")) else json.loads(Path(data).read_text(encoding="utf-8"))
    elif isinstance(data, list):
        loaded = data
    else:
        raise TypeError(f"expected a list of dicts, JSON text, bytes or a path; got {type(data).__name__}")
    if not isinstance(loaded, list):
        raise ValueError(f"a Label Studio export is a JSON list of tasks; got a {type(loaded).__name__}")
    return loaded


def _timestamp(value: Any, *, where: str) -> pd.Timestamp | None:
    """Parse an ISO timestamp to UTC; naive values are taken as UTC (Label Studio writes 'Z')."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: cannot parse timestamp {value!r}") from exc
    if ts is pd.NaT:
        return None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _who(value: Any) -> str | None:
    """Annotator as a string: the email of a user dict, else its id; a bare id or email as is."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return None
    if isinstance(value, dict):
        for key in ("email", "username", "id"):
            if value.get(key) not in (None, ""):
                return str(value[key])
        return None
    return str(value)


def _single_choice(choices: Any, *, where: str) -> str | None:
    """The one chosen class from a ``choices`` list (None when empty)."""
    if not isinstance(choices, list):
        raise ValueError(f"{where}: expected a list of choices; got {choices!r}")
    distinct = list(dict.fromkeys(str(c) for c in choices))
    if not distinct:
        return None
    if len(distinct) > 1:
        raise ValueError(f"{where}: several classes chosen {distinct}; the config allows one (choice='single')")
    return distinct[0]


def _label_from_result(result: Any, *, from_name: str, where: str) -> str | None:
    """The class chosen in a JSON-export annotation's ``result`` list (None when no choice)."""
    if not isinstance(result, list):
        raise ValueError(f"{where}: annotation result must be a list; got {type(result).__name__}")
    chosen: list[Any] = []
    for item in result:
        if isinstance(item, dict) and item.get("from_name") == from_name:
            chosen.extend((item.get("value") or {}).get("choices") or [])
    return _single_choice(chosen, where=where)


def _label_from_min(value: Any, *, where: str) -> str | None:
    """The class in a JSON_MIN field: a plain string for one choice, else {"choices": [...]}."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return _single_choice(value.get("choices") or [], where=where)
    if isinstance(value, list):
        return _single_choice(value, where=where)
    return str(value)


def _image_id(value: Any, *, where: str) -> str:
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        raise ValueError(f"{where} has no image_id in its data; was it imported with import_tasks?")
    return str(value)


def _reduce(annotations: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per image: the latest usable annotation wins.

    "Latest" orders by updated_at, then created_at (a missing timestamp counts as older than any),
    then position in the export, so a relabel after a first answer replaces it.
    """

    def key(a: dict[str, Any]) -> tuple[bool, pd.Timestamp, bool, pd.Timestamp, int]:
        u, c = a["updated"], a["created"]
        epoch = pd.Timestamp(0, tz="UTC")
        return (u is not None, u if u is not None else epoch, c is not None, c if c is not None else epoch, a["order"])

    by_image: dict[str, list[dict[str, Any]]] = {}
    for a in annotations:
        by_image.setdefault(a["image_id"], []).append(a)
    rows = []
    for image_id in sorted(by_image):
        group = by_image[image_id]
        latest = max(group, key=key)
        when = latest["updated"] if latest["updated"] is not None else latest["created"]
        rows.append((image_id, latest["label"], latest["who"], when, len(group)))
    return pd.DataFrame(
        {
            "image_id": pd.Series([r[0] for r in rows], dtype=object),
            "label": pd.Series([r[1] for r in rows], dtype=object),
            "who": pd.Series([r[2] for r in rows], dtype=object),
            "when": pd.to_datetime(pd.Series([r[3] for r in rows], dtype=object), utc=True),
            "n_annotations": pd.Series([r[4] for r in rows], dtype=np.int64),
        },
        columns=list(EXPORT_COLUMNS),
    )


def parse_export(data: list[dict[str, Any]] | str | bytes | Path, *, from_name: str = FROM_NAME) -> pd.DataFrame:
    """Read a Label Studio JSON or JSON_MIN export into one label per image.

    JSON: tasks ``{"id", "data": {"image_id", ...}, "annotations": [{"result": [{"from_name",
    "value": {"choices": [...]}}], "completed_by", "was_cancelled", "created_at", "updated_at"}]}``.
    JSON_MIN: one flat record per annotation with the data fields (``image_id``), the class under
    ``from_name`` (a string, or ``{"choices": [...]}``), and optional ``annotator``, ``created_at``,
    ``updated_at``. Both may be mixed in one list.

    Cancelled (skipped) annotations and annotations without a choice are ignored. Of the rest,
    the latest wins: by updated_at, then created_at, then order in the export. If one image was
    imported as several tasks, their annotations are pooled. Labels are kept as written (the
    caller checks them against its classes).

    Args:
        data: The parsed list, JSON text or bytes, or a path (``Path``, or a ``str`` that does not
            start with ``[`` or ``{``).
        from_name: Name of the ``<Choices>`` control.

    Returns:
        DataFrame with ``EXPORT_COLUMNS``, one row per image with a usable annotation, sorted by
        image_id: ``image_id`` (str), ``label`` (str), ``who`` (str or None: email, or user id),
        ``when`` (datetime64[ns, UTC]: updated_at, else created_at; NaT when missing),
        ``n_annotations`` (int: usable annotations seen for the image).

    Raises:
        ValueError: On a non-list export, a record without ``data.image_id`` (naming its task id),
            several classes in one annotation, or an unparseable timestamp.
    """
    records = _load_json(data)
    annotations: list[dict[str, Any]] = []
    for position, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise ValueError(f"record {position} is a {type(rec).__name__}, not a task object")
        task = f"task {rec.get('id', f'at position {position}')}"
        if "annotations" in rec or "data" in rec:
            task_data = rec.get("data")
            if not isinstance(task_data, dict):
                raise ValueError(f"{task} has no data object")
            image_id = _image_id(task_data.get("image_id"), where=task)
            for j, ann in enumerate(rec.get("annotations") or []):
                if not isinstance(ann, dict):
                    raise ValueError(f"{task}, annotation {j}: expected an object; got {type(ann).__name__}")
                where = f"{task}, annotation {ann.get('id', j)}"
                if ann.get("was_cancelled"):
                    continue
                label = _label_from_result(ann.get("result") or [], from_name=from_name, where=where)
                if label is None:
                    continue
                annotations.append(
                    {
                        "image_id": image_id,
                        "label": label,
                        "who": _who(ann.get("completed_by")),
                        "created": _timestamp(ann.get("created_at"), where=where),
                        "updated": _timestamp(ann.get("updated_at"), where=where),
                        "order": len(annotations),
                    }
                )
        else:  # JSON_MIN: the data fields and the control's value sit at the top level
            image_id = _image_id(rec.get("image_id"), where=task)
            where = f"{task}, annotation {rec.get('annotation_id', position)}"
            if rec.get("was_cancelled"):
                continue
            label = _label_from_min(rec.get(from_name), where=where)
            if label is None:
                continue
            annotations.append(
                {
                    "image_id": image_id,
                    "label": label,
                    "who": _who(rec.get("annotator")),
                    "created": _timestamp(rec.get("created_at"), where=where),
                    "updated": _timestamp(rec.get("updated_at"), where=where),
                    "order": len(annotations),
                }
            )
    return _reduce(annotations)


def parse_export_csv(path_or_text: str | bytes | Path, *, from_name: str = FROM_NAME) -> pd.DataFrame:
    """Read a CSV of answers (Label Studio's CSV export, or :func:`export_csv` filled in by hand).

    Required columns: ``image_id`` and ``from_name`` (``label``); optional ``annotator``,
    ``created_at``, ``updated_at``. Rows with an empty label are ignored; several rows for one
    image reduce as in :func:`parse_export` (latest wins, then the last row). All values are read
    as strings, so ids such as ``"007"`` keep their zeros.

    Args:
        path_or_text: A ``Path``, CSV bytes, or a ``str`` that is CSV text (contains a newline) or a path.
        from_name: Column holding the class.

    Returns:
        Same frame as :func:`parse_export`.

    Raises:
        ValueError: On missing columns, a row without image_id, or an unparseable timestamp.
    """
    if isinstance(path_or_text, Path):
        text = path_or_text.read_text(encoding="utf-8")
    elif isinstance(path_or_text, bytes | bytearray):
        text = bytes(path_or_text).decode("utf-8")
    elif isinstance(path_or_text, str):
        if "\n" in path_or_text or "\r" in path_or_text:
            text = path_or_text
        elif Path(path_or_text).is_file():
            text = Path(path_or_text).read_text(encoding="utf-8")
        elif "," in path_or_text:  # a header-only CSV on one line
            text = path_or_text
        else:
            raise FileNotFoundError(f"no such CSV file: {path_or_text!r}")
    else:
        raise TypeError(f"expected CSV text, bytes or a path; got {type(path_or_text).__name__}")
    # Only an empty cell is missing: "NA" or "null" could be a real id or label.
    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""])
    _require_columns(frame, ["image_id", from_name], name="CSV export")

    def cell(row: dict[str, Any], column: str) -> Any:
        value = row.get(column)
        return None if value is None or (isinstance(value, float) and math.isnan(value)) else value

    annotations: list[dict[str, Any]] = []
    for line, row in enumerate(frame.to_dict("records"), start=2):  # line 1 is the header
        where = f"CSV line {line}"
        image_id = _image_id(cell(row, "image_id"), where=where)
        label = cell(row, from_name)
        if label is None or not str(label).strip():
            continue
        annotations.append(
            {
                "image_id": image_id,
                "label": str(label),
                "who": _who(cell(row, "annotator")),
                "created": _timestamp(cell(row, "created_at"), where=where),
                "updated": _timestamp(cell(row, "updated_at"), where=where),
                "order": len(annotations),
            }
        )
    return _reduce(annotations)


def export_csv(candidates: pd.DataFrame, *, image_url: Callable[[str], str]) -> str:
    """Candidates as CSV for reviewers who do not use Label Studio.

    Args:
        candidates: Frame with ``category``, ``image_id``, ``score`` and ``rank``.
        image_url: Maps an image_id to a URL the reviewer can open.

    Returns:
        CSV text (``\\n`` line endings) with columns ``category, rank, image_id, score, image_url,
        label``, ordered by category (first appearance) then rank; ``score`` has 6 decimals and
        ``label`` is empty for the reviewer to fill in, after which :func:`parse_export_csv`
        reads the file back. An image retrieved for two categories has two rows.

    Raises:
        ValueError: On missing columns.
    """
    _require_columns(candidates, _CANDIDATE_COLUMNS, name="candidates")
    df = candidates[list(_CANDIDATE_COLUMNS)].copy()
    df["image_id"] = df["image_id"].astype(str)
    order = {c: i for i, c in enumerate(dict.fromkeys(df["category"]))}
    df["_order"] = df["category"].map(order)
    df = df.sort_values(["_order", "rank", "image_id"], kind="mergesort")
    out = pd.DataFrame(
        {
            "category": df["category"].astype(str),
            "rank": df["rank"].astype(np.int64),
            "image_id": df["image_id"],
            "score": df["score"].astype(float),
            "image_url": [str(image_url(i)) for i in df["image_id"]],
            "label": "",
        }
    )
    return out.to_csv(index=False, lineterminator="\n", float_format="%.6f")
