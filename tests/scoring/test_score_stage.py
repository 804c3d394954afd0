"""`modops score`: the champion scores a day's upload folder into the prediction log."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from modops.cli import app
from modops.config import load_settings
from tests.conftest import DEMO_CLASSES, REPO, image_bytes, register_champion


@pytest.fixture
def day_folder(tmp_path: Path) -> Path:
    day = tmp_path / "uploads" / "2026-12-01"
    day.mkdir(parents=True)
    for i in range(5):
        (day / f"u{i}.jpg").write_bytes(image_bytes(i, size=(40 + i, 30)))
    (day / "bad.jpg").write_bytes(b"\xff\xd8 not really")
    return day


def _score(*args: str):  # noqa: ANN202
    return CliRunner().invoke(app, ["score", *args, "--params", str(REPO / "params.yaml")])


def test_score_writes_the_day_and_rewrites_it_identically(tmp_path, day_folder, monkeypatch):
    monkeypatch.setenv("MODOPS_MODEL_NAME", "score-test")
    version = register_champion(tmp_path)
    log = tmp_path / "log"
    result = _score(str(day_folder), "--day", "2026-12-01", "--log-dir", str(log), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["model_version"] == version and summary["day"] == "2026-12-01"
    assert (summary["files"], summary["scored"], summary["quarantined"]) == (6, 5, 1)
    part = log / "day=2026-12-01" / f"model_version={version}"
    frame = pd.read_parquet(part / "predictions.parquet")
    assert frame["uri"].tolist() == [f"u{i}.jpg" for i in range(5)]
    assert (frame["model_name"] == "score-test").all()
    assert pd.read_parquet(part / "quarantine.parquet")["uri"].tolist() == ["bad.jpg"]
    before = {p.name: p.read_bytes() for p in part.iterdir()}
    again = _score(str(day_folder), "--day", "2026-12-01", "--log-dir", str(log))
    assert again.exit_code == 0, again.output
    assert {p.name: p.read_bytes() for p in part.iterdir()} == before
    # The model folder was downloaded once, into the state folder's cache.
    assert (load_settings().model_cache_dir / "score-test" / version / "model.json").is_file()


def test_score_without_a_champion_says_what_to_do(tmp_path, day_folder, monkeypatch):
    monkeypatch.setenv("MODOPS_MODEL_NAME", "nobody")
    result = _score(str(day_folder), "--day", "2026-12-01")
    assert result.exit_code == 1
    assert "no champion" in result.output and "modops promote" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--day", "2026-02-30"], "calendar date"),
        (["--day", "12/01/2026"], "YYYY-MM-DD"),
        (["--day", "2026-12-01"], "source folder not found"),
    ],
)
def test_score_refuses_bad_input_clearly(tmp_path, args, message):
    result = _score(str(tmp_path / "missing"), *args)
    assert result.exit_code == 1 and message in result.output
    assert "Traceback" not in result.output


def test_select_exports_a_review_batch_of_the_scored_day(tmp_path, day_folder, monkeypatch):
    from modops.active.labelstudio import parse_export

    monkeypatch.setenv("MODOPS_MODEL_NAME", "select-test")
    version = register_champion(tmp_path)
    log = tmp_path / "log"
    assert _score(str(day_folder), "--day", "2026-12-01", "--log-dir", str(log)).exit_code == 0
    out = tmp_path / "batch"
    result = CliRunner().invoke(
        app,
        ["select", "--day", "2026-12-01", "--strategy", "entropy", "--budget", "3", "--log-dir", str(log),
         "--out", str(out), "--params", str(REPO / "params.yaml")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    tasks = json.loads((out / "tasks.json").read_text())
    assert len(tasks) == 3
    assert all(t["data"]["image"].startswith("/data/local-files/?d=") for t in tasks)
    assert {t["predictions"][0]["model_version"] for t in tasks} == {f"select-test/v{version}"}
    assert '<Choice value="promo_spam"/>' in (out / "labeling_config.xml").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["selected"] == 3 and summary["scored"] == 5
    # A reviewer's Label Studio export of the batch reads back as labels by image id.
    for task in tasks:
        task["annotations"] = [
            {"result": [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": ["clean"]}}],
             "completed_by": 1, "was_cancelled": False, "created_at": "2026-12-02T10:00:00Z"}
        ]  # fmt: skip
    labels = parse_export(tasks)
    assert sorted(labels["image_id"]) == sorted(t["data"]["image_id"] for t in tasks)
    bad = CliRunner().invoke(
        app, ["select", "--day", "2026-12-01", "--strategy", "magic", "--log-dir", str(log), "--out", str(out)]
    )
    assert bad.exit_code == 1 and "confidence_band" in bad.output


def _engine_params(tmp_path: Path, engine: str) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    # fp32 on the CPU: the arithmetic ONNX Runtime uses, so eager and onnx may differ by rounding only.
    params["score"].update({"engine": engine, "device": "cpu", "precision": "fp32", "batch_size": 4, "workers": 0})
    out = tmp_path / f"params-{engine}.yaml"
    out.write_text(yaml.safe_dump(params))
    return out


def _tiny_champion(monkeypatch: pytest.MonkeyPatch, thresholds: dict[str, float]) -> None:
    """The champion is a tiny random-init CNN (CBAM, loss head) with ``thresholds``, on the params' runtime."""
    import torch

    from modops import stages
    from modops.models import MemberSpec, ModelSpec, create_model
    from modops.models.predictor import SingleModel
    from modops.runtime import resolve_runtime

    def champion(settings, *, device: str, precision: str):  # noqa: ANN001, ANN202
        torch.manual_seed(0)
        net = create_model("cnn_small", num_classes=len(DEMO_CLASSES), cbam=True, input_size=32, loss_head=8)
        member = MemberSpec("model", "cnn_small", 32, cbam=True, loss_head=8)
        spec = ModelSpec(DEMO_CLASSES, (member,), thresholds=thresholds)
        return "1", SingleModel(spec, net.eval(), runtime=resolve_runtime(device, precision))

    monkeypatch.setattr(stages, "_champion_predictor", champion)


