"""The ``modops`` command line: one command per stage, calling the same functions DVC and Airflow run.

Run ``modops --help``. Paths default to the layout in ``dvc.yaml``; every one can be overridden.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from modops.config import ConfigError, load_settings

app = typer.Typer(
    name="modops",
    help="modops: image-moderation MLOps. Stages: ingest, validate, cold-start, split, train, evaluate, register; "
    "then score and drift.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

PARAMS = Annotated[Path, typer.Option("--params", help="params.yaml to read stage sections from")]
MODEL_VERSION = Annotated[
    str | None, typer.Option("--model-version", help="the version that scored the day (default: champion)")
]
LOG_DIR = Annotated[
    Path | None, typer.Option("--log-dir", help="prediction log (default: predictions/ in the state folder)")
]
LABELS_DIR = Annotated[Path, typer.Option("--labels", help="the label store (append-only event batches)")]


def _reporter():  # noqa: ANN202
    from modops.progress import RichReporter

    return RichReporter()


def _quiet() -> None:
    import logging

    from modops.registry.tracking import quiet_env

    for key, value in quiet_env().items():
        os.environ.setdefault(key, value)
    # Streams of Airflow/DVC subprocesses are relayed through logging; show them as plain lines.
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    # faiss logs every CPU-specific build it tries and does not find; only its warnings matter.
    logging.getLogger("faiss").setLevel(logging.WARNING)


def _fail(message: str, code: int = 1) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the errors a user can fix into one clear line and a non-zero exit (no traceback)."""
    from modops.data.images import QUARANTINE_REASONS, QuarantineError
    from modops.registry.errors import ModelNotRegistered, RegistryError
    from modops.stages import StageError

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _quiet()
        try:
            return fn(*args, **kwargs)
        except (
            ConfigError,
            StageError,
            RegistryError,
            FileNotFoundError,
            NotADirectoryError,
            ValueError,
            ModelNotRegistered,
        ) as exc:
            _fail(str(exc))  # PromotionError is a ValueError
        except QuarantineError as exc:
            _fail(f"the image cannot be decoded safely: {exc} ({QUARANTINE_REASONS[exc.reason]})")

    return wrapper


@app.command("demo-data")
@handle_errors
def demo_data(
    out: Annotated[Path, typer.Option("--out", help="folder to write images/ and labels.csv into")] = Path("data/raw"),
    size: Annotated[str, typer.Option(help="small (<=2,000 images, for tests) or default (20,000)")] = "default",
    seed: Annotated[int, typer.Option(help="random seed; the same seed writes the same bytes")] = 0,
    n_images: Annotated[int | None, typer.Option("--n-images", help="override the pool size")] = None,
    positive_rate: Annotated[float, typer.Option(help="fraction of violating images (0.001-0.5)")] = 0.01,
    noise_rate: Annotated[float, typer.Option(help="fraction of labels flipped (label noise)")] = 0.0,
    day: Annotated[int, typer.Option(help="day offset of the upload timestamps")] = 0,
    drift: Annotated[bool, typer.Option(help="write spam in a new style (a later 'day' for drift work)")] = False,
    labelled_fraction: Annotated[
        float, typer.Option(help="fraction of pool images whose label is written (the rest are unlabelled uploads)")
    ] = 1.0,
    seeds_per_category: Annotated[
        int, typer.Option(help="seed images per violating category (label_source=seed), for the cold start")
    ] = 0,
) -> None:
    """Write a deterministic, realistic demo content pool: images plus labels.csv."""
    from modops.demo import generate_pool

    if size not in ("small", "default"):
        raise ValueError(f"--size must be 'small' or 'default', got {size!r}")
    rep = _reporter()
    total = n_images or (1500 if size == "small" else 20000)
    with rep.task("demo-data", total=total) as advance:
        summary = generate_pool(
            out,
            size=size,
            n_images=n_images,
            seed=seed,
            positive_rate=positive_rate,  # type: ignore[arg-type]
            noise_rate=noise_rate,
            day=day,
            drift=drift,
            labelled_fraction=labelled_fraction,
            seeds_per_category=seeds_per_category,
            progress=advance,
        )
    rep.log(
        f"demo-data: {summary.n_images} images ({summary.n_labelled} labelled) + {summary.n_seeds} seeds -> {out} ; "
        f"labels {summary.counts} ; flipped {summary.n_flipped}"
    )


@app.command("demo-serve")
@handle_errors
def demo_serve(
    n_images: Annotated[int, typer.Option("--n-images", help="uploads posted", min=10)] = 300,
    positive_rate: Annotated[
        float, typer.Option("--positive-rate", help="violations that day", min=0.0, max=0.5)
    ] = 0.1,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port (0: any free port)", min=0, max=65535)] = 8080,
    exit_after: Annotated[bool, typer.Option("--exit", help="stop once the day is posted")] = False,
) -> None:
    """After `make demo`: the moderation service on the demo model, a day of uploads, the review queue."""
    from modops.demo.drift_story import StoryError
    from modops.demo.serve_story import run_serve_story
    from modops.orchestration import project_dir

    try:
        run_serve_story(
            project_dir(),
            settings=load_settings(),
            n_images=n_images,
            positive_rate=positive_rate,
            seed=seed,
            host=host,
            port=port,
            keep_serving=not exit_after,
            reporter=_reporter(),
            on_ready=_print_serve_story,
        )
    except StoryError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        print("stopped")


