"""The CLI turns bad input into one clear line and exit code 1, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modops.cli import app

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, list(args))


def test_help_lists_every_stage():
    out = _run("--help").output
    for cmd in (
        "demo-data",
        "ingest",
        "validate",
        "cold-start",
        "split",
        "train",
        "evaluate",
        "register",
        "run-dag",
        "champion",
        "predict",
        "explain",
        "labels",
        "promote",
        "rollback",
        "audit",
        "publish",
        "pull",
        "dashboard",
        "dvc",
    ):
        assert cmd in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("demo-data", "--size", "huge"), "--size must be 'small' or 'default'"),
        (("ingest", "/no/such/folder"), "source folder not found"),
        (("validate", "/no/such/manifest.parquet"), "manifest not found"),
        (("split", "/no/such/manifest.parquet"), "manifest not found"),
        (("evaluate", "--model", "/no/such/model"), "modops model folder"),
        (("demo-data", "--labelled-fraction", "0"), "labelled_fraction"),
        (("cold-start", "/no/such/manifest.parquet"), "manifest not found"),
        (("explain", "/no/such/image.jpg"), "no such image file"),
        (("labels", "import", "/no/such/export.json"), "no such export file"),
    ],
)
def test_bad_input_is_one_clear_error(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    result = _run(*args)
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_unknown_params_key_names_the_fix(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("ingest:\n  max_pixel: 10\n")
    (tmp_path / "src").mkdir()
    result = _run("ingest", str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--params", str(params))
    assert result.exit_code == 1
    assert "did you mean 'max_pixels'" in result.output


def test_champion_without_a_registry_says_what_to_run():
    result = _run("champion")
    assert result.exit_code == 1
    assert "no champion" in result.output and "make demo" in result.output


def test_champion_summary_keeps_commands_on_one_line(tmp_path, monkeypatch, capsys):
    """The printed commands are copied into a shell: a narrow terminal must not wrap them."""
    from modops.cli import _print_champion
    from modops.config import Settings

    monkeypatch.setenv("COLUMNS", "60")
    deep = tmp_path / ("a-long-state-folder-name" * 3)
    settings = Settings(state_dir=deep)
    info = {
        "model": "m",
        "version": "1",
        "aliases": ["champion"],
        "holdout": {"holdout.weapon.precision": 0.5},
        "tags": {"modops.gate": "passed", "modops.label_version": "lv-" + "0" * 16},
    }
    _print_champion(info, settings)
    lines = capsys.readouterr().out.splitlines()
    mlflow = [line for line in lines if "mlflow ui" in line]
    assert len(mlflow) == 1 and mlflow[0].rstrip().endswith("--port 5000")
    assert any(line.rstrip().endswith("lv-" + "0" * 16) and "gate: passed" in line for line in lines)


def test_predict_missing_file(tmp_path):
    result = _run("predict", str(tmp_path / "nope.jpg"), "--model-uri", "models:/x@champion")
    assert result.exit_code == 1
    assert "no such image file" in result.output and "Traceback" not in result.output


def test_predict_without_a_model_says_what_to_run(tmp_path):
    img = tmp_path / "a.jpg"
    img.write_bytes(b"not read before the model loads")
    result = _run("predict", str(img), "--model-uri", "models:/nope@champion")
    assert result.exit_code == 1
    assert "cannot load model models:/nope@champion" in result.output and "Traceback" not in result.output


def test_labels_import_rejects_upload_source(tmp_path):
    export = tmp_path / "e.csv"
    export.write_text("image_id,label\nabc,clean\n")
    result = _run("labels", "import", str(export), "--source", "upload", "--labels", str(tmp_path / "labels"))
    assert result.exit_code == 2
    assert "upload" in result.output


def test_labels_status_on_a_file_is_a_clear_error(tmp_path):
    not_a_dir = tmp_path / "labels"
    not_a_dir.write_text("x")
    result = _run("labels", "status", "--labels", str(not_a_dir))
    assert result.exit_code == 1 and "Traceback" not in result.output


def test_explain_writes_a_heatmap_for_a_local_model(tmp_path):
    from modops.models import MemberSpec, ModelSpec, create_model, save_members
    from tests.conftest import image_bytes

    spec = ModelSpec(("clean", "weapon"), (MemberSpec("model", "cnn_small", 32),))
    save_members({"model": create_model("cnn_small", num_classes=2)}, spec, tmp_path / "model")
    (tmp_path / "x.jpg").write_bytes(image_bytes(3, size=(50, 40)))
    result = _run(
        "explain", str(tmp_path / "x.jpg"), "--model", str(tmp_path / "model"), "--out", str(tmp_path / "h.png")
    )
    assert result.exit_code == 0, result.output
    assert '"category": "weapon"' in result.output and (tmp_path / "h.png").stat().st_size > 0
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    bad = _run("explain", str(tmp_path / "bad.jpg"), "--model", str(tmp_path / "model"))
    assert bad.exit_code == 1 and "cannot be decoded" in bad.output and "Traceback" not in bad.output


def test_explain_refuses_an_oversized_file_before_reading_it(tmp_path):
    """explain checks the size under the model's decode limits before it reads, like ingest."""
    from dataclasses import replace

    from modops.data.images import DecodeLimits
    from modops.models import MemberSpec, ModelSpec, create_model, save_members

    spec = ModelSpec(("clean", "weapon"), (MemberSpec("model", "cnn_small", 32),))
    spec = replace(spec, decode_limits=DecodeLimits(max_bytes=1000))
    save_members({"model": create_model("cnn_small", num_classes=2)}, spec, tmp_path / "model")
    huge = tmp_path / "huge.jpg"
    with huge.open("wb") as f:  # sparse: 4 GiB on paper, nothing on disk
        f.truncate(4 * 1024**3)
    result = _run("explain", str(huge), "--model", str(tmp_path / "model"), "--out", str(tmp_path / "h.png"))
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "file_too_large" in result.output and "max_bytes" in result.output
    assert not (tmp_path / "h.png").exists()


