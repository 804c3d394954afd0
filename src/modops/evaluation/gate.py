"""The promotion gate: floors on every category, enough evidence, no regression against the champion.

The gate reads the ``holdout`` section of ``metrics.json`` (category -> metric dict, as
written by :meth:`EvaluationReport.to_metrics_json`) for the candidate and, when there is
one, the current champion, plus (optionally) the paired bootstrap differences of the two
models on the same holdout images (:mod:`modops.evaluation.compare`). It returns a verdict
with every reason, so a failed promotion can be explained without rerunning anything. It
never talks to the registry.

It is built not to fail open: categories are matched by name (never by position), a NaN or a
missing comparison fails its check, a category with too few holdout positives fails with
"not enough evidence", and by default floors and the regression are judged on the lower
confidence bound, so a lucky draw of a small holdout cannot carry a weak model through.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from modops.config import GateConfig
from modops.evaluation.compare import PairedDifference, ScoredHoldout, paired_differences

__all__ = ["DecideOn", "GateVerdict", "gate", "gate_from_config"]

DecideOn = Literal["point", "lower_bound"]
_DECIDE_ON = ("point", "lower_bound")
_REGRESSION_METRICS = ("pr_auc", "recall", "f1", "precision")
# Float slack so that a value exactly at its limit passes: 0.9 - 0.02 is 0.8800000000000001,
# and a candidate at 0.88 has not regressed by more than 0.02.
_EPS = 1e-9
_JUDGED_DIFF = {"point": "point estimate", "lower_bound": "confidence lower bound"}


@dataclass(frozen=True)
class GateVerdict:
    """The outcome of the gate.

    Attributes:
        passed: True only when every check passed.
        reasons: Human-readable lines: every failure when the gate failed; otherwise why it
            passed. Notes such as a skipped regression check are appended in both cases.
        checks: One dict per check, JSON-ready. Every check has ``category``, ``check``,
            ``value``, ``limit`` and ``passed``; ``check`` is one of:

            * ``"support"``: ``value`` = holdout positives, ``limit`` = ``min_support``.
            * ``"min_precision"``, ``"min_recall"``, ``"min_pr_auc"``: ``value`` = the value
              judged, ``limit`` = the floor; plus ``judged`` (``"point"`` or
              ``"lower_bound"``) and ``point`` (the point estimate).
            * ``"regression"``: with ``method: "paired_bootstrap"``, ``value`` = the judged
              difference candidate - champion (``point`` or ``ci_low``), ``limit`` =
              ``-max_regression``, plus ``judged``, ``metric``, ``point``, ``ci_low``,
              ``ci_high``, ``p_worse``, ``confidence``, ``n_resamples``, ``candidate`` and
              ``champion`` (the two models' values). With ``method: "point_estimate"`` (no
              per-image scores), ``value`` = the candidate's metric, ``limit`` = the
              champion's minus ``max_regression`` (None when it cannot be compared), plus
              ``judged: "point"``, ``metric`` and ``champion``.
            * ``"present"``: a champion category missing from the candidate (always failed).
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
    min_support: int = 20,
    decide_on: DecideOn = "lower_bound",
    paired: Mapping[str, PairedDifference] | None = None,
    holdout_mismatch: str | None = None,
) -> GateVerdict:
    """Decide whether a candidate may be promoted.

    Checks, all of which must pass:
      * every candidate category has ``support >= min_support`` holdout positives; fewer is
        "not enough evidence", never a silent pass;
      * every candidate category: ``precision >= min_precision``, ``recall >= min_recall`` and
        ``pr_auc >= min_pr_auc`` (threshold-free: "the model ranks this category at all"),
        judged per ``decide_on``;
      * every category the champion has: the candidate has it too, and it has not regressed
        by more than ``max_regression`` in ``regression_metric``.

    ``decide_on="lower_bound"`` judges precision and recall floors on their Wilson lower
    bounds (``precision_ci_low``, ``recall_ci_low``) and PR-AUC on ``pr_auc_ci_low`` when the
    metrics carry one; ``metrics.json`` has no interval for PR-AUC, so it is then judged on
    its point estimate (the check records ``judged: "point"``). ``"point"`` judges every
    floor on the point estimate.

    The regression is decided on ``paired`` when given (the paired bootstrap of the two
    models on the same images): it fails when the difference (``point`` with
    ``decide_on="point"``, the interval's ``ci_low`` with ``"lower_bound"``, i.e. the
    candidate must show non-inferiority) is below ``-max_regression``. Without ``paired``
    the point metrics of the two dicts are compared, and a note says no paired comparison
    was possible.

    Categories are matched by name throughout. A NaN fails its check (comparisons with NaN
    are false), so the gate fails closed.

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
        min_support: Fewest holdout positives (``support``) a category needs, >= 0; 0 turns
            the check off.
        decide_on: ``"point"`` or ``"lower_bound"``, see above.
        paired: Category -> :class:`PairedDifference` of ``regression_metric`` (from
            :func:`modops.evaluation.compare.paired_differences`); needs ``champion``, whose
            categories decide which comparisons must exist.
        holdout_mismatch: Set (to a short description, e.g. the two holdout hashes) when the
            champion was judged on another holdout than the candidate: the gate then fails
            with a ``same_holdout`` check instead of comparing (``champion`` must be None).

    Returns:
        The verdict.

    Raises:
        ValueError: On out-of-range limits, an empty candidate, a candidate category missing
            a metric the gate needs (the metrics file is malformed), or ``paired`` that does
            not fit the candidate, the champion or ``regression_metric``.
    """
    _check_args(
        candidate,
        min_precision=min_precision,
        min_recall=min_recall,
        min_pr_auc=min_pr_auc,
        max_regression=max_regression,
        regression_metric=regression_metric,
        category_floors=category_floors,
        min_support=min_support,
        decide_on=decide_on,
    )
    _check_paired(paired, candidate, champion, metric=regression_metric)

    checks: list[dict[str, Any]] = []
    failures: list[str] = []
    for cat, row in candidate.items():
        if min_support > 0:
            failures += _support(cat, row, checks, min_support=min_support)
        floors = (category_floors or {}).get(cat, (min_precision, min_recall, min_pr_auc))
        failures += _floors(cat, row, checks, floors=floors, decide_on=decide_on)

    notes: list[str] = []
    if holdout_mismatch is not None:
        # Never compare models judged on different holdouts: the verdict is a refusal, which
        # a person can override only by re-baselining on purpose (recorded in the audit trail).
        if champion is not None:
            raise ValueError("pass holdout_mismatch without champion metrics: they are not comparable")
        checks.append(_check("*", "same_holdout", None, None, False))
        failures.append(
            f"{champion_label} was judged on another holdout ({holdout_mismatch}): the two cannot be compared. "
            "If the new holdout is meant to be the baseline, promote on purpose: "
            "`modops promote VERSION --rebaseline --reason '...'`"
        )
    elif champion is None:
        notes.append("no current champion: regression check skipped")
    else:
        failures += _regression(
            candidate,
            champion,
            checks,
            paired=paired,
            metric=regression_metric,
            max_regression=max_regression,
            decide_on=decide_on,
            label=champion_label,
        )
        if paired is None:
            notes.append(
                f"no paired comparison with {champion_label} was possible (no per-image scores given): "
                f"{regression_metric} was compared on holdout point estimates only"
            )
        new = [c for c in candidate if c not in champion]
        if new:
            notes.append(f"no {champion_label} baseline for new categories: {', '.join(new)}")

    if failures:
        return GateVerdict(passed=False, reasons=(*failures, *notes), checks=tuple(checks))
    summary = _summary(
        candidate,
        floors=(min_precision, min_recall, min_pr_auc),
        category_floors=category_floors or {},
        min_support=min_support,
        decide_on=decide_on,
    )
    if champion is not None:
        summary += f"; no {regression_metric} regression beyond {max_regression:g} vs {champion_label}"
        if paired is not None:
            summary += f" ({_JUDGED_DIFF[decide_on]} of a paired bootstrap on the same holdout)"
    return GateVerdict(passed=True, reasons=(summary, *notes), checks=tuple(checks))


