"""Great Expectations validation of the image manifest, with an HTML and a JSON report.

The manifest (one row per ingested image, see :data:`MANIFEST_COLUMNS`) is checked by two
Great Expectations suites run in an ephemeral, in-memory context:

1. the manifest itself: exact column set, row count, id/hash formats, allowed labels and
   label sources, image size and byte bounds;
2. a derived per-class count table (one row per label in ``labels.all``, zero-filled), because
   GE has no single expectation for "every class has between N and M% of the labelled rows".

Checks whose columns are missing are recorded as failed ("column missing") instead of being
handed to GE, so a malformed manifest yields a readable report rather than a traceback.

Check names (stable; the CLI, DAGs and tests refer to them):
``columns_match_schema``, ``row_count_min``, ``image_id_not_null``, ``image_id_unique``,
``image_id_hex64``, ``label_in_set``, ``label_source_not_null``, ``label_source_in_set``,
``width_in_range``, ``height_in_range``, ``bytes_positive``, ``phash_not_null``,
``phash_hex16``, ``class_count_min``, ``class_fraction_max``.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from modops.config import LabelsConfig, ValidateConfig
from modops.data.manifest import LABEL_SOURCES, MANIFEST_COLUMNS
from modops.data.store import atomic_write_text

__all__ = [
    "MANIFEST_COLUMNS",
    "LABEL_SOURCES",
    "CheckResult",
    "ValidationReport",
    "validate_manifest",
]

_SHA256_REGEX = r"^[0-9a-f]{64}$"
_PHASH_REGEX = r"^[0-9a-f]{16}$"
_SAMPLE = 5  # offending values quoted per check: enough to diagnose, short enough to read
_MAX_VALUE_CHARS = 80


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check.

    Attributes:
        name: Stable check name, e.g. ``"width_in_range"``.
        success: Whether the check passed.
        details: Human-readable summary, e.g. ``"3 of 1500 values outside [8, 10000]: ..."``.
    """

    name: str
    success: bool
    details: str


@dataclass(frozen=True)
class ValidationReport:
    """Every check's outcome and where the reports were written.

    Attributes:
        success: True when every check passed.
        checks: One result per check, in a fixed order (schema first, class counts last).
        html_path: The self-contained HTML report (``report_dir/index.html``).
        json_path: The machine-readable report (``report_dir/validation.json``).
    """

    success: bool
    checks: tuple[CheckResult, ...]
    html_path: Path
    json_path: Path

    def failures(self) -> tuple[CheckResult, ...]:
        """The failed checks, in report order."""
        return tuple(c for c in self.checks if not c.success)


@dataclass(frozen=True)
class _Spec:
    """One check: the columns it needs, how to build its GE expectation, how to word failures."""

    name: str
    columns: tuple[str, ...]  # manifest columns the check needs
    expectation: str  # class name in great_expectations.expectations
    kwargs: dict[str, Any]
    phrase: str  # completes "N of M values ..." in the failure details


def validate_manifest(
    manifest: pd.DataFrame,
    *,
    labels: LabelsConfig,
    cfg: ValidateConfig,
    report_dir: Path,
) -> ValidationReport:
    """Validate the manifest with Great Expectations and write HTML and JSON reports.

    Args:
        manifest: One row per image, columns :data:`MANIFEST_COLUMNS`; shape (n_images, 13).
        labels: The label space; ``label`` must be in ``labels.all`` or null (unlabeled).
        cfg: Bounds: image width/height in pixels, minimum rows, per-class count floor and
            the largest fraction of *labelled* rows one class may hold.
        report_dir: Folder for ``index.html`` and ``validation.json``; created if missing.
            Both files are written atomically (temporary name, then rename).

    Returns:
        The report; ``success`` is False when any check failed. Never raises on bad data.

    Raises:
        TypeError: ``manifest`` is not a pandas DataFrame.
        ValueError: ``cfg`` has a minimum above its maximum.
    """
    if not isinstance(manifest, pd.DataFrame):
        raise TypeError(
            f"manifest must be a pandas DataFrame, got {type(manifest).__name__}; "
            "read it with pandas.read_parquet('manifest.parquet')"
        )
    _check_bounds(cfg)
    counts = _class_counts(manifest, labels=labels) if "label" in manifest.columns else None
    with _quiet_gx():
        checks = _run_checks(manifest, counts, labels=labels, cfg=cfg)
    report_dir = Path(report_dir)
    report = ValidationReport(
        success=all(c.success for c in checks),
        checks=checks,
        html_path=report_dir / "index.html",
        json_path=report_dir / "validation.json",
    )
    report_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(report.json_path, _render_json(report, counts, n_rows=len(manifest)))
    atomic_write_text(report.html_path, _render_html(report, counts, n_rows=len(manifest), cfg=cfg))
    return report


