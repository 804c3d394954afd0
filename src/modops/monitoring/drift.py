"""Drift of a scored day against the reference (the champion's scores on the holdout).

Evidently has no image support of its own, so drift on images is drift on what the prediction
log records about them: the model's embedding (a fixed random projection of it), its
per-category scores, its flag rates, the images' properties, and the day's data quality. Each
check reads an Evidently test's status (``ValueDrift``, ``EmbeddingsDrift``) or, for flag
rates and quality, a rule stated in :class:`modops.config.DriftConfig`; the day drifts when any
check fires. The snapshot carries every metric, so the HTML report and the workspace's
dashboard show the values behind the verdict.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, time

import numpy as np
import pandas as pd

from modops.config import DriftConfig
from modops.scoring.daily import ScoredDay, parse_day

__all__ = ["Check", "Verdict", "judge_day", "drift_frame", "embedding_columns"]


@dataclass(frozen=True)
class Check:
    """One drift check's outcome.

    Attributes:
        name: e.g. ``embedding``, ``score:promo_spam``, ``flag_rate:weapon``, ``property:width``.
        kind: ``embedding | score | flag_rate | property | quality``.
        fired: Whether it crossed its threshold.
        value: The measured value (a distance, an AUC, a rate, a share), None when not measurable.
        threshold: What it was compared with.
        detail: One line in words, with the method.
    """

    name: str
    kind: str
    fired: bool
    value: float | None
    threshold: float | None
    detail: str


@dataclass(frozen=True)
class Verdict:
    """A day's drift verdict: ``drift`` is True when any check fired."""

    day: str
    model_version: str
    drift: bool
    rows: int
    reference_rows: int
    checks: tuple[Check, ...]

    @property
    def fired(self) -> list[Check]:
        return [c for c in self.checks if c.fired]

    def to_dict(self) -> dict:
        return {
            "drift": self.drift,
            "day": self.day,
            "model_version": self.model_version,
            "rows": self.rows,
            "reference_rows": self.reference_rows,
            "fired": [c.name for c in self.fired],
            "checks": [asdict(c) for c in self.checks],
        }


def embedding_columns(frame: pd.DataFrame) -> list[str]:
    """The logged embedding projection's columns (``emb_00`` ...), in order."""
    return sorted(c for c in frame.columns if c.startswith("emb_"))


def drift_frame(predictions: pd.DataFrame, *, categories: tuple[str, ...]) -> pd.DataFrame:
    """The prediction-log columns Evidently sees; flags as 0/1 so their mean is the flag rate."""
    flags = [f"flag_{c}" for c in categories] + ["flagged"]
    cols = flags + embedding_columns(predictions)
    cols += [c for c in ("width", "height", "aspect_ratio", "brightness", "file_bytes", "format") if c in predictions]
    out = predictions[cols].copy()
    out[flags] = out[flags].astype(np.int64)
    for c in categories:
        # Scores crowd at 0 (and a few at 1): on the logit scale their distribution is spread out,
        # so a distance normed by its spread measures a shift, not the noise of a few high scores.
        p = predictions[f"p_{c}"].to_numpy(dtype=np.float64).clip(1e-6, 1 - 1e-6)
        out[f"logit_{c}"] = np.log(p) - np.log1p(-p)
    return out


def _method(cfg: DriftConfig):  # noqa: ANN202 - an Evidently DriftMethod
    from evidently.metrics.embeddings import DistanceDriftMethod, MMDDriftMethod, ModelDriftMethod, RatioDriftMethod

    kinds = {
        "model": ModelDriftMethod,
        "distance": DistanceDriftMethod,
        "ratio": RatioDriftMethod,
        "mmd": MMDDriftMethod,
    }
    e = cfg.embedding
    return kinds[e.method](threshold=e.threshold, pca_components=e.pca_components)