def _short_reason(reason: dict[str, Any]) -> str:
    """``stage2 flagged weapon 0.67 >= 0.56`` from a decision's reason (its ``detail`` is longer)."""
    words = [reason["step"], reason["code"], reason.get("category") or ""]
    if reason.get("value") is not None and reason.get("threshold") is not None:
        words.append(
            f"{reason['value']:.2f} {'>=' if reason['value'] >= reason['threshold'] else '<'} {reason['threshold']:.2f}"
        )
    return " ".join(w for w in words if w)


def _print_serve_story(r: dict[str, Any]) -> None:
    """The day's decisions, the queue's head and how to open the reviewer page."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    held = ("pending_review", "blocked", "discarded")
    console.print(f"[bold]{r['uploads']} uploads[/] of {r['day']} on v{r['version']} ({r['served']}): {r['decisions']}")
    for truth, counts in sorted(r["by_truth"].items()):
        n = sum(counts.values())
        console.print(f"  true {truth:<11} {n:>4}: held back {sum(counts.get(d, 0) for d in held):>4}  {counts}")
    console.print(
        f"  server errors {r['errors']}; latency per upload "
        f"p50 {r['latency_ms']['p50']} ms, p99 {r['latency_ms']['p99']} ms"
    )
    table = Table("upload", "uploader", "category", "scores", "reasons", title="review queue (oldest first)")
    for q in r["queue_head"]:
        top = sorted(q["scores"].items(), key=lambda kv: -kv[1])[:2]
        shown = (_short_reason(x) for x in q["reasons"] if x["step"] not in ("context", "stage1"))
        reasons = "; ".join(dict.fromkeys(shown))  # one line per kind of reason, in order
        table.add_row(
            q["id"][:12], q["uploader_id"], q["business_category"], ", ".join(f"{k} {v:.2f}" for k, v in top), reasons
        )
    console.print(table)
    console.print(
        f"[bold]reviewer page[/]: {r['url']}/review  sign in with the token of admin '{r['reviewer']}':\n"
        f"  {r['token']}\n"
        f"API docs: {r['url']}/docs   more reviewers: modops reviewers add NAME --role reviewer"
    )


@app.command("demo-drift")
@handle_errors
def demo_drift(
    day: Annotated[str, typer.Option("--day", help="the later day, YYYY-MM-DD")] = "2026-12-01",
    n_images: Annotated[int, typer.Option("--n-images", help="uploads that day", min=100)] = 3000,
    positive_rate: Annotated[
        float, typer.Option("--positive-rate", help="violations that day", min=0.01, max=0.5)
    ] = 0.09,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
    timeout_min: Annotated[float, typer.Option("--timeout-min", help="give up on the retraining after this")] = 40,
) -> None:
    """After `make demo`: a day of spam in a new style -> drift alert -> relabel round -> retrain -> gate."""
    from modops.demo.drift_story import run_drift_story
    from modops.orchestration import project_dir

    rep = _reporter()
    result = run_drift_story(
        project_dir(),
        settings=load_settings(),
        day=day,
        n_images=n_images,
        positive_rate=positive_rate,
        seed=seed,
        timeout_s=timeout_min * 60,
        reporter=rep,
    )
    from rich.console import Console

    _print_story(result, console=Console(soft_wrap=True))


def _print_story(r: dict, *, console: Any) -> None:  # noqa: ANN401
    """The story's figures, for the person who ran `make demo-drift`."""
    console.print(f"[bold]on-call[/]: {r['alerts_received']} alert(s) delivered to the local receiver")
    for text in r["alert_texts"][:2]:
        console.print("  " + text.splitlines()[0])
    if not r["runs"].get("drift"):
        console.print("the day did not drift: no alert, no relabel round")
        return
    console.print(
        f"[bold]relabel round {r['round']}[/]: {sum(r['round_labels'].values())} labels {r['round_labels']}, "
        f"{r['round_new_style']} of them new-style spam; images into the pool: {r['admitted']}"
    )
    b, a = r["before"]["new_style"], r["after"]["new_style"]

    def precision(x: dict) -> str:
        return f"{x['precision']:.2f} ({x['flagged']} flags)" if x["flagged"] else "no flags"

    console.print(
        f"[bold]recall on the new style[/] (promo_spam drawn as vertical banners and QR codes, {b['n']} images the "
        f"round did not label): v{r['before']['version']} {b['recall']:.2f} -> v{r['after']['version']} "
        f"{a['recall']:.2f}; promo_spam flag precision on those images' day {precision(b)} -> {precision(a)}"
    )
    if "average_precision" in b and "average_precision" in a:
        console.print(
            f"  whatever the threshold: median promo_spam score {b['median_score']:.2f} -> {a['median_score']:.2f}, "
            f"average precision against the day's clean images {b['average_precision']:.2f} -> "
            f"{a['average_precision']:.2f}"
        )
    word = "PASSED: champion now v" + str(r["champion_after"]) if r["gate_passed"] else "FAILED: champion unchanged"
    if r.get("trained_from"):
        console.print(f"v{r['candidate_version']} trained from {r['trained_from']} (train.warm_start)")
    console.print(f"[bold]gate[/] on v{r['candidate_version']}: {word}")
    for reason in r["gate_reasons"][:6]:
        console.print(f"  - {reason}")
    console.print(f"drift report: {r['report']}")
    console.print(f"trend over days: .venv/bin/evidently ui --workspace {r['workspace']}")
    console.print(f"review batch (Label Studio tasks, CSV): {r['batch']}")


