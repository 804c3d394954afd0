"""modops.orchestration against real DVC (a throwaway project); the slow test adds real Airflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from modops.config import Settings
from modops.orchestration import (
    STAGES,
    DagRunFailed,
    StageFailed,
    _stream,
    airflow_env,
    dag_test,
    ensure_airflow_db,
    project_dir,
    run_stage,
    task_report,
)

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable

# Stage commands of the throwaway project; names must be in STAGES, which run_stage enforces.
# Bare `python`, as in the real dvc.yaml: run_stage must resolve it to this environment's.
_OK = "python -c \"import os, sys; open('out.txt', 'w').write(os.environ['TOKEN'] + '|' + sys.prefix)\""
_FAIL = f"""{PY} -c "import sys; print('bad-marker from the stage'); sys.exit(3)" """
_SLOW = f"""{PY} -c "import time; time.sleep(60)" """


def _dvc_project(root: Path, stages: dict[str, dict]) -> Path:
    """A DVC project without git in ``root`` whose dvc.yaml holds ``stages``."""
    root.mkdir(parents=True, exist_ok=True)
    dvc = Path(PY).parent / "dvc"
    subprocess.run(
        [str(dvc), "init", "--no-scm", "-q"], cwd=root, check=True, env={**os.environ, "DVC_NO_ANALYTICS": "true"}
    )
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    return root


@pytest.fixture(scope="module")
def dvc_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _dvc_project(
        tmp_path_factory.mktemp("dvcproj"),
        {
            "ingest": {"cmd": _OK, "outs": ["out.txt"]},
            "validate": {"cmd": _FAIL},
            "split": {"cmd": _SLOW},
        },
    )


def test_stages_are_the_training_pipeline() -> None:
    assert STAGES == ("ingest", "validate", "cold_start", "split", "noise", "train", "evaluate", "register")


def test_unknown_stage_is_rejected_with_the_valid_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected one of: ingest, validate, .*register"):
        run_stage("trian", project=tmp_path)


def test_stage_runs_then_is_skipped_when_unchanged(dvc_project: Path) -> None:
    first = run_stage("ingest", project=dvc_project, env={"TOKEN": "first"})
    assert (first.stage, first.returncode, first.skipped) == ("ingest", 0, False)
    assert (dvc_project / "out.txt").read_text() == f"first|{sys.prefix}"
    assert first.duration_s > 0
    assert "Running stage 'ingest'" in first.output_tail

    # The env is not a DVC dependency, so DVC must skip the stage and leave out.txt alone.
    second = run_stage("ingest", project=dvc_project, env={"TOKEN": "second"})
    assert second.skipped is True and second.returncode == 0
    assert (dvc_project / "out.txt").read_text().startswith("first|")
    assert "didn't change" in second.output_tail


def test_failing_stage_raises_with_output_tail(dvc_project: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="modops.orchestration")
    with pytest.raises(StageFailed) as err:
        run_stage("validate", project=dvc_project)
    assert err.value.stage == "validate"
    assert err.value.returncode != 0
    assert "bad-marker from the stage" in err.value.output_tail
    assert "dvc repro --single-item validate" in str(err.value)
    # Streamed line by line to the logger, which is what lands in the Airflow task log.
    assert any("[validate] bad-marker from the stage" in r.getMessage() for r in caplog.records)


def test_stage_timeout_raises(dvc_project: Path) -> None:
    started = time.monotonic()
    with pytest.raises(StageFailed, match="'split' timed out after 0.5 s"):
        run_stage("split", project=dvc_project, timeout_s=0.5)
    assert time.monotonic() - started < 20  # the 60 s sleep was not waited for


def test_timeout_kills_the_whole_process_tree(tmp_path: Path) -> None:
    """dvc runs the stage as its child: killing dvc alone would orphan a training run."""
    spawn = (
        "import subprocess, sys, time; "
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], "
        "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
        "print(c.pid, flush=True); time.sleep(60)"
    )
    code, tail, _, timed_out = _stream([PY, "-c", spawn], cwd=tmp_path, env=os.environ, timeout_s=1.5, prefix="")
    assert timed_out and code != 0
    assert not _alive(int(tail[0]), grace_s=5.0), "the stage's child outlived the timeout"


def _alive(pid: int, *, grace_s: float) -> bool:
    """Whether ``pid`` is still running (not gone, not a zombie) after up to ``grace_s``."""
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            return False
        time.sleep(0.1)
    return True


def test_project_dir_prefers_env(tmp_path: Path) -> None:
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    assert project_dir({"MODOPS_PROJECT_DIR": str(tmp_path)}) == tmp_path.resolve()


def test_project_dir_env_without_dvc_yaml_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no dvc.yaml.*repo root"):
        project_dir({"MODOPS_PROJECT_DIR": str(tmp_path)})


def test_project_dir_walks_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if (REPO / "dvc.yaml").is_file():
        # An editable install finds the repo from the package's own location.
        assert project_dir({}) == REPO
    else:
        nested = tmp_path / "a" / "b"
        nested.mkdir(parents=True)
        (tmp_path / "dvc.yaml").write_text("stages: {}\n")
        monkeypatch.chdir(nested)
        assert project_dir({}) == tmp_path.resolve()


def test_airflow_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", raising=False)
    settings = Settings(state_dir=tmp_path / "state")
    env = airflow_env(settings, project=tmp_path)
    home = (tmp_path / "state" / "airflow").resolve()
    assert env["AIRFLOW_HOME"] == str(home)
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(tmp_path.resolve() / "dags")
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{home}/airflow.db"
    assert env["MODOPS_PROJECT_DIR"] == str(tmp_path.resolve())
    assert Path(env["MODOPS_STATE_DIR"]).is_absolute()
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert env["DVC_NO_ANALYTICS"] == "true"
    assert env["GX_ANALYTICS_ENABLED"] == "False"
    assert all(isinstance(v, str) for v in env.values())
    assert not home.exists(), "airflow_env must only compute variables, not create folders"

    # Production points Airflow at PostgreSQL; that choice must survive.
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql://db/airflow")
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in airflow_env(settings, project=tmp_path)


_TINY_DAGS = """
from airflow.sdk import dag, task

