"""``make demo-drift``: the closed loop on the demo, after ``make demo``.

1. A later day whose spam has a new style (vertical banners and QR codes) is generated into
   ``relabel.truth_source`` (its ``images/`` is the day's ``score.source``).
2. A real Airflow scheduler, DAG processor and API server start on the state folder, with a
   local webhook receiver standing in for on-call's channel.
3. The scoring DAG scores the day with the model under watch and judges its drift; a drifted
   day pages on-call (the receiver) and emits the ``modops_drift`` asset event.
4. The scheduler starts the relabel DAG on that event: selection under the budget, the demo's
   ground truth answering as the reviewers (``relabel.reviewer: demo_oracle``), the round's
   labels and images into the label store and the pool, and a trigger of the training DAG,
   whose gate decides the promotion.
5. Recall on the new style before and after: both versions' flags on the day's new-style spam
   that the round did not label.

The model under watch is the champion; when ``make demo``'s gate refused its candidate (the
CPU demo's usual outcome, see the README), it is the newest registered version, and the story
says so: the gate still decides what becomes champion.
"""

from __future__ import annotations

import json
import os
from contextlib import suppress
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modops.config import Settings, load_params, load_section
from modops.demo.plan import category_of
from modops.progress import NullReporter, Reporter

__all__ = ["NEW_STYLE", "StoryError", "model_under_watch", "run_drift_story", "style_recall"]

#: The drifted day's new spam variants (``modops.demo.plan``): what "recall on the new style" counts.
NEW_STYLE = ("vertical", "qr")
DAGS = ("modops_scoring", "modops_relabel", "modops_training")


class StoryError(RuntimeError):
    """The story cannot go on; the message says what to run first or where to look."""


def model_under_watch(settings: Settings) -> tuple[str, str]:
    """``(version, why)``: the champion, else the newest registered version."""
    from modops.registry.promotion import champion_version, latest_version
    from modops.registry.tracking import configure_mlflow

    configure_mlflow(settings)
    champ = champion_version(settings.model_name)
    if champ is not None:
        return str(champ.version), "the champion"
    latest = latest_version(settings.model_name)
    if latest is None:
        raise StoryError(f"no version of '{settings.model_name}' is registered: run `make demo` first")
    return latest, "the newest registered version (the gate refused it, so there is no champion yet)"


def _generate_day(out: Path, *, day_index: int, n_images: int, positive_rate: float, seed: int) -> dict[str, str]:
    """Render the drifted day into ``out``; returns ``{path under images/: variant}`` from the generator's plan."""
    from modops.demo import generate_pool
    from modops.demo.plan import plan_pool

    generate_pool(out, n_images=n_images, seed=seed, day=day_index, drift=True, positive_rate=positive_rate)
    plan = plan_pool(n_images, seed=seed, day=day_index, positive_rate=positive_rate, noise_rate=0.0, drift=True)
    return {s.relpath.removeprefix("images/"): s.variant for s in plan.specs}


def style_recall(
    predictions: pd.DataFrame, variants: dict[str, str], *, category: str, style: tuple[str, ...], exclude: set[str]
) -> dict[str, float | int]:
    """Recall of ``category`` on images of the ``style`` variants, and the flag's precision, on one scored day.

    Args:
        predictions: A prediction-log partition (``uri`` relative to the day's source, ``image_id``,
            ``flag_<category>``).
        variants: ``{uri: generator variant}`` of the day.
        category: The category whose flag counts.
        style: The variants that make up the style.
        exclude: Image ids left out (the relabel round's own images).

    Returns:
        ``n`` (the style's images), ``recall`` (share of them flagged as ``category``), ``flagged``
        (all the day's images flagged as ``category``, outside ``exclude``), ``precision`` (share
        of those whose true label is ``category``) and, from the scores ``p_<category>``, whatever
        the operating threshold: ``median_score`` of the style's images and ``average_precision``
        of ranking them above the day's clean images (what a round moved even when the threshold
        it is judged at did not).
    """
    rows = predictions[~predictions["image_id"].isin(exclude)]
    variant = rows["uri"].map(variants)
    in_style = variant.isin(style)
    flag = rows[f"flag_{category}"].astype(bool)
    hits = int((flag & in_style).sum())
    positives = int(in_style.sum())
    true_cat = variant.map(category_of)
    flagged = int(flag.sum())
    return {
        "n": positives,
        "recall": hits / positives if positives else float("nan"),
        "flagged": flagged,
        "precision": int((flag & (true_cat == category)).sum()) / flagged if flagged else float("nan"),
        **_style_ranking(rows[f"p_{category}"], in_style=in_style, clean=true_cat == "clean"),
    }