@app.command()
@handle_errors
def ingest(
    source: Annotated[str, typer.Argument(help="local folder or s3://bucket/prefix")],
    out: Annotated[Path, typer.Option("--out", help="folder for manifest.parquet and quarantine.parquet")] = Path(
        "data/ingested"
    ),
    store: Annotated[Path, typer.Option("--store", help="content-addressed image store")] = Path("data/store"),
    labels_dir: LABELS_DIR = Path("data/labels"),
    params: PARAMS = Path("params.yaml"),
) -> None:
    """Ingest images: good ones into the store and manifest, bad ones into quarantine with a reason."""
    from modops.stages import ingest_stage

    ingest_stage(
        source,
        out,
        store_dir=store,
        labels_dir=labels_dir,
        params_path=params,
        settings=load_settings(),
        reporter=_reporter(),
    )


@app.command()
@handle_errors
def validate(
    manifest: Annotated[Path, typer.Argument(help="manifest.parquet")] = Path("data/ingested/manifest.parquet"),
    report_dir: Annotated[Path, typer.Option("--report-dir")] = Path("reports/validation"),
    params: PARAMS = Path("params.yaml"),
) -> None:
    """Check the manifest with Great Expectations; exit 1 with an HTML report when it fails."""
    from modops.stages import validate_stage

    validate_stage(manifest, report_dir, params_path=params, reporter=_reporter())


@app.command("cold-start")
@handle_errors
def cold_start(
    manifest: Annotated[Path, typer.Argument(help="ingest's source_manifest.parquet (or any manifest)")] = Path(
        "data/ingested/source_manifest.parquet"
    ),
    out: Annotated[Path, typer.Option("--out", help="folder for tasks.json, candidates.csv, metrics.json")] = Path(
        "data/cold_start"
    ),
    store: Annotated[Path, typer.Option("--store")] = Path("data/store"),
    labels_dir: LABELS_DIR = Path("data/labels"),
    params: PARAMS = Path("params.yaml"),
) -> None:
    """Retrieve look-alikes of each category's seed images; export them for review; import the decisions."""
    from modops.stages import cold_start_stage

    cold_start_stage(manifest, out, store_dir=store, labels_dir=labels_dir, params_path=params, reporter=_reporter())


@app.command()
@handle_errors
def split(
    manifest: Annotated[Path, typer.Argument(help="manifest.parquet")] = Path("data/ingested/manifest.parquet"),
    out: Annotated[Path, typer.Option("--out")] = Path("data/split/splits.parquet"),
    holdout: Annotated[Path, typer.Option("--holdout", help="frozen holdout; reused when it exists")] = Path(
        "data/holdout.parquet"
    ),
    labels_dir: LABELS_DIR = Path("data/labels"),
    params: PARAMS = Path("params.yaml"),
) -> None:
    """Split into train/val/holdout without letting near-duplicates cross splits."""
    from modops.stages import split_stage

    split_stage(
        manifest,
        out,
        holdout_path=holdout,
        labels_dir=labels_dir,
        params_path=params,
        settings=load_settings(),
        reporter=_reporter(),
    )


@app.command()
@handle_errors
def noise(
    splits: Annotated[Path, typer.Argument(help="splits.parquet")] = Path("data/split/splits.parquet"),
    out: Annotated[Path, typer.Option("--out", help="folder for label_issues.parquet, review.csv")] = Path(
        "data/noise"
    ),
    store: Annotated[Path, typer.Option("--store")] = Path("data/store"),
    manifest: Annotated[
        Path, typer.Option("--manifest", help="its folder's ingest summary has the decode limits")
    ] = Path("data/ingested/manifest.parquet"),
    params: PARAMS = Path("params.yaml"),
) -> None:
    """Flag likely mislabelled train/val images (cleanlab, out-of-fold) and write the review list."""
    from modops.stages import noise_stage

    noise_stage(splits, out, store_dir=store, manifest_path=manifest, params_path=params, reporter=_reporter())


@app.command()
@handle_errors
def train(
    manifest: Annotated[Path, typer.Option("--manifest")] = Path("data/ingested/manifest.parquet"),
    splits: Annotated[Path, typer.Option("--splits")] = Path("data/split/splits.parquet"),
    store: Annotated[Path, typer.Option("--store")] = Path("data/store"),
    out: Annotated[Path, typer.Option("--out", help="model folder to write")] = Path("models/candidate"),
    metrics: Annotated[Path, typer.Option("--metrics", help="training summary JSON")] = Path(
        "models/train_metrics.json"
    ),
    issues: Annotated[
        Path, typer.Option("--issues", help="the noise check's label_issues.parquet (params noise.action applies)")
    ] = Path("data/noise/label_issues.parquet"),
    params: PARAMS = Path("params.yaml"),
    mlflow: Annotated[bool, typer.Option(help="log the run to MLflow")] = True,
) -> None:
    """Train a candidate model with the trainer and backbone named in params.yaml."""
    from modops.stages import train_stage

    train_stage(
        manifest,
        splits,
        out,
        store_dir=store,
        params_path=params,
        settings=load_settings() if mlflow else None,
        metrics_path=metrics,
        issues_path=issues,
        reporter=_reporter(),
    )


