"""The dashboard collector against a real (SQLite) MLflow registry: what it reads, what it tolerates, when it fails."""

from __future__ import annotations

import json
import socket
from datetime import datetime
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from PIL import Image

from modops.dashboard import build_site
from modops.registry.dashboard_data import RegistryModelNotFound, collect_dashboard_data

NAME = "moderation"
PR_CSV = "recall,precision,threshold\n1.000000,0.300000,0.100000\n0.500000,0.900000,0.700000\n"
PARAMS_YAML = "# training parameters\ntrain:\n  epochs: 3\n  backbone: cnn_small\n"


def _metrics(recall: float) -> dict:
    row = {
        "precision": 0.9,
        "recall": recall,
        "f1": 0.85,
        "pr_auc": 0.93,
        "threshold": 0.5,
        "support": 40,
        "tp": 32,
        "fp": 4,
        "fn": 8,
        "precision_ci_low": 0.8,
        "precision_ci_high": 0.95,
        "recall_ci_low": recall - 0.1,
        "recall_ci_high": recall + 0.05,
        "val_met_target": True,
    }
    return {"holdout": {"weapon": row}, "n_holdout": 500, "n_val": 400, "label_version": "lv1"}


@pytest.fixture()
def client(tmp_path: Path) -> MlflowClient:
    """A private SQLite registry with artifacts under tmp_path; no global MLflow state is touched."""
    c = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    c.create_experiment("dash", artifact_location=(tmp_path / "artifacts").as_uri())
    return c


def _version(client: MlflowClient, *, tags: dict[str, str], files: dict[str, object], description: str = "") -> str:
    """A run with ``files`` (path -> dict | str | local Path) as artifacts, registered as a new version."""
    exp = client.get_experiment_by_name("dash").experiment_id
    run = client.create_run(exp)
    rid = run.info.run_id
    client.log_text(rid, "stand-in for the pyfunc model", "model/MLmodel")
    for path, content in files.items():
        if isinstance(content, dict):
            client.log_dict(rid, content, path)
        elif isinstance(content, Path):
            client.log_artifact(rid, str(content), path.rsplit("/", 1)[0])
        else:
            client.log_text(rid, str(content), path)
    if not client.search_registered_models(f"name='{NAME}'"):
        client.create_registered_model(NAME)
    mv = client.create_model_version(NAME, source=f"{run.info.artifact_uri}/model", run_id=rid, description=description)
    for key, value in tags.items():
        client.set_model_version_tag(NAME, mv.version, key, value)
    return str(mv.version)


@pytest.fixture()
def registry(client: MlflowClient, tmp_path: Path) -> dict:
    """v1: an old version with tags only; v2: the champion with every artifact; v3: a failed candidate, partial."""
    png = tmp_path / "weapon_false_positives.png"
    Image.new("RGB", (6, 4), (200, 10, 10)).save(png)
    v1 = _version(
        client,
        tags={
            "modops.gate": "passed",
            "modops.gate_reasons": "floors met\nno champion",
            "modops.holdout_version": "h0",
        },
        files={},
    )
    gate2 = {"passed": True, "reasons": ["all floors met"], "checks": [{"category": "weapon", "check": "min_recall"}]}
    v2 = _version(
        client,
        tags={
            "modops.gate": "passed",
            "modops.gate_reasons": "all floors met",
            "modops.data_version": "data-abc",
            "modops.holdout_hash": "hold-123",
            "modops.label_version": "lv1",
            "modops.git_revision": "deadbeef",
            "modops.started_from": "modops-moderation/v1",
        },
        files={
            "evaluation/metrics.json": _metrics(0.8),
            "evaluation/gate.json": {"gate": gate2, "champion_version": None, "champion_metrics": None},
            "evaluation/plots/pr_weapon.csv": PR_CSV,
            "evaluation/explain/weapon_false_positives.png": png,
            "lineage/params.yaml": PARAMS_YAML,
        },
        description="the good one",
    )
    gate3 = {"passed": False, "reasons": ["weapon recall 0.6 < floor 0.7 <b>"], "checks": []}
    v3 = _version(
        client,
        tags={"modops.gate": "failed", "modops.gate_reasons": "weapon recall 0.6 < floor 0.7 <b>"},
        files={
            "evaluation/metrics.json": _metrics(0.6),
            "evaluation/gate.json": {
                "gate": gate3,
                "champion_version": v2,
                "champion_metrics": _metrics(0.8)["holdout"],
            },
        },
    )
    client.set_registered_model_alias(NAME, "champion", v2)
    client.set_registered_model_alias(NAME, "challenger", v3)
    return {"v1": v1, "v2": v2, "v3": v3, "gate2": gate2, "gate3": gate3, "png": png}


