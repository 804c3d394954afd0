"""Stage functions: the one place that turns arguments into a stage run.

Each DVC stage script in ``pipelines/``, each CLI command and each Airflow task (through
DVC) ends here. A stage loads its ``params.yaml`` sections, calls the pure library, and
writes its outputs atomically; it returns a small JSON-able summary. MLflow is imported
only inside the stages that talk to it (train, register), so core stages run anywhere.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from modops.config import Settings, load_params, load_section
from modops.data.manifest import read_manifest
from modops.data.store import ImageStore, atomic_write_parquet, atomic_write_text
from modops.progress import NullReporter, Reporter

__all__ = [
    "StageError",
    "ingest_stage",
    "validate_stage",
    "split_stage",
    "noise_stage",
    "train_stage",
    "evaluate_stage",
    "register_stage",
    "score_stage",
    "drift_stage",
    "select_stage",
]


class StageError(RuntimeError):
    """A stage cannot complete; the message says what to do."""


def _write_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def ingest_stage(
    source: str,
    out_dir: Path,
    *,
    store_dir: Path,
    labels_dir: Path,
    params_path: Path,
    settings: Settings,
    reporter: Reporter | None = None,
) -> dict:
    """Ingest ``source`` into ``store_dir``; write manifest, quarantine and summary to ``out_dir``.

    The labels that came with the uploads become the label store's ``upload`` (and ``seed``)
    events, in the batch ``labels_dir/upload.parquet``.
    """
    from modops.data.ingest import ingest
    from modops.data.labelstore import UPLOAD_BATCH, LabelStore, upload_events

    rep = reporter or NullReporter()
    params = load_params(params_path)
    cfg, labels = load_section(params, "ingest"), load_section(params, "labels")
    with rep.task("ingest", total=None) as advance:
        summary = ingest(
            source,
            out_dir,
            store=ImageStore(store_dir),
            cfg=cfg,
            s3_endpoint_url=settings.s3_endpoint_url,
            progress=advance,
            reviewed_source=_reviewed_source(cfg.reviewed_source, params_path=params_path),
        )
    events = upload_events(read_manifest(out_dir / "manifest.parquet"))
    batch = LabelStore(labels_dir).write_batch(events, name=UPLOAD_BATCH, replace=True, allowed_labels=labels.all)
    rep.log(
        f"ingest: found {summary.found}, ingested {summary.ingested}, quarantined {summary.quarantined} "
        f"{summary.quarantine_reasons or ''} -> {out_dir}; {batch.n_events} label events -> {batch.path}"
    )
    return summary.to_dict()


def _reviewed_source(source: str, *, params_path: Path) -> str:
    """``ingest.reviewed_source`` with a relative local folder taken from the project folder (where
    ``params_path`` is), as DVC does, so the round's copy and the next ingest find the same folder."""
    from modops.data.sources import is_s3

    if not source or is_s3(source) or Path(source).is_absolute():
        return source
    return str(Path(params_path).resolve().parent / source)


def validate_stage(
    manifest_path: Path, report_dir: Path, *, params_path: Path, reporter: Reporter | None = None
) -> dict:
    """Run the Great Expectations suite; raise :class:`StageError` (after writing the report) on failure."""
    from modops.data.validate import validate_manifest

    rep = reporter or NullReporter()
    params = load_params(params_path)
    report = validate_manifest(
        read_manifest(manifest_path),
        labels=load_section(params, "labels"),
        cfg=load_section(params, "validate"),
        report_dir=report_dir,
    )
    if not report.success:
        lines = [f"  - {c.name}: {c.details}" for c in report.failures()]
        raise StageError(
            f"data validation failed ({len(lines)} check(s)); the pipeline stops here.\n"
            + "\n".join(lines)
            + f"\nReport: {report.html_path}"
        )
    rep.log(f"validate: {len(report.checks)} checks passed; report {report.html_path}")
    return {"success": True, "checks": len(report.checks), "report": str(report.html_path)}


def cold_start_stage(
    manifest_path: Path,
    out_dir: Path,
    *,
    store_dir: Path,
    labels_dir: Path,
    params_path: Path,
    reporter: Reporter | None = None,
) -> dict:
    """Retrieve candidates for each category from its seed images; export them; import confirmations.

    ``manifest_path`` is normally ingest's ``source_manifest.parquet`` (the uploads of
    ``ingest.source`` alone), so a relabel round, which adds reviewed uploads to the full
    manifest, leaves this stage's inputs unchanged and DVC does not re-run it.

    Writes ``out_dir/`` (``tasks.json`` for Label Studio import, ``labeling_config.xml``,
    ``candidates.csv``, ``confirmations.json`` when a reviewer answered, ``metrics.json``) and the
    label store batch ``labels_dir/retrieval.parquet`` (the confirmed decisions, possibly none).
    """
    from modops.active.cold_start import run_cold_start
    from modops.data.labelstore import UPLOAD_BATCH, LabelStore

    rep = reporter or NullReporter()
    params = load_params(params_path)
    labels, cfg, icfg = (
        load_section(params, "labels"),
        load_section(params, "cold_start"),
        load_section(params, "ingest"),
    )
    store = LabelStore(labels_dir)
    events = store.events()
    # Cold start bootstraps from what came with the uploads: the labels file's labels and seeds
    # (the upload batch, the one label file dvc.yaml gives this stage). Labels that arrived later
    # (relabel rounds, reviews) only keep their images out of the pool, so a round neither
    # retrains the retrieval embedder nor reshuffles the confirmed set: the round's retraining
    # differs from its parent by the round's labels alone. Never its own earlier output.
    snapshot = LabelStore.snapshot_of(events[events["batch"] == UPLOAD_BATCH])
    later = events.loc[~events["batch"].isin([UPLOAD_BATCH, "retrieval"]), "image_id"]
    image_ids = read_manifest(manifest_path)["image_id"].tolist()
    with rep.task("cold start", total=None):
        result = run_cold_start(
            image_ids,
            snapshot,
            exclude=frozenset(later),
            reader=ImageStore(store_dir),
            classes=labels.all,
            cfg=cfg,
            source=icfg.source,
            labels_file=icfg.labels_file,
            # From params, as ingest recorded them: ingest_summary.json changes with every round.
            limits=icfg.decode_limits(),
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "tasks.json", json.dumps(result.tasks, indent=1) + "\n")
    atomic_write_text(out_dir / "labeling_config.xml", result.labeling_config + "\n")
    atomic_write_text(out_dir / "candidates.csv", result.candidates_csv)
    # What the reviewers returned (null while nothing is confirmed): the import's audit trail.
    export = result.export.to_dict(orient="records") if isinstance(result.export, pd.DataFrame) else result.export
    atomic_write_text(out_dir / "confirmations.json", json.dumps(export, indent=1, default=str) + "\n")
    batch = store.write_batch(result.events, name="retrieval", replace=True, allowed_labels=labels.all)
    _write_json(out_dir / "metrics.json", result.metrics)
    precision = {c: m.get(f"p@{cfg.per_category}") for c, m in result.metrics.get("precision_at_k", {}).items()}
    rep.log(
        f"cold_start: seeds {result.metrics['seeds']}, {result.metrics.get('distinct_candidates', 0)} candidates, "
        f"{batch.n_events} confirmed -> {batch.path}; precision@{cfg.per_category} {precision or '-'}; "
        f"{result.metrics.get('note', '')}"
    )
    return result.metrics


def split_stage(
    manifest_path: Path,
    splits_path: Path,
    *,
    holdout_path: Path,
    labels_dir: Path,
    params_path: Path,
    settings: Settings | None = None,
    reporter: Reporter | None = None,
) -> dict:
    """Split the manifest with the label store's current labels; the holdout is frozen.

    The frozen holdout is the one published on the DVC remote (``settings.dvc_remote``) when
    there is one, else the local ``holdout_path``, else a new one is drawn (``modops publish``
    publishes it). Writes ``splits_path`` (with each label's source) and, beside it,
    ``label_version.json``: the label-store version the split (and every model trained on it)
    used, and the holdout's content hash.
    """
    from modops.data.holdout import holdout_hash
    from modops.data.labelstore import LabelStore
    from modops.data.split import split_manifest

    rep = reporter or NullReporter()
    params = load_params(params_path)
    store = LabelStore(labels_dir)
    snapshot, version = store.snapshot(), store.version()
    manifest = read_manifest(manifest_path)[["image_id", "phash"]]
    frame = manifest.merge(snapshot[["image_id", "label", "source"]], on="image_id", how="left")
    frame = frame.astype({"label": object, "source": object}).where(frame.notna(), None)
    orphans = int((~snapshot["image_id"].isin(manifest["image_id"])).sum())
    frozen, origin = _frozen_holdout(holdout_path, settings=settings, manifest_ids=set(manifest["image_id"]))
    result = split_manifest(
        frame, load_section(params, "split"), labels=load_section(params, "labels"), frozen_holdout=frozen
    )
    judged = result.splits.loc[result.splits["split"] == "holdout", ["image_id", "label"]]
    atomic_write_parquet(splits_path, result.splits)
    _write_json(
        splits_path.parent / "label_version.json",
        {
            **version.to_dict(),
            "orphan_labels": orphans,
            "holdout_hash": holdout_hash(judged),
            "rounds": _round_records(store),
        },
    )
    if result.created_holdout or origin == "published":
        atomic_write_parquet(holdout_path, result.holdout)
    counts = result.counts()
    origin = "frozen now (publish it: modops publish)" if result.created_holdout else f"reused ({origin})"
    rep.log(
        f"split: {json.dumps(counts)}; holdout {holdout_hash(judged)} {origin}; "
        f"labels {version.id} ({version.n_labelled} labelled, {orphans} for images not in the manifest)"
    )
    return {"counts": counts, "created_holdout": result.created_holdout, "label_version": version.id}