def gate_from_config(
    candidate: Mapping[str, Mapping[str, Any]],
    cfg: GateConfig,
    *,
    champion: Mapping[str, Mapping[str, Any]] | None = None,
    champion_label: str = "champion",
    paired: Mapping[str, PairedDifference] | None = None,
    candidate_scores: ScoredHoldout | None = None,
    champion_scores: ScoredHoldout | None = None,
    holdout_mismatch: str | None = None,
) -> GateVerdict:
    """Run :func:`gate` with the settings of a :class:`GateConfig`.

    Pass either ``paired`` (already computed) or both ``candidate_scores`` and
    ``champion_scores``, from which the paired bootstrap of ``cfg.regression_metric`` is
    computed here with ``cfg.bootstrap_resamples``, ``cfg.confidence`` and ``cfg.seed``.
    With neither, the regression falls back to point metrics (see :func:`gate`).

    Raises:
        ValueError: As :func:`gate`; also when only one of the two score sets is given, both
            ``paired`` and scores are, or the scores are not of the same holdout.
    """
    if (candidate_scores is None) != (champion_scores is None):
        raise ValueError(
            "pass both candidate_scores and champion_scores (the same holdout, scored by each), or neither"
        )
    if candidate_scores is not None and champion_scores is not None:
        if paired is not None:
            raise ValueError("pass paired differences or the two models' scores, not both")
        paired = paired_differences(
            candidate_scores,
            champion_scores,
            metric=cfg.regression_metric,
            n_resamples=cfg.bootstrap_resamples,
            confidence=cfg.confidence,
            seed=cfg.seed,
        )
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
        min_support=cfg.min_support,
        decide_on=cfg.decide_on,
        paired=paired,
        holdout_mismatch=holdout_mismatch,
    )


