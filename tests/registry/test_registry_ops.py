"""Registry operations a team relies on: crash-safe registration, fail-closed reads, promote, rollback, audit."""

from __future__ import annotations

import pytest
import torch
from mlflow import MlflowClient

from modops.config import load_settings
from modops.models import MemberSpec, ModelSpec, create_model, save_members
from modops.registry import promotion
from modops.registry.audit import read_audit, record_event
from modops.registry.promotion import (
    CHAMPION,
    PromotionError,
    RegistryError,
    champion_version,
    promote_version,
    register_candidate,
    rollback_champion,
)
from modops.registry.tracking import configure_mlflow

CLASSES = ("clean", "weapon")


@pytest.fixture()
def registry():
    configure_mlflow(load_settings())
    return MlflowClient()


def _model(tmp_path, seed: int):
    torch.manual_seed(seed)
    d = tmp_path / f"m{seed}"
    spec = ModelSpec(CLASSES, (MemberSpec("model", "cnn_small", 32),))
    save_members({"model": create_model("cnn_small", num_classes=2)}, spec, d)
    return d


def _register(tmp_path, seed: int, *, passed: bool, failed_checks=()):
    return register_candidate(
        _model(tmp_path, seed),
        name="m",
        thresholds={"weapon": 0.5},
        weights_sha=f"{seed:064d}",
        passed=passed,
        reasons=("why",),
        tags={"modops.holdout_hash": "h1"},
        metrics={"holdout.weapon.recall": 0.5},
        failed_checks=failed_checks,
        gate_record={"gate": {"passed": passed, "reasons": ["why"], "checks": []}},
        description=f"candidate {seed}",
    )


def _versions(client) -> list[str]:
    return sorted(str(v.version) for v in client.search_model_versions("name = 'm'"))


def test_crash_between_creation_and_tagging_leaves_no_duplicate(registry, tmp_path, monkeypatch):
    real = MlflowClient.set_model_version_tag
    calls = {"n": 0}

    def crash_once(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("worker killed")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "set_model_version_tag", crash_once)
    with pytest.raises(RuntimeError, match="worker killed"):
        _register(tmp_path, 1, passed=True)
    assert champion_version("m") is None  # aliases move last
    reg = _register(tmp_path, 1, passed=True)  # the Airflow retry
    assert reg.reused_existing_version
    assert _versions(registry) == [reg.version]
    mv = registry.get_model_version("m", reg.version)
    assert mv.tags["modops.gate"] == "passed" and mv.description == "candidate 1"
    assert mv.tags["modops.holdout_hash"] == "h1"
    # a second retry does not record the moves again
    _register(tmp_path, 1, passed=True)
    assert [e.action for e in read_audit(registry, "m")].count("promote") == 1


def test_unreadable_registry_fails_closed(registry, tmp_path, monkeypatch):
    first = _register(tmp_path, 1, passed=True)

    def locked(self, name):
        raise promotion.MlflowException("database is locked")  # INTERNAL_ERROR, not "no such model"

    monkeypatch.setattr(MlflowClient, "get_registered_model", locked)
    with pytest.raises(RegistryError, match="no alias moved"):
        champion_version("m")
    with pytest.raises(RegistryError):
        _register(tmp_path, 2, passed=True)
    monkeypatch.undo()
    assert str(champion_version("m").version) == first.version
    assert _versions(registry) == [first.version]


def test_no_model_yet_is_not_an_error(registry):
    assert champion_version("never-registered") is None


def test_promote_and_rollback_are_recorded(registry, tmp_path):
    v1 = _register(tmp_path, 1, passed=True).version
    v2 = _register(tmp_path, 2, passed=True).version
    v3 = _register(tmp_path, 3, passed=False, failed_checks=("min_recall",)).version
    assert str(champion_version("m").version) == v2

    back = rollback_champion("m", reason="v2 blocks too many shoes")
    assert (back["from_version"], back["to_version"], back["action"]) == (v2, v1, "rollback")
    assert str(champion_version("m").version) == v1

    with pytest.raises(PromotionError, match="--force"):
        promote_version("m", v3, reason="looks fine")
    assert str(champion_version("m").version) == v1
    forced = promote_version("m", v3, reason="hotfix, recall floor known low", force=True)
    assert "override" in forced["reason"] and str(champion_version("m").version) == v3

    trail = read_audit(registry, "m")
    assert [e.action for e in trail][:2] == ["promote", "rollback"]
    assert trail[1].reason == "v2 blocks too many shoes" and trail[1].who
    assert {e.action for e in trail} >= {"register", "promote", "rollback", "gate_failed"}


def test_rollback_needs_an_earlier_champion(registry, tmp_path):
    _register(tmp_path, 1, passed=True)
    with pytest.raises(PromotionError, match="--to VERSION"):
        rollback_champion("m", reason="x")
    with pytest.raises(PromotionError, match="no version"):
        promote_version("m", "99", reason="x")


def test_rebaseline_accepts_only_a_holdout_mismatch(registry, tmp_path):
    _register(tmp_path, 1, passed=True)
    v2 = _register(tmp_path, 2, passed=False, failed_checks=("same_holdout",)).version
    with pytest.raises(PromotionError, match="--rebaseline"):
        promote_version("m", v2, reason="new holdout")
    moved = promote_version("m", v2, reason="holdout grew with new categories", rebaseline=True)
    assert moved["action"] == "rebaseline" and str(champion_version("m").version) == v2


def test_audit_needs_a_reason(registry, tmp_path):
    _register(tmp_path, 1, passed=True)
    with pytest.raises(ValueError, match="reason"):
        record_event(registry, "m", action="promote", alias=CHAMPION, from_version=None, to_version="1", reason=" ")


def test_register_stage_refuses_a_champion_judged_on_another_holdout(registry, tmp_path):
    from modops.stages import _champion_baseline

    _register(tmp_path, 1, passed=True)  # tagged modops.holdout_hash=h1
    base = _champion_baseline(
        "m",
        "f" * 64,
        "h2",
        metrics={"holdout": {}},
        candidate_scores=None,
        splits=None,
        store=None,
        labels=None,
        cfg=None,
    )
    assert base["metrics"] is None and base["scores"] is None  # never re-scored, never compared
    assert "h1" in base["mismatch"] and "h2" in base["mismatch"] and base["label"] == "champion v1"
    same = _champion_baseline(
        "m",
        f"{1:064d}",
        "h1",
        metrics={"holdout": {"weapon": {}}},
        candidate_scores="cand",
        splits=None,
        store=None,
        labels=None,
        cfg=None,
    )
    assert same["mismatch"] is None and same["scores"] == "cand"  # the same weights: compared with itself