def _metrics(cfg: DriftConfig, *, categories: tuple[str, ...], columns: set[str]) -> list:
    from evidently.metrics import DatasetMissingValueCount, EmbeddingsDrift, MeanValue, RowCount, ValueDrift

    metrics = [
        RowCount(),
        DatasetMissingValueCount(),
        EmbeddingsDrift(embeddings_name="img", drift_method=_method(cfg)),
    ]
    metrics += [
        ValueDrift(column=f"logit_{c}", method=cfg.scores.method, threshold=cfg.scores.threshold) for c in categories
    ]
    metrics += [MeanValue(column=f"flag_{c}") for c in (*categories,)] + [MeanValue(column="flagged")]
    for col in cfg.property_columns:
        if col in columns:
            metrics.append(ValueDrift(column=col, method=cfg.properties.method, threshold=cfg.properties.threshold))
    cat = cfg.categorical_properties
    for col in cfg.categorical_property_columns:
        if col in columns:
            metrics.append(ValueDrift(column=col, method=cat.method, threshold=cat.threshold))
    return metrics


def _sample(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    return frame if len(frame) <= n else frame.sample(n=n, random_state=seed).sort_index()


def run_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    cfg: DriftConfig,
    categories: tuple[str, ...],
    day: str,
    name: str,
):  # noqa: ANN201, E501
    """The Evidently snapshot of ``current`` against ``reference`` (both :func:`drift_frame` s)."""
    from evidently import DataDefinition, Dataset, Report

    emb = embedding_columns(reference)
    cats = [c for c in cfg.categorical_property_columns if c in reference]
    numerical = [c for c in reference.columns if c not in emb and c not in cats]
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=cats, embeddings={"img": emb})
    ref = _sample(reference, cfg.embedding.max_rows, cfg.seed)
    cur = _sample(current, cfg.embedding.max_rows, cfg.seed)
    report = Report(_metrics(cfg, categories=categories, columns=set(reference.columns)), include_tests=True)
    return report.run(
        Dataset.from_pandas(cur, data_definition=definition),
        Dataset.from_pandas(ref, data_definition=definition),
        timestamp=datetime.combine(parse_day(day), time(12)),
        name=name,
        tags=["modops", "drift"],
    )


def _results(snapshot) -> dict[tuple[str, str | None], tuple[float | None, str | None]]:  # noqa: ANN001
    """``{(metric type, column): (value, test status)}`` from a snapshot."""
    d = snapshot.dict()
    status = {t["metric_config"]["metric_id"]: t["status"] for t in d.get("tests", [])}
    out = {}
    for m in d["metrics"]:
        kind = m["config"]["type"].rsplit(":", 1)[-1]
        value = m["value"]
        value = (
            float(value)
            if isinstance(value, int | float)
            else (value.get("share") if isinstance(value, dict) else None)
        )
        out[(kind, m["config"].get("column"))] = (value, status.get(m["id"]))
    return out


def _snapshot_checks(snapshot, *, cfg: DriftConfig, categories: tuple[str, ...], columns: set[str]) -> list[Check]:  # noqa: ANN001
    res = _results(snapshot)
    e = cfg.embedding
    value, _ = res[("EmbeddingsDrift", None)]
    # The embedding metric carries no test of its own: the method's threshold decides (above = drift).
    checks = [
        Check(
            "embedding",
            "embedding",
            bool(value is not None and value > e.threshold),
            value,
            e.threshold,
            f"EmbeddingsDrift ({e.method}) {value:.3f} vs threshold {e.threshold}",
        )
    ]
    for c in categories:
        checks.append(_column_check(res, f"logit_{c}", name=f"score:{c}", kind="score", cfg=cfg.scores))
    for col in cfg.property_columns:
        if col in columns:
            checks.append(_column_check(res, col, name=f"property:{col}", kind="property", cfg=cfg.properties))
    for col in cfg.categorical_property_columns:
        if col in columns:
            checks.append(
                _column_check(res, col, name=f"property:{col}", kind="property", cfg=cfg.categorical_properties)
            )
    return checks


def _column_check(res: dict, column: str, *, name: str, kind: str, cfg) -> Check:  # noqa: ANN001
    value, status = res[("ValueDrift", column)]
    fired = status == "FAIL"
    shown = "n/a" if value is None else f"{value:.3f}"
    return Check(name, kind, fired, value, cfg.threshold, f"ValueDrift {cfg.method} on {column}: {shown} ({status})")


