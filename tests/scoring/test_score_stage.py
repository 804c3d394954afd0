"""`modops score`: the champion scores a day's upload folder into the prediction log."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from modops.cli import app
from modops.config import load_settings
from tests.conftest import REPO, image_bytes, register_champion


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