@app.command()
@handle_errors
def evaluate(
    model: Annotated[Path, typer.Option("--model")] = Path("models/candidate"),
    manifest: Annotated[Path, typer.Option("--manifest")] = Path("data/ingested/manifest.parquet"),
    splits: Annotated[Path, typer.Option("--splits")] = Path("data/split/splits.parquet"),
    store: Annotated[Path, typer.Option("--store")] = Path("data/store"),
    out: Annotated[Path, typer.Option("--out")] = Path("eval"),
    params: PARAMS = Path("params.yaml"),
) -> None:
    """Pick thresholds on val for the target precision; report holdout precision, recall and PR-AUC."""
    from modops.stages import evaluate_stage

    evaluate_stage(model, manifest, splits, out, store_dir=store, params_path=params, reporter=_reporter())


@app.command()
@handle_errors
def register(
    model: Annotated[Path, typer.Option("--model")] = Path("models/candidate"),
    eval_dir: Annotated[Path, typer.Option("--eval")] = Path("eval"),
    manifest: Annotated[Path, typer.Option("--manifest")] = Path("data/ingested/manifest.parquet"),
    splits: Annotated[Path, typer.Option("--splits")] = Path("data/split/splits.parquet"),
    store: Annotated[Path, typer.Option("--store")] = Path("data/store"),
    train_metrics: Annotated[Path, typer.Option("--train-metrics")] = Path("models/train_metrics.json"),
    out: Annotated[Path, typer.Option("--out")] = Path("eval/registration.json"),
    params: PARAMS = Path("params.yaml"),
) -> None:
    """Gate the candidate (floors + no regression vs champion); register it; promote on a pass."""
    from modops.stages import register_stage

    register_stage(
        model,
        eval_dir,
        manifest,
        splits,
        out,
        store_dir=store,
        params_path=params,
        settings=load_settings(),
        train_metrics_path=train_metrics,
        reporter=_reporter(),
    )


@app.command()
@handle_errors
def score(
    source: Annotated[
        str | None, typer.Argument(help="folder or s3://bucket/prefix of the day's uploads (default: score.source)")
    ] = None,
    day: Annotated[str, typer.Option("--day", help="the day scored, YYYY-MM-DD (the partition's key)")] = ...,
    log_dir: LOG_DIR = None,
    model_version: Annotated[
        str | None, typer.Option("--model-version", help="score with this registered version (default: champion)")
    ] = None,
    params: PARAMS = Path("params.yaml"),
    as_json: Annotated[bool, typer.Option("--json", help="print the day's summary as JSON")] = False,
) -> None:
    """Score one day's uploads with the champion into the prediction log (no labels file needed)."""
    from modops.stages import score_stage

    summary = score_stage(
        source,
        day=day,
        params_path=params,
        settings=load_settings(),
        log_dir=log_dir,
        model_version=model_version,
        reporter=_reporter(),
    )
    if as_json:
        print(json.dumps(summary))


@app.command()
@handle_errors
def drift(
    day: Annotated[str, typer.Option("--day", help="the scored day to judge, YYYY-MM-DD")] = ...,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the verdict as JSON (top-level boolean `drift`)")
    ] = False,
    model_version: MODEL_VERSION = None,
    log_dir: LOG_DIR = None,
    splits: Annotated[Path, typer.Option("--splits", help="splits with the holdout")] = Path(
        "data/split/splits.parquet"
    ),
    store: Annotated[Path, typer.Option("--store", help="the image store")] = Path("data/store"),
    thresholds: Annotated[Path, typer.Option("--thresholds", help="alert thresholds")] = Path("monitoring/drift.yaml"),
    workspace: Annotated[Path, typer.Option("--workspace-config", help="Evidently project and panels")] = Path(
        "monitoring/workspace.yaml"
    ),
    params: PARAMS = Path("params.yaml"),
) -> None:
    """Compare a scored day with the champion's holdout scores (Evidently); print the verdict."""
    from modops.progress import Reporter
    from modops.stages import drift_stage

    class _Quiet(Reporter):
        def log(self, message: str) -> None:
            print(message, file=sys.stderr, flush=True)

    result = drift_stage(
        day,
        params_path=params,
        settings=load_settings(),
        drift_config=thresholds,
        workspace_config=workspace,
        splits_path=splits,
        store_dir=store,
        log_dir=log_dir,
        model_version=model_version,
        reporter=_Quiet() if as_json else _reporter(),
    )
    if as_json:
        print(json.dumps(result))


