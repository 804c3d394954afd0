"""A relabel round: a scored day's review batch, the reviewers' export, the label store's round N."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from modops.cli import app
from modops.data.labelstore import LabelStore
from tests.conftest import REPO, image_bytes, register_champion

DAY = "2026-12-01"


def _params(tmp_path: Path, **relabel: object) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["relabel"].update({"reviewer": "label_studio", "truth_source": None, **relabel})
    out = tmp_path / "params.yaml"
    out.write_text(yaml.safe_dump(params))
    return out


def _invoke(*args: str) -> dict:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def _scored_day(tmp_path: Path, folder: Path, params: Path) -> Path:
    log = tmp_path / "log"
    _invoke("score", str(folder), "--day", DAY, "--log-dir", str(log), "--params", str(params))
    return log


def _annotated(tasks: list[dict], label_of) -> list[dict]:  # noqa: ANN001
    """A Label Studio JSON export of ``tasks``: one annotation each, by ``label_of(task)``."""
    return [
        {**t, "annotations": [
            {"result": [{"from_name": "label", "to_name": "image", "type": "choices",
                         "value": {"choices": [label_of(t)]}}],
             "completed_by": {"email": "ana@example.com"}, "was_cancelled": False,
             "created_at": "2026-12-02T10:00:00Z"}]}
        for t in tasks
    ]  # fmt: skip


@pytest.fixture
def uploads(tmp_path: Path) -> Path:
    day = tmp_path / "uploads" / DAY
    day.mkdir(parents=True)
    for i in range(6):
        (day / f"u{i}.jpg").write_bytes(image_bytes(i, size=(40 + i, 30)))
    return day


def test_a_round_waits_for_the_export_then_imports_it_once(tmp_path, uploads, monkeypatch):
    monkeypatch.setenv("MODOPS_MODEL_NAME", "relabel-test")
    monkeypatch.setenv("MODOPS_STATE_DIR", str(tmp_path / "state"))
    version = register_champion(tmp_path)
    params, labels = _params(tmp_path), tmp_path / "labels"
    log = _scored_day(tmp_path, uploads, params)
    common = ["--day", DAY, "--labels", str(labels), "--params", str(params)]
    _invoke("select", *common, "--log-dir", str(log), "--strategy", "entropy", "--budget", "4")
    batch = tmp_path / "state" / "relabel" / f"day={DAY}" / f"model_version={version}"
    assert json.loads((batch / "summary.json").read_text())["round"] == 1

    waiting = json.loads(_invoke("relabel", *common).output.splitlines()[-1])
    assert waiting["waiting"] is True and waiting["imported"] == 0
    assert LabelStore(labels).batches() == []

    tasks = json.loads((batch / "tasks.json").read_text())
    (batch / "export.json").write_text(json.dumps(_annotated(tasks, lambda t: "promo_spam")))
    done = json.loads(_invoke("relabel", *common).output.splitlines()[-1])
    assert done["waiting"] is False and done["round"] == 1 and done["labelled"] == 4 and done["imported"] == 4
    events = LabelStore(labels).events()
    assert set(events["source"]) == {"reviewer"} and set(events["round"]) == {1}
    assert set(events["who"]) == {"ana@example.com"} and set(events["label"]) == {"promo_spam"}
    assert sorted(events["image_id"]) == sorted(t["data"]["image_id"] for t in tasks)
    # The round names the model that selected it (train.warm_start fine-tunes that one).
    assert LabelStore(labels).rounds() == {
        1: {
            "round": 1,
            "model_name": "relabel-test",
            "model_version": version,
            "day": DAY,
            "reviewer": "label_studio",
            "batch": f"relabel/day={DAY}/model_version={version}",
        }
    }
    # The decided images join the pool: copied, content-addressed, to ingest.reviewed_source.
    copied = sorted(p.stem for p in (tmp_path / "data" / "reviewed").rglob("*.jpg"))
    assert copied == sorted(events["image_id"]) and done["admitted"]["written"] == 4

    # Idempotent: the same export again adds nothing; selecting again keeps the batch's round.
    again = json.loads(_invoke("relabel", *common).output.splitlines()[-1])
    assert again["imported"] == 0 and len(LabelStore(labels).batches()) == 1
    assert again["admitted"] == {**done["admitted"], "written": 0, "present": 4}
    _invoke("select", *common, "--log-dir", str(log), "--strategy", "entropy", "--budget", "4")
    assert json.loads((batch / "summary.json").read_text())["round"] == 1
    # The version before the round rebuilds exactly: nothing labelled.
    assert LabelStore(labels).snapshot(as_of="2026-12-02T09:00:00Z").empty


def test_a_csv_export_and_the_next_round(tmp_path, uploads, monkeypatch):
    monkeypatch.setenv("MODOPS_MODEL_NAME", "relabel-csv")
    monkeypatch.setenv("MODOPS_STATE_DIR", str(tmp_path / "state"))
    register_champion(tmp_path)
    params, labels = _params(tmp_path, export="{batch}/reviewed.csv"), tmp_path / "labels"
    LabelStore(labels).append(
        pd.DataFrame(
            {"image_id": ["ab" * 32], "label": ["clean"], "source": ["reviewer"], "who": ["bo"],
             "when": ["2026-11-01T00:00:00Z"], "round": [3]}
        ),
        source_name="reviewer",
    )  # fmt: skip
    log = _scored_day(tmp_path, uploads, params)
    common = ["--day", DAY, "--labels", str(labels), "--params", str(params)]
    out = tmp_path / "batch"
    _invoke("select", *common, "--log-dir", str(log), "--budget", "6", "--strategy", "random", "--out", str(out))
    assert json.loads((out / "summary.json").read_text())["round"] == 4  # after the store's round 3
    tasks = json.loads((out / "tasks.json").read_text())
    with (out / "reviewed.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image_id", "label", "annotator"])
        for t in tasks:
            w.writerow([t["data"]["image_id"], "weapon", "cy"])
    done = json.loads(_invoke("relabel", *common, "--batch", str(out)).output.splitlines()[-1])
    assert done["round"] == 4 and done["labelled"] == len(tasks) == 6
    assert set(LabelStore(labels).snapshot().query("round == 4")["label"]) == {"weapon"}


def test_the_demo_oracle_answers_with_the_days_ground_truth(tmp_path, monkeypatch):
    from modops.demo import generate_pool

    monkeypatch.setenv("MODOPS_MODEL_NAME", "relabel-oracle")
    monkeypatch.setenv("MODOPS_STATE_DIR", str(tmp_path / "state"))
    register_champion(tmp_path)
    pool = tmp_path / "days" / DAY
    generate_pool(pool, n_images=40, seed=5, positive_rate=0.2, workers=0)
    truth = {r["path"]: r["true_label"] for r in csv.DictReader((pool / "labels.csv").open())}
    params, labels = (
        _params(tmp_path, reviewer="demo_oracle", truth_source=str(tmp_path / "days" / "{day}")),
        tmp_path / "labels",
    )
    log = _scored_day(tmp_path, pool / "images", params)
    common = ["--day", DAY, "--labels", str(labels), "--params", str(params)]
    _invoke("select", *common, "--log-dir", str(log), "--budget", "10", "--strategy", "random")
    done = json.loads(_invoke("relabel", *common).output.splitlines()[-1])
    assert done["labelled"] == 10 and done["reviewer"] == "demo_oracle"
    scored = pd.read_parquet(next(log.glob(f"day={DAY}/*/predictions.parquet")))
    by_id = dict(zip(scored["image_id"], scored["uri"], strict=True))
    snap = LabelStore(labels).snapshot()
    assert all(truth[f"images/{by_id[i]}"] == lab for i, lab in zip(snap["image_id"], snap["label"], strict=True))
    assert set(snap["who"]) == {"demo-oracle"}


def test_relabel_without_a_batch_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("MODOPS_STATE_DIR", str(tmp_path / "state"))
    result = CliRunner().invoke(
        app, ["relabel", "--day", DAY, "--model-version", "3", "--params", str(REPO / "params.yaml")]
    )
    assert result.exit_code == 1 and "modops select --day 2026-12-01" in result.output


def test_an_upload_changed_since_scoring_is_not_copied_and_says_why(tmp_path, uploads, monkeypatch):
    monkeypatch.setenv("MODOPS_MODEL_NAME", "relabel-changed")
    monkeypatch.setenv("MODOPS_STATE_DIR", str(tmp_path / "state"))
    register_champion(tmp_path)
    params, labels = _params(tmp_path), tmp_path / "labels"
    log = _scored_day(tmp_path, uploads, params)
    common = ["--day", DAY, "--labels", str(labels), "--params", str(params)]
    out = tmp_path / "batch"
    _invoke("select", *common, "--log-dir", str(log), "--budget", "6", "--strategy", "random", "--out", str(out))
    (uploads / "u0.jpg").write_bytes(image_bytes(99))  # replaced after scoring
    (uploads / "u1.jpg").unlink()  # gone
    tasks = json.loads((out / "tasks.json").read_text())
    (out / "export.json").write_text(json.dumps(_annotated(tasks, lambda t: "clean")))
    done = json.loads(_invoke("relabel", *common, "--batch", str(out)).output.splitlines()[-1])
    assert done["imported"] == 6  # every decision is kept in the label store
    assert done["admitted"]["written"] == 4 and len(done["admitted"]["failed"]) == 2
    assert any("changed since it was scored" in why for why in done["admitted"]["failed"].values())
