"""DAG integrity: every file in dags/ parses, follows the house rules, and does no I/O at import.

Airflow reads its configuration when first imported, so the DagBag part runs once, in a fresh
interpreter whose AIRFLOW_HOME is a temporary folder; it reports back as JSON.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from modops.orchestration import DRIFT_ASSET, STAGES, TASKS

REPO = Path(__file__).resolve().parents[1]
DAGS = REPO / "dags"
DAG_FILES = sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))

# Runs in the child interpreter: argv = [out.json, dags folder, *extra files to guard-import].
_PROBE = r"""
import builtins, importlib.util, json, os, pathlib, socket, subprocess, sys

out, dags_folder, *extra = sys.argv[1:]
# Airflow's own import reads its config; that is not the DAG file's I/O, so it happens first.
import airflow.sdk  # noqa: F401
from airflow.dag_processing.dagbag import DagBag


class IOAtImport(RuntimeError):
    pass


def _deny(name):
    def refuse(*args, **kwargs):
        raise IOAtImport(f"{name} called while importing a DAG file")
    return refuse


GUARDED = [
    (builtins, "open"), (pathlib.Path, "open"), (pathlib.Path, "read_text"),
    (pathlib.Path, "read_bytes"), (pathlib.Path, "write_text"), (pathlib.Path, "mkdir"),
    (os, "listdir"), (os, "scandir"), (os, "mkdir"), (os, "makedirs"),
    (subprocess, "run"), (subprocess, "Popen"), (subprocess, "check_output"),
    (socket.socket, "connect"), (socket, "create_connection"),
]


def guarded_import(path):
    saved = [(obj, attr, getattr(obj, attr)) for obj, attr in GUARDED]
    for obj, attr, _ in saved:
        setattr(obj, attr, _deny(f"{getattr(obj, '__name__', obj)}.{attr}"))
    try:
        spec = importlib.util.spec_from_file_location(f"_guarded_{pathlib.Path(path).stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return None
    except BaseException as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        for obj, attr, original in saved:
            setattr(obj, attr, original)


files = sorted(str(p) for p in pathlib.Path(dags_folder).glob("*.py")) + extra
guard = {f: guarded_import(f) for f in files}

bag = DagBag(dag_folder=dags_folder)
dags = {}
for dag_id, dag in bag.dags.items():
    dags[dag_id] = {
        "fileloc": dag.fileloc,
        "tags": sorted(dag.tags or []),
        "doc_md": dag.doc_md or "",
        "max_active_runs": dag.max_active_runs,
        "catchup": dag.catchup,
        "schedule": str(getattr(dag, "schedule", None)),
        "tasks": [
            {
                "task_id": t.task_id,
                "owner": t.owner,
                "retries": t.retries,
                "upstream": sorted(t.upstream_task_ids),
                "outlets": sorted(getattr(o, "name", str(o)) for o in (t.outlets or [])),
                "failure_callbacks": [type(c).__name__ for c in (t.on_failure_callback or [])]
                if isinstance(t.on_failure_callback, list)
                else [type(t.on_failure_callback).__name__] if t.on_failure_callback else [],
            }
            for t in dag.topological_sort()
        ],
    }
pathlib.Path(out).write_text(json.dumps(
    {"guard": guard, "import_errors": {str(k): v for k, v in bag.import_errors.items()},
     "dags": dags}
))
"""

_BAD_DAG = """
from pathlib import Path
SETTINGS = Path(__file__).read_text()  # I/O at import: the guard must catch this
"""

_BAD_DAG_SUBPROCESS = """
import subprocess
VERSION = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True).stdout
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Load dags/ in a clean interpreter with a throwaway AIRFLOW_HOME; return its JSON report."""
    tmp = tmp_path_factory.mktemp("dagbag")
    bad = [tmp / "bad_read.py", tmp / "bad_subprocess.py"]
    bad[0].write_text(_BAD_DAG)
    bad[1].write_text(_BAD_DAG_SUBPROCESS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(tmp / "home"),
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{tmp / 'home' / 'airflow.db'}",
    )
    out = tmp / "report.json"
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(out), str(DAGS), *map(str, bad)],
        env=env,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and out.is_file(), (
        f"DAG probe crashed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    report = json.loads(out.read_text())
    report["bad"] = [str(p) for p in bad]
    return report


def test_dag_files_exist() -> None:
    assert (DAGS / "training.py") in DAG_FILES


def test_no_import_errors(probe: dict) -> None:
    assert probe["import_errors"] == {}, "\n\n".join(f"{f}:\n{err}" for f, err in probe["import_errors"].items())
    assert "modops_training" in probe["dags"]


def test_no_io_at_import(probe: dict) -> None:
    for path in DAG_FILES:
        assert probe["guard"][str(path)] is None, f"{path.name}: {probe['guard'][str(path)]}"


def test_io_guard_catches_io(probe: dict) -> None:
    read, run = (probe["guard"][p] for p in probe["bad"])
    assert read and "IOAtImport" in read and "read_text" in read
    assert run and "IOAtImport" in run and "subprocess.run" in run


def test_every_dag_follows_house_rules(probe: dict) -> None:
    for dag_id, dag in probe["dags"].items():
        assert dag["tags"], f"{dag_id}: add tags=[...]"
        assert len(dag["doc_md"].strip()) > 200, f"{dag_id}: doc_md must explain the DAG to ops"
        assert dag["catchup"] is False, f"{dag_id}: set catchup=False"
        assert dag["max_active_runs"] >= 1
        for t in dag["tasks"]:
            assert t["owner"] and t["owner"] != "airflow", f"{dag_id}.{t['task_id']}: set an owner"
            assert t["retries"] >= 1, f"{dag_id}.{t['task_id']}: set retries >= 1"
            assert "OnCallFailureNotifier" in t["failure_callbacks"], (
                f"{dag_id}.{t['task_id']}: page on-call on failure"
            )


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_schedule_and_concurrency_are_explicit(path: Path) -> None:
    """Airflow's defaults (no schedule, 16 active runs) are easy to inherit by accident."""
    calls = [
        node
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in {"dag", "DAG"}
    ]
    assert calls, f"{path.name} declares no DAG"
    for call in calls:
        keys = {kw.arg for kw in call.keywords}
        missing = {"dag_id", "schedule", "max_active_runs", "catchup"} - keys
        assert not missing, f"{path.name} line {call.lineno}: pass {sorted(missing)} explicitly"