AUDIT = [
    {
        "when": "2026-01-02T00:00:00+00:00",
        "who": "bob",
        "action": "gate_failed",
        "alias": "champion",
        "from_version": "2",
        "to_version": "3",
        "reason": "recall",
    }
]


def test_collects_every_version_with_artifacts_and_tags(client, registry, tmp_path):
    data = collect_dashboard_data(NAME, client=client, work_dir=tmp_path / "work", audit=AUDIT, generated_at="G")
    assert data.model_name == NAME and data.generated_at == "G" and data.audit == AUDIT
    assert [v.version for v in data.versions] == ["3", "2", "1"]  # newest first
    assert data.champion == "2"

    v2 = data.version("2")
    assert v2.aliases == ["champion"] and v2.description == "the good one"
    assert v2.gate == registry["gate2"] and v2.metrics == _metrics(0.8)
    assert v2.pr_curves == {
        "weapon": [
            {"recall": 1.0, "precision": 0.3, "threshold": 0.1},
            {"recall": 0.5, "precision": 0.9, "threshold": 0.7},
        ]
    }
    assert Path(v2.explain_images["weapon_false_positives"]).read_bytes() == registry["png"].read_bytes()
    assert v2.lineage == {
        "data_version": "data-abc",
        "holdout_hash": "hold-123",
        "label_version": "lv1",
        "git_revision": "deadbeef",
        "started_from": "modops-moderation/v1",
        "params": PARAMS_YAML,
    }
    assert v2.run_id and datetime.fromisoformat(v2.created_at).tzinfo is not None


def test_missing_artifacts_are_tolerated(client, registry, tmp_path):
    data = collect_dashboard_data(NAME, client=client, work_dir=tmp_path / "work")
    v3 = data.version("3")
    assert v3.aliases == ["challenger"] and v3.gate == registry["gate3"]
    assert v3.champion_version == "2" and v3.champion_metrics == _metrics(0.8)["holdout"]
    # No curves or Grad-CAM of its own; the overlay uses the compared champion's own curves.
    assert v3.pr_curves == {} and v3.explain_images == {}
    assert v3.champion_pr_curves == data.version("2").pr_curves
    assert "params" not in v3.lineage

    v1 = data.version("1")  # registered before any evaluation artifacts were logged
    assert v1.metrics is None and v1.champion_version is None and v1.pr_curves == {}
    assert v1.gate == {"passed": True, "reasons": ["floors met", "no champion"], "checks": []}
    assert v1.lineage == {"holdout_hash": "h0"}  # the older tag name is read too

    index = build_site(data, tmp_path / "site")  # and the collected data renders
    assert "not recorded" in (index.parent / "versions" / "1.html").read_text()
    assert (index.parent / "versions" / "2" / "explain" / "weapon_false_positives.png").is_file()


def test_unknown_model_says_to_train_first(client, tmp_path):
    with pytest.raises(RegistryModelNotFound, match="make demo"):
        collect_dashboard_data("never-trained", client=client, work_dir=tmp_path)


def test_unreachable_tracking_server_fails_loudly(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = MlflowClient(f"http://127.0.0.1:{port}")
    with pytest.raises(MlflowException) as info:
        collect_dashboard_data(NAME, client=client, work_dir=tmp_path)
    assert not isinstance(info.value, RegistryModelNotFound)
    assert str(port) in str(info.value)


def test_artifact_store_errors_are_not_read_as_missing(client, registry, tmp_path, monkeypatch):
    """A failing artifact listing must not turn into 'not recorded' on the dashboard."""

    def broken(*args, **kwargs):
        raise MlflowException("artifact store unavailable")

    monkeypatch.setattr(client, "list_artifacts", broken)
    with pytest.raises(MlflowException, match="artifact store unavailable"):
        collect_dashboard_data(NAME, client=client, work_dir=tmp_path / "work")


def test_corrupt_metrics_file_is_an_error(client, tmp_path):
    _version(client, tags={}, files={"evaluation/metrics.json": "{not json"})
    with pytest.raises(ValueError, match="metrics.json of v1"):
        collect_dashboard_data(NAME, client=client, work_dir=tmp_path / "work")


def test_collected_data_round_trips_through_json(client, registry, tmp_path):
    """The collected data is plain JSON, so it can be saved next to the site and rebuilt from."""
    from modops.dashboard import DashboardData

    data = collect_dashboard_data(NAME, client=client, work_dir=tmp_path / "work", audit=AUDIT, generated_at="G")
    again = DashboardData.from_dict(json.loads(json.dumps(data.to_dict())))
    assert again == data