def noise_stage(
    splits_path: Path,
    out_dir: Path,
    *,
    store_dir: Path,
    manifest_path: Path,
    params_path: Path,
    reporter: Reporter | None = None,
) -> dict:
    """Flag likely mislabelled train and val images before training (confident learning).

    Writes ``out_dir/label_issues.parquet`` (every checked image: given and suggested label,
    label quality, ``issue``, split, label source), ``out_dir/review.csv`` (the flagged images,
    lowest label quality first: the reviewers' list) and ``out_dir/metrics.json``. The holdout
    is never checked here: its labels are frozen with it. With ``noise.enabled: false`` the
    issue list is written empty, so training reads the same file either way.
    """
    from modops.active.noise import ISSUE_COLUMNS, check_labels
    from modops.data.ingest import read_decode_limits

    rep = reporter or NullReporter()
    params = load_params(params_path)
    labels, cfg = load_section(params, "labels"), load_section(params, "noise")
    if not splits_path.is_file():
        raise StageError(f"{splits_path} is missing: run the split stage first (`modops split`)")
    splits = pd.read_parquet(splits_path)
    rows = splits[splits["split"].isin(["train", "val"]) & splits["label"].notna()].reset_index(drop=True)
    unknown = sorted(set(rows["label"]) - set(labels.all))
    if unknown:
        raise StageError(
            f"splits have labels {unknown} outside params labels {list(labels.all)}; re-run the split stage"
        )
    columns = [*ISSUE_COLUMNS, "split", "source"]
    info: dict = {"enabled": cfg.enabled, "action": cfg.action}
    if cfg.enabled and len(rows):
        y = rows["label"].map({c: i for i, c in enumerate(labels.all)}).to_numpy(dtype=np.int64)
        with rep.task("noise check", total=None):
            try:
                result = check_labels(
                    ImageStore(store_dir),
                    rows["image_id"].tolist(),
                    y,
                    classes=labels.all,
                    cfg=cfg,
                    limits=read_decode_limits(manifest_path.parent),
                )
            except ValueError as exc:
                raise StageError(f"noise check: {exc}") from exc
        issues = result.issues.assign(split=rows["split"].to_numpy(), source=rows["source"].to_numpy())[columns]
        info.update(result.info)
    else:
        issues = pd.DataFrame({c: pd.Series(dtype=object) for c in columns}).astype(
            {"label_quality": "float64", "issue": bool}
        )
        info.update(checked=0, flagged=0, flagged_by_label={})
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_parquet(out_dir / "label_issues.parquet", issues)
    review = issues[issues["issue"]].sort_values(["label_quality", "image_id"])
    atomic_write_text(out_dir / "review.csv", review.drop(columns="issue").to_csv(index=False))
    info["flagged_by_split"] = {str(k): int(v) for k, v in review["split"].value_counts().sort_index().items()}
    _write_json(out_dir / "metrics.json", info)
    rep.log(
        f"noise: {info['flagged']} of {info['checked']} labels flagged {info['flagged_by_label']} "
        f"(action: {cfg.action}); review list -> {out_dir / 'review.csv'}"
    )
    return info


def _frozen_holdout(
    holdout_path: Path, *, settings: Settings | None, manifest_ids: set[str]
) -> tuple[pd.DataFrame | None, str]:
    """The holdout to keep: the published one (checked against the local one), else the local one."""
    from modops.data.holdout import fetch_published, holdout_hash, read_pointer

    local = pd.read_parquet(holdout_path) if holdout_path.is_file() else None
    if settings is None:
        return local, "local file"
    remote = settings.resolved_dvc_remote
    try:
        pointer = read_pointer(remote, s3_endpoint_url=settings.s3_endpoint_url)
    except Exception as exc:  # noqa: BLE001 - any failure to read the remote must stop, not draw anew
        raise StageError(f"cannot read the published holdout on the DVC remote {remote}: {exc}") from exc
    if pointer is None:
        return local, "local file"
    if local is not None and holdout_hash(local) != pointer.hash:
        raise StageError(
            f"the local holdout {holdout_path} ({holdout_hash(local)}) differs from the one published on "
            f"{remote} ({pointer.hash}, {pointer.published_at} by {pointer.by}). Delete {holdout_path} to take "
            "the published one, or replace the published one on purpose: `modops publish --rebaseline 'why'`"
        )
    published = fetch_published(remote, pointer, s3_endpoint_url=settings.s3_endpoint_url)
    missing = sorted(set(published["image_id"]) - manifest_ids)
    if missing:
        raise StageError(
            f"{len(missing)} of the published holdout's {len(published)} images are not in this manifest "
            f"(e.g. {missing[:3]}): ingest the same uploads as the clone that published it, or `modops pull`"
        )
    return published, f"published {pointer.hash}"


def _split_rows(splits: pd.DataFrame, split: str, classes: tuple[str, ...]) -> tuple[list[str], np.ndarray]:
    """Ids and class indices of the labelled images of one split."""
    rows = splits[(splits["split"] == split) & splits["label"].notna()]
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(rows["label"]) - set(index))
    if unknown:
        raise StageError(f"splits have labels {unknown} outside params labels {list(classes)}; re-run the split stage")
    return rows["image_id"].tolist(), rows["label"].map(index).to_numpy(dtype=np.int64)


def _round_records(store, *, as_of: str | None = None) -> list[dict]:  # noqa: ANN001
    """The relabel rounds whose labels are in ``store`` (up to ``as_of``): each round's record, or just its number.

    A round without a record (decisions from the moderation service, a hand import) names no model.
    """
    events = store.events(as_of=as_of)
    present = sorted(int(r) for r in events["round"].unique() if r >= 1)
    records = store.rounds()
    return [records.get(r, {"round": r}) for r in present]


def _label_version(splits_path: Path) -> str | None:
    path = splits_path.parent / "label_version.json"
    return json.loads(path.read_text())["id"] if path.is_file() else None


