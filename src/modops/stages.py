"""Stage functions: the one place that turns arguments into a stage run.

Each DVC stage script in ``pipelines/``, each CLI command and each Airflow task (through
DVC) ends here. A stage loads its ``params.yaml`` sections, calls the pure library, and
writes its outputs atomically; it returns a small JSON-able summary. MLflow is imported
only inside the stages that talk to it (train, register), so core stages run anywhere.
"""

from __future__ import annotations

import json
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
    "train_stage",
    "evaluate_stage",
    "register_stage",
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
    params_path: Path,
    settings: Settings,
    reporter: Reporter | None = None,
) -> dict:
    """Ingest ``source`` into ``store_dir``; write manifest, quarantine and summary to ``out_dir``."""
    from modops.data.ingest import ingest

    rep = reporter or NullReporter()
    cfg = load_section(params_path, "ingest")
    with rep.task("ingest", total=None) as advance:
        summary = ingest(
            source,
            out_dir,
            store=ImageStore(store_dir),
            cfg=cfg,
            s3_endpoint_url=settings.s3_endpoint_url,
            progress=advance,
        )
    rep.log(
        f"ingest: found {summary.found}, ingested {summary.ingested}, quarantined {summary.quarantined} "
        f"{summary.quarantine_reasons or ''} -> {out_dir}"
    )
    return summary.to_dict()


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


def split_stage(
    manifest_path: Path, splits_path: Path, *, holdout_path: Path, params_path: Path, reporter: Reporter | None = None
) -> dict:
    """Split the manifest; the holdout at ``holdout_path`` is reused when present (frozen)."""
    from modops.data.split import split_manifest

    rep = reporter or NullReporter()
    params = load_params(params_path)
    frozen = pd.read_parquet(holdout_path) if holdout_path.is_file() else None
    result = split_manifest(
        read_manifest(manifest_path),
        load_section(params, "split"),
        labels=load_section(params, "labels"),
        frozen_holdout=frozen,
    )
    atomic_write_parquet(splits_path, result.splits)
    if result.created_holdout:
        atomic_write_parquet(holdout_path, result.holdout)
    counts = result.counts()
    rep.log(f"split: {json.dumps(counts)}; holdout {'frozen now' if result.created_holdout else 'reused (frozen)'}")
    return {"counts": counts, "created_holdout": result.created_holdout}


def _labelled_ids(
    manifest: pd.DataFrame, splits: pd.DataFrame, split: str, classes: tuple[str, ...]
) -> tuple[list[str], np.ndarray]:
    """Ids and class indices of one split, with labels from the current manifest."""
    ids = splits.loc[splits["split"] == split, "image_id"]
    rows = manifest.set_index("image_id").reindex(ids)
    rows = rows[rows["label"].notna()]
    index = {c: i for i, c in enumerate(classes)}
    return rows.index.tolist(), rows["label"].map(index).to_numpy(dtype=np.int64)


