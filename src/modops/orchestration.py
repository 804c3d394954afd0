"""Glue between Airflow and DVC: run one DVC stage, and run the Airflow CLI on the default setup.

DVC decides what is stale; Airflow decides when and in what order. Each Airflow task therefore
runs exactly one stage with ``dvc repro --single-item <stage>`` in the project folder, and DVC
skips the stage when its dependencies and params are unchanged.

This module imports neither Airflow nor MLflow, so the DAG files stay cheap to parse and the CLI
can drive Airflow through subprocesses without loading it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from contextlib import closing, suppress
from dataclasses import dataclass
from datetime import date, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from modops.config import OFFLINE_ENV, Settings

__all__ = [
    "STAGES",
    "AirflowCommandFailed",
    "DagRunFailed",
    "StageFailed",
    "StageResult",
    "STAGE_MARK",
    "TASKS",
    "airflow_env",
    "dag_test",
    "ensure_airflow_db",
    "project_dir",
    "publish_outputs",
    "run_airflow",
    "task_report",
    "run_stage",
    "DRIFT_ASSET",
    "score_day",
    "judge_drift",
]

log = logging.getLogger(__name__)

#: The DVC stages of the training pipeline, in run order (the names in ``dvc.yaml``).
STAGES: tuple[str, ...] = ("ingest", "validate", "cold_start", "split", "noise", "train", "evaluate", "register")
#: The training DAG's tasks: the stages, plus ``publish`` (push outputs and the frozen holdout
#: to the DVC remote) right after the holdout is frozen, before anything is judged on it.
TASKS: tuple[str, ...] = (*STAGES[:4], "publish", *STAGES[4:])

#: The asset a drifted day emits an event on; the relabel DAG is scheduled on it.
DRIFT_ASSET = "modops_drift"

_TAIL_LINES = 40
_DB_STAMP = ".modops-db-stamp.json"


class StageFailed(RuntimeError):
    """A DVC stage exited non-zero (or timed out); ``output_tail`` holds its last lines."""

    def __init__(self, stage: str, returncode: int, output_tail: str, *, reason: str = "") -> None:
        self.stage = stage
        self.returncode = returncode
        self.output_tail = output_tail
        why = reason or f"exited with code {returncode}"
        super().__init__(
            f"DVC stage '{stage}' {why}. Last output lines:\n{output_tail}\n"
            f"Re-run it alone with: dvc repro --single-item {stage}"
        )


class AirflowCommandFailed(subprocess.CalledProcessError):
    """An ``airflow`` CLI command exited non-zero; the message carries its last output lines."""

    def __str__(self) -> str:
        tail = "\n".join(str(self.output or "").splitlines()[-_TAIL_LINES:])
        cmd = " ".join(self.cmd) if isinstance(self.cmd, list | tuple) else str(self.cmd)
        return f"`{cmd}` exited with code {self.returncode}. Last output lines:\n{tail}"


class DagRunFailed(AirflowCommandFailed):
    """``airflow dags test`` finished with a failed DAG run, or could not run the DAG at all."""

    def __str__(self) -> str:
        hint = (
            "a task failed; its log is above"
            if "DagRun failed" in str(self.output or "")
            else "the DAG could not be loaded or run (check `airflow dags list-import-errors`)"
        )
        return f"DAG run failed: {hint}.\n{super().__str__()}"


@dataclass(frozen=True)
class StageResult:
    """Outcome of one ``dvc repro --single-item`` call.

    Attributes:
        stage: The DVC stage name.
        returncode: The ``dvc`` exit code (0 on success).
        skipped: True when DVC found the stage unchanged (or restored it from its run cache)
            and did not run its command.
        duration_s: Wall-clock seconds the ``dvc`` call took.
        output_tail: The last lines (at most 40) of the combined stdout/stderr.
    """

    stage: str
    returncode: int
    skipped: bool
    duration_s: float
    output_tail: str


def project_dir(env: Mapping[str, str] | None = None) -> Path:
    """Find the project folder, the one holding ``dvc.yaml``.

    Args:
        env: Environment to read (defaults to ``os.environ``).

    Returns:
        ``$MODOPS_PROJECT_DIR`` when set, else the nearest folder holding ``dvc.yaml`` above this
        file (an editable install), else above the working directory. Absolute.

    Raises:
        FileNotFoundError: When no such folder exists.
    """
    env = os.environ if env is None else env
    if env.get("MODOPS_PROJECT_DIR"):
        root = Path(env["MODOPS_PROJECT_DIR"]).expanduser().resolve()
        if not (root / "dvc.yaml").is_file():
            raise FileNotFoundError(f"MODOPS_PROJECT_DIR={root} has no dvc.yaml; point it at the modops repo root.")
        return root
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for folder in (start, *start.parents):
            if (folder / "dvc.yaml").is_file():
                return folder
    raise FileNotFoundError(
        "could not find dvc.yaml above the modops package or the working directory; "
        "set MODOPS_PROJECT_DIR to the repo root or run from inside it."
    )


def run_stage(
    stage: str,
    *,
    project: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
) -> StageResult:
    """Run one DVC stage with ``dvc repro --single-item``, streaming its output to the log.

    Args:
        stage: One of :data:`STAGES`.
        project: The folder holding ``dvc.yaml``; defaults to :func:`project_dir`.
        env: Extra environment variables for ``dvc``, on top of ``os.environ``; the running
            interpreter's folder is put first on ``PATH`` so ``python`` in ``dvc.yaml`` is it.
        timeout_s: Kill the stage (and its children) after this many seconds; None = no limit.

    Returns:
        The :class:`StageResult`; ``skipped`` says whether DVC found nothing to do.

    Raises:
        ValueError: ``stage`` is not one of :data:`STAGES`.
        StageFailed: ``dvc`` exited non-zero or ran past ``timeout_s``.
    """
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of: {', '.join(STAGES)}")
    root = project_dir() if project is None else Path(project).resolve()
    full_env = {
        **os.environ,
        # dvc.yaml says `python pipelines/...`: put this environment's interpreter first on
        # PATH, since an Airflow worker's PATH need not include the virtualenv.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        # DVC's usage report is a network call from a daemon; the pipeline must run offline.
        "DVC_NO_ANALYTICS": "true",
        **(env or {}),
    }
    prepare_project(root)
    cmd = [_venv_tool("dvc"), "repro", "--single-item", stage]
    log.info("stage %s: running %s in %s", stage, " ".join(cmd), root)
    started = time.monotonic()
    code, tail, seen, timed_out = _stream(
        cmd,
        cwd=root,
        env=full_env,
        timeout_s=timeout_s,
        prefix=f"[{stage}] ",
        scan=_skip_scanner(stage),
    )
    duration = time.monotonic() - started
    tail_text = "\n".join(tail)
    if timed_out:
        raise StageFailed(stage, code, tail_text, reason=f"timed out after {timeout_s:g} s")
    if code != 0:
        raise StageFailed(stage, code, tail_text)
    skipped = bool(seen.get("skip")) and not seen.get("ran")
    log.info("stage %s: %s in %.1f s", stage, "unchanged, skipped" if skipped else "done", duration)
    return StageResult(stage, code, skipped, round(duration, 3), tail_text)


#: Marks the one line per task that ``modops run-dag`` shows out of Airflow's output.
STAGE_MARK = "modops-task:"


def prepare_project(root: Path) -> None:
    """Create the local reviewed-uploads folder (``ingest.reviewed_source``) when it does not exist yet.

    Ingest depends on it in ``dvc.yaml``, and DVC refuses to run a stage whose dependency is
    missing; an empty folder is the true state before the first relabel round.
    """
    from modops.config import load_params, load_section
    from modops.data.sources import is_s3

    params = root / "params.yaml"
    if not params.is_file():
        return
    reviewed = load_section(load_params(params), "ingest").reviewed_source
    if not is_s3(reviewed):
        (root / reviewed).mkdir(parents=True, exist_ok=True)


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _figure_ingest(root: Path) -> str:
    s = _read_json(root / "data/ingested/ingest_summary.json")
    return f"{s['ingested']:,} images ingested, {s['quarantined']:,} quarantined of {s['found']:,}" if s else ""


def _figure_validate(root: Path) -> str:
    s = _read_json(root / "reports/validation/validation.json")
    return f"{len(s.get('checks', []))} checks passed on {s.get('rows', 0):,} rows" if s else ""


def _figure_cold_start(root: Path) -> str:
    s = _read_json(root / "data/cold_start/metrics.json")
    if not s:
        return ""
    # precision_at_k: {category: {"p@10": ..., "p@50": ..., "n_candidates": ...}}; show the deepest cut-off.
    shown = []
    for cat, row in (s.get("precision_at_k") or {}).items():
        cuts = sorted((int(k[2:]), v) for k, v in row.items() if k.startswith("p@") and v == v)  # v == v: not NaN
        if cuts:
            shown.append(f"{cat} {cuts[-1][1]:.2f}@{cuts[-1][0]}")
    return f"{s.get('confirmed', 0)} confirmed by review" + (f"; precision {', '.join(shown)}" if shown else "")


def _figure_split(root: Path) -> str:
    s = _read_json(root / "data/split/label_version.json")
    return f"labels {s.get('id')}, holdout {s.get('holdout_hash')}" if s else ""


def _figure_noise(root: Path) -> str:
    s = _read_json(root / "data/noise/metrics.json")
    if not s:
        return ""
    if not s.get("enabled", True):
        return "off (noise.enabled: false)"
    return f"{s['flagged']} of {s['checked']:,} labels flagged for review ({s.get('action')}): data/noise/review.csv"


def _figure_train(root: Path) -> str:
    s = _read_json(root / "models/train_metrics.json")
    if not s:
        return ""
    figure = f"{s.get('trainer')} {'+'.join(s.get('members', []))}: val macro PR-AUC {s['best_val_macro_pr_auc']:.3f}"
    done, planned = s.get("steps_per_epoch"), s.get("planned_steps_per_epoch")
    if done is not None and planned and done < planned:  # train.max_minutes shortened the epochs
        figure += f" ({done}/{planned} steps an epoch within train.max_minutes)"
    return figure


def _figure_evaluate(root: Path) -> str:
    s = _read_json(root / "eval/metrics.json")
    return ", ".join(f"{c} P {m['precision']:.2f} R {m['recall']:.2f}" for c, m in s.get("holdout", {}).items())


def _figure_register(root: Path) -> str:
    s = _read_json(root / "eval/registration.json")
    if not s:
        return ""
    reg = s["registration"]
    word = "PASSED -> champion" if s["gate"]["passed"] else "FAILED, champion unchanged"
    return f"v{reg['version']} gate {word}"


_FIGURES = {
    "ingest": _figure_ingest,
    "validate": _figure_validate,
    "cold_start": _figure_cold_start,
    "split": _figure_split,
    "noise": _figure_noise,
    "train": _figure_train,
    "evaluate": _figure_evaluate,
    "register": _figure_register,
}


def task_report(task: str, *, skipped: bool, duration_s: float, project: Path | None = None, figure: str = "") -> dict:
    """Log the one line ``modops run-dag`` shows for a finished task and return it as the task's result.

    The key figure is read from the stage's own outputs, so a skipped stage shows what it
    produced last time.
    """
    root = project_dir() if project is None else Path(project)
    if not figure and task in _FIGURES:
        try:
            figure = _FIGURES[task](root)
        except (KeyError, TypeError, ValueError) as exc:  # an older output layout: say so, don't fail the task
            figure = f"(no summary: {type(exc).__name__})"
    report = {"task": task, "skipped": skipped, "duration_s": round(duration_s, 1), "figure": figure}
    log.info("%s %s", STAGE_MARK, json.dumps(report))
    return report


def publish_outputs(*, project: Path | None = None) -> dict[str, Any]:
    """The DAG's ``publish`` task: push the frozen holdout (ids, labels, images) to the DVC remote.

    Idempotent: DVC pushes only what the remote lacks, and the holdout pointer is written once
    (a different holdout already published stops the run: see :mod:`modops.data.holdout`).
    """
    from modops.config import load_settings
    from modops.remote import publish

    root = project_dir() if project is None else Path(project).resolve()
    started = time.monotonic()
    # The holdout and its images now; every other output is pushed by `modops publish`.
    result = publish(load_settings(), project=root, everything=False, who="pipeline")
    log.info("publish: holdout %s on %s (%s)", result.holdout.hash, result.remote, result.dvc_output)
    return task_report(
        "publish",
        skipped=False,
        duration_s=time.monotonic() - started,
        project=root,
        figure=f"holdout {result.holdout.hash} on {result.remote}",
    )


def airflow_env(settings: Settings, *, project: Path) -> dict[str, str]:
    """Environment variables that run Airflow on the embedded default setup, quietly and offline.

    The default is a SQLite metadata database in ``settings.airflow_home``; an
    ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` already in ``os.environ`` (e.g. PostgreSQL in
    production) is left alone.

    Args:
        settings: Deployment settings; ``state_dir`` is resolved against the working directory,
            exactly as :class:`~modops.config.Settings` resolves its other paths.
        project: The repo root; its ``dags/`` folder becomes Airflow's DAG folder.

    Returns:
        Only the variables to add; the caller merges them into the environment of subprocesses.
    """
    root = Path(project).resolve()
    home = settings.airflow_home
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "MODOPS_PROJECT_DIR": str(root),
        "MODOPS_STATE_DIR": str(settings.state_dir.resolve()),
        # Telemetry off. Airflow 3.3 ships no usage-data collection (nothing in its
        # config.yml); these are the switches of the other tools the tasks run.
        **OFFLINE_ENV,
    }
    if not os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"):
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home / 'airflow.db'}"
    return env


def run_airflow(
    args: Sequence[str],
    *,
    settings: Settings,
    project: Path,
    check: bool = True,
    timeout_s: float | None = None,
    log_file: Path | None = None,
    on_line: Any = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``airflow <args>`` from this virtualenv with :func:`airflow_env` merged in.

    Output (stdout and stderr, merged) is streamed line by line to the
    ``modops.orchestration.airflow`` logger, or, with ``log_file``, written to that file only
    (Airflow's own output is hundreds of lines a run), and is also returned. ``on_line`` is
    called with every line as it comes (to pick out progress lines).

    Args:
        args: The CLI arguments after ``airflow``, e.g. ``["dags", "list"]``.
        settings: Deployment settings (where the Airflow home lives).
        project: The repo root; also the working directory of the command.
        check: Raise :class:`AirflowCommandFailed` on a non-zero exit.
        timeout_s: Kill the command after this many seconds; None = no limit.

    Returns:
        The completed process; ``stdout`` holds the merged output, ``stderr`` is None.
    """
    root = Path(project).resolve()
    cmd = [_venv_tool("airflow"), *args]
    env = {**os.environ, **airflow_env(settings, project=root)}
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    handle = None
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handle = open(log_file, "w", encoding="utf-8")  # noqa: SIM115 - closed below, after streaming

    def sink(line: str) -> None:
        lines.append(line)
        if handle is not None:
            handle.write(line + "\n")
            handle.flush()
        if on_line is not None:
            on_line(line)

    try:
        code, _, _, timed_out = _stream(
            cmd,
            cwd=root,
            env=env,
            timeout_s=timeout_s,
            prefix="",
            sink=sink,
            logger=None if log_file is not None else log.getChild("airflow"),
        )
    finally:
        if handle is not None:
            handle.close()
    proc = subprocess.CompletedProcess(cmd, code, "\n".join(lines), None)
    if timed_out:
        proc.stdout += f"\n[modops] killed after {timeout_s:g} s"
    if check and (code != 0 or timed_out):
        raise AirflowCommandFailed(code, cmd, output=proc.stdout)
    return proc


def ensure_airflow_db(settings: Settings, project: Path, *, log_file: Path | None = None) -> bool:
    """Create or upgrade Airflow's metadata database, skipping the work when it is current.

    ``airflow db migrate`` is idempotent but costs ~10 s of CLI start-up, so for the SQLite
    default a stamp in the Airflow home records the Airflow version and schema revision that the
    last migration left; when both still match, nothing runs. Other databases (production) are
    always migrated, which Airflow guards with its own lock.

    Args:
        settings: Deployment settings (where the Airflow home lives).
        project: The repo root.
        log_file: Write the migration's output there instead of the log (see :func:`run_airflow`).

    Returns:
        True when ``airflow db migrate`` ran, False when the database was already current.
    """
    env = airflow_env(settings, project=project)
    conn = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") or env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    stamp_path = Path(env["AIRFLOW_HOME"]) / _DB_STAMP
    db_file = Path(conn.removeprefix("sqlite:///")) if conn.startswith("sqlite:///") else None
    wanted = {"airflow": metadata.version("apache-airflow-core"), "conn": conn}
    if db_file is not None and stamp_path.is_file():
        stamp = json.loads(stamp_path.read_text())
        current = {**wanted, "revision": _sqlite_revision(db_file)}
        if stamp == current and current["revision"]:
            log.debug("airflow db at %s is current (revision %s)", db_file, current["revision"])
            return False
    run_airflow(["db", "migrate"], settings=settings, project=project, log_file=log_file)
    if db_file is not None:
        stamp_path.write_text(json.dumps({**wanted, "revision": _sqlite_revision(db_file)}))
    return True


def dag_test(
    dag_id: str,
    *,
    settings: Settings,
    project: Path,
    conf: dict[str, Any] | None = None,
    logical_date: str | date | datetime | None = None,
    timeout_s: float | None = None,
    check: bool = True,
    log_file: Path | None = None,
    on_line: Any = None,
) -> subprocess.CompletedProcess[str]:
    """Run one DAG run in-process with ``airflow dags test`` (no scheduler needed).

    Airflow 3.3 ends ``dags test`` with ``SystemExit("DagRun failed")`` (exit code 1) when the
    run fails, and exits 1 as well when the DAG cannot be found or parsed. The final
    ``DagRun Finished: ... state=failed`` line is also checked, in case a future version exits 0.
    A task with retries waits ``retry_delay`` before its retry, exactly as under the scheduler.

    Args:
        dag_id: The DAG to run, e.g. ``"modops_training"``.
        settings: Deployment settings (where the Airflow home lives).
        project: The repo root.
        conf: JSON-able run configuration (``dag_run.conf``).
        logical_date: Fixed logical date (a rerun with the same date replaces the old run's
            task instances); None = now.
        timeout_s: Kill the run after this many seconds; None = no limit.
        check: Raise :class:`DagRunFailed` when the run fails.
        log_file, on_line: As in :func:`run_airflow`.

    Returns:
        The completed ``airflow dags test`` process (merged output in ``stdout``).
    """
    ensure_airflow_db(settings, project)
    args = ["dags", "test", dag_id]
    if logical_date is not None:
        args.append(logical_date if isinstance(logical_date, str) else logical_date.isoformat())
    if conf is not None:
        args += ["--conf", json.dumps(conf)]
    proc = run_airflow(
        args, settings=settings, project=project, check=False, timeout_s=timeout_s, log_file=log_file, on_line=on_line
    )
    failed = proc.returncode != 0 or re.search(
        rf"DagRun Finished: dag_id={re.escape(dag_id)},.*\bstate=failed", proc.stdout
    )
    if check and failed:
        raise DagRunFailed(proc.returncode or 1, proc.args, output=proc.stdout)
    return proc


def _venv_tool(name: str) -> str:
    """Path of a console script installed next to the running interpreter, else on PATH."""
    # Not resolved: in a virtualenv, sys.executable is a symlink whose folder is the venv's bin.
    candidate = Path(sys.executable).parent / name
    if candidate.is_file():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(
            f"'{name}' is neither next to {sys.executable} nor on PATH; install the project "
            "environment (uv sync) and run modops from it."
        )
    return found


def _skip_scanner(stage: str) -> re.Pattern[str]:
    """Regex over DVC's output naming whether ``stage`` ran or was skipped."""
    name = re.escape(stage)
    return re.compile(
        rf"(?P<ran>Running stage '{name}')"
        rf"|(?P<skip>Stage '{name}' didn't change|Stage '{name}' is cached"
        r"|Data and pipelines are up to date)"
    )


def _stream(
    cmd: list[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float | None,
    prefix: str,
    scan: re.Pattern[str] | None = None,
    sink: Any = None,
    logger: logging.Logger | None = log,
) -> tuple[int, deque[str], dict[str, bool], bool]:
    """Run ``cmd``, logging each output line as it comes.

    Returns:
        (exit code, last 40 lines, named groups of ``scan`` that matched any line, timed out).
    """
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    seen: dict[str, bool] = {}
    # Same process group as the caller: Airflow 3.3 kills a task by signalling its whole
    # group, which then reaches dvc and the stage's command too.
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        bufsize=1,
    )
    timed_out = threading.Event()

    def _expire() -> None:
        timed_out.set()
        _kill_tree(proc)

    timer = threading.Timer(timeout_s, _expire) if timeout_s is not None else None
    try:
        if timer is not None:
            timer.start()
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            if logger is not None:
                logger.info("%s%s", prefix, line)
            tail.append(line)
            if sink is not None:
                sink(line)
            if scan is not None and (m := scan.search(line)):
                seen.update({k: True for k, v in m.groupdict().items() if v})
        code = proc.wait()
    except BaseException:
        # Airflow's execution_timeout raises AirflowTaskTimeout inside the task, Ctrl-C raises
        # KeyboardInterrupt: either way, take the stage down with us.
        _kill_tree(proc)
        raise
    finally:
        if timer is not None:
            timer.cancel()
    return code, tail, seen, timed_out.is_set()


def _kill_tree(proc: subprocess.Popen[str]) -> None:
    """Terminate ``proc`` and every process under it, escalating to SIGKILL after 10 s."""
    # psutil (a dependency of Airflow and DVC) finds the stage's own children, which a kill of
    # dvc alone would orphan; a new session instead would hide them from Airflow's group kill.
    import psutil

    try:
        descendants = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    for p in descendants:
        with suppress(psutil.NoSuchProcess):
            p.terminate()
    with suppress(ProcessLookupError):
        proc.terminate()
    _, alive = psutil.wait_procs(descendants, timeout=10)
    for p in alive:
        with suppress(psutil.NoSuchProcess):
            p.kill()
    # Reaped through Popen, not psutil, so proc.wait() still sees the real exit status.
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _sqlite_revision(db_file: Path) -> str | None:
    """The alembic revision stored in an Airflow SQLite database, or None if there is none."""
    if not db_file.is_file():
        return None
    try:
        with closing(sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)) as con:
            row = con.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def _in_project(root: Path, path: str) -> str:
    """A local path from params (relative to the project folder) made absolute; s3:// left alone."""
    if path.startswith("s3://") or Path(path).is_absolute():
        return path
    return str(root / path)


def score_day(
    day: str, *, source: str | None = None, model_version: str | None = None, project: Path | None = None
) -> dict[str, Any]:
    """The scoring DAG's ``score`` task: the champion (or ``model_version``) scores ``day``'s uploads.

    Idempotent: the day's partition for the model's version is rewritten whole.
    """
    from modops.config import load_params, load_section, load_settings
    from modops.stages import score_stage

    root = project_dir() if project is None else Path(project).resolve()
    params = root / "params.yaml"
    cfg = load_section(load_params(params), "score")
    src = _in_project(root, source or cfg.source_for(day))
    summary = score_stage(src, day=day, params_path=params, settings=load_settings(), model_version=model_version)
    log.info(
        "%s %s",
        STAGE_MARK,
        json.dumps(
            {
                "task": "score",
                "figure": f"{summary['scored']} scored, "
                f"{summary['quarantined']} quarantined, {summary['flagged']} flagged (v{summary['model_version']})",
            }
        ),
    )
    return summary


def judge_drift(day: str, *, model_version: str, project: Path | None = None) -> dict[str, Any]:
    """The scoring DAG's ``drift`` task: the day against the champion's holdout scores (``modops drift``)."""
    from modops.config import load_settings
    from modops.stages import drift_stage

    root = project_dir() if project is None else Path(project).resolve()
    verdict = drift_stage(
        day,
        params_path=root / "params.yaml",
        settings=load_settings(),
        drift_config=root / "monitoring" / "drift.yaml",
        workspace_config=root / "monitoring" / "workspace.yaml",
        splits_path=root / "data" / "split" / "splits.parquet",
        store_dir=root / "data" / "store",
        model_version=model_version,
    )
    figure = "DRIFT: " + ", ".join(verdict["fired"]) if verdict["drift"] else "no drift"
    log.info("%s %s", STAGE_MARK, json.dumps({"task": "drift", "figure": figure}))
    return verdict


def select_round(day: str, *, model_version: str | None, project: Path | None = None) -> dict[str, Any]:
    """The relabel DAG's ``select`` task: the day's review batch (``modops select``), idempotent."""
    from modops.config import load_settings
    from modops.stages import select_stage

    root = project_dir() if project is None else Path(project).resolve()
    summary = select_stage(
        day,
        params_path=root / "params.yaml",
        settings=load_settings(),
        model_version=model_version,
        labels_dir=root / "data" / "labels",
    )
    figure = f"round {summary['round']}: {summary['selected']} of {summary['scored']} ({summary['strategy']})"
    log.info("%s %s", STAGE_MARK, json.dumps({"task": "select", "figure": figure}))
    return summary


def collect_round(day: str, *, model_version: str, project: Path | None = None) -> dict[str, Any]:
    """The relabel DAG's ``reviewed`` sensor: the batch's decisions into the label store, once they exist.

    Returns ``waiting: true`` while the reviewers' export is missing; importing twice adds nothing.
    """
    from modops.config import load_settings
    from modops.stages import relabel_stage

    root = project_dir() if project is None else Path(project).resolve()
    result = relabel_stage(
        day,
        params_path=root / "params.yaml",
        settings=load_settings(),
        labels_dir=root / "data" / "labels",
        model_version=model_version,
    )
    figure = "waiting for reviewers" if result["waiting"] else f"round {result['round']}: {result['labelled']} labels"
    log.info("%s %s", STAGE_MARK, json.dumps({"task": "reviewed", "figure": figure}))
    return result


def retrain_wanted(result: dict[str, Any], *, project: Path | None = None) -> bool:
    """Whether the relabel round should retrain: ``relabel.retrain`` and the round brought labels."""
    from modops.config import load_params, load_section

    root = project_dir() if project is None else Path(project).resolve()
    return bool(load_section(load_params(root / "params.yaml"), "relabel").retrain and result.get("labelled"))
