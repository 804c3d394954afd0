"""Tests for the Great Expectations validation of the manifest.

Importing GE dominates this file's run time; each validate_manifest call on these tiny
manifests takes well under a second, so every violation kind gets its own call.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from modops.config import LabelsConfig, ValidateConfig
from modops.data.validate import MANIFEST_COLUMNS, ValidationReport, validate_manifest

LABELS = LabelsConfig()
# 40 rows: every 5th unlabeled, the rest cycle over the 4 labels -> 8 per class of 32 labelled.
CFG = ValidateConfig(min_count_per_class=2, max_class_fraction=0.6)
ALL_CHECKS = {
    "columns_match_schema",
    "row_count_min",
    "image_id_not_null",
    "image_id_unique",
    "image_id_hex64",
    "label_in_set",
    "label_source_not_null",
    "label_source_in_set",
    "width_in_range",
    "height_in_range",
    "bytes_positive",
    "phash_not_null",
    "phash_hex16",
    "class_count_min",
    "class_fraction_max",
}


def _manifest(n: int = 40) -> pd.DataFrame:
    labels = [None if i % 5 == 0 else LABELS.all[i % 4] for i in range(n)]
    ingested = pd.Timestamp("2024-05-01T12:00:00", tz="UTC")
    frame = pd.DataFrame(
        {
            "image_id": [hashlib.sha256(f"img{i}".encode()).hexdigest() for i in range(n)],
            "uri": [f"store/{i:04d}.jpg" for i in range(n)],
            "width": pd.Series([64 + i for i in range(n)], dtype="int64"),
            "height": pd.Series([48 + 2 * i for i in range(n)], dtype="int64"),
            "format": "JPEG",
            "bytes": pd.Series([1000 + 37 * i for i in range(n)], dtype="int64"),
            "phash": [f"{(i * 2654435761) % 2**64:016x}" for i in range(n)],
            "label": labels,
            "label_source": ["none" if lab is None else "demo" for lab in labels],
            "uploader_id": [f"u{i % 3}" for i in range(n)],
            "business_category": None,
            "uploaded_at": pd.Series([pd.NaT] * n, dtype="datetime64[ns, UTC]"),
            "ingested_at": pd.Series([ingested] * n, dtype="datetime64[ns, UTC]"),
        }
    )
    return frame[list(MANIFEST_COLUMNS)]


def _failed(report: ValidationReport) -> set[str]:
    return {c.name for c in report.failures()}


def _details(report: ValidationReport, name: str) -> str:
    return next(c.details for c in report.checks if c.name == name)


@pytest.fixture(scope="module")
def valid_report(tmp_path_factory: pytest.TempPathFactory) -> ValidationReport:
    # A nested, missing folder: validate_manifest must create it.
    out = tmp_path_factory.mktemp("valid") / "reports" / "validate"
    return validate_manifest(_manifest(), labels=LABELS, cfg=CFG, report_dir=out)


def test_schema_constant_matches_fixture() -> None:
    assert MANIFEST_COLUMNS[0] == "image_id" and len(MANIFEST_COLUMNS) == 13
    assert list(_manifest().columns) == list(MANIFEST_COLUMNS)


def test_valid_manifest_passes_every_check(valid_report: ValidationReport) -> None:
    assert valid_report.success, valid_report.failures()
    assert valid_report.failures() == ()
    assert {c.name for c in valid_report.checks} == ALL_CHECKS
    assert valid_report.checks[0].name == "columns_match_schema"
    # Unlabeled rows are allowed and reported, not silently dropped.
    assert "8 nulls skipped" in _details(valid_report, "label_in_set")


def test_valid_reports_are_written(valid_report: ValidationReport) -> None:
    assert valid_report.html_path.name == "index.html"
    assert valid_report.json_path.name == "validation.json"
    payload = json.loads(valid_report.json_path.read_text())
    assert payload["success"] is True
    assert {c["name"] for c in payload["checks"]} == ALL_CHECKS
    assert all(c["success"] for c in payload["checks"])
    assert {r["label"]: r["count"] for r in payload["class_counts"]} == dict.fromkeys(LABELS.all, 8)
    page = valid_report.html_path.read_text()
    assert page.startswith("<!DOCTYPE html>") and "PASSED: 15 of 15 checks passed" in page
    assert all(name in page for name in ALL_CHECKS)
    assert all(f"<td>{label}</td><td>8</td><td>0.2500</td>" in page for label in LABELS.all)
    # Atomic writes leave no temporary files behind.
    assert sorted(p.name for p in valid_report.html_path.parent.iterdir()) == [
        "index.html",
        "validation.json",
    ]


def _set(column: str, row: int, value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def mutate(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[row, column] = value
        return df

    return mutate


def _duplicate_id(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[1, "image_id"] = df.loc[0, "image_id"]
    return df


def _starve_weapon(df: pd.DataFrame) -> pd.DataFrame:
    rows = df.index[df["label"] == "weapon"][1:]  # keep one weapon image
    df.loc[rows, "label"] = None
    return df


def _flood_clean(df: pd.DataFrame) -> pd.DataFrame:
    rows = df.index[df["label"] == "weapon"][:4]  # clean 12 of 32 labelled = 0.375
    df.loc[rows, "label"] = "clean"
    return df


_ID0 = hashlib.sha256(b"img0").hexdigest()


def _bad_hex(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[8, "image_id"] = _ID0.upper()
    df.loc[9, "phash"] = "xyz"
    return df


def _several_columns(df: pd.DataFrame) -> pd.DataFrame:
    # Independent checks, one offending row each: proves each fails only on its own column.
    df.loc[3, "image_id"] = None
    df.loc[4, "label_source"] = "scraped"
    df.loc[6, "height"] = 3
    df.loc[7, "bytes"] = 0
    return df


# (case id, mutation, cfg overrides, exactly the checks that must fail, {check: substrings})
CASES = [
    ("duplicate_id", _duplicate_id, {}, {"image_id_unique"},
     {"image_id_unique": ["2 of 40 values duplicated", _ID0]}),
    ("bad_label", _set("label", 2, "<script>x</script>"), {}, {"label_in_set"},
     {"label_in_set": ["1 of 40 values not in labels", "'<script>x</script>'"]}),
    ("width_too_big", _set("width", 5, 20_000), {}, {"width_in_range"},
     {"width_in_range": ["1 of 40 values outside [8, 10000]", "20000"]}),
    ("bad_hex", _bad_hex, {}, {"image_id_hex64", "phash_hex16"},
     {"image_id_hex64": ["^[0-9a-f]{64}$", _ID0.upper()],
      "phash_hex16": ["^[0-9a-f]{16}$", "'xyz'"]}),
    ("missing_column", lambda df: df.drop(columns=["width"]), {},
     {"columns_match_schema", "width_in_range"},
     {"columns_match_schema": ["missing columns: ['width']"],
      "width_in_range": ["column missing: width"]}),
    ("too_few_weapon", _starve_weapon, {}, {"class_count_min"},
     {"class_count_min": ["1 of 4 classes below min_count_per_class=2", "weapon=1"]}),
    ("clean_dominant", _flood_clean, {"max_class_fraction": 0.3}, {"class_fraction_max"},
     {"class_fraction_max": ["1 of 4 classes above max_class_fraction=0.3", "clean=0.375"]}),
    ("several_columns", _several_columns, {},
     {"image_id_not_null", "label_source_in_set", "height_in_range", "bytes_positive"},
     {"image_id_not_null": ["1 of 40 values null", "[3]"],
      "label_source_in_set": ["'scraped'"],
      "height_in_range": ["outside [8, 10000]", "3 (x1)"],
      "bytes_positive": ["1 of 40 values not > 0", "0 (x1)"]}),
    ("empty", lambda df: df.iloc[:0], {}, {"row_count_min", "class_count_min"},
     {"row_count_min": ["0 rows (need >= 1)"], "class_count_min": ["weapon=0"]}),
    ("width_as_text", lambda df: df.assign(width=df["width"].astype(str)), {},
     {"width_in_range"}, {"width_in_range": ["could not evaluate"]}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mutate", "overrides", "expected", "phrases"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_violation_fails_the_right_check(
    tmp_path: Path,
    mutate: Callable[[pd.DataFrame], pd.DataFrame],
    overrides: dict,
    expected: set[str],
    phrases: dict[str, list[str]],
) -> None:
    cfg = CFG.model_copy(update=overrides)
    report = validate_manifest(mutate(_manifest()), labels=LABELS, cfg=cfg, report_dir=tmp_path)

    assert not report.success
    assert _failed(report) == expected
    for name, needles in phrases.items():
        details = _details(report, name)
        assert all(n in details for n in needles), details
    payload = json.loads(report.json_path.read_text())
    assert payload["success"] is False
    assert {c["name"] for c in payload["checks"] if not c["success"]} == expected
    page = report.html_path.read_text()
    assert all(name in page for name in expected) and "FAILED:" in page
    assert "<script>" not in page  # manifest values are escaped (see the bad_label case)
    if "label_in_set" in expected:
        assert "&#x27;&lt;script&gt;x&lt;/script&gt;&#x27;" in page


def test_gx_info_logs_silenced_and_level_restored(tmp_path: Path) -> None:
    logger = logging.getLogger("great_expectations")
    records: list[logging.LogRecord] = []
    handler = logging.Handler(level=logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        validate_manifest(_manifest(12), labels=LABELS, cfg=CFG, report_dir=tmp_path)
        assert logger.level == logging.DEBUG
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
    assert [r for r in records if r.levelno < logging.WARNING] == []


def test_rejects_non_dataframe(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="pandas DataFrame"):
        validate_manifest([{"image_id": "x"}], labels=LABELS, cfg=CFG, report_dir=tmp_path)  # type: ignore[arg-type]


def test_rejects_inverted_bounds(tmp_path: Path) -> None:
    cfg = ValidateConfig(min_width=500, max_width=100)
    with pytest.raises(ValueError, match=r"min_width \(500\) is above validate.max_width"):
        validate_manifest(_manifest(), labels=LABELS, cfg=cfg, report_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