@app.command()
@handle_errors
def select(
    day: Annotated[str, typer.Option("--day", help="the scored day to select from, YYYY-MM-DD")] = ...,
    strategy: Annotated[
        str | None,
        typer.Option("--strategy", help="confidence_band | loss | entropy | random (default: select.strategy)"),
    ] = None,
    budget: Annotated[int | None, typer.Option("--budget", help="images to select (default: select.budget)")] = None,
    model_version: MODEL_VERSION = None,
    log_dir: LOG_DIR = None,
    out: Annotated[Path | None, typer.Option("--out", help="where the review batch is written")] = None,
    labels_dir: LABELS_DIR = Path("data/labels"),
    params: PARAMS = Path("params.yaml"),
) -> None:
    """Choose a scored day's images for review (active learning); export Label Studio tasks and CSV."""
    from modops.stages import select_stage

    select_stage(
        day,
        params_path=params,
        settings=load_settings(),
        log_dir=log_dir,
        out_dir=out,
        model_version=model_version,
        strategy=strategy,
        budget=budget,
        labels_dir=labels_dir,
        reporter=_reporter(),
    )


@app.command()
@handle_errors
def relabel(
    day: Annotated[str, typer.Option("--day", help="the day whose review batch is answered, YYYY-MM-DD")] = ...,
    model_version: MODEL_VERSION = None,
    batch: Annotated[Path | None, typer.Option("--batch", help="the batch folder (default: modops select's)")] = None,
    labels_dir: LABELS_DIR = Path("data/labels"),
    params: PARAMS = Path("params.yaml"),
) -> None:
    """Import a review batch's decisions (relabel.reviewer) into the label store as the batch's round."""
    from modops.stages import relabel_stage

    result = relabel_stage(
        day,
        params_path=params,
        settings=load_settings(),
        labels_dir=labels_dir,
        model_version=model_version,
        batch_dir=batch,
        reporter=_reporter(),
    )
    print(json.dumps(result))


@app.command("run-dag")
@handle_errors
def run_dag(
    dag_id: Annotated[str, typer.Argument(help="DAG to run in-process")] = "modops_training",
    logical_date: Annotated[str | None, typer.Option(help="logical date (default: now)")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="stream Airflow's whole output")] = False,
) -> None:
    """Run a DAG end to end with `airflow dags test` on the embedded default (SQLite, LocalExecutor).

    Prints one line per task (ran or skipped, duration, key figure); Airflow's whole output
    goes to a log file in the state folder, whose path is printed (and its last lines on failure).
    """
    import time
    from datetime import UTC, datetime

    from rich.console import Console

    from modops.orchestration import DagRunFailed, dag_test, ensure_airflow_db, project_dir

    settings, project = load_settings(), project_dir()
    console = Console(highlight=False, soft_wrap=True)  # one line per task, whatever the terminal width
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    log_file = None if verbose else settings.state_dir.resolve() / "logs" / f"{dag_id}-{stamp}.log"
    started = time.monotonic()
    if log_file is not None:
        console.print(f"[bold]{dag_id}[/]: running; Airflow's full output -> {log_file}")
    ensure_airflow_db(settings, project, log_file=None if log_file is None else log_file.with_suffix(".db.log"))
    try:
        dag_test(
            dag_id,
            settings=settings,
            project=project,
            logical_date=logical_date,
            log_file=log_file,
            on_line=None if log_file is None else functools.partial(_task_line, console=console),
        )
    except DagRunFailed as exc:
        where = f"\nAirflow's full output (every task's log): {log_file}" if log_file else ""
        _fail(f"{exc}{where}")
    minutes, seconds = divmod(int(time.monotonic() - started), 60)
    console.print(f"[bold green]{dag_id}: success[/] in {minutes} min {seconds:02d} s")


def _task_line(line: str, *, console: Any) -> None:  # noqa: ANN401
    """Show a task's one-line report (see ``modops.orchestration.task_report``)."""
    from modops.orchestration import STAGE_MARK

    if STAGE_MARK not in line:
        return
    try:
        report, _ = json.JSONDecoder().raw_decode(line.split(STAGE_MARK, 1)[1].strip())
    except ValueError:
        return
    state = "[dim]skipped[/]" if report.get("skipped") else "[green]ran[/]    "
    console.print(f"  {report['task']:<11} {state} {report['duration_s']:>7.1f} s  {report.get('figure', '')}")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@handle_errors
def airflow(ctx: typer.Context) -> None:
    """Run any `airflow` command against modops' state folder, e.g. `modops airflow dags list`."""
    from modops.orchestration import project_dir, run_airflow

    settings, project = load_settings(), project_dir()
    result = run_airflow(list(ctx.args), settings=settings, project=project, check=False)
    raise typer.Exit(result.returncode)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@handle_errors
def dvc(ctx: typer.Context) -> None:
    """Run any `dvc` command with this environment's Python first on PATH, e.g. `modops dvc repro`.

    The stages in dvc.yaml run `python pipelines/...`; from a shell without the virtualenv
    activated, a bare `dvc repro` would run them with the system Python.
    """
    import subprocess

    from modops.orchestration import prepare_project, project_dir

    prepare_project(project_dir())
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]), "DVC_NO_ANALYTICS": "true"}
    tool = Path(bin_dir) / "dvc"
    done = subprocess.run([str(tool) if tool.exists() else "dvc", *ctx.args], cwd=project_dir(), env=env)
    raise typer.Exit(done.returncode)


