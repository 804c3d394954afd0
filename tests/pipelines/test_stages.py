"""Pipeline slice: every stage function in-process on the small pool, with a tiny model.

Covers the hand-offs between stages (manifest -> splits -> model -> metrics -> registry),
the failing-gate path, and the validation stop. The full Airflow + DVC run is in tests/test_e2e.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from modops.config import load_settings
from modops.stages import (
    StageError,
    evaluate_stage,
    ingest_stage,
    register_stage,
    split_stage,
    train_stage,
    validate_stage,
)

REPO = Path(__file__).resolve().parents[2]
FAST_TRAIN = {
    "backbone": "mobilenet_v3_small",
    "image_size": 32,
    "epochs": 1,
    "samples_per_epoch": 256,
    "batch_size": 32,
}


def _params(tmp_path: Path, **overrides: dict) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"].update(FAST_TRAIN)
    params["validate"]["min_count_per_class"] = 5
    for section, values in overrides.items():
        params[section].update(values)
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(params))
    return p


@pytest.mark.slow
def test_stage_chain_and_gates(small_pool, tmp_path):
    params = _params(tmp_path, gate={"min_precision": 0.0, "min_recall": 0.0, "min_pr_auc": 0.0, "max_regression": 1.0})
    settings = load_settings()
    d = tmp_path
    summary = ingest_stage(str(small_pool), d / "ing", store_dir=d / "store", params_path=params, settings=settings)
    assert summary["ingested"] == 600 and summary["quarantined"] == 0
    validate_stage(d / "ing/manifest.parquet", d / "val", params_path=params)
    split_stage(
        d / "ing/manifest.parquet", d / "splits.parquet", holdout_path=d / "holdout.parquet", params_path=params
    )
    train = train_stage(
        d / "ing/manifest.parquet",
        d / "splits.parquet",
        d / "model",
        store_dir=d / "store",
        params_path=params,
        settings=settings,
        metrics_path=d / "train.json",
    )
    assert train["mlflow_run_id"] and (d / "model/model.safetensors").is_file()
    metrics = evaluate_stage(
        d / "model",
        d / "ing/manifest.parquet",
        d / "splits.parquet",
        d / "eval",
        store_dir=d / "store",
        params_path=params,
    )
    assert set(metrics["holdout"]) == {"promo_spam", "disgusting", "weapon"}
    for cat in metrics["holdout"]:
        assert (d / "eval/plots" / f"pr_{cat}.csv").read_text().startswith("recall,precision,threshold")

    kwargs = dict(
        store_dir=d / "store",
        holdout_path=d / "holdout.parquet",
        settings=settings,
        train_metrics_path=d / "train.json",
    )
    first = register_stage(
        d / "model",
        d / "eval",
        d / "ing/manifest.parquet",
        d / "splits.parquet",
        d / "reg.json",
        params_path=params,
        **kwargs,
    )
    assert first["gate"]["passed"] and first["registration"]["champion_after"] == first["registration"]["version"]
    assert first["registration"]["run_id"] == train["mlflow_run_id"]  # model lives in the training run

    # Impossible floors: the candidate (a retrained model) fails, and the champion stays put.
    strict = _params(tmp_path, gate={"min_precision": 1.0, "min_recall": 1.0}, train={"seed": 5})
    train_stage(
        d / "ing/manifest.parquet",
        d / "splits.parquet",
        d / "model2",
        store_dir=d / "store",
        params_path=strict,
        settings=settings,
    )
    evaluate_stage(
        d / "model2",
        d / "ing/manifest.parquet",
        d / "splits.parquet",
        d / "eval2",
        store_dir=d / "store",
        params_path=strict,
    )
    second = register_stage(
        d / "model2",
        d / "eval2",
        d / "ing/manifest.parquet",
        d / "splits.parquet",
        d / "reg2.json",
        params_path=strict,
        **kwargs,
    )
    assert not second["gate"]["passed"]
    assert second["registration"]["champion_after"] == first["registration"]["version"]
    assert second["champion_metrics"] is not None  # the champion was re-scored on the same holdout
    assert any("precision" in r or "recall" in r for r in second["gate"]["reasons"])
    assert json.loads((d / "reg2.json").read_text())["gate"]["passed"] is False


def test_validation_failure_stops_with_report(small_pool, tmp_path):
    params = _params(tmp_path, validate={"min_count_per_class": 10_000})
    settings = load_settings()
    ingest_stage(str(small_pool), tmp_path / "ing", store_dir=tmp_path / "store", params_path=params, settings=settings)
    with pytest.raises(StageError, match="class_count_min") as exc:
        validate_stage(tmp_path / "ing/manifest.parquet", tmp_path / "val", params_path=params)
    assert "index.html" in str(exc.value) and (tmp_path / "val/index.html").is_file()