def _check_args(
    candidate: Mapping[str, Mapping[str, Any]],
    *,
    min_precision: float,
    min_recall: float,
    min_pr_auc: float,
    max_regression: float,
    regression_metric: str,
    category_floors: Mapping[str, tuple[float, float, float]] | None,
    min_support: int,
    decide_on: str,
) -> None:
    """Raise ValueError on any argument the gate cannot judge with."""
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
    if not isinstance(min_support, int) or min_support < 0:
        raise ValueError(f"min_support must be an integer >= 0, got {min_support!r}")
    if decide_on not in _DECIDE_ON:
        raise ValueError(f"decide_on must be one of {_DECIDE_ON}, got '{decide_on}'")
    if not candidate:
        raise ValueError("candidate metrics are empty: pass metrics.json['holdout'], not the root")
    unknown = sorted(set(category_floors or {}) - set(candidate))
    if unknown:
        raise ValueError(f"category floors name categories the candidate does not have: {unknown}")


def _check_paired(
    paired: Mapping[str, PairedDifference] | None,
    candidate: Mapping[str, Mapping[str, Any]],
    champion: Mapping[str, Mapping[str, Any]] | None,
    *,
    metric: str,
) -> None:
    """Raise ValueError when paired differences do not fit the metric dicts they accompany."""
    if paired is None:
        return
    if champion is None:
        raise ValueError(
            "paired differences need the champion's metrics too (champion=...), so that categories "
            "the candidate dropped are caught"
        )
    stray = sorted(set(paired) - (set(candidate) & set(champion)))
    if stray:
        raise ValueError(
            f"paired differences name categories that candidate and champion metrics do not share: {stray}"
        )
    wrong = {cat: d.metric for cat, d in paired.items() if d.metric != metric}
    if wrong:
        raise ValueError(f"paired differences must be of regression_metric '{metric}', got {wrong}")


def _support(cat: str, row: Mapping[str, Any], checks: list[dict[str, Any]], *, min_support: int) -> list[str]:
    """Append the minimum-support check for one category; return its failure reason, if any."""
    support = _metric(row, "support", cat)
    ok = support >= min_support  # False for NaN: no evidence is not enough evidence
    checks.append(_check(cat, "support", support, min_support, ok))
    if ok:
        return []
    return [
        f"{cat}: not enough evidence: {support:g} holdout positives, the gate needs at least {min_support}; "
        f"add labelled {cat} positives to the holdout, or lower gate.min_support knowingly"
    ]


