"""A real Airflow scheduler on the state folder: the services asset-triggered DAGs need.

``modops run-dag`` runs one DAG run in-process (``airflow dags test``), which never starts the
DAGs scheduled on an asset it updates: only a scheduler does. :class:`LocalAirflow` starts
Airflow's three long-running services (``api-server``, whose execution API the LocalExecutor's
tasks report to; ``scheduler``; ``dag-processor``) on the same metadata database and DAG folder
as ``modops run-dag``, with their output in log files, and stops them (and every task they
started) on exit. Used by ``make demo-drift`` and its end-to-end test; in production these are
long-lived services run by the platform, not by modops.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import Any

from modops.config import Settings
from modops.orchestration import _kill_tree, _venv_tool, airflow_env, ensure_airflow_db, run_airflow

__all__ = ["LocalAirflow", "RunTimeout", "free_port"]

log = logging.getLogger(__name__)

SERVICES = ("api-server", "scheduler", "dag-processor")
TERMINAL = ("success", "failed")


class RunTimeout(TimeoutError):
    """A DAG run did not finish in time; the message names the run and where the logs are."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalAirflow:
    """Airflow's scheduler, DAG processor and API server as child processes, for the duration of a ``with``.

    Args:
        settings: Deployment settings (the Airflow home in the state folder).
        project: The repo root (its ``dags/`` is the DAG folder).
        env: Extra environment for the services and every task they run (e.g. the alert webhook).
        port: The API server's port on 127.0.0.1 (default: a free one).
        log_dir: Where each service writes ``<service>.log`` (default: ``logs/airflow`` in the state folder).
    """

    def __init__(
        self,
        settings: Settings,
        project: Path,
        *,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        log_dir: Path | None = None,
    ) -> None:
        self.settings, self.project = settings, Path(project).resolve()
        self.port = port or free_port()
        self.log_dir = log_dir or settings.state_dir.resolve() / "logs" / "airflow"
        self.env = {
            **os.environ,
            **airflow_env(settings, project=self.project),
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
            # Re-parse the DAG folder often: a short-lived scheduler must see the DAGs quickly.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
            "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
            **(env or {}),
        }
        self._procs: dict[str, subprocess.Popen[str]] = {}

    def __enter__(self) -> LocalAirflow:
        ensure_airflow_db(self.settings, self.project)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            for name in SERVICES:
                handle = open(self.log_dir / f"{name}.log", "w", encoding="utf-8")  # noqa: SIM115 - owned by the child
                args = [_venv_tool("airflow"), name] + (["--port", str(self.port)] if name == "api-server" else [])
                self._procs[name] = subprocess.Popen(
                    args, cwd=self.project, env=self.env, stdout=handle, stderr=subprocess.STDOUT, text=True
                )
                handle.close()
            self._wait_for_api(timeout_s=180)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for name in reversed(list(self._procs)):
            _kill_tree(self._procs.pop(name))

    def _alive(self) -> None:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                tail = (self.log_dir / f"{name}.log").read_text(errors="replace").splitlines()[-15:]
                raise RuntimeError(f"airflow {name} exited with {proc.returncode}:\n" + "\n".join(tail))

    def _wait_for_api(self, *, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._alive()
            with suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return
            time.sleep(1)
        raise TimeoutError(f"airflow api-server did not listen on port {self.port} within {timeout_s:g} s")

    def cli(self, *args: str, check: bool = True) -> str:
        """``airflow <args>`` against the same database; returns its output (also in ``cli.log``, not on screen)."""
        return run_airflow(
            list(args), settings=self.settings, project=self.project, check=check, log_file=self.log_dir / "cli.log"
        ).stdout

    def wait_for_dags(self, dag_ids: Iterable[str], *, timeout_s: float = 180) -> None:
        """Wait until the DAG processor has parsed ``dag_ids`` into the database."""
        wanted, deadline = set(dag_ids), time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._alive()
            listed = {d["dag_id"] for d in _json(self.cli("dags", "list", "-o", "json", check=False))}
            if wanted <= listed:
                return
            time.sleep(3)
        raise TimeoutError(f"the DAG processor did not parse {sorted(wanted - listed)} within {timeout_s:g} s")

    def set_paused(self, dag_id: str, paused: bool) -> None:
        """Pause or unpause a DAG (a paused DAG's runs stay queued)."""
        self.cli("dags", "pause" if paused else "unpause", dag_id)

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        """The DAG's runs, newest first: ``run_id``, ``state``, ``run_after``, ``start_date``, ``end_date``."""
        return _json(self.cli("dags", "list-runs", dag_id, "-o", "json", check=False))

    def wait_for_run(
        self, dag_id: str, *, after: datetime, run_type: str | None = None, timeout_s: float, poll_s: float = 5
    ) -> dict[str, Any]:
        """The first run of ``dag_id`` due after ``after`` (``run_type``: ``asset_triggered``, ``manual``,
        ``scheduled``, the run id's prefix), once it has finished.

        Raises:
            RunTimeout: No such run finished within ``timeout_s``.
        """
        deadline, seen = time.monotonic() + timeout_s, None
        while time.monotonic() < deadline:
            self._alive()
            mine = [
                r
                for r in self.runs(dag_id)
                if _after(r, after) and (run_type is None or str(r["run_id"]).startswith(f"{run_type}__"))
            ]
            if mine:
                seen = min(mine, key=lambda r: r.get("run_after") or "")
                if seen["state"] in TERMINAL:
                    return seen
            time.sleep(poll_s)
        state = f"run {seen['run_id']} still {seen['state']}" if seen else "no run was created"
        raise RunTimeout(f"{dag_id}: {state} after {timeout_s:g} s; service logs in {self.log_dir}")


def _json(text: str) -> list[dict[str, Any]]:
    """The JSON list an ``airflow ... -o json`` command printed (log lines before it are skipped)."""
    decoder, start = json.JSONDecoder(), text.find("[")
    while start != -1:
        with suppress(json.JSONDecodeError):
            value, _ = decoder.raw_decode(text, start)
            if isinstance(value, list):
                return value
        start = text.find("[", start + 1)
    return []


def _after(run: dict[str, Any], when: datetime) -> bool:
    stamp = run.get("run_after") or run.get("start_date")
    return bool(stamp) and datetime.fromisoformat(str(stamp).replace("Z", "+00:00")) >= when