def train_stage(
    manifest_path: Path,
    splits_path: Path,
    model_dir: Path,
    *,
    store_dir: Path,
    params_path: Path,
    settings: Settings | None,
    metrics_path: Path | None = None,
    issues_path: Path | None = None,
    reporter: Reporter | None = None,
) -> dict:
    """Train a candidate with the trainer named in params; log the run to MLflow when ``settings`` is given.

    Images stream from ``store_dir`` (nothing is preloaded); the model folder records the
    label version of the split it was trained on. ``issues_path`` is the noise check's
    ``label_issues.parquet``: flagged train images are left out or drawn less often, as
    ``noise.action`` says.
    """
    from dataclasses import replace

    from modops.data.ingest import read_decode_limits
    from modops.models.io import save_members
    from modops.training import TrainData, get_trainer
    from modops.training.sampling import combine_weights

    rep = reporter or NullReporter()
    params = load_params(params_path)
    labels, cfg = load_section(params, "labels"), load_section(params, "train")
    # The limits the images were ingested under go into model.json, so serving enforces them too.
    decode_limits = read_decode_limits(manifest_path.parent)
    trainer = get_trainer(cfg.trainer)
    splits = pd.read_parquet(splits_path)
    train_ids, train_y = _split_rows(splits, "train", labels.all)
    val_ids, val_y = _split_rows(splits, "val", labels.all)
    unlabeled = splits.loc[splits["split"] == "unlabeled", "image_id"].tolist()
    train_ids, train_y, noise_weight, noise = _apply_noise(
        train_ids, train_y, issues_path=issues_path, cfg=load_section(params, "noise"), train_cfg=cfg
    )
    train_weight, by_source = _source_weights(splits, train_ids, weights=cfg.source_weights)
    train_weight = combine_weights(noise_weight, train_weight)
    data = TrainData(
        ImageStore(store_dir),
        train_ids,
        train_y,
        val_ids,
        val_y,
        unlabeled,
        decode_limits=decode_limits,
        train_weight=train_weight,
    )
    label_version = _label_version(splits_path)
    init, warm = _warm_start(cfg, splits_path=splits_path, settings=settings, classes=labels.all)
    if init is not None:
        # Fine-tuning: its own (shorter, gentler) schedule replaces the from-scratch one.
        cfg = cfg.model_copy(update={"epochs": cfg.warm_start.epochs, "lr": cfg.warm_start.lr})
    rep.log(
        f"train: {cfg.trainer}/{cfg.backbone}: {len(train_ids)} train, {len(val_ids)} val, {len(unlabeled)} unlabelled "
        f"images; labels {label_version}; noise check: {noise}; starts from {warm['from']}"
        + (f"; drawn more often by source: {by_source}" if by_source else "")
    )

    def on_step(phase: str, done: int, total: int) -> None:
        advance(1)
        if done == total:  # one line per epoch, so DVC and Airflow logs show progress
            rep.log(f"train: {phase} done ({total} steps)")

    with rep.task(f"train {cfg.trainer}/{cfg.backbone}", total=None) as advance:
        result = trainer(data, cfg=cfg, class_names=labels.all, progress=on_step, init=init)
    for h in result.history:
        rep.log("train: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in h.items()))
    spec = result.spec(labels.all, trainer=cfg.trainer, label_version=label_version)
    spec = replace(spec, decode_limits=decode_limits)
    save_members(result.networks, spec, model_dir)
    # The learning curves travel with the model (per epoch: val loss and macro PR-AUC, train loss).
    _write_json(model_dir / "history.json", {"history": result.history, "info": result.info})
    summary = {
        "trainer": cfg.trainer,
        "kind": result.kind,
        "members": [f"{m.name}:{m.backbone}@{m.image_size}{'+cbam' if m.cbam else ''}" for m in result.members],
        "label_version": label_version,
        "best_epoch": result.best_epoch,
        "seconds": round(result.seconds, 1),
        "train_images_per_s": round(result.train_images_per_s, 1),
        "n_train": len(train_ids),
        "n_val": len(val_ids),
        "n_unlabeled": len(unlabeled),
        "noise": noise,
        "source_weights": by_source,
        "warm_start": warm,
        "best_val_macro_pr_auc": max(h["val_macro_pr_auc"] for h in result.history if h.get("phase") != "stage1")
        if result.kind == "cascade"
        else max(h["val_macro_pr_auc"] for h in result.history),
        **{k: v for k, v in result.info.items() if not isinstance(v, dict)},
        **_pace_summary(result.info.get("pace")),
    }
    if settings is not None:
        summary["mlflow_run_id"] = _log_training(
            settings, cfg=cfg, result=result, summary=summary, manifest_path=manifest_path
        )
    if metrics_path is not None:
        _write_json(metrics_path, summary)
    rep.log(f"train: {json.dumps(summary, default=str)}")
    return summary


def _warm_start(cfg, *, splits_path: Path, settings: Settings | None, classes: tuple[str, ...]):  # noqa: ANN001, ANN202
    """``(init states or None, summary)``: the weights ``train.warm_start`` says training starts from.

    With ``init: round_model`` that is the registered model that selected the latest relabel round
    in the split's labels (``label_version.json``: ``rounds``); with no such round, or ``init:
    none``, training starts from ``train.pretrained``.
    """
    fresh = {"from": f"train.pretrained ({cfg.pretrained})"}
    if cfg.warm_start.init == "none":
        return None, fresh
    path = splits_path.parent / "label_version.json"
    rounds = json.loads(path.read_text()).get("rounds", []) if path.is_file() else []
    chosen = [r for r in rounds if r.get("model_version") is not None]
    if not chosen:
        return None, {**fresh, "why": "no relabel round selected by a registered model in these labels"}
    latest = max(chosen, key=lambda r: int(r["round"]))
    version = str(latest["model_version"])
    name = latest.get("model_name") or (settings.model_name if settings else None)
    if settings is None or name is None:
        raise StageError(
            f"train.warm_start.init is round_model and round {latest['round']} was selected by v{version}, but this "
            "training has no model registry to fetch it from (`modops train --no-mlflow` runs without one); run "
            "it with the registry (MODOPS_TRACKING_URI) or set train.warm_start.init: none"
        )
    from modops.models.io import load_member_states
    from modops.registry.promotion import cached_model_dir
    from modops.registry.tracking import configure_mlflow

    configure_mlflow(settings)
    try:
        model_dir = cached_model_dir(name, version, cache_dir=settings.model_cache_dir)
    except FileNotFoundError as exc:
        raise StageError(
            f"round {latest['round']} was selected by {name} v{version}, which the registry cannot give: {exc}; "
            "set train.warm_start.init: none to train from scratch"
        ) from exc
    states, spec = load_member_states(model_dir)
    if tuple(spec.classes) != tuple(classes):
        raise StageError(
            f"{name} v{version} scores classes {list(spec.classes)} but labels are {list(classes)}: a warm start "
            "needs the same label set; set train.warm_start.init: none to train from scratch"
        )
    return states, {"from": f"{name}/v{version}", "round": int(latest["round"]), "model_version": version}


def _apply_noise(
    ids: list[str],
    y: np.ndarray,
    *,
    issues_path: Path | None,
    cfg,
    train_cfg,  # noqa: ANN001
) -> tuple[list[str], np.ndarray, np.ndarray | None, dict]:
    """The train split after the noise check: flagged images dropped (``exclude``) or weighted (``downweight``).

    Returns ``(ids, y, weights or None, summary)``.
    """
    from modops.active.noise import sample_weights

    if issues_path is None or not cfg.enabled:
        return ids, y, None, {"action": "none"}
    if not issues_path.is_file():
        raise StageError(f"{issues_path} is missing: run the noise stage first (`modops noise`)")
    issues = pd.read_parquet(issues_path)
    flagged = set(issues.loc[issues["issue"], "image_id"])
    hit = np.array([i in flagged for i in ids], dtype=bool)
    summary = {"action": cfg.action, "flagged_in_train": int(hit.sum())}
    if cfg.action == "exclude" and hit.any():
        keep = ~hit
        return [i for i, k in zip(ids, keep, strict=True) if k], y[keep], None, summary
    if cfg.action == "downweight" and hit.any():
        if train_cfg.sampling.priority != "none":
            raise StageError(
                "noise.action: downweight and train.sampling.priority: loss both set how often images are drawn; "
                "set one of them to flag/none"
            )
        return ids, y, sample_weights(ids, issues, weight=cfg.weight), {**summary, "weight": cfg.weight}
    return ids, y, None, summary


def _source_weights(
    splits: pd.DataFrame, ids: list[str], *, weights: dict[str, float]
) -> tuple[np.ndarray | None, dict[str, dict[str, float | int]]]:
    """``train.source_weights`` for the train images ``ids``: (weights [N] or None, ``{source: {weight, images}}``)."""
    from modops.training.sampling import source_weights

    if not weights:
        return None, {}
    source = splits.drop_duplicates("image_id").set_index("image_id")["source"] if "source" in splits else None
    sources = [None if source is None else source.get(i) for i in ids]
    counts = Counter(sources)
    summary = {str(k): {"weight": float(weights[k]), "images": counts[k]} for k in sorted(weights)}
    return source_weights(sources, weights), summary


def _pace_summary(pace: dict | None) -> dict[str, object]:
    """Flat figures of a run's ``train.max_minutes`` plan (a cascade: stage 1's), for train_metrics.json."""
    pace = (pace or {}).get("stage1", pace) or {}
    if not pace:
        return {}
    return {
        "steps_per_epoch": pace["steps_per_epoch"],
        "planned_steps_per_epoch": pace["planned_steps_per_epoch"],
    }


def _flatten(prefix: str, value: object) -> dict[str, object]:
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for k, v in value.items():
            out.update(_flatten(f"{prefix}.{k}", v))
        return out
    return {prefix: value}


def _log_training(settings: Settings, *, cfg, result, summary: dict, manifest_path: Path) -> str:  # noqa: ANN001
    import mlflow

    from modops.registry.tracking import configure_mlflow, file_hash, git_revision

    configure_mlflow(settings)
    with mlflow.start_run(run_name=f"train-{cfg.trainer}-{cfg.backbone}") as run:
        mlflow.log_params(_flatten("train", cfg.model_dump()))
        mlflow.set_tags(
            {
                "modops.data_version": file_hash(manifest_path),
                "modops.label_version": str(summary.get("label_version")),
                "modops.git_revision": git_revision(),
                "modops.stage": "train",
                "modops.trainer": cfg.trainer,
                "modops.warm_start": str(summary.get("warm_start", {}).get("from")),
            }
        )
        for step, h in enumerate(result.history, start=1):
            phase = h.get("phase", "train")
            mlflow.log_metrics(
                {f"{phase}.{k}": float(v) for k, v in h.items() if isinstance(v, int | float) and k != "epoch"},
                step=step,
            )
        mlflow.log_metrics({k: float(v) for k, v in summary.items() if isinstance(v, int | float)})
        return run.info.run_id


def _score_split(predictor, splits: pd.DataFrame, split: str, *, store: ImageStore, cfg, classes, rep: Reporter):  # noqa: ANN001, ANN202
    """Score one split's labelled images; unreadable images stop the stage (they passed ingest)."""
    from modops.scoring.batch import score_ids

    ids, y = _split_rows(splits, split, classes)
    with rep.task(f"score {split}", total=len(ids)) as advance:
        scores = score_ids(
            predictor, ids, reader=store, batch_size=cfg.batch_size, workers=cfg.workers, progress=advance
        )
    if not scores.ok.all():
        bad = [f"{i}: {e}" for i, e, ok in zip(ids, scores.errors, scores.ok, strict=True) if not ok]
        raise StageError(
            f"{len(bad)} {split} image(s) could not be read from the store, e.g. {bad[:3]}; "
            "re-run ingest (dvc repro --force ingest) to restore them"
        )
    return ids, y, scores


def evaluate_stage(
    model_dir: Path,
    manifest_path: Path,
    splits_path: Path,
    out_dir: Path,
    *,
    store_dir: Path,
    params_path: Path,
    reporter: Reporter | None = None,
) -> dict:
    """Choose thresholds on val, measure the holdout; write metrics, thresholds, PR curves, scores, Grad-CAM grids."""
    from modops.evaluation.metrics import evaluate
    from modops.models.predictor import load_predictor

    rep = reporter or NullReporter()
    params = load_params(params_path)
    labels, cfg = load_section(params, "labels"), load_section(params, "evaluate")
    predictor = load_predictor(model_dir)
    if tuple(predictor.spec.classes) != labels.all:
        raise StageError(
            f"model classes {predictor.spec.classes} differ from params labels {labels.all}; retrain (dvc repro train)"
        )
    splits, store = pd.read_parquet(splits_path), ImageStore(store_dir)
    scored = {
        s: _score_split(predictor, splits, s, store=store, cfg=cfg, classes=labels.all, rep=rep)
        for s in ("val", "holdout")
    }
    report, curves = evaluate(
        scored["val"][1],
        scored["val"][2].probs,
        scored["holdout"][1],
        scored["holdout"][2].probs,
        class_names=labels.all,
        negative=labels.negative,
        target_precision=cfg.targets(labels.categories),
        confidence=cfg.confidence,
    )
    metrics = report.to_metrics_json()
    metrics["kind"] = predictor.spec.kind
    metrics["stage2_share"] = {s: round(scored[s][2].stage2_share, 6) for s in ("val", "holdout")}
    metrics["label_version"] = predictor.spec.label_version
    metrics["review_load"] = _review_load(scored, report.thresholds, labels=labels, cfg=cfg)
    _write_json(out_dir / "metrics.json", metrics)
    _write_json(out_dir / "thresholds.json", report.thresholds)
    for cat, points in curves.items():
        frame = pd.DataFrame(points)[["recall", "precision", "threshold"]]
        atomic_write_text(out_dir / "plots" / f"pr_{cat}.csv", frame.to_csv(index=False, float_format="%.6f"))
    ids, y, scores = scored["holdout"]
    frame = pd.DataFrame({"image_id": ids, "label": [labels.all[i] for i in y], "stage2": scores.stage2})
    for i, c in enumerate(labels.all):
        frame[f"p_{c}"] = scores.probs[:, i]
    atomic_write_parquet(out_dir / "holdout_scores.parquet", frame)
    (out_dir / "explain").mkdir(parents=True, exist_ok=True)  # a DVC output even when the grids are off
    if cfg.explain_examples:
        _explain_holdout(
            predictor, frame, report.thresholds, store=store, out_dir=out_dir / "explain", cfg=cfg, rep=rep
        )
    rep.log(
        "evaluate: "
        + ", ".join(
            f"{c}: P={m.precision:.3f} R={m.recall:.3f} AP={m.pr_auc:.3f} @t={m.threshold:.3f}"
            for c, m in report.categories.items()
        )
        + (f"; stage 2 share {metrics['stage2_share']}" if predictor.spec.kind == "cascade" else "")
    )
    return metrics


def _review_load(scored: dict, thresholds: dict[str, float], *, labels, cfg) -> dict:  # noqa: ANN001
    """Holdout shares auto-allowed / auto-blocked / sent to review; review thresholds chosen on val."""
    from modops.evaluation.metrics import review_load, threshold_for_recall

    _, y_val, val = scored["val"]
    review = {
        c: min(thresholds[c], threshold_for_recall(y_val == i, val.probs[:, i], target_recall=cfg.review_recall))
        for i, c in enumerate(labels.all)
        if c in thresholds
    }
    _, y, holdout = scored["holdout"]
    load = review_load(
        y,
        holdout.probs,
        class_names=labels.all,
        negative=labels.negative,
        block_thresholds=thresholds,
        review_thresholds=review,
    )
    return {**load, "review_recall": cfg.review_recall}


def _explain_holdout(predictor, scores: pd.DataFrame, thresholds: dict, *, store, out_dir: Path, cfg, rep) -> None:  # noqa: ANN001
    """Grad-CAM grids of every category's top positives, false positives and false negatives."""
    from modops.evaluation.explain_report import explanation_grids

    grids = explanation_grids(predictor, scores, thresholds, reader=store, k=cfg.explain_examples)
    for name, image in grids.items():
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = out_dir / f".{name}.png.tmp"
        image.save(tmp, format="PNG")
        tmp.replace(out_dir / f"{name}.png")
    rep.log(f"evaluate: {len(grids)} Grad-CAM grids -> {out_dir}")


def _policy(cfg, categories: tuple[str, ...]) -> str:  # noqa: ANN001
    """The threshold policy both models are judged under, as text (it must match on both sides)."""
    return "val precision >= " + ", ".join(f"{c} {t:g}" for c, t in cfg.targets(categories).items())


def _candidate_scores(eval_dir: Path, thresholds: dict, *, labels, cfg):  # noqa: ANN001, ANN202
    """The candidate's holdout scores as written by the evaluate stage."""
    from modops.evaluation.compare import ScoredHoldout

    frame = pd.read_parquet(eval_dir / "holdout_scores.parquet")
    cats = [c for c in labels.categories if c in thresholds]
    return ScoredHoldout(
        image_ids=frame["image_id"].to_numpy(str),
        labels=frame["label"].to_numpy(str),
        scores={c: frame[f"p_{c}"].to_numpy(float) for c in cats},
        thresholds={c: float(thresholds[c]) for c in cats},
        threshold_policy=_policy(cfg, labels.categories),
    )


def _rescore_champion(name: str, version: str, *, splits: pd.DataFrame, store: ImageStore, labels, cfg):  # noqa: ANN001, ANN202
    """Score the champion on today's val and holdout, and judge it under today's threshold policy.

    Thresholds are re-chosen on val with the current targets, so champion and candidate are
    compared under the same policy on the same holdout; classes are matched by name, so a
    champion with another class order (or fewer categories) compares correctly.

    Returns:
        ``(metrics by category, ScoredHoldout)``.
    """
    import tempfile

    from modops.evaluation.compare import ScoredHoldout
    from modops.evaluation.metrics import category_metrics, choose_threshold
    from modops.models.predictor import load_predictor
    from modops.registry.promotion import download_model_dir
    from modops.scoring.batch import score_ids

    with tempfile.TemporaryDirectory() as tmp:
        predictor = load_predictor(download_model_dir(name, version, Path(tmp)))
    classes = tuple(predictor.spec.classes)
    scored = {}
    for split in ("val", "holdout"):
        ids, y = _split_rows(splits, split, labels.all)
        scores = score_ids(predictor, ids, reader=store, batch_size=cfg.batch_size, workers=cfg.workers)
        if not scores.ok.all():
            raise StageError(
                f"{int((~scores.ok).sum())} {split} image(s) could not be read from the store; re-run ingest"
            )
        scored[split] = (ids, np.asarray(labels.all)[y], scores.probs)
    targets = cfg.targets(labels.categories)
    metrics, thresholds = {}, {}
    for cat in labels.categories:
        if cat not in classes:
            continue
        col = classes.index(cat)
        choice = choose_threshold(scored["val"][1] == cat, scored["val"][2][:, col], target_precision=targets[cat])
        thresholds[cat] = float(choice.threshold)
        m = category_metrics(
            scored["holdout"][1] == cat,
            scored["holdout"][2][:, col],
            category=cat,
            threshold=choice.threshold,
            confidence=cfg.confidence,
            val_met_target=choice.met_target,
        )
        metrics[cat] = {k: v for k, v in m.to_dict().items() if k != "category"}
    ids, names, probs = scored["holdout"]
    holdout = ScoredHoldout(
        image_ids=np.asarray(ids, str),
        labels=names.astype(str),
        scores={c: probs[:, classes.index(c)] for c in thresholds},
        thresholds=thresholds,
        threshold_policy=_policy(cfg, labels.categories),
    )
    return metrics, holdout


def _weights_hash(model_dir: Path) -> str:
    """sha256 over every member's weights file (in member order): the model's identity."""
    import hashlib

    from modops.models.io import read_spec

    digest = hashlib.sha256()
    for member in read_spec(model_dir).members:
        with open(model_dir / member.weights, "rb") as fh:
            digest.update(hashlib.file_digest(fh, "sha256").digest())
    return digest.hexdigest()


def register_stage(
    model_dir: Path,
    eval_dir: Path,
    manifest_path: Path,
    splits_path: Path,
    out_path: Path,
    *,
    store_dir: Path,
    params_path: Path,
    settings: Settings,
    train_metrics_path: Path | None = None,
    reporter: Reporter | None = None,
) -> dict:
    """Gate the candidate against the floors and the current champion, register it, move aliases.

    A failed gate is a normal outcome, not an error: the candidate becomes ``challenger``,
    ``champion`` stays where it was, and the reasons are written to ``out_path`` and tagged.
    A registry that cannot be read or written is an error: the stage stops and no alias moves.
    The champion is compared only on the same holdout (by content hash) and under the same
    threshold policy, with a paired bootstrap of the two models' scores.
    """
    from modops.data.holdout import holdout_hash
    from modops.evaluation.gate import gate_from_config
    from modops.registry.promotion import RegistryError
    from modops.registry.tracking import configure_mlflow

    rep = reporter or NullReporter()
    params = load_params(params_path)
    labels, cfg, ecfg = load_section(params, "labels"), load_section(params, "gate"), load_section(params, "evaluate")
    name = settings.model_name
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    thresholds = json.loads((eval_dir / "thresholds.json").read_text())
    splits = pd.read_parquet(splits_path)
    judged_on = holdout_hash(splits.loc[splits["split"] == "holdout", ["image_id", "label"]])
    weights_sha = _weights_hash(model_dir)
    candidate_scores = _candidate_scores(eval_dir, thresholds, labels=labels, cfg=ecfg)
    try:
        configure_mlflow(settings)
        champ = _champion_baseline(
            name,
            weights_sha,
            judged_on,
            metrics=metrics,
            candidate_scores=candidate_scores,
            splits=splits,
            store=ImageStore(store_dir),
            labels=labels,
            cfg=ecfg,
        )
        verdict = gate_from_config(
            metrics["holdout"],
            cfg,
            champion=champ["metrics"],
            champion_label=champ["label"],
            candidate_scores=None if champ["scores"] is None else candidate_scores,
            champion_scores=champ["scores"],
            holdout_mismatch=champ["mismatch"],
        )
        reg = _register(
            model_dir,
            eval_dir,
            manifest_path,
            verdict,
            metrics=metrics,
            thresholds=thresholds,
            weights_sha=weights_sha,
            judged_on=judged_on,
            champ=champ,
            params_path=params_path,
            train_metrics_path=train_metrics_path,
            name=name,
        )
    except RegistryError as exc:
        raise StageError(str(exc)) from exc
    record = {
        "registration": reg.to_dict(),
        "gate": verdict.to_dict(),
        "champion_metrics": champ["metrics"],
        "champion_version": champ["version"],
        "holdout_hash": judged_on,
    }
    record["dashboard"] = _refresh_dashboard(settings, reg.version, run_id=reg.run_id, rep=rep)
    _write_json(out_path, record)
    word = "PASSED -> champion" if verdict.passed else "FAILED -> champion unchanged"
    rep.log(f"register: {name} v{reg.version} gate {word}\n" + "\n".join(f"  - {r}" for r in verdict.reasons))
    return record


def _champion_baseline(
    name: str, weights_sha: str, judged_on: str, *, metrics, candidate_scores, splits, store, labels, cfg
) -> dict:  # noqa: ANN001
    """What the candidate is compared with: the champion's metrics and scores, or why it cannot be."""
    from modops.registry.promotion import HOLDOUT_TAG, WEIGHTS_TAG, champion_version

    champ = champion_version(name)  # raises RegistryError: an unreadable registry never reads as "none"
    base = {"version": None, "label": "champion", "metrics": None, "scores": None, "mismatch": None}
    if champ is None:
        return base
    base.update(version=str(champ.version), label=f"champion v{champ.version}")
    theirs = champ.tags.get(HOLDOUT_TAG)
    if theirs != judged_on:
        base["mismatch"] = f"{theirs or 'no holdout hash recorded'}; the candidate's is {judged_on}"
    elif champ.tags.get(WEIGHTS_TAG) == weights_sha:
        base.update(metrics=metrics["holdout"], scores=candidate_scores)  # the same model, re-registered
    else:
        m, scores = _rescore_champion(name, champ.version, splits=splits, store=store, labels=labels, cfg=cfg)
        base.update(metrics=m, scores=scores)
    return base


def _register(
    model_dir: Path,
    eval_dir: Path,
    manifest_path: Path,
    verdict,
    *,
    metrics,
    thresholds,
    weights_sha,
    judged_on,
    champ,
    params_path,
    train_metrics_path,
    name,
):  # noqa: ANN001, ANN202
    from modops.registry.promotion import HOLDOUT_TAG, register_candidate
    from modops.registry.tracking import file_hash, git_revision

    trained: dict = {}
    if train_metrics_path is not None and train_metrics_path.is_file():
        trained = json.loads(train_metrics_path.read_text())
    run_id, started = trained.get("mlflow_run_id"), (trained.get("warm_start") or {}).get("from")
    flat = {
        f"holdout.{cat}.{k}": float(v)
        for cat, m in metrics["holdout"].items()
        for k, v in m.items()
        if k in ("precision", "recall", "f1", "pr_auc", "threshold")
    }
    flat.update({f"stage2_share.{split}": float(v) for split, v in metrics.get("stage2_share", {}).items()})
    load = metrics.get("review_load") or {}
    flat.update({f"review_load.{k}": float(v) for k, v in load.items() if isinstance(v, int | float) and k != "n"})
    return register_candidate(
        model_dir,
        eval_dir=eval_dir,
        name=name,
        thresholds=thresholds,
        weights_sha=weights_sha,
        passed=verdict.passed,
        reasons=verdict.reasons,
        metrics=flat,
        run_id=run_id,
        failed_checks=tuple(c["check"] for c in verdict.checks if not c["passed"]),
        gate_record={
            "gate": verdict.to_dict(),
            "champion_version": champ["version"],
            "champion_metrics": champ["metrics"],
            "holdout_hash": judged_on,
        },
        description=_summary(metrics, verdict, judged_on=judged_on, champion_label=champ["label"]),
        run_artifacts={"lineage/params.yaml": params_path},
        tags={
            "modops.label_version": str(metrics.get("label_version")),
            "modops.data_version": file_hash(manifest_path),
            HOLDOUT_TAG: judged_on,
            "modops.git_revision": git_revision(),
            # What training started from: a relabel round's model (train.warm_start) or train.pretrained.
            **({"modops.started_from": str(started)} if started else {}),
        },
    )


def _summary(metrics: dict, verdict, *, judged_on: str, champion_label: str) -> str:  # noqa: ANN001
    """The version's one-paragraph description in the registry, for people who read only that."""
    cats = "; ".join(
        f"{c} precision {m['precision']:.1%} recall {m['recall']:.1%} (PR-AUC {m['pr_auc']:.3f}, "
        f"{m['support']} positives)"
        for c, m in metrics["holdout"].items()
    )
    load = metrics.get("review_load")
    routed = (
        f" At these thresholds {load['auto_allowed']:.0%} of uploads are allowed automatically, "
        f"{load['auto_blocked']:.0%} blocked and {load['human_review']:.0%} sent to human review "
        f"({load['review_reduction']:.0%} less manual review than checking everything)."
        if load
        else ""
    )
    word = "passed" if verdict.passed else "failed"
    return (
        f"A {metrics.get('kind', 'single')} model judged on holdout {judged_on} ({metrics.get('n_holdout', '?')} "
        f"images, labels {metrics.get('label_version')}): {cats}.{routed} Gate {word} against {champion_label}: "
        f"{verdict.reasons[0] if verdict.reasons else 'no reasons recorded'}"
    )[:4900]


def _refresh_dashboard(settings: Settings, version: str, *, run_id: str, rep: Reporter) -> dict:
    """Rebuild the stakeholders' site and log it with the new version; a failure here is reported, not fatal."""
    try:
        from modops.registry.dashboard_data import build_dashboard

        site = build_dashboard(settings, log_to_run=run_id)
    except Exception as exc:  # noqa: BLE001 - the registration is done; the site can be rebuilt any time
        rep.log(f"register: dashboard not rebuilt ({type(exc).__name__}: {exc}); run `modops dashboard build`")
        return {"built": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"built": True, "path": str(site), "version": version}


def explain_image_stage(
    image: Path,
    out: Path,
    *,
    model_dir: Path | None,
    model_uri: str | None,
    category: str | None,
    settings: Settings,
) -> dict:
    """Write a Grad-CAM PNG for one image with a local model folder or a registered model (champion by default)."""
    import tempfile

    from modops.data.sources import read_uri
    from modops.evaluation.explain_report import explain_image
    from modops.models.predictor import load_predictor

    if not image.is_file():
        raise FileNotFoundError(f"no such image file: {image}")
    if model_dir is not None:
        predictor = load_predictor(model_dir)
    else:
        from modops.registry.promotion import download_uri_model_dir
        from modops.registry.tracking import configure_mlflow

        configure_mlflow(settings)
        uri = model_uri or f"models:/{settings.model_name}@champion"
        with tempfile.TemporaryDirectory() as tmp:
            predictor = load_predictor(download_uri_model_dir(uri, Path(tmp)))
    # Size-checked before it is read, under the limits the model was trained with: an
    # untrusted upload can be a multi-GB file or a FIFO.
    data = read_uri(str(image.resolve()), max_bytes=predictor.spec.decode_limits.max_bytes)
    grid, info = explain_image(predictor, data, category=category)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_png = out.with_name(f".{out.name}.tmp")
    grid.save(tmp_png, format="PNG")
    tmp_png.replace(out)
    return {"image": str(image), "out": str(out), **info}


def labels_status_stage(labels_dir: Path, *, as_of: str | None = None) -> dict:
    """The label store's version and counts, now or as of a moment."""
    from modops.data.labelstore import LabelStore

    store = LabelStore(labels_dir)
    snap = store.snapshot(as_of=as_of)
    return {
        **store.version(as_of=as_of).to_dict(),
        "by_source": {str(k): int(v) for k, v in snap["source"].value_counts().sort_index().items()},
        "batches": [b.name for b in store.batches()],
        "rounds": _round_records(store, as_of=as_of),
    }


def labels_import_stage(export: Path, labels_dir: Path, *, source: str, round_: int, params_path: Path) -> dict:
    """Append a reviewers' export (Label Studio JSON / JSON_MIN / CSV) to the label store as a new batch."""
    from modops.active.labelstudio import parse_export, parse_export_csv
    from modops.data.labelstore import LabelStore

    if not export.is_file():
        raise FileNotFoundError(f"no such export file: {export}")
    labels = load_section(params_path, "labels")
    frame = parse_export_csv(export) if export.suffix.lower() == ".csv" else parse_export(export)
    if frame.empty:
        raise StageError(f"{export} holds no usable annotations (cancelled or empty ones are skipped)")
    batch = _append_decisions(
        frame,
        LabelStore(labels_dir),
        source=source,
        source_name=source,
        round_=round_,
        when=pd.Timestamp.now(tz="UTC"),
        allowed=labels.all,
    )
    return {"imported": 0 if batch is None else batch.n_events, "batch": None if batch is None else batch.name}


def _append_decisions(frame: pd.DataFrame, store, *, source: str, source_name: str, round_: int, when, allowed):  # noqa: ANN001, ANN202
    """Append parsed decisions (``image_id``, ``label``, optional ``who`` / ``when``) as one label batch.

    A decision without a giver is ``unknown``'s, one without a time gets ``when``; returns the
    new batch, or None when every decision is already stored.
    """
    from modops.data.labelstore import events_from_frame

    frame = frame.copy()
    frame["who"] = frame["who"].fillna("unknown") if "who" in frame else "unknown"
    frame["when"] = pd.to_datetime(frame["when"], utc=True).fillna(when) if "when" in frame else when
    events = events_from_frame(frame, source=source, who="who", when="when", round=round_)
    return store.append(events, source_name=source_name, allowed_labels=allowed)


def _champion_predictor(settings: Settings, *, device: str, precision: str):  # noqa: ANN202
    """``(version, predictor)`` of the champion, its folder cached per version in the state folder."""
    from modops.models.predictor import load_predictor
    from modops.registry.promotion import champion_model_dir
    from modops.registry.tracking import configure_mlflow
    from modops.runtime import resolve_runtime

    configure_mlflow(settings)
    version, model_dir = champion_model_dir(settings.model_name, cache_dir=settings.model_cache_dir)
    return version, load_predictor(model_dir, runtime=resolve_runtime(device, precision))


def score_stage(
    source: str | None,
    *,
    day: str,
    params_path: Path,
    settings: Settings,
    log_dir: Path | None = None,
    model_version: str | None = None,
    reporter: Reporter | None = None,
) -> dict:
    """Score one day's uploads with the champion into the prediction log; returns the day's summary.

    ``source`` is a folder or ``s3://`` prefix (default: ``score.source`` with ``{day}`` filled
    in); no labels file is needed. Every file is scored or quarantined with its reason. The
    partition (``day=D/model_version=V``) is rewritten whole, so re-running a day is idempotent.
    ``model_version`` scores with that registered version instead of the champion (shadow
    scoring a challenger, or a day scored before any version was promoted).
    """
    from modops.data.sources import list_source
    from modops.scoring.daily import parse_day, score_uploads, write_partition
    from modops.scoring.uploads import SourceReader

    rep = reporter or NullReporter()
    cfg = load_section(load_params(params_path), "score")
    day = parse_day(day).isoformat()
    source = source or cfg.source_for(day)
    try:
        items = list_source(source, s3_endpoint_url=settings.s3_endpoint_url)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"the uploads of {day} are not there: source folder not found: {source} "
            "(pass SOURCE, or set score.source in params.yaml; {day} is replaced by the day)"
        ) from None
    if model_version is None:
        version, predictor = _champion_predictor(settings, device=cfg.device, precision=cfg.precision)
    else:
        version = str(model_version)
        predictor = _version_predictor(settings, version, device=cfg.device, precision=cfg.precision)
    predictor, engine = _with_engine(predictor, cfg=cfg)
    reader = SourceReader(
        source, max_bytes=predictor.spec.decode_limits.max_bytes, s3_endpoint_url=settings.s3_endpoint_url
    )
    with rep.task(f"score {day}", total=len(items)) as advance:
        scored = score_uploads(
            predictor,
            reader,
            [i.uri for i in items],
            uris=[i.rel for i in items],
            min_side=cfg.min_side,
            batch_size=cfg.batch_size,
            workers=cfg.workers,
            embedding_dims=cfg.embedding_dims,
            seed=cfg.seed,
            progress=advance,
        )
    out = write_partition(
        log_dir or settings.prediction_log_dir,
        scored,
        day=day,
        model_version=version,
        extra={"model_name": settings.model_name},
    )
    summary = _score_summary(scored, day=day, version=version, source=source, partition=out, spec=predictor.spec)
    summary["engine"] = engine
    _write_json(out / "summary.json", summary)
    rep.log(
        f"score {day}: {summary['scored']} scored, {summary['quarantined']} quarantined, "
        f"{summary['flagged']} flagged by {settings.model_name} v{version} -> {out}"
    )
    return summary