def _floors(
    cat: str,
    row: Mapping[str, Any],
    checks: list[dict[str, Any]],
    *,
    floors: tuple[float, float, float],
    decide_on: str,
) -> list[str]:
    """Append the precision, recall and PR-AUC floor checks for one category; return failures."""
    failures = []
    for metric, floor in zip(("precision", "recall", "pr_auc"), floors, strict=True):
        point = _metric(row, metric, cat)
        judged, value = _judged_value(row, metric, cat, decide_on=decide_on, point=point)
        ok = value >= floor - _EPS
        checks.append(_check(cat, f"min_{metric}", value, floor, ok, judged=judged, point=point))
        if ok:
            continue
        if judged == "point":
            failures.append(f"{cat} {metric} {_pair(value, '<', 'floor', floor)}")
        else:
            failures.append(
                f"{cat} {metric} lower confidence bound {_pair(value, '<', 'floor', floor)} "
                f"(point estimate {point:.3f}; gate.decide_on is lower_bound)"
            )
    return failures


def _judged_value(row: Mapping[str, Any], metric: str, cat: str, *, decide_on: str, point: float) -> tuple[str, float]:
    """``(judged, value)``: the point estimate or the lower confidence bound, per ``decide_on``."""
    if decide_on == "point":
        return "point", point
    key = f"{metric}_ci_low"
    if key in row:
        return "lower_bound", _metric(row, key, cat)
    if metric == "pr_auc":
        # metrics.json carries no interval for PR-AUC: judge its point estimate, and say so
        # in the check (judged: "point") rather than invent a bound.
        return "point", point
    raise ValueError(
        f"candidate metrics for '{cat}' have no '{key}', which gate.decide_on 'lower_bound' needs; "
        "pass metrics.json['holdout'] as written by EvaluationReport.to_metrics_json(), or set decide_on 'point'"
    )


def _regression(
    candidate: Mapping[str, Mapping[str, Any]],
    champion: Mapping[str, Mapping[str, Any]],
    checks: list[dict[str, Any]],
    *,
    paired: Mapping[str, PairedDifference] | None,
    metric: str,
    max_regression: float,
    decide_on: str,
    label: str,
) -> list[str]:
    """Append one check per champion category (matched by name); return the failure reasons."""
    failures: list[str] = []
    for cat, champ_row in champion.items():
        if cat not in candidate:
            checks.append(_check(cat, "present", None, None, False))
            failures.append(f"{cat} is evaluated by {label} but missing from the candidate")
        elif paired is None:
            failures += _point_regression(
                cat, candidate[cat], champ_row, checks, metric=metric, max_regression=max_regression, label=label
            )
        elif cat in paired:
            failures += _paired_regression(
                paired[cat], checks, max_regression=max_regression, decide_on=decide_on, label=label
            )
        else:
            # Both models evaluate the category but nobody compared them on the same images:
            # that is a gap in the evidence, not a pass.
            checks.append(_check(cat, "regression", None, -max_regression, False, method="paired_bootstrap"))
            failures.append(
                f"{cat}: no paired {metric} comparison with {label} although both evaluate it; "
                "score the champion on the holdout for every shared category"
            )
    return failures


def _paired_regression(
    diff: PairedDifference,
    checks: list[dict[str, Any]],
    *,
    max_regression: float,
    decide_on: str,
    label: str,
) -> list[str]:
    """Judge one paired bootstrap difference; append its check and return the failure, if any."""
    value = diff.point if decide_on == "point" else diff.ci_low
    ok = value >= -max_regression - _EPS  # False for NaN
    checks.append(
        _check(
            diff.category,
            "regression",
            float(value),
            -max_regression,
            ok,
            method="paired_bootstrap",
            judged=decide_on,
            metric=diff.metric,
            point=float(diff.point),
            ci_low=float(diff.ci_low),
            ci_high=float(diff.ci_high),
            p_worse=float(diff.p_worse),
            confidence=float(diff.confidence),
            n_resamples=int(diff.n_resamples),
            candidate=float(diff.candidate),
            champion=float(diff.champion),
        )
    )
    if ok:
        return []
    head = (
        f"{diff.category} {diff.metric} {diff.point:+.3f} vs {label} "
        f"({diff.confidence * 100:g} % CI {diff.ci_low:+.3f} to {diff.ci_high:+.3f})"
    )
    if math.isnan(value):
        return [f"{head}: no usable paired resamples, so no evidence against a drop; failing closed"]
    if decide_on == "point":
        return [f"{head}: drop beyond allowed {max_regression:.3f}"]
    return [
        f"{head}: non-inferiority not shown: the CI lower bound is below the allowed drop "
        f"-{max_regression:.3f} (candidate worse in {diff.p_worse:.0%} of resamples)"
    ]


