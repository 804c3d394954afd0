"""End to end, the closed loop with a real Airflow scheduler: `modops demo-drift` on the small pool.

The scoring DAG judges a drifted day and emits the `modops_drift` asset event; the relabel DAG
must then be started *by the scheduler* (`dags test` never starts asset-triggered DAGs), its
round's labels and images must reach the label store and the pool, and the training DAG it
triggers must register a new version. A local webhook receiver must get the on-call alert.
"""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest
import yaml

from tests.test_e2e import BIN, _copy_repo, _run, small_params


@pytest.mark.e2e
@pytest.mark.slow
def test_a_drifted_day_pages_on_call_and_its_relabel_round_retrains(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    _copy_repo(project)
    params = small_params(project)
    params["select"]["budget"] = 60
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    state = tmp_path / "state"
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "MODOPS_STATE_DIR": str(state),
        "MODOPS_PROJECT_DIR": str(project),
    }
    env.pop("MODOPS_ALERT_WEBHOOK_URL", None)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    _run([*git, "init", "-q"], cwd=project, env=env)
    _run([*git, "add", "-A"], cwd=project, env=env)
    _run([*git, "commit", "-qm", "snapshot"], cwd=project, env=env)
    modops = str(BIN / "modops")
    _run(
        [modops, "demo-data", "--out", "data/raw", "--n-images", "500", "--positive-rate", "0.12", "--seed", "3",
         "--labelled-fraction", "0.8", "--seeds-per-category", "5"],
        cwd=project, env=env,
    )  # fmt: skip
    _run([modops, "run-dag", "modops_training"], cwd=project, env=env, timeout=1500)

    story = _run(
        [modops, "demo-drift", "--day", "2026-12-01", "--n-images", "400", "--positive-rate", "0.3",
         "--timeout-min", "20"],
        cwd=project, env=env, timeout=1800,
    )  # fmt: skip
    result = json.loads((state / "demo_drift.json").read_text())
    assert result["runs"]["drift"], story.stdout
    # The relabel run was started by the scheduler on the asset event, then retrained.
    assert result["runs"]["modops_relabel"]["run_id"].startswith("asset_triggered__")
    assert result["runs"]["modops_relabel"]["state"] == result["runs"]["modops_training"]["state"] == "success"
    assert result["alerts_received"] >= 1 and "2026-12-01" in " ".join(result["alert_texts"])
    # The round's labels and images reached the label store and the pool; a new version was judged.
    events = pd.concat(pd.read_parquet(p) for p in (project / "data/labels").glob("*.parquet"))
    reviewed = events[events["source"] == "reviewer"]
    assert len(reviewed) == sum(result["round_labels"].values()) > 0 and set(reviewed["round"]) == {1}
    manifest = pd.read_parquet(project / "data/ingested/manifest.parquet")
    pooled = set(manifest.loc[manifest["uri"].str.startswith("@reviewed/"), "image_id"])
    assert pooled == set(reviewed["image_id"])
    assert result["candidate_version"] == "2" and result["before"]["version"] == "1"
    # The retraining fine-tuned the model that selected the round (train.warm_start: round_model).
    started = json.loads((project / "models/train_metrics.json").read_text())["warm_start"]
    assert started["round"] == 1 and started["model_version"] == "1" and started["from"].endswith("/v1")
    assert 0 <= result["after"]["new_style"]["recall"] <= 1 and result["before"]["new_style"]["n"] > 0
    assert (project / "data/noise/review.csv").is_file()
    assert "recall on the new style" in story.stdout