def _score_summary(scored, *, day: str, version: str, source: str, partition: Path, spec) -> dict:  # noqa: ANN001
    p, q = scored.predictions, scored.quarantine
    categories = list(spec.classes[1:])
    return {
        "day": day,
        "model_version": version,
        "source": source,
        "partition": str(partition),
        "files": len(p) + len(q),
        "scored": len(p),
        "quarantined": len(q),
        "quarantine_reasons": {str(k): int(v) for k, v in q["reason"].value_counts().sort_index().items()},
        "flagged": int(p["flagged"].sum()),
        "flagged_by_category": {c: int(p[f"flag_{c}"].sum()) for c in categories},
        "flag_rate": float(p["flagged"].mean()) if len(p) else 0.0,
        "thresholds": {c: spec.thresholds.get(c) for c in categories},
    }


def _with_engine(predictor, *, cfg):  # noqa: ANN001, ANN202
    """``(predictor, engine name)``: the model wrapped in ``score.engine``, or itself (``eager``).

    An engine that cannot wrap this model logs a warning and leaves it eager: the day is still
    scored, and the name says which arithmetic scored it.
    """
    from modops.scoring.engines import create_engine

    wrapped = create_engine(cfg.engine, predictor, threads=cfg.engine_threads, fallback=True)
    return wrapped, cfg.engine if wrapped is not predictor else "eager"