def test_labels_import_appends_once_and_status_reports_the_version(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    export = tmp_path / "export.csv"
    export.write_text(
        f"image_id,label,annotator\n{'a' * 64},weapon,ann@example.com\n{'b' * 64},clean,ann@example.com\n"
    )
    store = str(tmp_path / "labels")
    first = _run("labels", "import", str(export), "--labels", store)
    assert first.exit_code == 0 and '"imported": 2' in first.output, first.output
    again = _run("labels", "import", str(export), "--labels", store)
    assert '"imported": 0' in again.output  # the store is append-only and idempotent
    status = _run("labels", "status", "--labels", store)
    assert '"n_labelled": 2' in status.output and '"reviewer": 2' in status.output
    assert json.loads(status.output)["rounds"] == []  # round 0: no relabel round
    round2 = _run("labels", "import", str(export), "--labels", store, "--round", "2")
    assert '"imported": 2' in round2.output, round2.output
    # A hand-imported round names no model (a relabel round's record would: train.warm_start reads it).
    assert json.loads(_run("labels", "status", "--labels", store).output)["rounds"] == [{"round": 2}]
    bad = tmp_path / "bad.csv"
    bad.write_text(f"image_id,label\n{'c' * 64},kitten\n")
    refused = _run("labels", "import", str(bad), "--labels", store)
    assert refused.exit_code == 1 and "kitten" in refused.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("rollback", "--reason", "x"), "no champion to roll back"),
        (("promote", "3", "--reason", "x"), "no version"),
        (("dashboard", "build"), "make demo"),
        (("audit",), "make demo"),
    ],
)
def test_registry_commands_without_a_model_are_one_clear_error(args, message):
    result = _run(*args)
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output


def test_promote_needs_a_reason():
    result = _run("promote", "3")
    assert result.exit_code == 2 and "--reason" in result.output


def test_dvc_passthrough_runs_dvc_with_this_environment():
    result = _run("dvc", "version")
    assert result.exit_code == 0