def _check_bounds(cfg: ValidateConfig) -> None:
    for what in ("width", "height"):
        lo, hi = getattr(cfg, f"min_{what}"), getattr(cfg, f"max_{what}")
        if lo > hi:
            raise ValueError(
                f"validate.min_{what} ({lo}) is above validate.max_{what} ({hi}); "
                "fix the validate section of params.yaml"
            )


def _class_counts(manifest: pd.DataFrame, *, labels: LabelsConfig) -> pd.DataFrame:
    """Rows per label, zero-filled for every label in ``labels.all``.

    Returns:
        Columns ``label`` (str), ``count`` (int64) and ``fraction`` (float64, count over all
        labelled rows, so unlabeled images do not dilute it); shape (len(labels.all), 3).
    """
    labelled = manifest["label"].dropna()
    counts = labelled.value_counts().reindex(list(labels.all), fill_value=0).astype("int64")
    total = len(labelled)
    fractions = counts / total if total else counts.astype("float64") * 0.0
    return pd.DataFrame({"label": list(labels.all), "count": counts.to_numpy(), "fraction": fractions.to_numpy()})


def _manifest_specs(labels: LabelsConfig, cfg: ValidateConfig) -> list[_Spec]:
    allowed = sorted(labels.all)
    sources = list(LABEL_SOURCES)
    w_lo, w_hi, h_lo, h_hi = cfg.min_width, cfg.max_width, cfg.min_height, cfg.max_height
    return [
        _Spec(
            "columns_match_schema",
            (),
            "ExpectTableColumnsToMatchSet",
            {"column_set": list(MANIFEST_COLUMNS), "exact_match": True},
            "",
        ),
        _Spec("row_count_min", (), "ExpectTableRowCountToBeBetween", {"min_value": cfg.min_rows}, ""),
        _Spec(
            "image_id_not_null",
            ("image_id",),
            "ExpectColumnValuesToNotBeNull",
            {"column": "image_id"},
            "null",
        ),
        _Spec(
            "image_id_unique",
            ("image_id",),
            "ExpectColumnValuesToBeUnique",
            {"column": "image_id"},
            "duplicated",
        ),
        _Spec(
            "image_id_hex64",
            ("image_id",),
            "ExpectColumnValuesToMatchRegex",
            {"column": "image_id", "regex": _SHA256_REGEX},
            f"not matching {_SHA256_REGEX}",
        ),
        _Spec(
            "label_in_set",
            ("label",),
            "ExpectColumnValuesToBeInSet",
            {"column": "label", "value_set": allowed},
            f"not in labels {allowed}",
        ),
        _Spec(
            "label_source_not_null",
            ("label_source",),
            "ExpectColumnValuesToNotBeNull",
            {"column": "label_source"},
            "null",
        ),
        _Spec(
            "label_source_in_set",
            ("label_source",),
            "ExpectColumnValuesToBeInSet",
            {"column": "label_source", "value_set": sources},
            f"not in label sources {sources}",
        ),
        _Spec(
            "width_in_range",
            ("width",),
            "ExpectColumnValuesToBeBetween",
            {"column": "width", "min_value": w_lo, "max_value": w_hi},
            f"outside [{w_lo}, {w_hi}]",
        ),
        _Spec(
            "height_in_range",
            ("height",),
            "ExpectColumnValuesToBeBetween",
            {"column": "height", "min_value": h_lo, "max_value": h_hi},
            f"outside [{h_lo}, {h_hi}]",
        ),
        _Spec(
            "bytes_positive",
            ("bytes",),
            "ExpectColumnValuesToBeBetween",
            {"column": "bytes", "min_value": 0, "strict_min": True},
            "not > 0",
        ),
        _Spec(
            "phash_not_null",
            ("phash",),
            "ExpectColumnValuesToNotBeNull",
            {"column": "phash"},
            "null",
        ),
        _Spec(
            "phash_hex16",
            ("phash",),
            "ExpectColumnValuesToMatchRegex",
            {"column": "phash", "regex": _PHASH_REGEX},
            f"not matching {_PHASH_REGEX}",
        ),
    ]