def _version_predictor(settings: Settings, version: str, *, device: str, precision: str):  # noqa: ANN202
    from modops.models.predictor import load_predictor
    from modops.registry.promotion import cached_model_dir
    from modops.registry.tracking import configure_mlflow
    from modops.runtime import resolve_runtime

    configure_mlflow(settings)
    model_dir = cached_model_dir(settings.model_name, version, cache_dir=settings.model_cache_dir)
    return load_predictor(model_dir, runtime=resolve_runtime(device, precision))


def _champion_version(settings: Settings) -> str:
    from modops.registry.errors import ModelNotRegistered
    from modops.registry.promotion import champion_version
    from modops.registry.tracking import configure_mlflow

    configure_mlflow(settings)
    champ = champion_version(settings.model_name)
    if champ is None:
        raise ModelNotRegistered(
            f"registered model '{settings.model_name}' has no champion yet; pass --model-version, "
            "or promote one (`modops champion` says why a candidate was refused)"
        )
    return str(champ.version)


def _reference(settings: Settings, version: str, *, cfg, log_dir: Path, splits_path: Path, store_dir: Path, rep):  # noqa: ANN001, ANN202
    """The version's scores on the holdout, scored once per version and holdout (cached in the log)."""
    from modops.data.holdout import holdout_hash
    from modops.scoring.daily import reference_dir, score_uploads

    splits = pd.read_parquet(splits_path)
    holdout = splits.loc[splits["split"] == "holdout", ["image_id", "label"]]
    if holdout.empty:
        raise StageError(f"{splits_path} has no holdout rows: run the training pipeline (`make demo`) first")
    judged_on = holdout_hash(holdout)
    out = reference_dir(log_dir, model_version=version)
    meta = out / "summary.json"
    # The reference is scored by the same engine as the days: bf16 eager against fp32 ONNX would
    # itself move the score distributions. A change of engine re-scores it.
    wanted = {"holdout_hash": judged_on, "engine": cfg.engine}
    if meta.is_file() and all(json.loads(meta.read_text()).get(k) == v for k, v in wanted.items()):
        return pd.read_parquet(out / "predictions.parquet"), judged_on
    predictor = _version_predictor(settings, version, device=cfg.device, precision=cfg.precision)
    predictor, engine = _with_engine(predictor, cfg=cfg)
    ids = sorted(holdout["image_id"])
    with rep.task(f"reference: v{version} on the holdout", total=len(ids)) as advance:
        scored = score_uploads(
            predictor,
            ImageStore(store_dir),
            ids,
            min_side=1,
            batch_size=cfg.batch_size,
            workers=cfg.workers,
            embedding_dims=cfg.embedding_dims,
            seed=cfg.seed,
            progress=advance,
        )
    if len(scored.quarantine):
        raise StageError(
            f"{len(scored.quarantine)} holdout image(s) could not be read from {store_dir}; "
            "run `modops pull` (or the training pipeline) to restore the store"
        )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_parquet(out / "predictions.parquet", scored.predictions.assign(model_version=version))
    _write_json(
        meta,
        {
            "model_version": version,
            "holdout_hash": judged_on,
            "rows": len(scored.predictions),
            "engine": cfg.engine,
            "engine_used": engine,
        },
    )
    return scored.predictions, judged_on