def _style_ranking(score: pd.Series, *, in_style: pd.Series, clean: pd.Series) -> dict[str, float]:
    """Median score of the style's images and the average precision of ranking them above clean ones."""
    from sklearn.metrics import average_precision_score

    pos, neg = score[in_style].to_numpy(), score[clean & ~in_style].to_numpy()
    if not len(pos):
        return {"median_score": float("nan"), "average_precision": float("nan")}
    y = [1] * len(pos) + [0] * len(neg)
    return {
        "median_score": float(np.median(pos)),
        "average_precision": float(average_precision_score(y, np.concatenate([pos, neg]))) if len(neg) else 1.0,
    }


def run_drift_story(
    project: Path,
    *,
    settings: Settings,
    day: str,
    n_images: int = 3000,
    positive_rate: float = 0.09,
    seed: int = 0,
    timeout_s: float = 2400,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Run the story (module docstring) in ``project``; returns its figures (also written to ``demo_drift.json``).

    Raises:
        StoryError: No registered model, a DAG run that failed, or params the demo cannot use.
    """
    from modops.monitoring.receiver import WebhookReceiver
    from modops.scoring.daily import parse_day

    rep = reporter or NullReporter()
    project = Path(project).resolve()
    params = load_params(project / "params.yaml")
    score_cfg, relabel_cfg = load_section(params, "score"), load_section(params, "relabel")
    day = parse_day(day).isoformat()
    truth = relabel_cfg.truth_for(day)
    if relabel_cfg.reviewer != "demo_oracle" or truth is None:
        raise StoryError("the drift demo needs relabel.reviewer: demo_oracle and relabel.truth_source in params.yaml")
    out, source = project / truth, project / score_cfg.source_for(day)
    if source != out / "images":
        raise StoryError(f"score.source for {day} must be the demo day's images folder {out / 'images'}, not {source}")
    version, why = model_under_watch(settings)
    rep.log(f"demo-drift: watching v{version}, {why}")
    from modops.demo.constants import BASE_DATE

    index = (date.fromisoformat(day) - BASE_DATE.date()).days
    variants = _generate_day(out, day_index=index, n_images=n_images, positive_rate=positive_rate, seed=seed)
    rep.log(f"demo-drift: {n_images} uploads of {day} with spam in a new style ({', '.join(NEW_STYLE)}) -> {out}")
    alerts_log = settings.monitoring_dir / "alerts" / "demo_receiver.jsonl"
    started = datetime.now(UTC)
    with WebhookReceiver(log_path=alerts_log) as receiver:
        runs = _run_loop(
            project, settings=settings, day=day, version=version, url=receiver.url, timeout_s=timeout_s, rep=rep
        )
        alerts = list(receiver.received)
    result = {
        "day": day,
        "watched_version": version,
        "watched": why,
        "alerts_received": len(alerts),
        "alert_texts": [a.get("text", "") for a in alerts if isinstance(a, dict)],
        "runs": runs,
        "seconds": round((datetime.now(UTC) - started).total_seconds(), 1),
    }
    if runs["drift"]:
        result.update(_before_after(project, settings=settings, day=day, version=version, variants=variants))
    (settings.state_dir / "demo_drift.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


def _run_loop(
    project: Path, *, settings: Settings, day: str, version: str, url: str, timeout_s: float, rep: Reporter
) -> dict[str, Any]:
    """Scoring DAG in-process; relabel and training DAGs under a real scheduler. Returns the runs' states."""
    from modops.scheduler import LocalAirflow

    previous = os.environ.get("MODOPS_ALERT_WEBHOOK_URL")
    os.environ["MODOPS_ALERT_WEBHOOK_URL"] = url  # the scoring run's alert task posts from this process
    try:
        with LocalAirflow(settings, project) as airflow:
            rep.log(f"demo-drift: Airflow scheduler, DAG processor and API server up (logs: {airflow.log_dir})")
            airflow.wait_for_dags(DAGS)
            # The scoring DAG is @daily: unpaused, it would also score yesterday. It runs in-process.
            airflow.set_paused("modops_scoring", True)
            for dag_id in DAGS[1:]:
                airflow.set_paused(dag_id, False)
            try:
                return _drive(
                    airflow, project, settings=settings, day=day, version=version, timeout_s=timeout_s, rep=rep
                )
            finally:
                for dag_id in DAGS[1:]:  # paused again: nothing is meant to run them once the story ends
                    with suppress(Exception):
                        airflow.set_paused(dag_id, True)
    finally:
        if previous is None:
            os.environ.pop("MODOPS_ALERT_WEBHOOK_URL", None)
        else:
            os.environ["MODOPS_ALERT_WEBHOOK_URL"] = previous


def _drive(
    airflow: Any, project: Path, *, settings: Settings, day: str, version: str, timeout_s: float, rep: Reporter
) -> dict[str, Any]:  # noqa: ANN401
    """Score the day (``dags test``), then wait for the asset-triggered relabel run and the retraining it starts."""
    from modops.orchestration import DagRunFailed, dag_test

    since = datetime.now(UTC)
    log_file = settings.state_dir / "logs" / f"modops_scoring-demo-drift-{day}.log"
    conf = {"day": day, "model_version": version}
    try:
        dag_test("modops_scoring", settings=settings, project=project, conf=conf, log_file=log_file)
    except DagRunFailed as exc:
        raise StoryError(f"the scoring DAG failed; its log: {log_file}") from exc
    verdict = _verdict(settings, day=day, version=version)
    fired = ", ".join(verdict["fired"])
    rep.log(f"demo-drift: scored {day}: drift {'YES: ' + fired if verdict['drift'] else 'no'}")
    if not verdict["drift"]:
        return {"scoring": "success", "drift": False}
    runs: dict[str, Any] = {"scoring": "success", "drift": True, "fired": verdict["fired"]}
    for dag_id, kind, limit in (("modops_relabel", "asset_triggered", 900), ("modops_training", None, timeout_s)):
        run = airflow.wait_for_run(dag_id, after=since, run_type=kind, timeout_s=limit)
        rep.log(f"demo-drift: {dag_id} {run['state']} ({run['run_id']})")
        if run["state"] != "success":
            raise StoryError(f"{dag_id} run {run['run_id']} {run['state']}; task logs under {settings.airflow_home}")
        runs[dag_id] = run
    return runs


def _verdict(settings: Settings, *, day: str, version: str) -> dict[str, Any]:
    path = settings.monitoring_dir / f"day={day}" / f"model_version={version}" / "verdict.json"
    if not path.is_file():
        raise StoryError(f"the scoring run wrote no drift verdict at {path}")
    return json.loads(path.read_text())


def _before_after(
    project: Path, *, settings: Settings, day: str, version: str, variants: dict[str, str]
) -> dict[str, Any]:
    """The retrained candidate's gate verdict and both versions' recall on the new style (round's images excluded)."""
    from modops.scoring.daily import read_partition
    from modops.stages import relabel_batch_dir, score_stage

    registration = json.loads((project / "eval" / "registration.json").read_text())
    new = str(registration["registration"]["version"])
    batch = relabel_batch_dir(settings, day=day, model_version=version)
    labelled = set(pd.read_parquet(batch / "selection.parquet", columns=["image_id"])["image_id"])
    imported = json.loads((batch / "import.json").read_text())
    log_dir = settings.prediction_log_dir
    if new != version:
        score_stage(None, day=day, params_path=project / "params.yaml", settings=settings, model_version=new)
    figures = {}
    for name, v in (("before", version), ("after", new)):
        scored = read_partition(log_dir, day=day, model_version=v).predictions
        figures[name] = {
            "version": v,
            "new_style": style_recall(scored, variants, category="promo_spam", style=NEW_STYLE, exclude=labelled),
        }
    round_styles = pd.Series([variants.get(u) for u in pd.read_parquet(batch / "selection.parquet")["uri"]])
    trained = project / "models" / "train_metrics.json"
    started = json.loads(trained.read_text()).get("warm_start", {}) if trained.is_file() else {}
    return {
        "round": imported["round"],
        "round_labels": imported["by_label"],
        "round_new_style": int(round_styles.isin(NEW_STYLE).sum()),
        "admitted": imported.get("admitted"),
        "candidate_version": new,
        "trained_from": started.get("from"),
        "gate_passed": bool(registration["gate"]["passed"]),
        "gate_reasons": registration["gate"].get("reasons", []),
        "champion_after": registration["registration"].get("champion_after"),
        **figures,
        "report": str(settings.monitoring_dir / f"day={day}" / f"model_version={version}" / "report.html"),
        "workspace": str(settings.monitoring_dir / "workspace"),
        "batch": str(batch),
    }
