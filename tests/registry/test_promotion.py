"""MLflow registry: packaging, aliases, idempotency, and the documented loader in a fresh process."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys

import pandas as pd
import pytest
import torch

from modops.config import load_settings
from modops.models import MemberSpec, ModelSpec, create_model, load_predictor, save_members
from modops.registry.promotion import CHALLENGER, CHAMPION, champion_version, register_candidate
from modops.registry.tracking import configure_mlflow
from tests.conftest import image_bytes

CLASSES = ("clean", "promo_spam", "weapon")


def _model_dir(tmp_path, seed: int, *, cascade: bool = False):
    torch.manual_seed(seed)
    d = tmp_path / f"model{seed}{'c' if cascade else ''}"
    if cascade:
        members = (
            MemberSpec("stage1", "cnn_small", 32, weights="stage1.safetensors"),
            MemberSpec("stage2", "mobilenet_v3_small", 32, weights="stage2.safetensors"),
        )
        spec = ModelSpec(
            CLASSES, members, kind="cascade", combine={"rule": "band", "low": 0.0, "high": 1.0, "fuse": "mean"}
        )
        nets = {
            "stage1": create_model("cnn_small", num_classes=3),
            "stage2": create_model("mobilenet_v3_small", num_classes=3),
        }
    else:
        spec = ModelSpec(CLASSES, (MemberSpec("model", "mobilenet_v3_small", 32),))
        nets = {"model": create_model("mobilenet_v3_small", num_classes=3)}
    save_members(nets, spec, d)
    return d


def _register(d, *, passed: bool, sha: str, eval_dir=None):
    return register_candidate(
        d,
        eval_dir=eval_dir,
        name="m",
        thresholds={"promo_spam": 0.5, "weapon": 0.0},
        weights_sha=sha,
        passed=passed,
        reasons=("because",),
        tags={"modops.data_version": "abc"},
        metrics={"holdout.weapon.recall": 0.9},
    )


@pytest.fixture()
def mlflow_state():
    settings = load_settings()
    configure_mlflow(settings)
    return settings


def test_pass_promotes_fail_leaves_champion(mlflow_state, tmp_path):
    first = _register(_model_dir(tmp_path, 0), passed=True, sha="a" * 64)
    assert first.passed and set(first.aliases) == {CHAMPION, CHALLENGER}
    assert str(champion_version("m").version) == first.version

    second = _register(_model_dir(tmp_path, 1), passed=False, sha="b" * 64)
    assert second.aliases == (CHALLENGER,)
    assert second.champion_before == second.champion_after == first.version
    mv = champion_version("m")
    assert str(mv.version) == first.version
    from mlflow import MlflowClient

    failed = MlflowClient().get_model_version("m", second.version)
    assert failed.tags["modops.gate"] == "failed" and failed.tags["modops.gate_reasons"] == "because"
    assert failed.tags["modops.data_version"] == "abc"


def test_reregistering_the_same_weights_reuses_the_version(mlflow_state, tmp_path):
    d = _model_dir(tmp_path, 0)
    a = _register(d, passed=True, sha="c" * 64)
    b = _register(d, passed=True, sha="c" * 64)
    assert b.reused_existing_version and a.version == b.version


@pytest.mark.parametrize("cascade", [False, True], ids=["single", "cascade"])
def test_champion_loads_and_scores_in_a_fresh_process(mlflow_state, tmp_path, cascade):
    """The registered pyfunc serves a single model and a cascade alike, and ships no demo generator."""
    _register(_model_dir(tmp_path, 0, cascade=cascade), passed=True, sha="d" * 64)
    img = tmp_path / "new.jpg"
    img.write_bytes(image_bytes(5, size=(80, 60)))
    code = f"""