def drift_stage(
    day: str,
    *,
    params_path: Path,
    settings: Settings,
    drift_config: Path,
    workspace_config: Path,
    splits_path: Path,
    store_dir: Path,
    log_dir: Path | None = None,
    model_version: str | None = None,
    reporter: Reporter | None = None,
) -> dict:
    """Judge a scored day against the champion's holdout scores; write the report, verdict and workspace run.

    Returns the verdict (``drift``: whether any check fired), with where the report is.
    """
    from modops.config import DriftConfig, WorkspaceConfig, load_monitoring_file
    from modops.monitoring.drift import judge_day
    from modops.monitoring.workspace import add_day_run
    from modops.scoring.daily import parse_day, read_partition

    rep = reporter or NullReporter()
    cfg = load_section(load_params(params_path), "score")
    thresholds = load_monitoring_file(drift_config, DriftConfig)
    ws_cfg = load_monitoring_file(workspace_config, WorkspaceConfig)
    day = parse_day(day).isoformat()
    log_dir = log_dir or settings.prediction_log_dir
    version = model_version or _champion_version(settings)
    scored = read_partition(log_dir, day=day, model_version=version)
    reference, judged_on = _reference(
        settings, version, cfg=cfg, log_dir=log_dir, splits_path=splits_path, store_dir=store_dir, rep=rep
    )
    categories = tuple(c[len("flag_") :] for c in scored.predictions.columns if c.startswith("flag_"))
    snapshot, verdict = judge_day(
        reference, scored, cfg=thresholds, categories=categories, day_label=day, model_version=version
    )
    out = settings.monitoring_dir / f"day={day}" / f"model_version={version}"
    out.mkdir(parents=True, exist_ok=True)
    result = {**verdict.to_dict(), "holdout_hash": judged_on, "report": None, "workspace_run": None}
    if snapshot is not None:
        snapshot.save_html(str(out / "report.html"))
        result["report"] = str(out / "report.html")
        result["workspace"] = str(settings.monitoring_dir / "workspace")
        result["workspace_run"] = add_day_run(
            settings.monitoring_dir / "workspace", snapshot, cfg=ws_cfg, run_name=f"{day} v{version}"
        )
    _write_json(out / "verdict.json", result)
    result["verdict"] = str(out / "verdict.json")
    rep.log(_verdict_text(result))
    return result


