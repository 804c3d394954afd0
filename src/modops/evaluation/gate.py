"""The promotion gate: floors on every category and no regression against the champion.

The gate reads the ``holdout`` section of ``metrics.json`` (category -> metric dict, as
written by :meth:`EvaluationReport.to_metrics_json`) for the candidate and, when there is
one, the current champion. It returns a verdict with every reason, so a failed promotion
can be explained without rerunning anything. It never talks to the registry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modops.config import GateConfig

__all__ = ["GateVerdict", "gate", "gate_from_config"]

_REGRESSION_METRICS = ("pr_auc", "recall", "f1", "precision")
# Float slack so that a value exactly at its limit passes: 0.9 - 0.02 is 0.8800000000000001,
# and a candidate at 0.88 has not regressed by more than 0.02.
_EPS = 1e-9


@dataclass(frozen=True)
class GateVerdict:
    """The outcome of the gate.

    Attributes:
        passed: True only when every check passed.
        reasons: Human-readable lines: every failure when the gate failed; otherwise why it
            passed. Notes such as a skipped regression check are appended in both cases.
        checks: One dict per check: ``{"category", "check", "value", "limit", "passed"}``;
            ``check`` is ``"min_precision"``, ``"min_recall"``, ``"regression"`` or
            ``"present"`` (a champion category missing from the candidate).
    """

    passed: bool
    reasons: tuple[str, ...]
    checks: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``{"passed", "reasons": [...], "checks": [...]}``."""
        return {
            "passed": self.passed,
            "reasons": list(self.reasons),
            "checks": [dict(c) for c in self.checks],
        }


def gate(
    candidate: Mapping[str, Mapping[str, Any]],
    *,
    min_precision: float,
    min_recall: float,
    min_pr_auc: float = 0.0,
    champion: Mapping[str, Mapping[str, Any]] | None = None,
    max_regression: float = 0.02,
    regression_metric: str = "pr_auc",
    champion_label: str = "champion",
    category_floors: Mapping[str, tuple[float, float, float]] | None = None,
) -> GateVerdict:
    """Decide whether a candidate may be promoted.

    Checks, all of which must pass:
      * every candidate category: ``precision >= min_precision``, ``recall >= min_recall`` and
        ``pr_auc >= min_pr_auc`` (threshold-free: "the model ranks this category at all");
      * every category the champion has: the candidate has it too, and
        ``candidate[metric] >= champion[metric] - max_regression``.

    A NaN metric fails its check (comparisons with NaN are false), so the gate fails closed.

    Args:
        candidate: Category -> metrics (``metrics.json["holdout"]``) of the candidate.
        min_precision: Precision floor, in [0, 1].
        min_recall: Recall floor, in [0, 1].
        min_pr_auc: PR-AUC (average precision) floor, in [0, 1]; 0 disables it.
        champion: The same mapping for the current champion, or None when there is none.
        max_regression: Largest allowed drop in ``regression_metric``, absolute, in [0, 1].
        regression_metric: Metric compared with the champion, e.g. ``"pr_auc"``.
        champion_label: How to name the champion in reasons, e.g. ``"champion v3"``.
        category_floors: Per-category ``(min_precision, min_recall, min_pr_auc)`` replacing
            the global floors for those categories.

    Returns:
        The verdict.

    Raises:
        ValueError: On out-of-range limits, an empty candidate, or a candidate category
            missing a metric the gate needs (the metrics file is malformed).
    """
    for cat, floors in (category_floors or {}).items():
        if not all(0.0 <= f <= 1.0 for f in floors):
            raise ValueError(f"floors for {cat} must be in [0, 1], got {floors}")
    for name, value in (
        ("min_precision", min_precision),
        ("min_recall", min_recall),
        ("min_pr_auc", min_pr_auc),
        ("max_regression", max_regression),
    ):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
    if regression_metric not in _REGRESSION_METRICS:
        raise ValueError(f"regression_metric must be one of {_REGRESSION_METRICS}, got '{regression_metric}'")
    if not candidate:
        raise ValueError("candidate metrics are empty: pass metrics.json['holdout'], not the root")

    checks: list[dict[str, Any]] = []
    failures: list[str] = []
    unknown = sorted(set(category_floors or {}) - set(candidate))
    if unknown:
        raise ValueError(f"category floors name categories the candidate does not have: {unknown}")
    for cat, row in candidate.items():
        floors = (category_floors or {}).get(cat, (min_precision, min_recall, min_pr_auc))
        for metric, floor in zip(("precision", "recall", "pr_auc"), floors, strict=True):
            value = _metric(row, metric, cat)
            ok = value >= floor - _EPS
            checks.append(_check(cat, f"min_{metric}", value, floor, ok))
            if not ok:
                failures.append(f"{cat} {metric} {_pair(value, '<', 'floor', floor)}")

    notes: list[str] = []
    if champion is None:
        notes.append("no current champion: regression check skipped")
    else:
        failures += _regression(
            candidate,
            champion,
            checks,
            metric=regression_metric,
            max_regression=max_regression,
            label=champion_label,
        )
        new = [c for c in candidate if c not in champion]
        if new:
            notes.append(f"no {champion_label} baseline for new categories: {', '.join(new)}")

    passed = not failures
    if passed:
        summary = (
            f"all {len(candidate)} categories meet floors (precision >= {min_precision:g}, "
            f"recall >= {min_recall:g}, PR-AUC >= {min_pr_auc:g}"
        )
        own = [f"{c}: {p:g}/{r:g}/{a:g}" for c, (p, r, a) in (category_floors or {}).items()]
        summary += f"; own precision/recall/PR-AUC floors {', '.join(own)})" if own else ")"
        if champion is not None:
            summary += f"; no {regression_metric} regression beyond {max_regression:g} vs {champion_label}"
        reasons = [summary, *notes]
    else:
        reasons = [*failures, *notes]
    return GateVerdict(passed=passed, reasons=tuple(reasons), checks=tuple(checks))