def _count_specs(cfg: ValidateConfig) -> list[_Spec]:
    """Checks over the class-count table; they need the manifest's ``label`` column."""
    return [
        _Spec(
            "class_count_min",
            ("label",),
            "ExpectColumnValuesToBeBetween",
            {"column": "count", "min_value": cfg.min_count_per_class},
            f"below min_count_per_class={cfg.min_count_per_class}",
        ),
        _Spec(
            "class_fraction_max",
            ("label",),
            "ExpectColumnValuesToBeBetween",
            {"column": "fraction", "max_value": cfg.max_class_fraction},
            f"above max_class_fraction={cfg.max_class_fraction}",
        ),
    ]


@contextmanager
def _quiet_gx() -> Iterator[None]:
    """Raise GE's logger to WARNING for the duration, then restore it.

    GE logs every store and datasource operation at INFO; a validation stage should print
    only its own summary.
    """
    logger = logging.getLogger("great_expectations")
    previous = logger.level
    logger.setLevel(max(previous, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(previous)


def _run_checks(
    manifest: pd.DataFrame,
    counts: pd.DataFrame | None,
    *,
    labels: LabelsConfig,
    cfg: ValidateConfig,
) -> tuple[CheckResult, ...]:
    # Imported here: GE takes seconds to import, and importing this module must stay cheap.
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    # GE 1.24.1 ships no usage-statistics client (no posthog; nothing reads
    # GX_ANALYTICS_ENABLED any more). analytics_enabled=False still states the intent in this
    # context's own config, so no environment variable or other global state is touched.
    context = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        ),
    )
    source = context.data_sources.add_pandas("modops")
    present = set(manifest.columns)
    manifest_specs, count_specs = _manifest_specs(labels, cfg), _count_specs(cfg)
    results = _run_suite(
        context,
        source,
        "manifest",
        manifest,
        manifest_specs,
        present=present,
        result_format="SUMMARY",
    )
    # COMPLETE + the label as index column lets the details name the offending classes;
    # the table has one row per class, so the full result stays tiny.
    results |= _run_suite(
        context,
        source,
        "class_counts",
        counts,
        count_specs,
        present=present,
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["label"]},
    )
    return tuple(results[s.name] for s in manifest_specs + count_specs)