def _verdict_text(result: dict) -> str:
    """The verdict in words: which checks fired, with values and thresholds."""
    head = (
        f"drift {result['day']} (v{result['model_version']}, {result['rows']} images vs "
        f"{result['reference_rows']} reference): {'DRIFT' if result['drift'] else 'no drift'}"
    )
    lines = [head]
    for c in result["checks"]:
        if c["fired"]:
            lines.append(f"  FIRED {c['name']}: {c['detail']}")
    if result.get("report"):
        lines.append(f"  report: {result['report']}")
    return "\n".join(lines)


def _upload_url(source: str, uri: str, *, prefix: str) -> str:
    """Where reviewers' Label Studio finds an upload: its s3:// URL, or a local-files URL.

    A local source is given relative to the folder Label Studio serves (its document root,
    the project folder here); an absolute one outside it by the source folder's name.
    """
    from modops.active.labelstudio import local_files_url

    if source.startswith("s3://"):
        return f"{source.rstrip('/')}/{uri}"
    path = Path(source) / uri
    if path.is_absolute():
        try:
            path = path.relative_to(Path.cwd())
        except ValueError:
            path = Path(Path(source).name) / uri
    return local_files_url(path.as_posix(), prefix=prefix)


def select_stage(
    day: str,
    *,
    params_path: Path,
    settings: Settings,
    log_dir: Path | None = None,
    out_dir: Path | None = None,
    model_version: str | None = None,
    strategy: str | None = None,
    budget: int | None = None,
    labels_dir: Path | None = None,
    reporter: Reporter | None = None,
) -> dict:
    """Choose a scored day's images for review and export them (Label Studio JSON and CSV).

    Writes ``tasks.json`` (Label Studio import, the model's scores as pre-annotations),
    ``labeling_config.xml``, ``candidates.csv`` and ``selection.parquet`` to ``out_dir``
    (default :func:`relabel_batch_dir`); returns a summary. The batch is labelling round
    ``N`` = one more than the label store's (``labels_dir``) latest round; selecting the same
    batch again keeps its round number.
    """
    from modops.active.labelstudio import export_csv, import_tasks, labeling_config
    from modops.active.selection import select
    from modops.scoring.daily import parse_day, partition_dir, read_partition

    rep = reporter or NullReporter()
    cfg = load_section(load_params(params_path), "select")
    day = parse_day(day).isoformat()
    log_dir = log_dir or settings.prediction_log_dir
    version = model_version or _champion_version(settings)
    scored = read_partition(log_dir, day=day, model_version=version).predictions
    source = json.loads((partition_dir(log_dir, day=day, model_version=version) / "summary.json").read_text())["source"]
    p_cols = [c for c in scored.columns if c.startswith("p_")]
    classes = tuple(c[2:] for c in p_cols)
    reference = _reference_rows(log_dir, version=version) if cfg.novelty_fraction else None
    if cfg.novelty_fraction and reference is None:
        rep.log(f"select {day}: no reference scores of v{version} yet (`modops drift` writes them): no novelty share")
    picked = select(
        scored,
        classes=classes,
        strategy=strategy or cfg.strategy,
        budget=budget or cfg.budget,
        low=cfg.low,
        high=cfg.high,
        diversity=cfg.diversity,
        pool_factor=cfg.pool_factor,
        seed=cfg.seed,
        reference=reference,
        novelty_fraction=cfg.novelty_fraction,
    )
    out = out_dir or relabel_batch_dir(settings, day=day, model_version=version)
    round_ = _round_of(out, labels_dir=labels_dir)
    out.mkdir(parents=True, exist_ok=True)
    urls = dict(
        zip(
            picked["image_id"],
            (_upload_url(source, u, prefix=cfg.image_url_prefix) for u in picked["uri"]),
            strict=True,
        )
    )
    candidates = picked.assign(score=picked["priority"])[["category", "image_id", "score", "rank"]]
    tasks = import_tasks(
        candidates,
        image_url=urls.__getitem__,
        model_version=f"{settings.model_name}/v{version}",
        scores=picked[["image_id", *p_cols]],
    )
    atomic_write_text(out / "tasks.json", json.dumps(tasks, indent=1))
    atomic_write_text(out / "labeling_config.xml", labeling_config(classes))
    atomic_write_text(out / "candidates.csv", export_csv(candidates, image_url=urls.__getitem__))
    atomic_write_parquet(out / "selection.parquet", picked)
    summary = {
        "day": day,
        "model_version": version,
        "strategy": strategy or cfg.strategy,
        "budget": budget or cfg.budget,
        "selected": len(picked),
        "scored": len(scored),
        "by_category": {str(k): int(v) for k, v in picked["category"].value_counts().sort_index().items()},
        "by_reason": {str(k): int(v) for k, v in picked["reason"].value_counts().sort_index().items()},
        "round": round_,
        "source": source,
        "out": str(out),
    }
    _write_json(out / "summary.json", summary)
    rep.log(
        f"select {day}: {summary['selected']} of {summary['scored']} images ({summary['strategy']}) -> "
        f"{out}/tasks.json (round {round_}); import the reviewers' export with "
        f"`modops relabel --day {day} --model-version {version}` or `modops labels import EXPORT --round {round_}`"
    )
    return summary