def _two_proportion_p(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test (1.0 when undefined)."""
    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (k1 / n1 - k2 / n2) / se
    return math.erfc(abs(z) / math.sqrt(2))


def flag_rate_checks(
    reference: pd.DataFrame, current: pd.DataFrame, *, cfg: DriftConfig, categories: tuple[str, ...]
) -> list[Check]:
    """Per category and for any flag: did the flag rate move a lot, significantly?"""
    rule, checks = cfg.flag_rate, []
    for name, col in [(c, f"flag_{c}") for c in categories] + [("any", "flagged")]:
        k_ref, n_ref = int(reference[col].sum()), len(reference)
        k_cur, n_cur = int(current[col].sum()), len(current)
        r_ref, r_cur = k_ref / max(n_ref, 1), k_cur / max(n_cur, 1)
        p = _two_proportion_p(k_cur, n_cur, k_ref, n_ref)
        floor = 0.5 / max(n_ref, n_cur, 1)  # half an image: a zero rate has a finite ratio
        ratio = max(r_cur, floor) / max(r_ref, floor)
        big = max(ratio, 1 / ratio) >= rule.max_ratio and abs(r_cur - r_ref) >= rule.min_abs_change
        checks.append(
            Check(
                f"flag_rate:{name}",
                "flag_rate",
                bool(big and p < rule.alpha),
                r_cur,
                r_ref,
                f"flag rate {r_cur:.4f} ({k_cur}/{n_cur}) vs reference {r_ref:.4f} ({k_ref}/{n_ref}): "
                f"x{ratio:.2f}, z-test p={p:.2g} (fires at x{rule.max_ratio} or 1/x, >= {rule.min_abs_change} "
                f"change, p < {rule.alpha})",
            )
        )
    return checks


def quality_checks(day: ScoredDay, *, cfg: DriftConfig, categories: tuple[str, ...]) -> list[Check]:
    """Volume, quarantined share and missing values of a scored day."""
    q, p = cfg.quality, day.predictions
    files = len(p) + len(day.quarantine)
    rate = len(day.quarantine) / files if files else 0.0
    cols = [f"p_{c}" for c in categories] + [c for c in cfg.property_columns if c in p]
    missing = float(p[cols].isna().to_numpy().mean()) if len(p) and cols else 0.0
    reasons = day.quarantine["reason"].value_counts().to_dict() if len(day.quarantine) else {}
    return [
        Check("quality:rows", "quality", len(p) < q.min_rows, float(len(p)), float(q.min_rows),
              f"{len(p)} images scored (fires below {q.min_rows})"),
        Check("quality:quarantine_rate", "quality", rate > q.max_quarantine_rate, rate, q.max_quarantine_rate,
              f"{len(day.quarantine)}/{files} files quarantined {reasons or ''}".strip()),
        Check("quality:missing", "quality", missing > q.max_missing_share, missing, q.max_missing_share,
              f"share of missing scores/properties {missing:.4f}"),
    ]  # fmt: skip


def judge_day(
    reference: pd.DataFrame,
    day: ScoredDay,
    *,
    cfg: DriftConfig,
    categories: tuple[str, ...],
    day_label: str,
    model_version: str,
):  # noqa: ANN201 - (Evidently Snapshot | None, Verdict)
    """Compare a scored day with the reference; returns ``(snapshot, verdict)``.

    Args:
        reference: The reference's prediction rows (the champion on the holdout).
        day: The day's predictions and quarantine, scored by the same model version.
        cfg: Thresholds.
        categories: The model's categories (the ``p_``/``flag_`` columns).
        day_label: ``YYYY-MM-DD``.
        model_version: The version both were scored by.

    The snapshot is None when the day has too few rows for Evidently (only quality checks run).
    """
    checks = quality_checks(day, cfg=cfg, categories=categories)
    snapshot = None
    current = day.predictions
    if len(current) >= 2 and len(reference) >= 2:
        ref, cur = drift_frame(reference, categories=categories), drift_frame(current, categories=categories)
        snapshot = run_report(
            ref, cur, cfg=cfg, categories=categories, day=day_label, name=f"{day_label} v{model_version}"
        )
        checks = _snapshot_checks(snapshot, cfg=cfg, categories=categories, columns=set(ref.columns)) + checks
    checks = flag_rate_checks(reference, current, cfg=cfg, categories=categories) + checks if len(current) else checks
    verdict = Verdict(
        day=day_label,
        model_version=model_version,
        drift=any(c.fired for c in checks),
        rows=len(current),
        reference_rows=len(reference),
        checks=tuple(checks),
    )
    return snapshot, verdict