def train_stage(
    manifest_path: Path,
    splits_path: Path,
    model_dir: Path,
    *,
    store_dir: Path,
    params_path: Path,
    settings: Settings | None,
    metrics_path: Path | None = None,
    reporter: Reporter | None = None,
) -> dict:
    """Train a candidate with the trainer named in params; log the run to MLflow when ``settings`` is given."""
    import torch

    from modops.data.transforms import load_uint8_batch
    from modops.models.io import ModelSpec, save_model
    from modops.training import TrainData, get_trainer

    rep = reporter or NullReporter()
    params = load_params(params_path)
    labels, cfg = load_section(params, "labels"), load_section(params, "train")
    trainer = get_trainer(cfg.trainer)
    manifest, splits = read_manifest(manifest_path), pd.read_parquet(splits_path)
    store = ImageStore(store_dir)
    tensors = {}
    for split in ("train", "val"):
        ids, y = _labelled_ids(manifest, splits, split, labels.all)
        with rep.task(f"decode {split}", total=len(ids)) as advance:
            tensors[split] = (
                load_uint8_batch(store.get, ids, image_size=cfg.image_size, progress=advance),
                torch.from_numpy(y),
            )
    data = TrainData(tensors["train"][0], tensors["train"][1], tensors["val"][0], tensors["val"][1])

    def on_step(phase: str, done: int, total: int) -> None:
        advance(1)
        if done == total:  # one line per epoch, so DVC and Airflow logs show progress
            rep.log(f"train: {phase} done ({total} steps)")

    with rep.task(f"train {cfg.trainer}/{cfg.backbone}", total=None) as advance:
        result = trainer(data, cfg=cfg, class_names=labels.all, progress=on_step)
    for h in result.history:
        rep.log("train: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in h.items()))
    save_model(result.model, ModelSpec(backbone=cfg.backbone, classes=labels.all, image_size=cfg.image_size), model_dir)
    summary = {
        "best_epoch": result.best_epoch,
        "seconds": round(result.seconds, 1),
        "train_images_per_s": round(result.train_images_per_s, 1),
        "n_train": len(data.train_y),
        "n_val": len(data.val_y),
        "best_val_macro_pr_auc": max(h["val_macro_pr_auc"] for h in result.history),
    }
    if settings is not None:
        summary["mlflow_run_id"] = _log_training(
            settings, cfg=cfg, result=result, summary=summary, manifest_path=manifest_path
        )
    if metrics_path is not None:
        _write_json(metrics_path, summary)
    rep.log(f"train: {json.dumps(summary)}")
    return summary


def _log_training(settings: Settings, *, cfg, result, summary: dict, manifest_path: Path) -> str:  # noqa: ANN001
    import mlflow

    from modops.registry.tracking import configure_mlflow, file_hash, git_revision

    configure_mlflow(settings)
    with mlflow.start_run(run_name=f"train-{cfg.trainer}-{cfg.backbone}") as run:
        mlflow.log_params({f"train.{k}": v for k, v in cfg.model_dump().items()})
        mlflow.set_tags(
            {
                "modops.data_version": file_hash(manifest_path),
                "modops.git_revision": git_revision(),
                "modops.stage": "train",
            }
        )
        for h in result.history:
            mlflow.log_metrics({k: float(v) for k, v in h.items() if k != "epoch"}, step=int(h["epoch"]))
        mlflow.log_metrics({k: float(v) for k, v in summary.items() if isinstance(v, (int, float))})
        return run.info.run_id


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
    """Choose thresholds on val, measure the holdout; write metrics.json, thresholds.json, PR-curve CSVs, scores."""
    from modops.evaluation.metrics import evaluate
    from modops.models.io import load_model
    from modops.scoring.batch import score_ids

    rep = reporter or NullReporter()
    params = load_params(params_path)
    labels, cfg = load_section(params, "labels"), load_section(params, "evaluate")
    model, spec = load_model(model_dir)
    if tuple(spec.classes) != labels.all:
        raise StageError(
            f"model classes {spec.classes} differ from params labels {labels.all}; retrain (dvc repro train)"
        )
    manifest, splits = read_manifest(manifest_path), pd.read_parquet(splits_path)
    store = ImageStore(store_dir)
    scored = {}
    for split in ("val", "holdout"):
        ids, y = _labelled_ids(manifest, splits, split, labels.all)
        with rep.task(f"score {split}", total=len(ids)) as advance:
            scored[split] = (
                ids,
                y,
                score_ids(model, spec, ids, read=store.get, batch_size=cfg.batch_size, progress=advance),
            )
    report, curves = evaluate(
        scored["val"][1],
        scored["val"][2],
        scored["holdout"][1],
        scored["holdout"][2],
        class_names=labels.all,
        negative=labels.negative,
        target_precision=cfg.target_precision,
        confidence=cfg.confidence,
    )
    metrics = report.to_metrics_json()
    _write_json(out_dir / "metrics.json", metrics)
    _write_json(out_dir / "thresholds.json", report.thresholds)
    for cat, points in curves.items():
        frame = pd.DataFrame(points)[["recall", "precision", "threshold"]]
        atomic_write_text(out_dir / "plots" / f"pr_{cat}.csv", frame.to_csv(index=False, float_format="%.6f"))
    ids, y, probs = scored["holdout"]
    scores = pd.DataFrame({"image_id": ids, "label": [labels.all[i] for i in y]})
    for i, c in enumerate(labels.all):
        scores[f"p_{c}"] = probs[:, i]
    atomic_write_parquet(out_dir / "holdout_scores.parquet", scores)
    rep.log(
        "evaluate: "
        + ", ".join(
            f"{c}: P={m.precision:.3f} R={m.recall:.3f} AP={m.pr_auc:.3f} @t={m.threshold:.3f}"
            for c, m in report.categories.items()
        )
    )
    return metrics


def _champion_metrics(
    name: str, version: str, *, manifest: pd.DataFrame, splits: pd.DataFrame, store: ImageStore, labels, cfg
) -> dict:  # noqa: ANN001
    """Re-score the champion on today's holdout at its own thresholds: a like-for-like comparison."""
    import tempfile

    from modops.evaluation.metrics import category_metrics
    from modops.models.io import load_model
    from modops.registry.promotion import download_model_dir
    from modops.scoring.batch import score_ids

    with tempfile.TemporaryDirectory() as tmp:
        model, spec = load_model(download_model_dir(name, version, Path(tmp)))
    ids, y = _labelled_ids(manifest, splits, "holdout", labels.all)
    probs = score_ids(model, spec, ids, read=store.get, batch_size=cfg.batch_size)
    out = {}
    for i, cat in enumerate(spec.classes):
        if cat == labels.negative or cat not in spec.thresholds:
            continue
        m = category_metrics(
            y == i, probs[:, i], category=cat, threshold=spec.thresholds[cat], confidence=cfg.confidence
        )
        out[cat] = m.to_dict()
    return out


def register_stage(
    model_dir: Path,
    eval_dir: Path,
    manifest_path: Path,
    splits_path: Path,
    out_path: Path,
    *,
    store_dir: Path,
    holdout_path: Path,
    params_path: Path,
    settings: Settings,
    train_metrics_path: Path | None = None,
    reporter: Reporter | None = None,
) -> dict:
    """Gate the candidate against the floors and the current champion, register it, move aliases.

    A failed gate is a normal outcome, not an error: the candidate becomes ``challenger``,
    ``champion`` stays where it was, and the reasons are written to ``out_path`` and tagged.
    """
    from modops.evaluation.gate import gate_from_config
    from modops.registry.promotion import champion_version, register_candidate
    from modops.registry.tracking import configure_mlflow, file_hash, git_revision

    rep = reporter or NullReporter()
    params = load_params(params_path)
    labels, cfg, ecfg = load_section(params, "labels"), load_section(params, "gate"), load_section(params, "evaluate")
    name = settings.model_name
    configure_mlflow(settings)
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    thresholds = json.loads((eval_dir / "thresholds.json").read_text())
    weights_sha = file_hash(model_dir / "model.safetensors", "sha256")
    champ = champion_version(name)
    champion_metrics, label = None, "champion"
    if champ is not None:
        label = f"champion v{champ.version}"
        if champ.tags.get("modops.weights_sha256") == weights_sha:
            champion_metrics = metrics["holdout"]
        else:
            champion_metrics = _champion_metrics(
                name,
                champ.version,
                manifest=read_manifest(manifest_path),
                splits=pd.read_parquet(splits_path),
                store=ImageStore(store_dir),
                labels=labels,
                cfg=ecfg,
            )
    verdict = gate_from_config(metrics["holdout"], cfg, champion=champion_metrics, champion_label=label)
    run_id = None
    if train_metrics_path is not None and train_metrics_path.is_file():
        run_id = json.loads(train_metrics_path.read_text()).get("mlflow_run_id")
    flat = {
        f"holdout.{cat}.{k}": float(v)
        for cat, m in metrics["holdout"].items()
        for k, v in m.items()
        if k in ("precision", "recall", "f1", "pr_auc", "threshold")
    }
    reg = register_candidate(
        model_dir,
        name=name,
        thresholds=thresholds,
        weights_sha=weights_sha,
        passed=verdict.passed,
        reasons=verdict.reasons,
        metrics=flat,
        run_id=run_id,
        tags={
            "modops.data_version": file_hash(manifest_path),
            "modops.holdout_version": file_hash(holdout_path) if holdout_path.is_file() else "none",
            "modops.git_revision": git_revision(),
        },
    )
    record = {"registration": reg.to_dict(), "gate": verdict.to_dict(), "champion_metrics": champion_metrics}
    _write_json(out_path, record)
    word = "PASSED -> champion" if verdict.passed else "FAILED -> champion unchanged"
    rep.log(f"register: {name} v{reg.version} gate {word}\n" + "\n".join(f"  - {r}" for r in verdict.reasons))
    return record