def _run_suite(
    context: Any,
    source: Any,
    name: str,
    frame: pd.DataFrame | None,
    specs: Sequence[_Spec],
    *,
    present: set[str],
    result_format: str | dict[str, Any],
) -> dict[str, CheckResult]:
    """Run the runnable specs as one GE suite; specs needing absent columns fail unrun."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    out: dict[str, CheckResult] = {}
    runnable = []
    for spec in specs:
        missing = [c for c in spec.columns if c not in present]
        if missing or frame is None:
            out[spec.name] = CheckResult(spec.name, False, f"column missing: {', '.join(missing)}")
        else:
            runnable.append(spec)
    if not runnable:
        return out
    # GE reorders results (table-level first); the meta tag maps each back to its check.
    expectations = [getattr(gxe, s.expectation)(**s.kwargs, meta={"check": s.name}) for s in runnable]
    # Built whole, then added once: add_expectation on a stored suite re-serialises it each time.
    suite = context.suites.add(gx.ExpectationSuite(name=f"{name}_suite", expectations=expectations))
    batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{name}_validation", data=batch, suite=suite)
    )
    run = definition.run(batch_parameters={"dataframe": frame}, result_format=result_format)
    by_name = {s.name: s for s in runnable}
    for result in run.results:
        spec = by_name[result.expectation_config.meta["check"]]
        out[spec.name] = CheckResult(spec.name, bool(result.success), _details(spec, result))
    return out


def _details(spec: _Spec, result: Any) -> str:
    """Word one GE result for people: counts, bounds and a sample of offending values."""
    error = _exception_message(result.exception_info or {})
    if error is not None:
        return f"Great Expectations could not evaluate the check (wrong dtype?): {error}"
    res = result.result or {}
    if spec.name == "columns_match_schema":
        mismatch = (res.get("details") or {}).get("mismatched") or {}
        if not mismatch:
            return f"columns match the schema ({len(MANIFEST_COLUMNS)} columns)"
        return "; ".join(f"{k} columns: {sorted(v)}" for k, v in sorted(mismatch.items()))
    if spec.name == "row_count_min":
        bound = result.expectation_config.kwargs.get("min_value")
        return f"{res.get('observed_value')} rows (need >= {bound})"
    total, bad = res.get("element_count", 0), res.get("unexpected_count", 0)
    if spec.name.startswith("class_"):
        column = result.expectation_config.kwargs["column"]
        rows = res.get("unexpected_index_list") or []
        named = ", ".join(f"{r['label']}={_fmt(r[column])}" for r in rows)
        if not bad:
            return f"all {total} classes within bounds"
        return f"{bad} of {total} classes {spec.phrase}: {named}"
    if not bad and spec.phrase == "null":
        return f"no nulls in {total} values"
    if not bad:
        nulls = res.get("missing_count", 0)
        return f"all {total} values pass" + (f" ({nulls} nulls skipped)" if nulls else "")
    if spec.phrase == "null":
        rows = res.get("partial_unexpected_index_list") or []
        return f"{bad} of {total} values null, e.g. at rows {rows[:_SAMPLE]}"
    sample = ", ".join(
        f"{_fmt(c['value'])} (x{c['count']})" for c in (res.get("partial_unexpected_counts") or [])[:_SAMPLE]
    )
    return f"{bad} of {total} values {spec.phrase}: {sample}"


def _exception_message(info: dict[str, Any]) -> str | None:
    """The first error GE recorded, or None.

    GE 1.24 puts ``raised_exception`` at the top level for expectation errors but nests it
    one level down, keyed by metric id, when a metric fails to compute (e.g. wrong dtype).
    """
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for nested in info.values():
        if isinstance(nested, dict) and nested.get("raised_exception"):
            return str(nested.get("exception_message"))
    return None


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = repr(value.item() if hasattr(value, "item") else value)
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 1] + "…"


def _render_json(report: ValidationReport, counts: pd.DataFrame | None, *, n_rows: int) -> str:
    payload = {
        "success": report.success,
        "rows": n_rows,
        "checks": [asdict(c) for c in report.checks],
        "class_counts": []
        if counts is None
        else [
            {"label": r.label, "count": int(r.count), "fraction": float(r.fraction)}
            for r in counts.itertuples(index=False)
        ],
    }
    return json.dumps(payload, indent=2) + "\n"


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;
text-align:left;vertical-align:top}th{background:#f2f2f2}.pass{background:#e6f4ea}
.fail{background:#fce8e6}.status{font-weight:bold}.summary{font-size:1.2em}
"""


def _render_html(report: ValidationReport, counts: pd.DataFrame | None, *, n_rows: int, cfg: ValidateConfig) -> str:
    esc = html.escape
    failed = len(report.failures())
    verdict = "PASSED" if report.success else "FAILED"
    summary = (
        f"{verdict}: {len(report.checks) - failed} of {len(report.checks)} checks passed on {n_rows} manifest rows"
    )
    check_rows = "\n".join(
        f'<tr class="{"pass" if c.success else "fail"}"><td>{esc(c.name)}</td>'
        f'<td class="status">{"PASS" if c.success else "FAIL"}</td><td>{esc(c.details)}</td></tr>'
        for c in report.checks
    )
    if counts is None:
        count_table = "<p>No class counts: the manifest has no <code>label</code> column.</p>"
    else:
        rows = []
        for r in counts.itertuples(index=False):
            ok = r.count >= cfg.min_count_per_class and r.fraction <= cfg.max_class_fraction
            rows.append(
                f'<tr class="{"pass" if ok else "fail"}"><td>{esc(str(r.label))}</td>'
                f"<td>{int(r.count)}</td><td>{float(r.fraction):.4f}</td></tr>"
            )
        count_table = (
            f"<p>Bounds: count &gt;= {cfg.min_count_per_class}, fraction of labelled rows "
            f"&lt;= {cfg.max_class_fraction}.</p><table><tr><th>label</th><th>count</th>"
            f"<th>fraction</th></tr>\n" + "\n".join(rows) + "\n</table>"
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Manifest validation: {verdict}</title><style>{_CSS}</style></head><body>\n"
        f"<h1>Manifest validation</h1>\n"
        f'<p class="summary {"pass" if report.success else "fail"}">{esc(summary)}</p>\n'
        "<h2>Checks</h2>\n<table><tr><th>check</th><th>status</th><th>details</th></tr>\n"
        f"{check_rows}\n</table>\n<h2>Per-class counts</h2>\n{count_table}\n</body></html>\n"
    )
