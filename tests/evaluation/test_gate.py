"""Tests for the promotion gate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modops.config import GateConfig, LabelsConfig
from modops.evaluation.gate import gate, gate_from_config
from modops.evaluation.metrics import evaluate


def _row(precision: float = 0.97, recall: float = 0.96, pr_auc: float = 0.98) -> dict:
    return {"precision": precision, "recall": recall, "f1": 0.965, "pr_auc": pr_auc}


def _metrics(**overrides: dict) -> dict:
    rows = {c: _row() for c in ("promo_spam", "disgusting", "weapon")}
    rows.update(overrides)
    return rows


FLOORS = {"min_precision": 0.95, "min_recall": 0.94}


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
    cfg = GateConfig(min_precision=0.5, min_recall=0.5, max_regression=0.1, regression_metric="f1")
    champ = _metrics(weapon={**_row(), "f1": 1.0})  # candidate f1 0.965: drop 0.035 <= 0.1
    assert gate_from_config(_metrics(weapon=_row(precision=0.6)), cfg, champion=champ).passed
    strict = GateConfig(max_regression=0.01, regression_metric="f1")
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
    verdict = gate(candidate, min_precision=0.0, min_recall=0.0, min_pr_auc=0.03)
    assert not verdict.passed
    assert [r for r in verdict.reasons if r.startswith("b pr_auc")]
    assert gate(candidate, min_precision=0.0, min_recall=0.0, min_pr_auc=0.0).passed


def test_category_floors_override_the_global_ones():
    cand = {
        "weapon": {"precision": 0.6, "recall": 0.3, "pr_auc": 0.35},
        "disgusting": {"precision": 0.97, "recall": 0.95, "pr_auc": 0.99},
    }
    cfg = GateConfig(
        min_precision=0.95, min_recall=0.9, category_floors={"weapon": {"min_precision": 0.5, "min_recall": 0.25}}
    )
    v = gate_from_config(cand, cfg)
    assert v.passed, v.reasons
    assert "weapon: 0.5/0.25/0" in v.reasons[0]
    stricter = GateConfig(min_precision=0.95, min_recall=0.9, category_floors={"weapon": {"min_pr_auc": 0.5}})
    failed = gate_from_config(cand, stricter)
    assert not failed.passed and any("weapon precision" in r for r in failed.reasons)  # global 0.95 still applies
    with pytest.raises(ValueError, match="does not have"):
        gate_from_config(cand, GateConfig(category_floors={"kitten": {"min_recall": 0.1}}))


def test_category_precision_floor_is_never_zero():
    from modops.config import ConfigError, load_section

    with pytest.raises(ConfigError, match="min_precision"):
        load_section({"gate": {"category_floors": {"weapon": {"min_precision": 0.0}}}}, "gate")
