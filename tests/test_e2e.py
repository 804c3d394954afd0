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


def small_params(project: Path) -> dict:
    """The project's params.yaml shrunk for a 500-image pool: 32 px, one epoch, open gate floors."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"].update({"backbone": "cnn_small", "image_size": 32, "epochs": 1, "samples_per_epoch": 512})
    params["train"]["mean_teacher"]["max_unlabeled"] = 200
    params["train"]["ohem_cascade"].update(
        {"stage2_image_size": 32, "stage2_epochs": 1, "stage2_samples_per_epoch": 256, "mine_max_images": 200}
    )
    params["train"]["ohem_cascade"].update({"hard_examples": 64, "balanced_examples": 64})
    params["cold_start"].update({"steps": 20, "image_size": 32, "per_category": 10, "pool_negatives": 100})
    params["noise"].update({"steps": 20, "image_size": 32, "folds": 3})
    params["evaluate"]["explain_examples"] = 2
    params["validate"]["min_count_per_class"] = 5
    # A 1-epoch model on 500 images: open the floors here; the gate logic has its own tests.
    params["gate"].update(
        {"min_precision": 0.0, "min_recall": 0.0, "min_pr_auc": 0.0, "category_floors": {}, "min_support": 0}
    )
    return params


@pytest.mark.e2e
@pytest.mark.slow
def test_training_dag_end_to_end(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    _copy_repo(project)
    params = small_params(project)
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
    demo_data = [
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
    ]
    _run(demo_data, cwd=project, env=env)
    run = _run([str(BIN / "modops"), "run-dag", "modops_training"], cwd=project, env=env, timeout=1500)
    # A newcomer's screen: one line per task, not Airflow's internals (those go to a log file).
    shown = (run.stdout + run.stderr).strip().splitlines()
    assert len(shown) <= 12, "\n".join(shown)
    for task in ("ingest", "validate", "cold_start", "split", "publish", "noise", "train", "evaluate", "register"):
        assert any(line.strip().startswith(task) for line in shown), (task, shown)
    assert "success" in shown[-1] and (tmp_path / "state" / "logs").is_dir()

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
    _second_clone_reuses_the_holdout(project, tmp_path / "clone", env=env, demo_data=demo_data, git=git)

    params["train"]["seed"] = 1
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = _run([str(BIN / "dvc"), "repro"], cwd=project, env=env).stdout
    ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}
    assert ran == {"train", "evaluate", "register"}, out

    # Whatever the gate said about v2, a person can make it champion and roll it back; the
    # dashboard shows the move and the numbers of eval/metrics.json.
    modops = [str(BIN / "modops")]
    if json.loads(_run([*modops, "champion", "--json"], cwd=project, env=env).stdout)["version"] != "2":
        _run([*modops, "promote", "2", "--force", "--reason", "e2e: try v2"], cwd=project, env=env)
    _run([*modops, "rollback", "--reason", "e2e: v2 flags too much"], cwd=project, env=env)
    assert json.loads(_run([*modops, "champion", "--json"], cwd=project, env=env).stdout)["version"] == "1"
    trail = [json.loads(x) for x in _run([*modops, "audit", "--json"], cwd=project, env=env).stdout.splitlines()]
    assert (trail[0]["action"], trail[0]["from_version"], trail[0]["to_version"]) == ("rollback", "2", "1")
    _run([*modops, "dashboard", "build"], cwd=project, env=env)
    _dashboard_shows(tmp_path / "state" / "dashboard", json.loads((project / "eval/metrics.json").read_text()))


def _second_clone_reuses_the_holdout(project: Path, clone: Path, *, env: dict, demo_data: list[str], git: list[str]):
    """A second clone on the same state pulls the published outputs and finds every stage up to date."""
    _run([str(BIN / "modops"), "publish"], cwd=project, env=env)  # every output, not only the holdout
    _run([*git, "add", "-f", "dvc.lock"], cwd=project, env=env)
    _run([*git, "commit", "-qm", "pipeline run"], cwd=project, env=env)
    _run(["git", "clone", "-q", str(project), str(clone)], cwd=project.parent, env=env)
    clone_env = {**env, "MODOPS_PROJECT_DIR": str(clone)}
    _run(demo_data, cwd=clone, env=clone_env)  # the same uploads, generated again
    _run([str(BIN / "modops"), "pull"], cwd=clone, env=clone_env)
    status = _run([str(BIN / "dvc"), "status"], cwd=clone, env=clone_env).stdout
    assert "up to date" in status, status
    assert (clone / "data/holdout.parquet").read_bytes() == (project / "data/holdout.parquet").read_bytes()


def _dashboard_shows(site: Path, metrics: dict) -> None:
    """Open the built site in headless chromium: no errors, the rollback listed, v2's numbers shown.

    ``metrics`` is the project's current ``eval/metrics.json``: the rerun that registered v2 wrote it.
    """
    from playwright.sync_api import sync_playwright

    from tests.dashboard.test_browser import ARGS, CHROMIUM, _expected_numbers

    assert Path(CHROMIUM).is_file(), "run `make browser` (apt-get install chromium) for the dashboard check"
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto((site / "index.html").as_uri(), wait_until="load")
        index = page.inner_text("main")
        page.goto((site / "versions" / "2.html").as_uri(), wait_until="load")
        v2 = page.inner_text("main")
        browser.close()
    assert problems == [], problems
    assert "Rolled back" in index
    missing = [n for n in _expected_numbers(metrics) if n not in v2]
    assert not missing, f"v2's page lacks {missing} from eval/metrics.json"
