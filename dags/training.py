"""
# modops training

Runs the training pipeline defined in `dvc.yaml`, **one DVC stage per task**, in order:

- **ingest**: decodes new uploads safely into the content-addressed image store and writes
  the manifest; unreadable or out-of-limit files go to the quarantine table with a reason.
- **validate**: checks the manifest with the Great Expectations suite (sizes, row count, class
  balance); a broken batch fails the run here, before any training.
- **cold_start**: from the seed images of each category, retrieves look-alikes in the unlabelled
  pool (faiss), exports them for confirmation (Label Studio JSON, CSV) and imports the
  reviewers' decisions into the label store as `retrieval` labels.
- **split**: stratified, duplicate-aware train/val split over the label store's labels; the
  holdout stays frozen and only takes labels that came with uploads. A holdout already
  published on the DVC remote (by this clone or another) is the one used.
- **publish**: pushes the outputs to the DVC remote (`MODOPS_DVC_REMOTE`, by default a folder in
  the state folder) and publishes the frozen holdout's pointer there, once, so every clone and
  worker judges models on the same holdout. Not a DVC stage: it changes nothing in the project.
- **noise**: confident learning (cleanlab) on out-of-fold predictions flags likely mislabelled
  train and val images: `data/noise/review.csv` for reviewers; training leaves them out or
  draws them less often as `params.yaml: noise.action` says.
- **train**: trains one candidate with the trainer and backbone named in `params.yaml`; after a
  relabel round it fine-tunes the model that selected the round (`train.warm_start`).
- **evaluate**: scores the holdout: per-category metrics, thresholds, confidence intervals, plots.
- **register**: applies the promotion gate and records the candidate in the MLflow registry.

Task ids are the DVC stage names (and `publish`).

Each task runs `dvc repro --single-item <stage>` in the project folder (`$MODOPS_PROJECT_DIR`).
**DVC decides what is stale**: a stage whose code, inputs and params are unchanged is skipped
(the task succeeds quickly and returns `"skipped": true`). Airflow only decides when and in what
order. The task log shows DVC's full output.

**Where things land** (paths relative to the project folder; `dvc.yaml` is the reference):
- `data/ingested/` manifest, quarantine table and ingest summary; images in `data/store/`.
- `data/labels/` the label store (append-only event batches); `data/cold_start/` the retrieval
  candidates, Label Studio tasks and precision at K; `data/noise/` the noise check's issue list.
- `reports/validation/` the validation report; `data/split/` and the frozen `data/holdout.parquet`.
- `models/candidate/` the trained candidate, `models/train_metrics.json`.
- `eval/metrics.json`, `eval/thresholds.json`, `eval/plots/` (`dvc metrics show`, `dvc plots show`).
- `eval/registration.json` the gate decision; runs, models and the champion/challenger aliases
  are in MLflow (`MODOPS_TRACKING_URI`, by default SQLite in the state folder `$MODOPS_STATE_DIR`).

**Re-running.**
- Trigger the DAG again: only stale stages run.
- Clear a task (with *downstream*) to re-run from that stage; DVC still skips it if nothing changed.
- To force a stage although nothing changed: `dvc repro --force --single-item <stage>` in the
  project folder, then trigger the DAG so the rest follows.
- Only one run at a time (`max_active_runs=1`): two runs would write the same DVC outputs.
- A failed task is retried once after a minute (transient failures: storage, database locks); a
  failure that repeats is real, so read the task log, whose last lines are DVC's error. The
  final failure pages on-call (`MODOPS_ALERT_WEBHOOK_URL`, Slack-compatible JSON).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import chain, dag, task

from modops.monitoring.notify import OnCallFailureNotifier
from modops.orchestration import TASKS, publish_outputs, run_stage, task_report

_DISPLAY = {
    "ingest": "Ingest uploads",
    "validate": "Validate manifest",
    "cold_start": "Cold start (retrieval)",
    "split": "Split (frozen holdout)",
    "noise": "Noise check (cleanlab)",
    "publish": "Publish to the DVC remote",
    "train": "Train candidate",
    "evaluate": "Evaluate on holdout",
    "register": "Gate and register",
}


def _stage_task(stage: str):
    """A TaskFlow task that runs one DVC stage; the DVC call lives in modops.orchestration."""

    @task(task_id=stage, task_display_name=_DISPLAY.get(stage, stage))
    def run_dvc_stage() -> dict[str, object]:
        result = run_stage(stage)
        return task_report(stage, skipped=result.skipped, duration_s=result.duration_s)

    return run_dvc_stage


@task(task_id="publish", task_display_name=_DISPLAY["publish"])
def publish() -> dict[str, object]:
    """Push outputs and the frozen holdout to the DVC remote (the logic lives in modops.remote)."""
    return publish_outputs()


@dag(
    dag_id="modops_training",
    dag_display_name="modops: training",
    schedule=None,
    catchup=False,
    max_active_runs=1,
    tags=["modops", "training"],
    doc_md=__doc__,
    default_args={
        "owner": "modops",
        "retries": 1,
        "retry_delay": timedelta(minutes=1),
        # Generous: a CPU-only training box is slow, but a hung stage must not hold the
        # single run slot forever.
        "execution_timeout": timedelta(hours=6),
        "on_failure_callback": OnCallFailureNotifier(),  # pages on-call after the last retry
    },
)
def modops_training() -> None:
    chain(*(publish() if name == "publish" else _stage_task(name)() for name in TASKS))


modops_training()