def _point_regression(
    cat: str,
    row: Mapping[str, Any],
    champ_row: Mapping[str, Any],
    checks: list[dict[str, Any]],
    *,
    metric: str,
    max_regression: float,
    label: str,
) -> list[str]:
    """Compare one category's point metrics with the champion's (no per-image scores)."""
    value = _metric(row, metric, cat)
    baseline = champ_row.get(metric)
    extra = {"method": "point_estimate", "judged": "point", "metric": metric}
    if baseline is None:
        # An older champion may not have logged this metric; fail closed and say why
        # rather than crash, so the verdict is still recorded.
        checks.append(_check(cat, "regression", value, None, False, **extra, champion=None))
        return [f"{cat}: {label} has no '{metric}' to compare against"]
    baseline = float(baseline)
    if "support" in row and "support" in champ_row and float(row["support"]) != float(champ_row["support"]):
        # Different positive counts cannot come from the same holdout: the numbers are not comparable.
        checks.append(_check(cat, "regression", value, None, False, **extra, champion=baseline))
        return [
            f"{cat}: candidate and {label} were measured on different holdouts "
            f"({float(row['support']):g} vs {float(champ_row['support']):g} positives); "
            "re-score the champion on the candidate's frozen holdout"
        ]
    limit = baseline - max_regression
    ok = value >= limit - _EPS
    checks.append(_check(cat, "regression", value, limit, ok, **extra, champion=baseline))
    if ok:
        return []
    drop = baseline - value
    return [f"{cat} {metric} {value:.3f} vs {label} {baseline:.3f}: drop {_pair(drop, '>', 'allowed', max_regression)}"]


def _summary(
    candidate: Mapping[str, Mapping[str, Any]],
    *,
    floors: tuple[float, float, float],
    category_floors: Mapping[str, tuple[float, float, float]],
    min_support: int,
    decide_on: str,
) -> str:
    """The first reason of a passing verdict: what was checked, in one line."""
    p, r, a = floors
    summary = f"all {len(candidate)} categories meet floors (precision >= {p:g}, recall >= {r:g}, PR-AUC >= {a:g}"
    own = [f"{c}: {cp:g}/{cr:g}/{ca:g}" for c, (cp, cr, ca) in category_floors.items()]
    summary += f"; own precision/recall/PR-AUC floors {', '.join(own)})" if own else ")"
    summary += " on point estimates" if decide_on == "point" else " on lower confidence bounds"
    if min_support > 0:
        summary += f", each with >= {min_support} holdout positives"
    return summary


def _metric(row: Mapping[str, Any], metric: str, category: str) -> float:
    """Read one candidate metric as float, with a clear error when it is missing."""
    if metric not in row:
        raise ValueError(
            f"candidate metrics for '{category}' have no '{metric}' (keys: {sorted(row)}); "
            "pass metrics.json['holdout'] as written by EvaluationReport.to_metrics_json()"
        )
    return float(row[metric])


def _check(
    category: str, check: str, value: float | None, limit: float | None, passed: bool, **extra: Any
) -> dict[str, Any]:
    return {"category": category, "check": check, "value": value, "limit": limit, "passed": bool(passed), **extra}


def _pair(value: float, op: str, word: str, limit: float) -> str:
    """Format ``value op word limit`` with enough digits that the two numbers differ."""
    for digits in range(2, 7):
        a, b = f"{value:.{digits}f}", f"{limit:.{digits}f}"
        if a != b or math.isnan(value):
            return f"{a} {op} {word} {b}"
    return f"{value!r} {op} {word} {limit!r}"