from modops.orchestration import run_stage


@dag(dag_id="tiny_ok", schedule=None, catchup=False, max_active_runs=1)
def tiny_ok():
    @task
    def ingest():
        r = run_stage("ingest")
        return {"stage": r.stage, "skipped": r.skipped}

    @task
    def report(result):
        print("tiny-ok-report", result["stage"], result["skipped"])

    report(ingest())


@dag(dag_id="tiny_fail", schedule=None, catchup=False, max_active_runs=1,
     default_args={"retries": 0})
def tiny_fail():
    @task
    def validate():
        run_stage("validate")

    @task
    def never():
        print("tiny-fail-should-not-run")

    validate() >> never()


tiny_ok()
tiny_fail()
"""


@pytest.mark.slow
def test_dag_test_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Real `airflow dags test`: Airflow task -> run_stage -> DVC, success and failure."""
    for key in [k for k in os.environ if k.startswith("AIRFLOW")]:
        monkeypatch.delenv(key)
    project = _dvc_project(
        tmp_path / "proj",
        {"ingest": {"cmd": _OK, "outs": ["out.txt"]}, "validate": {"cmd": _FAIL}},
    )
    (project / "dags").mkdir()
    (project / "dags" / "tiny.py").write_text(_TINY_DAGS)
    settings = Settings(state_dir=tmp_path / "state")
    timings: dict[str, float] = {}

    t0 = time.monotonic()
    assert ensure_airflow_db(settings, project) is True
    timings["db migrate"] = time.monotonic() - t0
    t0 = time.monotonic()
    assert ensure_airflow_db(settings, project) is False  # stamp matches: no second migrate
    timings["db check"] = time.monotonic() - t0

    t0 = time.monotonic()
    monkeypatch.setenv("TOKEN", "from-airflow")  # reaches the stage through airflow and dvc
    ok = dag_test("tiny_ok", settings=settings, project=project, logical_date="2026-01-01")
    timings["dags test ok"] = time.monotonic() - t0
    assert ok.returncode == 0
    assert "tiny-ok-report ingest False" in ok.stdout
    assert (project / "out.txt").read_text() == f"from-airflow|{sys.prefix}"

    t0 = time.monotonic()
    with pytest.raises(DagRunFailed, match="a task failed") as err:
        dag_test("tiny_fail", settings=settings, project=project, logical_date="2026-01-01")
    timings["dags test fail"] = time.monotonic() - t0
    assert err.value.returncode != 0
    assert "bad-marker from the stage" in err.value.output  # DVC output reached the task log
    assert "tiny-fail-should-not-run" not in err.value.output

    missing = dag_test("no_such_dag", settings=settings, project=project, check=False)
    assert missing.returncode != 0
    print("timings (s):", {k: round(v, 1) for k, v in timings.items()})
    assert timings["db check"] < 1.0


@pytest.mark.parametrize(
    ("steps", "suffix"),
    [
        ({}, ""),
        ({"steps_per_epoch": 100, "planned_steps_per_epoch": 100}, ""),
        ({"steps_per_epoch": 62, "planned_steps_per_epoch": 100}, " (62/100 steps an epoch within train.max_minutes)"),
    ],
)
def test_train_line_says_when_the_time_cap_shortened_the_epochs(tmp_path: Path, steps: dict, suffix: str) -> None:
    metrics = {"trainer": "supervised", "members": ["model:cnn_small@128+cbam"], "best_val_macro_pr_auc": 0.5, **steps}
    (tmp_path / "models").mkdir()
    (tmp_path / "models/train_metrics.json").write_text(json.dumps(metrics))
    report = task_report("train", skipped=False, duration_s=1.0, project=tmp_path)
    assert report["figure"] == "supervised model:cnn_small@128+cbam: val macro PR-AUC 0.500" + suffix


def test_retrain_is_wanted_only_when_a_round_brought_labels(tmp_path):
    from modops.orchestration import retrain_wanted

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert retrain_wanted({"labelled": 12}, project=tmp_path) is True
    assert retrain_wanted({"labelled": 0}, project=tmp_path) is False
    params["relabel"]["retrain"] = False
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert retrain_wanted({"labelled": 12}, project=tmp_path) is False