def gate_from_config(
    candidate: Mapping[str, Mapping[str, Any]],
    cfg: GateConfig,
    *,
    champion: Mapping[str, Mapping[str, Any]] | None = None,
    champion_label: str = "champion",
) -> GateVerdict:
    """Run :func:`gate` with the floors and regression settings of a :class:`GateConfig`."""
    return gate(
        candidate,
        min_precision=cfg.min_precision,
        min_recall=cfg.min_recall,
        min_pr_auc=cfg.min_pr_auc,
        champion=champion,
        max_regression=cfg.max_regression,
        regression_metric=cfg.regression_metric,
        champion_label=champion_label,
        category_floors={cat: cfg.floors(cat) for cat in cfg.category_floors},
    )


def _regression(
    candidate: Mapping[str, Mapping[str, Any]],
    champion: Mapping[str, Mapping[str, Any]],
    checks: list[dict[str, Any]],
    *,
    metric: str,
    max_regression: float,
    label: str,
) -> list[str]:
    """Append regression checks to ``checks``; return the failure reasons."""
    failures: list[str] = []
    for cat, champ_row in champion.items():
        if cat not in candidate:
            checks.append(_check(cat, "present", None, None, False))
            failures.append(f"{cat} is evaluated by {label} but missing from the candidate")
            continue
        value = _metric(candidate[cat], metric, cat)
        baseline = champ_row.get(metric)
        if baseline is None:
            # An older champion may not have logged this metric; fail closed and say why
            # rather than crash, so the verdict is still recorded.
            checks.append(_check(cat, "regression", value, None, False))
            failures.append(f"{cat}: {label} has no '{metric}' to compare against")
            continue
        limit = float(baseline) - max_regression
        ok = value >= limit - _EPS
        checks.append(_check(cat, "regression", value, limit, ok))
        if not ok:
            drop = float(baseline) - value
            failures.append(
                f"{cat} {metric} {value:.3f} vs {label} {float(baseline):.3f}: "
                f"drop {_pair(drop, '>', 'allowed', max_regression)}"
            )
    return failures


def _metric(row: Mapping[str, Any], metric: str, category: str) -> float:
    """Read one candidate metric as float, with a clear error when it is missing."""
    if metric not in row:
        raise ValueError(
            f"candidate metrics for '{category}' have no '{metric}' (keys: {sorted(row)}); "
            "pass metrics.json['holdout'] as written by EvaluationReport.to_metrics_json()"
        )
    return float(row[metric])


def _check(category: str, check: str, value: float | None, limit: float | None, passed: bool) -> dict[str, Any]:
    return {"category": category, "check": check, "value": value, "limit": limit, "passed": passed}


def _pair(value: float, op: str, word: str, limit: float) -> str:
    """Format ``value op word limit`` with enough digits that the two numbers differ."""
    for digits in range(2, 7):
        a, b = f"{value:.{digits}f}", f"{limit:.{digits}f}"
        if a != b or math.isnan(value):
            return f"{a} {op} {word} {b}"
    return f"{value!r} {op} {word} {limit!r}"