def _reference_rows(log_dir: Path, *, version: str) -> pd.DataFrame | None:
    """The version's holdout scores that the drift check cached (with their embeddings), or None."""
    from modops.scoring.daily import reference_dir

    path = reference_dir(log_dir, model_version=version) / "predictions.parquet"
    return pd.read_parquet(path) if path.is_file() else None


def relabel_batch_dir(settings: Settings, *, day: str, model_version: str) -> Path:
    """``relabel/day=D/model_version=V`` in the state folder: one review batch."""
    return settings.state_dir.resolve() / "relabel" / f"day={day}" / f"model_version={model_version}"


def _round_of(batch: Path, *, labels_dir: Path | None) -> int:
    """The batch's labelling round: as recorded when it was first selected, else the next one."""
    from modops.data.labelstore import LabelStore

    summary = batch / "summary.json"
    if summary.is_file() and "round" in (recorded := json.loads(summary.read_text())):
        return int(recorded["round"])
    if labels_dir is None:
        return 1
    events = LabelStore(labels_dir).events()
    return int(events["round"].max()) + 1 if len(events) else 1


def relabel_stage(
    day: str,
    *,
    params_path: Path,
    settings: Settings,
    labels_dir: Path,
    model_version: str | None = None,
    batch_dir: Path | None = None,
    reporter: Reporter | None = None,
) -> dict:
    """Bring a review batch's decisions into the label store: labelling round ``N`` (``source: reviewer``).

    The reviewer named by ``relabel.reviewer`` answers the batch's ``tasks.json``: Label
    Studio's export at ``relabel.export`` (JSON, JSON_MIN or CSV), or the demo oracle. Its
    answers are kept beside the batch (``export.json``) and appended to the label store as one
    batch; importing the same answers again adds nothing. Returns ``waiting: true`` (and imports
    nothing) while the reviewers' export has not arrived.
    """
    from modops.active.labelstudio import parse_export
    from modops.active.reviewers import ReviewContext, get_reviewer
    from modops.data.labelstore import LabelStore
    from modops.scoring.daily import parse_day

    rep = reporter or NullReporter()
    params = load_params(params_path)
    cfg, labels = load_section(params, "relabel"), load_section(params, "labels")
    day = parse_day(day).isoformat()
    version = model_version or _champion_version(settings)
    batch = batch_dir or relabel_batch_dir(settings, day=day, model_version=version)
    if not (batch / "tasks.json").is_file():
        raise StageError(f"no review batch at {batch}: run `modops select --day {day} --model-version {version}` first")
    selected = json.loads((batch / "summary.json").read_text())
    round_ = int(selected.get("round", 1))
    export_path = cfg.export_for(batch=batch, day=day)
    ctx = ReviewContext(
        classes=labels.all,
        confirmations=str(export_path),
        source=cfg.truth_for(day) or "",
        labels_file=cfg.labels_file,
        # Decisions without a time get the batch's own (deterministic: a re-run imports nothing new).
        when=pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=1),
    )
    answers = get_reviewer(cfg.reviewer)(json.loads((batch / "tasks.json").read_text()), ctx)
    base = {"day": day, "model_version": version, "round": round_, "reviewer": cfg.reviewer, "batch": str(batch)}
    if answers is None:
        rep.log(f"relabel {day}: waiting for the reviewers' export at {export_path}")
        return {**base, "waiting": True, "imported": 0, "labelled": 0}
    frame = answers if isinstance(answers, pd.DataFrame) else parse_export(answers)
    if not export_path.is_file() and not isinstance(answers, pd.DataFrame):
        # Answers no file holds (the demo oracle's): kept as the export a reviewer would have dropped.
        atomic_write_text(batch / "export.json", json.dumps(answers, indent=1))
    store = LabelStore(labels_dir)
    stored = _append_decisions(
        frame,
        store,
        source="reviewer",
        source_name=f"reviewer-round{round_}",
        round_=round_,
        when=ctx.when,
        allowed=labels.all,
    )
    # The round's record names the model that chose it: the next training fine-tunes that model
    # (train.warm_start.init: round_model). Written with the labels, so one label version has one record.
    store.record_round(
        round_,
        {
            "model_name": settings.model_name,
            "model_version": version,
            "day": day,
            "reviewer": cfg.reviewer,
            "batch": _state_relative(batch, settings),
        },
    )
    admitted = _admit_round(
        frame, batch, selected=selected, params_path=params_path, settings=settings, day=day, version=version
    )
    result = {
        **base,
        "waiting": False,
        "labelled": len(frame),
        "imported": 0 if stored is None else stored.n_events,
        "label_batch": None if stored is None else stored.name,
        "by_label": {str(k): int(v) for k, v in frame["label"].value_counts().sort_index().items()},
        "label_version": store.version().id,
        "admitted": admitted,
    }
    _write_json(batch / "import.json", result)
    rep.log(
        f"relabel {day}: round {round_}, {result['labelled']} decisions ({result['by_label']}), "
        f"{result['imported']} new label events -> {labels_dir} (version {result['label_version']}); "
        f"images -> {admitted['dest']}: {admitted['written']} new, {admitted['present']} already there"
        + (f", {len(admitted['failed'])} could not be copied (see import.json)" if admitted["failed"] else "")
    )
    return result


def _state_relative(path: Path, settings: Settings) -> str:
    """``path`` relative to the state folder when it is inside it (records stay machine-independent)."""
    try:
        return path.resolve().relative_to(settings.state_dir.resolve()).as_posix()
    except ValueError:
        return str(path)


def _admit_round(
    frame: pd.DataFrame, batch: Path, *, selected: dict, params_path: Path, settings: Settings, day: str, version: str
) -> dict:
    """Copy the round's decided images into ``ingest.reviewed_source`` so the next ingest adds them to the pool.

    A relative ``reviewed_source`` is taken from the project folder (where ``params_path`` is), as DVC does.
    """
    from modops.data.reviewed import admit_reviewed
    from modops.scoring.daily import partition_dir

    icfg = load_section(load_params(params_path), "ingest")
    dest = _reviewed_source(icfg.reviewed_source, params_path=params_path)
    source = selected.get("source")
    if source is None:  # a batch selected before the source was recorded: the scored partition knows it
        part = partition_dir(settings.prediction_log_dir, day=day, model_version=version)
        source = json.loads((part / "summary.json").read_text())["source"]
    picked = pd.read_parquet(batch / "selection.parquet", columns=["image_id", "uri"]).drop_duplicates("image_id")
    decided = picked[picked["image_id"].isin(set(frame["image_id"]))]
    summary = admit_reviewed(
        decided["image_id"].tolist(),
        decided["uri"].tolist(),
        source=source,
        dest=dest,
        max_bytes=icfg.max_bytes,
        s3_endpoint_url=settings.s3_endpoint_url,
    )
    return {**summary.to_dict(), "dest": icfg.reviewed_source}