import mlflow, pandas as pd
mlflow.set_tracking_uri({mlflow_state.resolved_tracking_uri!r})
m = mlflow.pyfunc.load_model("models:/m@champion")
out = m.predict(pd.DataFrame({{"path": [{str(img)!r}, "/no/such/file.jpg"]}}))
print(out.to_json(orient="records"))
"""
    # Paths only inside the folder the server allows; "/no/such/file.jpg" lies outside it.
    env = {"MLFLOW_DISABLE_TELEMETRY": "true", "PATH": "/usr/bin:/bin", "MODOPS_PYFUNC_PATH_ROOT": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = pd.read_json(io.StringIO(done.stdout.strip().splitlines()[-1]))
    assert rows.loc[0, "error"] == "" and abs(rows.loc[0, ["p_clean", "p_promo_spam", "p_weapon"]].sum() - 1) < 1e-4
    assert bool(rows.loc[0, "flag_weapon"])  # threshold 0.0 flags everything that decoded
    assert rows.loc[1, "error"] and not rows.loc[1, "flagged"]
    import mlflow

    local = mlflow.artifacts.download_artifacts("models:/m@champion", dst_path=str(tmp_path / "dl"))
    shipped = {p.name for p in (tmp_path / "dl").rglob("*") if p.is_dir()}
    assert "training" in shipped and "demo" not in shipped, local


def test_predict_command_sends_bytes_to_the_champion(mlflow_state, tmp_path, monkeypatch):
    """`modops predict` reads the files itself: the served model reads no paths."""
    from typer.testing import CliRunner

    from modops.cli import app

    _register(_model_dir(tmp_path, 0), passed=True, sha="f" * 64)
    monkeypatch.setenv("MODOPS_MODEL_NAME", "m")
    monkeypatch.delenv("MODOPS_PYFUNC_PATH_ROOT", raising=False)
    (tmp_path / "a.jpg").write_bytes(image_bytes(5, size=(80, 60)))
    (tmp_path / "b.jpg").write_bytes(b"not an image")
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert [r["error"] == "" for r in rows] == [True, False] and "not_an_image" in rows[1]["error"]


def test_evaluation_artifacts_are_logged_with_the_model(mlflow_state, tmp_path):
    from mlflow import MlflowClient
    from PIL import Image

    ev = tmp_path / "eval"
    (ev / "explain").mkdir(parents=True)
    (ev / "metrics.json").write_text("{}")
    Image.new("RGB", (8, 8)).save(ev / "explain" / "weapon_false_positives.png")
    reg = _register(_model_dir(tmp_path, 3), passed=True, sha="e" * 64, eval_dir=ev)
    names = [a.path for a in MlflowClient().list_artifacts(reg.run_id, "evaluation/explain")]
    assert names == ["evaluation/explain/weapon_false_positives.png"]


def test_pyfunc_accepts_base64_and_rejects_bad_frames(tmp_path):
    from modops.registry.pyfunc import predict_frame

    predictor = load_predictor(_model_dir(tmp_path, 0))
    b64 = base64.b64encode(image_bytes(1)).decode()
    out = predict_frame(predictor, pd.DataFrame({"image": [b64, "!!notbase64!!"]}))
    assert out.loc[0, "error"] == "" and "base64" in out.loc[1, "error"]
    with pytest.raises(ValueError, match="'image' or 'path'"):
        predict_frame(predictor, pd.DataFrame({"x": [1]}))


def test_champion_command_explains_a_failed_gate(mlflow_state, tmp_path, monkeypatch):
    """With no champion but a failed candidate, `modops champion` says which floors it missed."""
    from typer.testing import CliRunner

    from modops.cli import app

    _register(_model_dir(tmp_path, 0), passed=False, sha="e" * 64)
    monkeypatch.setenv("MODOPS_MODEL_NAME", "m")
    result = CliRunner().invoke(app, ["champion"])
    assert result.exit_code == 1
    assert "failed the gate" in result.output and "because" in result.output
    # ... and where to look and how to override it, with a reason on record.
    out = " ".join(result.output.split())  # rich may wrap long lines
    assert "index.html" in out and "modops promote 1 --force --reason" in out