@app.command()
@handle_errors
def champion(
    name: Annotated[str | None, typer.Option(help="registered model name (default from settings)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Show the champion model: version, gate verdict, per-category metrics, and how to open the UIs."""
    from modops.registry.promotion import challenger_version, champion_version
    from modops.registry.tracking import configure_mlflow

    settings = load_settings()
    configure_mlflow(settings)
    model_name = name or settings.model_name
    champ = champion_version(model_name)
    if champ is None:
        challenger = challenger_version(model_name)
        if challenger is None:
            _fail(f"no champion for model '{model_name}' yet: run `make demo` or `modops run-dag`")
        reasons = challenger.tags.get("modops.gate_reasons", "").replace("\n", "; ")
        _fail(
            f"no champion for model '{model_name}': candidate version {challenger.version} failed the gate "
            f"({reasons or 'no reasons recorded'}); the figures: {settings.dashboard_dir / 'index.html'} and "
            f"eval/metrics.json; the floors: `gate` in params.yaml; to promote it anyway: "
            f'`modops promote {challenger.version} --force --reason "..."`'
        )
    import mlflow

    run = mlflow.get_run(champ.run_id)
    metrics = {k: v for k, v in run.data.metrics.items() if k.startswith("holdout.")}
    info = {
        "model": model_name,
        "version": str(champ.version),
        "aliases": list(champ.aliases),
        "tags": dict(champ.tags),
        "holdout": metrics,
        "stage2_share": run.data.metrics.get("stage2_share.holdout"),
    }
    if as_json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return
    _print_champion(info, settings)


def _print_champion(info: dict, settings) -> None:  # noqa: ANN001
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, soft_wrap=True)  # commands below must stay copy-pasteable
    console.print(
        f"[bold green]champion[/]: {info['model']} version {info['version']} (aliases: {', '.join(info['aliases'])})"
    )
    table = Table("category", "precision", "recall", "f1", "PR-AUC", "threshold")
    cats = sorted({k.split(".")[1] for k in info["holdout"]})
    for cat in cats:
        values = [
            info["holdout"].get(f"holdout.{cat}.{m}", float("nan"))
            for m in ("precision", "recall", "f1", "pr_auc", "threshold")
        ]
        table.add_row(cat, *(f"{v:.3f}" for v in values))
    console.print(table)
    share = info.get("stage2_share")
    if share:  # single models log a zero share; only a cascade routes anything
        console.print(f"cascade: {share:.1%} of holdout images reached stage 2")
    console.print(
        f"gate: {info['tags'].get('modops.gate', '?')}  data version: {info['tags'].get('modops.data_version', '?')}  "
        f"labels: {info['tags'].get('modops.label_version', '?')}"
    )
    index = settings.dashboard_dir / "index.html"
    if index.is_file():
        console.print(f"\n[bold]Dashboard[/] (stakeholders): {index}\n  serve it: .venv/bin/modops dashboard serve")
    else:
        console.print("\n[bold]Dashboard[/]: not built yet: .venv/bin/modops dashboard build")
    console.print("\n[bold]Open the UIs on this state:[/]")
    console.print(f"  MLflow : .venv/bin/mlflow ui --backend-store-uri {settings.resolved_tracking_uri} --port 5000")
    console.print("  Airflow: .venv/bin/modops airflow standalone   (then http://localhost:8080)")
    console.print("\nScore an image:\n  .venv/bin/modops predict IMAGE.jpg")
    console.print(f"  # or in Python: mlflow.pyfunc.load_model('models:/{info['model']}@champion')")


@app.command()
@handle_errors
def explain(
    image: Annotated[Path, typer.Argument(help="image file to explain")],
    out: Annotated[Path, typer.Option("--out", help="PNG to write: the input and its Grad-CAM heatmap(s)")] = Path(
        "explain.png"
    ),
    category: Annotated[str | None, typer.Option(help="category to explain (default: the highest-scored)")] = None,
    model: Annotated[Path | None, typer.Option("--model", help="a local model folder instead of the champion")] = None,
    model_uri: Annotated[
        str | None, typer.Option(help="registered version, e.g. models:/NAME/3 (default @champion)")
    ] = None,
) -> None:
    """Grad-CAM heatmap of why a model (the champion by default) scores an image as it does."""
    from modops.stages import explain_image_stage

    info = explain_image_stage(
        image, out, model_dir=model, model_uri=model_uri, category=category, settings=load_settings()
    )
    print(json.dumps(info))


labels_app = typer.Typer(help="The label store: append-only labelling events.", no_args_is_help=True)
app.add_typer(labels_app, name="labels")


@labels_app.command("status")
@handle_errors
def labels_status(
    labels_dir: LABELS_DIR = Path("data/labels"),
    as_of: Annotated[str | None, typer.Option(help="rebuild the labelled set as of this UTC time")] = None,
) -> None:
    """Print the label version and counts (now, or as of a moment)."""
    from modops.stages import labels_status_stage

    print(json.dumps(labels_status_stage(labels_dir, as_of=as_of), indent=2))


class ImportSource(enum.StrEnum):
    """Sources an import may write: upload labels come only from ingest (they may enter val/holdout)."""

    reviewer = "reviewer"
    retrieval = "retrieval"


@labels_app.command("import")
@handle_errors
def labels_import(
    export: Annotated[Path, typer.Argument(help="Label Studio JSON / JSON_MIN export, or CSV with image_id,label")],
    source: Annotated[ImportSource, typer.Option(help="source of the imported decisions")] = ImportSource.reviewer,
    round_: Annotated[int, typer.Option("--round", help="labelling round (0 = cold start)")] = 0,
    labels_dir: LABELS_DIR = Path("data/labels"),
    params: PARAMS = Path("params.yaml"),
) -> None:
    """Append reviewers' decisions to the label store (a new batch; re-importing the same file adds nothing)."""
    from modops.stages import labels_import_stage

    print(json.dumps(labels_import_stage(export, labels_dir, source=source.value, round_=round_, params_path=params)))


@app.command()
@handle_errors
def predict(
    images: Annotated[list[Path], typer.Argument(help="image files to score")],
    model_uri: Annotated[str | None, typer.Option(help="MLflow model URI (default models:/NAME@champion)")] = None,
) -> None:
    """Score image files with a registered model (the champion by default); prints JSON lines."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from modops.registry.pyfunc import files_frame, served_decode_limits
    from modops.registry.tracking import configure_mlflow

    settings = load_settings()
    configure_mlflow(settings)
    uri = model_uri or f"models:/{settings.model_name}@champion"
    missing = [str(p) for p in images if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"no such image file(s): {missing}")
    try:
        model = mlflow.pyfunc.load_model(uri)
    except MlflowException as exc:
        _fail(
            f"cannot load model {uri}: {exc.message}; `modops champion` says whether a candidate was "
            "refused and why; train one with `make demo`, or pass --model-uri"
        )
    # The files are sent as bytes: a served model reads no paths (see modops.registry.pyfunc).
    result = model.predict(files_frame(images, max_bytes=served_decode_limits(model).max_bytes))
    for path, row in zip(images, result.to_dict(orient="records"), strict=True):
        print(json.dumps({"path": str(path), **{k: (float(v) if hasattr(v, "item") else v) for k, v in row.items()}}))


REASON = Annotated[str, typer.Option("--reason", help="why: recorded in the audit trail with who and when")]
NAME = Annotated[str | None, typer.Option("--name", help="registered model name (default from settings)")]


def _registry(name: str | None):  # noqa: ANN202
    from modops.registry.tracking import configure_mlflow

    settings = load_settings()
    configure_mlflow(settings)
    return settings, name or settings.model_name


@app.command()
@handle_errors
def promote(
    version: Annotated[str, typer.Argument(help="the model version to make champion")],
    reason: REASON,
    force: Annotated[bool, typer.Option(help="promote a version that failed its gate (recorded)")] = False,
    rebaseline: Annotated[
        bool, typer.Option(help="accept a version judged on a new holdout as the new baseline (recorded)")
    ] = False,
    name: NAME = None,
) -> None:
    """Move `champion` to VERSION by hand; the move is recorded (who, when, why, from, to)."""
    from modops.registry.promotion import promote_version

    _, model = _registry(name)
    event = promote_version(model, version, reason=reason, force=force, rebaseline=rebaseline)
    _reporter().log(f"{event['action']}: {model} champion v{event['from_version']} -> v{event['to_version']}")
    _rebuild_dashboard_quietly()


@app.command()
@handle_errors
def rollback(
    reason: REASON,
    to: Annotated[
        str | None, typer.Option("--to", help="version to go back to (default: the previous champion)")
    ] = None,
    name: NAME = None,
) -> None:
    """Move `champion` back to the previous champion (or --to VERSION); the move is recorded."""
    from modops.registry.promotion import rollback_champion

    _, model = _registry(name)
    event = rollback_champion(model, reason=reason, to=to)
    _reporter().log(f"rollback: {model} champion v{event['from_version']} -> v{event['to_version']}")
    _rebuild_dashboard_quietly()


@app.command()
@handle_errors
def audit(
    name: NAME = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON lines instead of a table")] = False,
) -> None:
    """The audit trail: every alias move (register, promote, rollback, failed gate), newest first."""
    from mlflow import MlflowClient

    from modops.registry.audit import read_audit

    _, model = _registry(name)
    events = read_audit(MlflowClient(), model)
    if as_json:
        for e in events:
            print(json.dumps(e.to_dict(), sort_keys=True))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("when", "who", "action", "alias", "from", "to", "reason", title=f"{model}: audit trail")
    for e in events:
        table.add_row(e.when, e.who, e.action, e.alias, e.from_version or "-", e.to_version or "-", e.reason)
    Console().print(table)


@app.command()
@handle_errors
def publish(
    holdout_only: Annotated[
        bool, typer.Option(help="push only the holdout and the image store, not every output")
    ] = False,
    rebaseline: Annotated[
        str | None, typer.Option(help="replace an already published, different holdout; the reason is recorded")
    ] = None,
) -> None:
    """Push pipeline outputs and the frozen holdout to the DVC remote (MODOPS_DVC_REMOTE), once."""
    from modops.data.holdout import HoldoutConflictError
    from modops.orchestration import project_dir
    from modops.registry.audit import current_user
    from modops.remote import publish as publish_outputs

    try:
        result = publish_outputs(
            load_settings(),
            project=project_dir(),
            everything=not holdout_only,
            rebaseline_reason=rebaseline,
            who=current_user(),
        )
    except (HoldoutConflictError, RuntimeError) as exc:
        _fail(str(exc))
    print(json.dumps(result.to_dict(), indent=2, sort_keys=True))


@app.command()
@handle_errors
def pull() -> None:
    """Fetch every output (and the published holdout) from the DVC remote into this clone."""
    from modops.orchestration import prepare_project, project_dir
    from modops.remote import pull as pull_outputs

    prepare_project(project_dir())  # the (empty) reviewed-uploads folder ingest depends on
    try:
        line = pull_outputs(load_settings(), project=project_dir())
    except RuntimeError as exc:
        _fail(str(exc))
    _reporter().log(f"pull: {line}")


@app.command("serve")
@handle_errors
def serve_cmd(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8080,
    model: Annotated[
        str | None, typer.Option("--model", help="champion | latest | a version (default: moderate.model)")
    ] = None,
    db_url: Annotated[
        str | None, typer.Option("--db-url", help="review DB URL (default: MODOPS_REVIEW_DB_URL)")
    ] = None,
    labels_dir: LABELS_DIR = Path("data/labels"),
    params: PARAMS = Path("params.yaml"),
) -> None:
    """Serve the moderation API and the reviewer page over the registered model (Ctrl-C stops)."""
    from modops.moderation.run import build_service, serve

    service = build_service(load_settings(), params_path=params, labels_dir=labels_dir, model=model, db_url=db_url)
    serve(service, host=host, port=port)


class Role(enum.StrEnum):
    reviewer = "reviewer"
    admin = "admin"


reviewers_app = typer.Typer(help="Reviewers of the moderation service: API tokens and roles.", no_args_is_help=True)
app.add_typer(reviewers_app, name="reviewers")
DB_URL = Annotated[str | None, typer.Option("--db-url", help="review DB URL (default: MODOPS_REVIEW_DB_URL)")]


@contextlib.contextmanager
def _review_store(db_url: str | None) -> Iterator[Any]:
    """The review store, closed afterwards; its errors (duplicate name, unknown reviewer, no DB) as one line."""
    from modops.moderation.run import open_store
    from modops.moderation.store import StoreError

    try:
        store = open_store(load_settings(), db_url=db_url)
    except StoreError as exc:
        _fail(str(exc))
    try:
        yield store
    except StoreError as exc:
        _fail(str(exc))
    finally:
        store.close()


@reviewers_app.command("add")
@handle_errors
def reviewers_add(
    name: Annotated[str, typer.Argument(help="the reviewer's name (unique)")],
    role: Annotated[
        Role, typer.Option("--role", help="reviewer: queue actions; admin: also profiles and audit")
    ] = Role.reviewer,
    db_url: DB_URL = None,
) -> None:
    """Create a reviewer and print their API token (shown once; only its hash is stored)."""
    with _review_store(db_url) as store:
        _reviewer, token = store.add_reviewer(name, role=role.value, by="cli")
    print(token)


@reviewers_app.command("list")
@handle_errors
def reviewers_list(db_url: DB_URL = None) -> None:
    """List reviewers with their roles and whether they are active."""
    with _review_store(db_url) as store:
        for r in store.reviewers():
            print(f"{r.name}\t{r.role}\t{'active' if r.active else 'deactivated'}\t{r.created_at.isoformat()}")


@reviewers_app.command("deactivate")
@handle_errors
def reviewers_deactivate(
    name: Annotated[str, typer.Argument(help="the reviewer's name")], db_url: DB_URL = None
) -> None:
    """Revoke a reviewer's token (the audit trail keeps their past actions)."""
    with _review_store(db_url) as store:
        store.deactivate_reviewer(name, by="cli")
    print(f"{name}: deactivated")


dashboard_app = typer.Typer(help="The stakeholders' promotion dashboard (a static site in the state folder).")
app.add_typer(dashboard_app, name="dashboard")


@dashboard_app.command("build")
@handle_errors
def dashboard_build(
    out: Annotated[Path | None, typer.Option("--out", help="site folder (default: STATE/dashboard)")] = None,
) -> None:
    """Write the site: index (promotions, failed candidates, rollbacks) plus one page per model version."""
    from modops.registry.dashboard_data import build_dashboard

    site = build_dashboard(load_settings(), out_dir=out)
    _reporter().log(f"dashboard: {site / 'index.html'}  (serve it: modops dashboard serve)")


@dashboard_app.command("serve")
@handle_errors
def dashboard_serve(
    site: Annotated[Path | None, typer.Option("--site", help="site folder (default: STATE/dashboard)")] = None,
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
) -> None:
    """Serve the built site over http (Ctrl-C stops)."""
    from modops.dashboard.serve import serve

    serve(site or load_settings().dashboard_dir, host=host, port=port, announce=lambda url: print(f"dashboard: {url}"))


def _rebuild_dashboard_quietly() -> None:
    """After an alias move, refresh the stakeholders' site so it shows the move."""
    try:
        from modops.registry.dashboard_data import build_dashboard

        site = build_dashboard(load_settings())
    except Exception as exc:  # noqa: BLE001 - the move is done and recorded; the site can be rebuilt
        _reporter().log(f"dashboard not rebuilt ({type(exc).__name__}: {exc}); run `modops dashboard build`")
        return
    _reporter().log(f"dashboard: {site / 'index.html'}")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
