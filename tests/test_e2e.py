"""End-to-end smoke: the training DAG through Airflow (`dags test`) and DVC on the small pool.

Runs in a throwaway copy of the repository, so the developer's data/, models/ and .modops/
are never touched. Checks the issue's "done when": champion resolves and scores a new image
in a fresh process, `dvc repro` then finds everything up to date, and changing one training
parameter re-runs only train and the stages after it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _copy_repo(dst: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, files):
        src = REPO / name.decode()
        if src.is_file():
            (dst / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / name.decode())
    # Work tree files written this session but not yet committed still belong to the code under test.
    for folder in ("src", "dags", "pipelines"):
        shutil.copytree(REPO / folder, dst / folder, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy2(REPO / name, dst / name)
    shutil.copytree(REPO / ".dvc", dst / ".dvc", dirs_exist_ok=True, ignore=shutil.ignore_patterns("cache", "tmp"))


def _run(args: list[str], *, cwd: Path, env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


@pytest.mark.e2e
@pytest.mark.slow
def test_training_dag_end_to_end(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    _copy_repo(project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"].update({"backbone": "cnn_small", "image_size": 32, "epochs": 1, "samples_per_epoch": 512})
    params["train"]["mean_teacher"]["max_unlabeled"] = 200
    params["train"]["ohem_cascade"].update(
        {"stage2_image_size": 32, "stage2_epochs": 1, "stage2_samples_per_epoch": 256, "mine_max_images": 200}
    )
    params["train"]["ohem_cascade"].update({"hard_examples": 64, "balanced_examples": 64})
    params["cold_start"].update({"steps": 20, "image_size": 32, "per_category": 10, "pool_negatives": 100})
    params["evaluate"]["explain_examples"] = 2
    params["validate"]["min_count_per_class"] = 5
    # A 1-epoch model on 500 images: open the floors here; the gate logic has its own tests.
    params["gate"].update({"min_precision": 0.0, "min_recall": 0.0, "min_pr_auc": 0.0, "category_floors": {}})
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "MODOPS_STATE_DIR": str(tmp_path / "state"),
        "MODOPS_PROJECT_DIR": str(project),
    }
    # A real git repo, as in a clone: DVC behaves differently with and without one.
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    _run([*git, "init", "-q"], cwd=project, env=env)
    _run([*git, "add", "-A"], cwd=project, env=env)
    _run([*git, "commit", "-qm", "snapshot"], cwd=project, env=env)
    _run(
        [
            str(BIN / "modops"),
            "demo-data",
            "--out",
            "data/raw",
            "--size",
            "small",
            "--n-images",
            "500",
            "--positive-rate",
            "0.12",
            "--seed",
            "3",
            "--labelled-fraction",
            "0.8",
            "--seeds-per-category",
            "5",
        ],
        cwd=project,
        env=env,
    )
    _run([str(BIN / "modops"), "run-dag", "modops_training"], cwd=project, env=env, timeout=1500)

    champion = json.loads(_run([str(BIN / "modops"), "champion", "--json"], cwd=project, env=env).stdout)
    assert champion["version"] == "1" and "champion" in champion["aliases"]
    assert champion["tags"]["modops.gate"] == "passed"
    assert champion["tags"]["modops.data_version"]
    assert champion["tags"]["modops.label_version"].startswith("lv-")
    cold = json.loads((project / "data/cold_start/metrics.json").read_text())
    assert cold["confirmed"] > 0 and (project / "data/labels/retrieval.parquet").is_file()

    image = next((project / "data/raw/images").rglob("*.jpg"))
    scored = _run([str(BIN / "modops"), "predict", str(image)], cwd=project, env=env).stdout.strip().splitlines()
    row = json.loads(scored[-1])
    assert row["error"] == "" and abs(sum(v for k, v in row.items() if k.startswith("p_")) - 1) < 1e-4

    status = _run([str(BIN / "dvc"), "status"], cwd=project, env=env).stdout
    assert "up to date" in status, status

    params["train"]["seed"] = 1
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = _run([str(BIN / "dvc"), "repro"], cwd=project, env=env).stdout
    ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}
    assert ran == {"train", "evaluate", "register"}, out
