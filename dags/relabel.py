"""
# modops relabel round

Runs when the scoring DAG's `alert` task emits an event on the `modops_drift` asset (a day
whose drift crossed the thresholds), or by hand for any scored day:

- **request**: which day and model version to relabel: the triggering asset event's `extra`
  (`day`, `model_version`), or the run's `day` / `model_version` params.
- **select**: `modops select` for that day: the confidence band ranked by the loss head's
  predicted loss, spread over the embeddings (params.yaml `select`); writes Label Studio import
  tasks (with the model's pre-annotations) and a CSV to `relabel/day=D/model_version=V` in the
  state folder, as labelling round N.
- **reviewed**: a sensor (rescheduled every 10 minutes, for up to 3 days) that waits for the
  reviewers' export at `relabel.export` and imports it into the label store (`source:
  reviewer`, round N), with a record of the model that selected the round (the retraining
  fine-tunes it: `train.warm_start`); with `relabel.reviewer: demo_oracle` the demo's ground
  truth answers.
- **retrain_wanted** / **retrain**: triggers `modops_training` (`relabel.retrain`); its gate
  decides whether the retrained model becomes champion.

Every task is idempotent: selecting again keeps the batch and its round number, importing the
same export again adds no label events. A failed task pages on-call after its last retry.

Trigger by hand: `airflow dags trigger modops_relabel -c '{"day": "2026-12-02"}'`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Asset, Param, PokeReturnValue, dag, get_current_context, task

from modops.monitoring.notify import OnCallFailureNotifier
from modops.orchestration import DRIFT_ASSET, collect_round, retrain_wanted, select_round

drift_asset = Asset(DRIFT_ASSET)


@task(task_display_name="Which day to relabel")
def request() -> dict:
    context = get_current_context()
    params = context["params"]
    if params.get("day"):
        return {"day": params["day"], "model_version": params.get("model_version")}
    events = context["triggering_asset_events"][drift_asset]
    if not events:
        raise ValueError("no drift asset event triggered this run: trigger it with a 'day' param instead")
    extra = events[-1].extra
    return {"day": extra["day"], "model_version": extra["model_version"]}


@task(task_display_name="Select the review batch")
def select(req: dict) -> dict:
    return select_round(req["day"], model_version=req["model_version"])


@task.sensor(
    task_display_name="Reviewers' labels imported",
    poke_interval=timedelta(minutes=10),
    timeout=timedelta(days=3),
    mode="reschedule",
)
def reviewed(batch: dict) -> PokeReturnValue:
    result = collect_round(batch["day"], model_version=batch["model_version"])
    return PokeReturnValue(is_done=not result["waiting"], xcom_value=result)


@task.short_circuit(task_display_name="Retrain on the new round?")
def retrain_wanted_(result: dict) -> bool:
    return retrain_wanted(result)


@dag(
    dag_id="modops_relabel",
    dag_display_name="modops: active-learning relabel round",
    schedule=[drift_asset],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["modops", "active-learning", "labels"],
    doc_md=__doc__,
    params={
        "day": Param(None, type=["null", "string"], description="YYYY-MM-DD; default: the drift event's day"),
        "model_version": Param(None, type=["null", "string"], description="default: the event's, else champion"),
    },
    default_args={
        "owner": "modops",
        "retries": 1,
        "retry_delay": timedelta(minutes=1),
        "on_failure_callback": OnCallFailureNotifier(),
    },
)
def modops_relabel() -> None:
    result = reviewed(select(request()))
    retrain = TriggerDagRunOperator(
        task_id="retrain",
        task_display_name="Retrain, gate, promote",
        trigger_dag_id="modops_training",
        wait_for_completion=False,
    )
    retrain_wanted_.override(task_id="retrain_wanted")(result) >> retrain


modops_relabel()