def test_training_dag_runs_the_stages_in_order(probe: dict) -> None:
    tasks = probe["dags"]["modops_training"]["tasks"]
    assert [t["task_id"] for t in tasks] == list(TASKS)
    assert [t for t in TASKS if t != "publish"] == list(STAGES)
    # The holdout is published as soon as it is frozen, before anything is judged on it.
    assert TASKS.index("publish") == TASKS.index("split") + 1
    # A strict chain: each task waits for exactly the one before it.
    assert [t["upstream"] for t in tasks] == [[], *([s] for s in TASKS[:-1])]
    assert probe["dags"]["modops_training"]["max_active_runs"] == 1


def test_stages_exist_in_dvc_yaml() -> None:
    dvc_yaml = REPO / "dvc.yaml"
    if not dvc_yaml.is_file():
        pytest.skip("dvc.yaml not present yet")
    stages = list((yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages", {}))
    missing = [s for s in STAGES if s not in stages]
    assert not missing, textwrap.dedent(f"""
        dvc.yaml lacks stages {missing} that the training DAG runs; it has {stages}.
        Keep modops.orchestration.STAGES and dvc.yaml in step.""")


def test_scoring_dag_scores_judges_and_alerts_only_on_drift(probe: dict) -> None:
    dag = probe["dags"]["modops_scoring"]
    assert dag["schedule"] == "@daily" and dag["catchup"] is False
    tasks = {t["task_id"]: t for t in dag["tasks"]}
    assert list(tasks) == ["score", "drift", "drifted", "alert"]
    assert tasks["drift"]["upstream"] == ["score"]
    # The alert (and the asset event) waits for the short-circuit: a quiet day emits nothing.
    assert "drifted" in tasks["alert"]["upstream"]
    assert tasks["alert"]["outlets"] == [DRIFT_ASSET]
    assert [t for t, v in tasks.items() if v["outlets"]] == ["alert"]


def test_relabel_dag_runs_on_the_drift_asset(probe: dict) -> None:
    dag = probe["dags"]["modops_relabel"]
    assert DRIFT_ASSET in dag["schedule"] and dag["catchup"] is False
    tasks = {t["task_id"]: t for t in dag["tasks"]}
    assert list(tasks) == ["request", "select", "reviewed", "retrain_wanted", "retrain"]
    assert tasks["select"]["upstream"] == ["request"]
    assert tasks["reviewed"]["upstream"] == ["select"]
    # Retraining waits for the reviewers' labels and the short-circuit (relabel.retrain).
    assert tasks["retrain"]["upstream"] == ["retrain_wanted"]
    assert tasks["retrain_wanted"]["upstream"] == ["reviewed"]
