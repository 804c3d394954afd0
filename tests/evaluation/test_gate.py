"""Tests for the promotion gate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modops.config import GateConfig, LabelsConfig
from modops.evaluation.compare import PairedDifference, ScoredHoldout
from modops.evaluation.gate import gate, gate_from_config
from modops.evaluation.metrics import evaluate


def _row(precision: float = 0.97, recall: float = 0.96, pr_auc: float = 0.98, **extra: float) -> dict:
    return {"precision": precision, "recall": recall, "f1": 0.965, "pr_auc": pr_auc, **extra}


def _metrics(**overrides: dict) -> dict:
    rows = {c: _row() for c in ("promo_spam", "disgusting", "weapon")}
    rows.update(overrides)
    return rows


# The tests written before min_support and decide_on judge point estimates with no support
# check, explicitly: gate()'s defaults are the safe ones (20 positives, lower bounds).
FLOORS = {"min_precision": 0.95, "min_recall": 0.94, "decide_on": "point", "min_support": 0}


def _failed(verdict) -> list[tuple[str, str]]:
    return [(c["category"], c["check"]) for c in verdict.checks if not c["passed"]]


def test_pass_without_champion():
    v = gate(_metrics(), **FLOORS)
    assert v.passed
    assert v.reasons[0].startswith("all 3 categories meet floors")
    assert "no current champion: regression check skipped" in v.reasons
    assert len(v.checks) == 9 and all(c["passed"] for c in v.checks)
    assert not any(c["check"] == "regression" for c in v.checks)
    json.dumps(v.to_dict())


def test_pass_with_champion_explains_why():
    champ = _metrics(weapon=_row(pr_auc=0.99))  # candidate 0.98: a drop of 0.01 <= 0.02
    v = gate(_metrics(), **FLOORS, champion=champ, champion_label="champion v3")
    assert v.passed
    assert "no pr_auc regression beyond 0.02 vs champion v3" in v.reasons[0]
    assert sum(c["check"] == "regression" for c in v.checks) == 3


def test_fail_on_recall_floor():
    v = gate(_metrics(promo_spam=_row(recall=0.91)), **FLOORS)
    assert not v.passed
    assert "promo_spam recall 0.91 < floor 0.94" in v.reasons
    assert _failed(v) == [("promo_spam", "min_recall")]


def test_fail_on_precision_floor():
    v = gate(_metrics(weapon=_row(precision=0.9)), **FLOORS)
    assert not v.passed
    assert "weapon precision 0.90 < floor 0.95" in v.reasons
    assert _failed(v) == [("weapon", "min_precision")]


def test_every_failure_is_reported():
    cand = _metrics(weapon=_row(precision=0.5, recall=0.5), disgusting=_row(recall=0.1))
    v = gate(cand, **FLOORS)
    assert set(_failed(v)) == {
        ("weapon", "min_precision"),
        ("weapon", "min_recall"),
        ("disgusting", "min_recall"),
    }
    assert sum("floor" in r for r in v.reasons) == 3


def test_reason_digits_distinguish_close_values():
    v = gate(_metrics(weapon=_row(recall=0.9399)), **FLOORS)
    assert "weapon recall 0.9399 < floor 0.9400" in v.reasons


def test_value_exactly_at_floor_passes():
    assert gate(_metrics(weapon=_row(precision=0.95, recall=0.94)), **FLOORS).passed


def test_nan_metric_fails_closed():
    v = gate(_metrics(weapon=_row(recall=float("nan"))), **FLOORS)
    assert not v.passed
    assert ("weapon", "min_recall") in _failed(v)


def test_fail_on_regression():
    champ = _metrics(disgusting=_row(pr_auc=0.99))
    cand = _metrics(disgusting=_row(pr_auc=0.95))
    v = gate(cand, **FLOORS, champion=champ, champion_label="champion v3")
    assert not v.passed
    assert _failed(v) == [("disgusting", "regression")]
    check = next(c for c in v.checks if c["category"] == "disgusting" and c["check"] == "regression")
    assert check["value"] == pytest.approx(0.95)
    assert check["limit"] == pytest.approx(0.97)
    assert any("disgusting pr_auc 0.950 vs champion v3 0.990" in r for r in v.reasons)


def test_regression_exactly_at_allowance_passes():
    # 0.9 - 0.02 is 0.8800000000000001 in floating point; 0.88 must still pass.
    champ = _metrics(weapon=_row(pr_auc=0.9))
    cand = _metrics(weapon=_row(pr_auc=0.88))
    assert gate(cand, **FLOORS, champion=champ, max_regression=0.02).passed


def test_regression_metric_is_configurable():
    champ = _metrics(weapon=_row(recall=0.99))
    cand = _metrics()  # recall 0.96, pr_auc equal to the champion's
    assert gate(cand, **FLOORS, champion=champ).passed
    v = gate(cand, **FLOORS, champion=champ, regression_metric="recall")
    assert _failed(v) == [("weapon", "regression")]


def test_missing_category_fails():
    champ = _metrics()
    cand = {k: v for k, v in _metrics().items() if k != "weapon"}
    v = gate(cand, **FLOORS, champion=champ, champion_label="champion v3")
    assert not v.passed
    assert _failed(v) == [("weapon", "present")]
    assert "weapon is evaluated by champion v3 but missing from the candidate" in v.reasons


def test_new_category_is_noted_not_failed():
    champ = {k: v for k, v in _metrics().items() if k != "weapon"}
    v = gate(_metrics(), **FLOORS, champion=champ)
    assert v.passed
    assert any("new categories: weapon" in r for r in v.reasons)


def test_champion_without_metric_fails_closed():
    champ = _metrics(weapon={"precision": 0.99, "recall": 0.99})
    v = gate(_metrics(), **FLOORS, champion=champ)
    assert _failed(v) == [("weapon", "regression")]
    assert any("has no 'pr_auc'" in r for r in v.reasons)


@pytest.mark.parametrize(
    ("candidate", "kwargs", "match"),
    [
        ({}, {}, "empty"),
        ({"weapon": {"recall": 0.99}}, {}, "no 'precision'"),
        (_metrics(), {"min_precision": 1.5}, "min_precision"),
        (_metrics(), {"regression_metric": "accuracy"}, "regression_metric"),
    ],
)
def test_bad_input(candidate, kwargs, match):
    with pytest.raises(ValueError, match=match):
        gate(candidate, **{**FLOORS, **kwargs})


def test_gate_from_config_uses_every_field():
    cfg = GateConfig(
        min_precision=0.5, min_recall=0.5, max_regression=0.1, regression_metric="f1", decide_on="point", min_support=0
    )
    champ = _metrics(weapon={**_row(), "f1": 1.0})  # candidate f1 0.965: drop 0.035 <= 0.1
    assert gate_from_config(_metrics(weapon=_row(precision=0.6)), cfg, champion=champ).passed
    strict = GateConfig(max_regression=0.01, regression_metric="f1", decide_on="point", min_support=0)
    v = gate_from_config(_metrics(), strict, champion=champ, champion_label="v7")
    assert _failed(v) == [("weapon", "regression")]
    assert any("vs v7" in r for r in v.reasons)


def test_end_to_end_good_passes_random_fails():
    labels = LabelsConfig()
    rng = np.random.default_rng(0)

    def split(signal: float) -> tuple[np.ndarray, np.ndarray]:
        y = rng.choice(len(labels.all), size=800, p=[0.55, 0.15, 0.15, 0.15])
        logits = rng.normal(size=(800, len(labels.all)))
        logits[np.arange(800), y] += signal
        p = np.exp(logits)
        return y, p / p.sum(axis=1, keepdims=True)

    def holdout(signal: float) -> dict:
        report, _ = evaluate(
            *split(signal),
            *split(signal),
            class_names=labels.all,
            negative=labels.negative,
            target_precision=0.95,
        )
        return json.loads(json.dumps(report.to_metrics_json()))["holdout"]

    cfg = GateConfig(min_precision=0.9, min_recall=0.9)
    good, random = holdout(5.0), holdout(0.0)
    assert gate_from_config(good, cfg).passed
    assert not gate_from_config(random, cfg).passed
    # The random model, as a challenger to the good champion, also regresses on pr_auc.
    v = gate_from_config(random, cfg, champion=good)
    assert {c for c, check in _failed(v) if check == "regression"} == set(labels.categories)


def test_pr_auc_floor_fails_a_category_that_ranks_at_chance():
    candidate = {
        "a": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "pr_auc": 0.9},
        "b": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "pr_auc": 0.01},
    }
    point = {"decide_on": "point", "min_support": 0}
    verdict = gate(candidate, min_precision=0.0, min_recall=0.0, min_pr_auc=0.03, **point)
    assert not verdict.passed
    assert [r for r in verdict.reasons if r.startswith("b pr_auc")]
    assert gate(candidate, min_precision=0.0, min_recall=0.0, min_pr_auc=0.0, **point).passed


def test_category_floors_override_the_global_ones():
    cand = {
        "weapon": {"precision": 0.6, "recall": 0.3, "pr_auc": 0.35},
        "disgusting": {"precision": 0.97, "recall": 0.95, "pr_auc": 0.99},
    }
    cfg = GateConfig(
        min_precision=0.95,
        min_recall=0.9,
        category_floors={"weapon": {"min_precision": 0.5, "min_recall": 0.25}},
        decide_on="point",
        min_support=0,
    )
    v = gate_from_config(cand, cfg)
    assert v.passed, v.reasons
    assert "weapon: 0.5/0.25/0" in v.reasons[0]
    stricter = GateConfig(
        min_precision=0.95,
        min_recall=0.9,
        category_floors={"weapon": {"min_pr_auc": 0.5}},
        decide_on="point",
        min_support=0,
    )
    failed = gate_from_config(cand, stricter)
    assert not failed.passed and any("weapon precision" in r for r in failed.reasons)  # global 0.95 still applies
    with pytest.raises(ValueError, match="does not have"):
        gate_from_config(cand, GateConfig(category_floors={"kitten": {"min_recall": 0.1}}))


def test_category_precision_floor_is_never_zero():
    from modops.config import ConfigError, load_section

    with pytest.raises(ConfigError, match="min_precision"):
        load_section({"gate": {"category_floors": {"weapon": {"min_precision": 0.0}}}}, "gate")


# --- Minimum support: too few holdout positives is "not enough evidence", never a pass ---


def test_support_below_minimum_is_not_enough_evidence():
    cand = _metrics(weapon=_row(support=12), promo_spam=_row(support=20), disgusting=_row(support=90))
    v = gate(cand, **{**FLOORS, "min_support": 20})
    assert not v.passed
    assert _failed(v) == [("weapon", "support")]
    reason = next(r for r in v.reasons if r.startswith("weapon"))
    assert "not enough evidence" in reason
    assert "12 holdout positives" in reason and "at least 20" in reason
    assert "add labelled weapon positives" in reason and "gate.min_support" in reason
    check = next(c for c in v.checks if c["check"] == "support" and c["category"] == "weapon")
    assert (check["value"], check["limit"]) == (12, 20)
    # Exactly at the minimum is enough; min_support 0 switches the check off.
    assert gate(cand, **{**FLOORS, "min_support": 12}).passed
    assert not any(c["check"] == "support" for c in gate(cand, **FLOORS).checks)


def test_support_check_passes_and_is_summarised():
    cand = _metrics(**{c: _row(support=50) for c in ("weapon", "promo_spam", "disgusting")})
    v = gate(cand, **{**FLOORS, "min_support": 20})
    assert v.passed
    assert sum(c["check"] == "support" for c in v.checks) == 3
    assert ">= 20 holdout positives" in v.reasons[0]


def test_nan_or_missing_support_fails_closed():
    v = gate(_evidenced(weapon=_bounded(support=float("nan"))), **{**FLOORS, "min_support": 1})
    assert ("weapon", "support") in _failed(v)
    assert any("not enough evidence" in r for r in v.reasons)
    with pytest.raises(ValueError, match="no 'support'"):
        gate(_metrics(), **{**FLOORS, "min_support": 1})


# --- decide_on: floors on the point estimate or on the Wilson lower bound ---


def _bounded(precision_low: float = 0.96, recall_low: float = 0.95, support: float = 100, **kw: float) -> dict:
    """A row as metrics.json has it: with holdout support and Wilson lower bounds."""
    return _row(precision_ci_low=precision_low, recall_ci_low=recall_low, support=support, **kw)


def _evidenced(**overrides: dict) -> dict:
    """Three categories with support and bounds, each clearing 0.95 / 0.94 even on its bound."""
    return {c: _bounded() for c in ("promo_spam", "disgusting", "weapon")} | overrides


def test_lower_bound_floor_fails_where_point_passes():
    # precision 0.97 clears 0.95, but its Wilson lower bound 0.91 does not.
    cand = {c: _bounded() for c in ("promo_spam", "disgusting")} | {"weapon": _bounded(precision_low=0.91)}
    lenient = gate(cand, min_precision=0.95, min_recall=0.94, decide_on="point")
    strict = gate(cand, min_precision=0.95, min_recall=0.94, decide_on="lower_bound")
    assert lenient.passed and "on point estimates" in lenient.reasons[0]
    assert not strict.passed
    assert _failed(strict) == [("weapon", "min_precision")]
    check = next(c for c in strict.checks if c["category"] == "weapon" and c["check"] == "min_precision")
    assert check["judged"] == "lower_bound"
    assert (check["value"], check["point"]) == (pytest.approx(0.91), pytest.approx(0.97))
    assert any("weapon precision lower confidence bound 0.91 < floor 0.95" in r for r in strict.reasons)
    point_check = next(c for c in lenient.checks if c["category"] == "weapon" and c["check"] == "min_precision")
    assert point_check["judged"] == "point" and point_check["value"] == pytest.approx(0.97)


def test_lower_bound_judges_recall_on_its_bound_too():
    cand = {c: _bounded() for c in ("promo_spam", "disgusting")} | {"weapon": _bounded(recall_low=0.80)}
    v = gate(cand, min_precision=0.95, min_recall=0.94)  # the default is lower_bound
    assert _failed(v) == [("weapon", "min_recall")]
    assert any("weapon recall lower confidence bound 0.80 < floor 0.94 (point estimate 0.960" in r for r in v.reasons)


def test_lower_bound_passes_and_says_so():
    cand = {c: _bounded() for c in ("promo_spam", "disgusting", "weapon")}
    v = gate(cand, min_precision=0.95, min_recall=0.94)
    assert v.passed
    assert "on lower confidence bounds" in v.reasons[0]


def test_pr_auc_floor_uses_its_bound_only_when_one_is_given():
    cand = {c: _bounded() for c in ("promo_spam", "disgusting", "weapon")}
    v = gate(cand, min_precision=0.9, min_recall=0.9, min_pr_auc=0.9)
    pr = next(c for c in v.checks if c["category"] == "weapon" and c["check"] == "min_pr_auc")
    assert pr["judged"] == "point" and pr["value"] == pytest.approx(0.98)  # metrics.json has no AP interval
    cand["weapon"] = {**cand["weapon"], "pr_auc_ci_low": 0.85}
    v = gate(cand, min_precision=0.9, min_recall=0.9, min_pr_auc=0.9)
    assert _failed(v) == [("weapon", "min_pr_auc")]


def test_lower_bound_without_intervals_is_an_error_not_a_pass():
    with pytest.raises(ValueError, match="precision_ci_low.*decide_on"):
        gate(_metrics(), min_precision=0.9, min_recall=0.9, min_support=0, decide_on="lower_bound")


def test_nan_lower_bound_fails_closed():
    cand = {c: _bounded() for c in ("promo_spam", "disgusting")} | {"weapon": _bounded(recall_low=float("nan"))}
    v = gate(cand, min_precision=0.9, min_recall=0.9)
    assert _failed(v) == [("weapon", "min_recall")]


def test_defaults_are_the_safe_ones():
    assert (GateConfig().min_support, GateConfig().decide_on) == (20, "lower_bound")
    # gate() itself defaults to 20 positives and lower bounds: a candidate with 19 positives
    # and a weak lower bound fails twice over even when nobody passes the settings.
    cand = {"weapon": _row(precision_ci_low=0.5, recall_ci_low=0.95, support=19)}
    v = gate(cand, min_precision=0.9, min_recall=0.9)
    assert set(_failed(v)) == {("weapon", "support"), ("weapon", "min_precision")}


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"min_support": -1}, "min_support"), ({"decide_on": "mean"}, "decide_on")]
)
def test_bad_evidence_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gate(_metrics(), **{**FLOORS, **kwargs})


# --- Categories are matched by name ---


def test_champion_listed_in_another_order_is_compared_by_name():
    # Each champion category has its own baseline; listed in reverse order, every candidate
    # category must still be compared with the champion's value of the SAME name.
    cand = _metrics(promo_spam=_row(pr_auc=0.90), disgusting=_row(pr_auc=0.98), weapon=_row(pr_auc=0.60))
    champ = {
        "weapon": _row(pr_auc=0.61),
        "disgusting": _row(pr_auc=0.99),
        "promo_spam": _row(pr_auc=0.95),  # the only real drop: 0.05
    }
    v = gate(cand, **FLOORS | {"min_precision": 0.0, "min_recall": 0.0}, champion=champ)
    assert _failed(v) == [("promo_spam", "regression")]
    limits = {c["category"]: c["limit"] for c in v.checks if c["check"] == "regression"}
    assert limits == pytest.approx({"weapon": 0.59, "disgusting": 0.97, "promo_spam": 0.93})


# --- Regression on the paired bootstrap ---


def _diff(point: float, low: float, high: float, *, category: str = "promo_spam", p_worse: float = 0.5, **kw):
    fields = {
        "category": category,
        "metric": "pr_auc",
        "candidate": 0.9 + point,
        "champion": 0.9,
        "point": point,
        "ci_low": low,
        "ci_high": high,
        "p_worse": p_worse,
        "confidence": 0.95,
        "n_resamples": 1000,
        "n_skipped": 0,
    }
    return PairedDifference(**(fields | kw))


def _paired(**overrides: PairedDifference) -> dict[str, PairedDifference]:
    diffs = {c: _diff(0.0, 0.0, 0.0, category=c, p_worse=0.0) for c in ("promo_spam", "disgusting", "weapon")}
    return diffs | overrides


def test_paired_clear_drop_fails_with_its_interval():
    paired = _paired(promo_spam=_diff(-0.041, -0.080, -0.004, p_worse=0.99))
    rows = _evidenced()
    for decide_on in ("point", "lower_bound"):
        settings = FLOORS | {"decide_on": decide_on, "min_support": 20}
        v = gate(rows, **settings, champion=rows, paired=paired, champion_label="champion v3")
        assert _failed(v) == [("promo_spam", "regression")]
    check = next(c for c in v.checks if c["category"] == "promo_spam" and c["check"] == "regression")
    assert check["method"] == "paired_bootstrap"
    assert check["limit"] == pytest.approx(-0.02)
    assert (check["point"], check["ci_low"], check["ci_high"]) == pytest.approx((-0.041, -0.080, -0.004))
    assert (check["p_worse"], check["confidence"], check["n_resamples"]) == (0.99, 0.95, 1000)
    point = gate(_metrics(), **FLOORS, champion=_metrics(), paired=paired, champion_label="champion v3")
    assert "promo_spam pr_auc -0.041 vs champion v3 (95 % CI -0.080 to -0.004): drop beyond allowed 0.020" in (
        point.reasons
    )


def test_paired_noisy_tie_passes_on_point_but_not_on_lower_bound():
    paired = _paired(weapon=_diff(-0.005, -0.060, 0.050, category="weapon", p_worse=0.58))
    # The rows clear the floors on their bounds too, so only the regression differs.
    rows = _evidenced()
    lenient = gate(rows, **FLOORS, champion=rows, paired=paired)
    strict = gate(rows, **FLOORS | {"decide_on": "lower_bound"}, champion=rows, paired=paired)
    assert lenient.passed, lenient.reasons
    assert "point estimate of a paired bootstrap" in lenient.reasons[0]
    assert not strict.passed
    assert ("weapon", "regression") in _failed(strict)
    assert any("non-inferiority not shown" in r and "58%" in r for r in strict.reasons)


def test_paired_lower_bound_within_allowance_passes():
    bounded = {c: _bounded() for c in ("promo_spam", "disgusting", "weapon")}
    paired = _paired(weapon=_diff(0.004, -0.015, 0.03, category="weapon", p_worse=0.3))
    v = gate(bounded, min_precision=0.95, min_recall=0.94, champion=bounded, paired=paired)
    assert v.passed, v.reasons
    assert "confidence lower bound of a paired bootstrap" in v.reasons[0]
    assert not any("no paired comparison" in r for r in v.reasons)


def test_paired_nan_fails_closed():
    nan = float("nan")
    paired = _paired(weapon=_diff(nan, nan, nan, category="weapon", p_worse=nan, n_resamples=0))
    rows = _evidenced()
    for decide_on in ("point", "lower_bound"):
        v = gate(rows, **FLOORS | {"decide_on": decide_on}, champion=rows, paired=paired)
        assert _failed(v) == [("weapon", "regression")]
        assert any("failing closed" in r for r in v.reasons)


def test_paired_missing_for_a_shared_category_fails_closed():
    paired = {k: d for k, d in _paired().items() if k != "disgusting"}
    v = gate(_metrics(), **FLOORS, champion=_metrics(), paired=paired)
    assert _failed(v) == [("disgusting", "regression")]
    assert any("no paired pr_auc comparison" in r for r in v.reasons)


def test_paired_champion_category_missing_from_candidate_still_fails():
    cand = {k: v for k, v in _metrics().items() if k != "weapon"}
    paired = {k: d for k, d in _paired().items() if k != "weapon"}
    v = gate(cand, **FLOORS, champion=_metrics(), paired=paired)
    assert _failed(v) == [("weapon", "present")]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"champion": None}, "champion's metrics too"),
        ({"regression_metric": "recall"}, "regression_metric 'recall'"),
        ({"champion": {"promo_spam": _row()}}, "do not share"),
    ],
)
def test_paired_must_fit_the_metrics(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gate(_metrics(), **FLOORS, **({"champion": _metrics(), "paired": _paired()} | kwargs))


def test_legacy_point_comparison_notes_that_no_paired_comparison_was_possible():
    v = gate(_metrics(), **FLOORS, champion=_metrics(), champion_label="champion v3")
    assert v.passed
    assert any("no paired comparison with champion v3 was possible" in r for r in v.reasons)
    assert all(c["method"] == "point_estimate" for c in v.checks if c["check"] == "regression")


def test_legacy_comparison_on_different_holdouts_fails():
    champ = _metrics(weapon=_row(support=40))
    v = gate(_metrics(weapon=_row(support=38)), **FLOORS, champion=champ)
    assert _failed(v) == [("weapon", "regression")]
    assert any("different holdouts" in r for r in v.reasons)


def _json_plain(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_json_plain(v) for v in value)
    return value is None or type(value) in (bool, int, float, str)


def test_verdict_with_paired_checks_is_json_ready():
    paired = _paired(promo_spam=_diff(-0.041, -0.080, -0.004))
    rows = _evidenced(weapon=_bounded(support=np.int64(5), precision_low=np.float64(0.96)))
    v = gate(rows, **FLOORS | {"min_support": 20, "decide_on": "lower_bound"}, champion=rows, paired=paired)
    assert not v.passed
    assert _json_plain(v.to_dict())
    json.dumps(v.to_dict(), allow_nan=True)


# --- gate_from_config with per-image scores: the paired bootstrap end to end ---


NAMES = ("clean", "promo_spam", "disgusting", "weapon")


def _scored(probs: np.ndarray, y: np.ndarray, *, names=NAMES, threshold: float = 0.5) -> ScoredHoldout:
    ids = np.array([f"img{i:04d}" for i in range(len(y))])
    cats = [n for n in names if n != "clean"]
    return ScoredHoldout.from_probs(
        image_ids=ids, y_index=y, probs=probs, class_names=names, thresholds=dict.fromkeys(cats, threshold)
    )


def _model(y: np.ndarray, signal: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(y), len(NAMES)))
    logits[np.arange(len(y)), y] += signal
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def _holdout(n: int = 600) -> np.ndarray:
    return np.random.default_rng(1).choice(len(NAMES), size=n, p=[0.55, 0.15, 0.15, 0.15])


def test_gate_from_config_with_scores_reordered_champion_is_the_same_model():
    y = _holdout()
    probs = _model(y, 2.0, seed=3)
    cand = _scored(probs, y)
    # The champion is the same model, trained with another label order: columns and names
    # permuted together. Matched by name, the difference is exactly 0 everywhere.
    perm = [0, 3, 1, 2]
    names = tuple(NAMES[i] for i in perm)
    champ = _scored(probs[:, perm], np.argsort(perm)[y], names=names)
    metrics = {c: _row(support=int((y == NAMES.index(c)).sum())) for c in NAMES[1:]}
    cfg = GateConfig(min_precision=0.5, min_recall=0.5, decide_on="point", bootstrap_resamples=200)
    v = gate_from_config(metrics, cfg, champion=metrics, candidate_scores=cand, champion_scores=champ)
    assert v.passed, v.reasons
    for check in (c for c in v.checks if c["check"] == "regression"):
        assert (check["point"], check["ci_low"], check["ci_high"]) == (0.0, 0.0, 0.0)


def test_gate_from_config_with_scores_catches_a_worse_candidate():
    y = _holdout()
    good, weak = _model(y, 3.0, seed=3), _model(y, 1.0, seed=4)
    metrics = {c: _row(support=int((y == NAMES.index(c)).sum())) for c in NAMES[1:]}
    cfg = GateConfig(min_precision=0.5, min_recall=0.5, decide_on="point", bootstrap_resamples=200)
    v = gate_from_config(
        metrics, cfg, champion=metrics, candidate_scores=_scored(weak, y), champion_scores=_scored(good, y)
    )
    assert {c for c, check in _failed(v) if check == "regression"} == set(NAMES[1:])
    for check in (c for c in v.checks if c["check"] == "regression"):
        assert check["ci_high"] < 0 and check["p_worse"] == 1.0
    # The other way round the candidate is better: no regression.
    v = gate_from_config(
        metrics, cfg, champion=metrics, candidate_scores=_scored(good, y), champion_scores=_scored(weak, y)
    )
    assert v.passed, v.reasons


def test_gate_from_config_scores_need_both_sides_of_the_same_holdout():
    y = _holdout(100)
    scored = _scored(_model(y, 2.0, seed=3), y)
    metrics = {c: _row(support=30) for c in NAMES[1:]}
    cfg = GateConfig(decide_on="point", min_support=0)
    with pytest.raises(ValueError, match="both candidate_scores and champion_scores"):
        gate_from_config(metrics, cfg, champion=metrics, candidate_scores=scored)
    with pytest.raises(ValueError, match="not both"):
        gate_from_config(
            metrics, cfg, champion=metrics, paired=_paired(), candidate_scores=scored, champion_scores=scored
        )
    other = _scored(_model(y[:-1], 2.0, seed=3), y[:-1])
    with pytest.raises(ValueError, match="not the same holdout"):
        gate_from_config(metrics, cfg, champion=metrics, candidate_scores=scored, champion_scores=other)


def test_different_holdout_is_refused_not_compared():
    row = {
        "precision": 0.99,
        "recall": 0.99,
        "pr_auc": 0.99,
        "support": 50,
        "precision_ci_low": 0.95,
        "recall_ci_low": 0.95,
    }
    verdict = gate(
        {"weapon": row},
        min_precision=0.5,
        min_recall=0.5,
        champion_label="champion v3",
        holdout_mismatch="hd-aaa vs hd-bbb",
    )
    assert not verdict.passed
    assert [c["check"] for c in verdict.checks if not c["passed"]] == ["same_holdout"]
    assert "another holdout" in verdict.reasons[0] and "--rebaseline" in verdict.reasons[0]
    with pytest.raises(ValueError, match="not comparable"):
        gate({"weapon": row}, min_precision=0.5, min_recall=0.5, champion={"weapon": row}, holdout_mismatch="x")
