"""The CLI turns bad input into one clear line and exit code 1, never a traceback."""

from __future__ import annotations

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
        "split",
        "train",
        "evaluate",
        "register",
        "run-dag",
        "champion",
        "predict",
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


def test_predict_missing_file(tmp_path):
    result = _run("predict", str(tmp_path / "nope.jpg"), "--model-uri", "models:/x@champion")
    assert result.exit_code == 1
