"""
# modops scoring

Every day, the model behind the `champion` alias scores that day's uploads and the day is
compared with the champion's scores on the frozen holdout:

- **score**: `modops score` for the day: every upload in `score.source` (params.yaml, `{day}`
  filled in; a folder or `s3://` prefix, no labels file) is scored or quarantined with its
  reason, into the prediction log partition `day=D/model_version=V` in the state folder.
- **drift**: `modops drift` for the day: embedding, score, flag-rate, image-property and
  data-quality checks (thresholds in `monitoring/drift.yaml`), an HTML report and a run in the
  Evidently workspace (`evidently ui --workspace $MODOPS_STATE_DIR/monitoring/workspace`).
- **drifted**: a short-circuit: a quiet day stops here, so nothing downstream runs.
- **alert**: pages on-call (`MODOPS_ALERT_WEBHOOK_URL`, Slack-compatible JSON) and emits an
  event on the `modops_drift` asset, on which the relabel DAG is scheduled.

**Re-running** a day (clear the tasks, or trigger with `day`) rewrites the same partition and
replaces the day's workspace run: every task is idempotent. A new champion writes its own
partition beside the old one. A failed task pages on-call after its last retry.

Trigger for any day: `airflow dags trigger modops_scoring -c '{"day": "2026-12-02"}'`
(`source` overrides `score.source`; `model_version` scores with that registered version
instead of the champion, e.g. a challenger in shadow).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset, Param, dag, get_current_context, task

from modops.monitoring.notify import DriftAlertNotifier, OnCallFailureNotifier
from modops.orchestration import DRIFT_ASSET, judge_drift, score_day

drift_asset = Asset(DRIFT_ASSET)


def _day() -> str:
    """The day this run scores: the ``day`` param, else the run's logical date, else when it ran."""
    context = get_current_context()
    run = context["dag_run"]
    when = context["params"].get("day") or context.get("ds") or (run.logical_date or run.run_after).date().isoformat()
    return str(when)


@task(task_display_name="Score the day's uploads")
def score() -> dict:
    params = get_current_context()["params"]
    return score_day(_day(), source=params.get("source"), model_version=params.get("model_version"))


@task(task_display_name="Drift against the holdout")
def drift(summary: dict) -> dict:
    return judge_drift(summary["day"], model_version=summary["model_version"])


@task.short_circuit(task_display_name="Did the day drift?")
def drifted(verdict: dict) -> bool:
    return bool(verdict["drift"])


@task(task_display_name="Page on-call, emit the drift asset", outlets=[drift_asset])
def alert(verdict: dict) -> dict:
    context = get_current_context()
    DriftAlertNotifier(verdict)(context)
    extra = {"day": verdict["day"], "model_version": verdict["model_version"], "fired": verdict["fired"]}
    context["outlet_events"][drift_asset].extra = extra
    return extra


@dag(
    dag_id="modops_scoring",
    dag_display_name="modops: daily scoring and drift",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["modops", "scoring", "monitoring"],
    doc_md=__doc__,
    params={
        "day": Param(None, type=["null", "string"], description="YYYY-MM-DD; default: the run's date"),
        "source": Param(None, type=["null", "string"], description="folder or s3:// prefix; default: score.source"),
        "model_version": Param(None, type=["null", "string"], description="registered version; default: champion"),
    },
    default_args={
        "owner": "modops",
        "retries": 1,
        "retry_delay": timedelta(minutes=1),
        "execution_timeout": timedelta(hours=2),
        "on_failure_callback": OnCallFailureNotifier(),
    },
)
def modops_scoring() -> None:
    verdict = drift(score())
    drifted(verdict) >> alert(verdict)


modops_scoring()