def _engines_made(monkeypatch: pytest.MonkeyPatch) -> list:
    """Records every predictor the score stage's ``create_engine`` returns."""
    from modops.scoring import engines

    made, create = [], engines.create_engine

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        made.append(create(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(engines, "create_engine", spy)
    return made


def _score_day(tmp_path: Path, folder: Path, engine: str, log: Path) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    from modops.stages import score_stage

    params = _engine_params(tmp_path, engine)
    summary = score_stage(str(folder), day="2026-12-01", params_path=params, settings=load_settings(), log_dir=log)
    part = Path(summary["partition"])
    return summary, pd.read_parquet(part / "predictions.parquet"), pd.read_parquet(part / "quarantine.parquet")


def test_score_with_the_onnx_engine_writes_the_eager_decisions(tmp_path, monkeypatch, caplog):
    folder = tmp_path / "uploads"
    folder.mkdir()
    for i in range(12):
        (folder / f"u{i:02d}.jpg").write_bytes(image_bytes(i, size=(40 + 3 * i, 60 - 2 * i)))
    (folder / "bad.jpg").write_bytes(b"\xff\xd8 not really")
    # Thresholds halfway between neighbouring eager scores, so each category flags some uploads and not others.
    _tiny_champion(monkeypatch, {})
    _, probe, _ = _score_day(tmp_path, folder, "eager", tmp_path / "probe")
    thresholds = {}
    for k, cat in enumerate(DEMO_CLASSES[1:]):
        s = np.sort(probe[f"p_{cat}"].to_numpy())
        j = 3 + 3 * k  # each category splits elsewhere
        assert s[j] + 1e-5 < s[j + 1], f"{cat} scores too close to split; pick another seed"
        thresholds[cat] = float(s[j] + s[j + 1]) / 2
    _tiny_champion(monkeypatch, thresholds)
    made = _engines_made(monkeypatch)
    want = _score_day(tmp_path, folder, "eager", tmp_path / "eager")
    with caplog.at_level(logging.WARNING, logger="modops.scoring.engines"):
        got = _score_day(tmp_path, folder, "onnx", tmp_path / "onnx")
    assert not caplog.records, "the onnx engine fell back to eager"
    assert not hasattr(made[0].members[0], "runner") and hasattr(made[1].members[0], "runner")
    decisions = ["uri", "image_id", *(f"flag_{c}" for c in DEMO_CLASSES[1:]), "flagged", "category", "stage2"]
    assert want[1]["flagged"].any() and not want[1]["flagged"].all()
    assert got[1][decisions].equals(want[1][decisions])
    numeric = [c for c in want[1].columns if c.startswith(("p_", "emb_"))] + ["predicted_loss"]
    np.testing.assert_allclose(got[1][numeric], want[1][numeric], atol=1e-4)
    assert got[2].equals(want[2]) and got[2]["uri"].tolist() == ["bad.jpg"]
    same = ("files", "scored", "quarantined", "flagged", "flagged_by_category", "thresholds")
    assert {k: got[0][k] for k in same} == {k: want[0][k] for k in same}


def test_score_falls_back_to_eager_when_the_engine_cannot_take_the_model(tmp_path, day_folder, monkeypatch, caplog):
    from modops.scoring import engines

    def refuse(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("Exporting the operator 'aten::magic' to ONNX opset version 17 is not supported")

    _tiny_champion(monkeypatch, {"promo_spam": 0.25})
    made = _engines_made(monkeypatch)
    monkeypatch.setattr(engines, "export_onnx", refuse)
    with caplog.at_level(logging.WARNING, logger="modops.scoring.engines"):
        summary, predictions, _ = _score_day(tmp_path, day_folder, "onnx", tmp_path / "log")
    assert summary["scored"] == 5 and len(predictions) == 5
    assert not hasattr(made[0].members[0], "runner")  # the predictor itself: eager
    (record,) = caplog.records
    assert "'onnx' could not wrap the model" in record.getMessage() and "aten::magic" in record.getMessage()
    assert "scoring with 'eager'" in record.getMessage()
