"""Pipeline slice: every stage function in-process on the small pool, with a tiny model.

Covers the hand-offs between stages (manifest -> splits -> model -> metrics -> registry),
the failing-gate path, and the validation stop. The full Airflow + DVC run is in tests/test_e2e.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from modops.config import load_settings
from modops.data.labelstore import LabelStore
from modops.stages import (
    StageError,
    cold_start_stage,
    evaluate_stage,
    ingest_stage,
    noise_stage,
    register_stage,
    split_stage,
    train_stage,
    validate_stage,
)

REPO = Path(__file__).resolve().parents[2]
FAST_TRAIN = {
    "trainer": "supervised",
    "backbone": "cnn_small",
    "image_size": 32,
    "epochs": 1,
    "samples_per_epoch": 256,
    "batch_size": 32,
    "workers": 0,
}
FAST_COLD_START = {"steps": 20, "image_size": 32, "per_category": 10, "pool_negatives": 100, "workers": 0}
FAST_NOISE = {"steps": 20, "image_size": 32, "workers": 0, "folds": 3, "action": "exclude", "max_fraction": 0.2}


def _params(tmp_path: Path, name: str = "params.yaml", **overrides: dict) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"].update(FAST_TRAIN)
    params["cold_start"].update(FAST_COLD_START)
    params["noise"].update(FAST_NOISE)
    params["evaluate"].update({"workers": 0, "explain_examples": 2})
    params["validate"]["min_count_per_class"] = 5
    for section, values in overrides.items():
        params[section].update(values)
    p = tmp_path / name
    p.write_text(yaml.safe_dump(params))
    return p


def _ingest(pool: Path, d: Path, params: Path, settings) -> dict:  # noqa: ANN001
    """The ingest stage on ``pool`` into ``d``: manifest in ``d/ing``, images ``d/store``, labels ``d/labels``."""
    return ingest_stage(
        str(pool), d / "ing", store_dir=d / "store", labels_dir=d / "labels", params_path=params, settings=settings
    )


@pytest.mark.slow
def test_stage_chain_and_gates(small_pool, tmp_path):
    d = tmp_path
    params = _params(
        d,
        gate={
            "min_precision": 0.0,
            "min_recall": 0.0,
            "min_pr_auc": 0.0,
            "max_regression": 1.0,
            "category_floors": {},
            "min_support": 0,  # a 600-image pool has a handful of holdout positives per category
        },
        ingest={"source": str(small_pool)},
    )
    settings = load_settings()
    summary = _ingest(small_pool, d, params, settings)
    assert summary["ingested"] == 615 and summary["quarantined"] == 0  # 600 pool images + 15 seeds
    upload = LabelStore(d / "labels").snapshot()
    assert (upload["source"] == "seed").sum() == 15 and (upload["source"] == "upload").sum() == 480
    validate_stage(d / "ing/manifest.parquet", d / "val", params_path=params)

    cold = cold_start_stage(
        d / "ing/manifest.parquet", d / "cold", store_dir=d / "store", labels_dir=d / "labels", params_path=params
    )
    assert cold["seeds"] == {"promo_spam": 5, "disgusting": 5, "weapon": 5} and cold["unlabelled_pool"] == 120
    assert cold["confirmed"] == cold["distinct_candidates"] > 0  # the demo oracle answered every task
    assert set(cold["precision_at_k"]) == {"promo_spam", "disgusting", "weapon"}
    tasks = json.loads((d / "cold/tasks.json").read_text())
    assert tasks and tasks[0]["predictions"][0]["result"][0]["value"]["choices"]
    assert '<Choice value="weapon"' in (d / "cold/labeling_config.xml").read_text()
    retrieval = LabelStore(d / "labels").snapshot(sources=["retrieval"])
    assert len(retrieval) == cold["confirmed"]

    split = split_stage(
        d / "ing/manifest.parquet",
        d / "splits.parquet",
        holdout_path=d / "holdout.parquet",
        labels_dir=d / "labels",
        params_path=params,
    )
    splits = pd.read_parquet(d / "splits.parquet")
    evaluated = splits[splits["split"].isin(["val", "holdout"])]
    assert set(evaluated["source"]) == {"upload"}  # seeds and retrieval labels train only
    assert split["label_version"].startswith("lv-")

    noise = noise_stage(
        d / "splits.parquet",
        d / "noise",
        store_dir=d / "store",
        manifest_path=d / "ing/manifest.parquet",
        params_path=params,
    )
    issues = pd.read_parquet(d / "noise/label_issues.parquet")
    checked = splits[splits["split"].isin(["train", "val"]) & splits["label"].notna()]
    assert set(issues["image_id"]) == set(checked["image_id"]) and noise["checked"] == len(issues)
    assert not set(issues["image_id"]) & set(splits.loc[splits["split"] == "holdout", "image_id"])
    review = pd.read_csv(d / "noise/review.csv")
    assert len(review) == noise["flagged"] == issues["issue"].sum()
    assert review["label_quality"].is_monotonic_increasing
    for label, n in (issues.groupby("label")["issue"].sum()).items():  # the per-label cap
        assert n <= -(-0.2 * (issues["label"] == label).sum() // 1)
    train = train_stage(
        d / "ing/manifest.parquet",
        d / "splits.parquet",
        d / "model",
        store_dir=d / "store",
        params_path=params,
        settings=settings,
        metrics_path=d / "train.json",
        issues_path=d / "noise/label_issues.parquet",
    )
    flagged_train = issues[issues["issue"] & (issues["split"] == "train")]
    assert train["noise"] == {"action": "exclude", "flagged_in_train": len(flagged_train)}
    assert train["n_train"] == (checked["split"] == "train").sum() - len(flagged_train)
    assert train["mlflow_run_id"] and (d / "model/model.safetensors").is_file()
    assert json.loads((d / "model/model.json").read_text())["label_version"] == split["label_version"]
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
        assert (d / "eval/explain" / f"{cat}_false_positives.png").is_file()

    load = metrics["review_load"]
    assert load["auto_allowed"] + load["auto_blocked"] + load["human_review"] == pytest.approx(1.0)
    kwargs = dict(
        store_dir=d / "store",
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

    # A cascade candidate under impossible floors: it fails, and the champion stays put.
    strict = _params(
        d,
        "strict.yaml",
        gate={"min_precision": 1.0, "min_recall": 1.0, "min_support": 0},
        train={"seed": 5, "trainer": "ohem_cascade"},
        ingest={"source": str(small_pool)},
    )
    with open(strict) as fh:
        raw = yaml.safe_load(fh)
    raw["train"]["ohem_cascade"].update(
        {"stage2_epochs": 1, "stage2_samples_per_epoch": 128, "hard_examples": 64, "stage2_image_size": 32}
    )
    strict.write_text(yaml.safe_dump(raw))
    train_stage(
        d / "ing/manifest.parquet",
        d / "splits.parquet",
        d / "model2",
        store_dir=d / "store",
        params_path=strict,
        settings=settings,
    )
    assert json.loads((d / "model2/model.json").read_text())["kind"] == "cascade"
    cascade_metrics = evaluate_stage(
        d / "model2",
        d / "ing/manifest.parquet",
        d / "splits.parquet",
        d / "eval2",
        store_dir=d / "store",
        params_path=strict,
    )
    assert 0.0 <= cascade_metrics["stage2_share"]["holdout"] <= 1.0
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
    paired = [c for c in second["gate"]["checks"] if c["check"] == "regression"]
    assert paired and all(c["method"] == "paired_bootstrap" for c in paired)
    assert second["holdout_hash"] == first["holdout_hash"].strip() and first["holdout_hash"].startswith("hd-")
    assert any("precision" in r or "recall" in r for r in second["gate"]["reasons"])
    assert json.loads((d / "reg2.json").read_text())["gate"]["passed"] is False


@pytest.mark.slow
def test_a_relabel_round_fine_tunes_the_model_that_selected_it(small_pool, tmp_path):
    import torch
    from safetensors.torch import load_file

    from modops.data.labelstore import events_from_frame
    from modops.registry.promotion import register_candidate
    from modops.registry.tracking import configure_mlflow

    d, settings = tmp_path, load_settings()
    # A negligible fine-tuning rate: the fine-tuned weights must be the round model's.
    warm = {"init": "round_model", "epochs": 1, "lr": 1e-9}
    params = _params(d, ingest={"source": str(small_pool)}, train={"warm_start": warm, "seed": 1})
    _ingest(small_pool, d, params, settings)
    kw = dict(holdout_path=d / "holdout.parquet", labels_dir=d / "labels", params_path=params)
    split_stage(d / "ing/manifest.parquet", d / "splits.parquet", **kw)
    assert json.loads((d / "label_version.json").read_text())["rounds"] == []
    train = dict(store_dir=d / "store", params_path=params, settings=settings)
    first = train_stage(d / "ing/manifest.parquet", d / "splits.parquet", d / "m1", **train)
    assert first["warm_start"]["from"] == "train.pretrained (none)" and "no relabel round" in first["warm_start"]["why"]
    assert first["best_epoch"] >= 1 and len(json.loads((d / "m1/history.json").read_text())["history"]) == 1

    configure_mlflow(settings)
    reg = register_candidate(
        d / "m1", eval_dir=None, name=settings.model_name, thresholds={}, weights_sha="b" * 64,
        passed=True, reasons=("test",), tags={}, metrics={},
    )  # fmt: skip
    # Round 1: reviewers relabel a few images that model chose.
    store = LabelStore(d / "labels")
    chosen = store.snapshot().head(3).assign(label="promo_spam")
    events = events_from_frame(chosen, source="reviewer", who="ana", when=pd.Timestamp("2026-12-02", tz="UTC"), round=1)
    store.append(events, source_name="reviewer-round1")
    store.record_round(1, {"model_name": settings.model_name, "model_version": str(reg.version)})
    split_stage(d / "ing/manifest.parquet", d / "splits.parquet", **kw)
    rounds = json.loads((d / "label_version.json").read_text())["rounds"]
    assert rounds == [{"round": 1, "model_name": settings.model_name, "model_version": str(reg.version)}]

    second = train_stage(d / "ing/manifest.parquet", d / "splits.parquet", d / "m2", **train)
    assert second["warm_start"] == {
        "from": f"{settings.model_name}/v{reg.version}",
        "round": 1,
        "model_version": str(reg.version),
    }
    before, after = load_file(str(d / "m1/model.safetensors")), load_file(str(d / "m2/model.safetensors"))
    learned = [k for k in before if "running_" not in k and "num_batches" not in k]
    assert learned and all(torch.allclose(before[k], after[k], atol=1e-5) for k in learned)
    # Without the registry the round's model cannot be fetched: the error says what to do.
    with pytest.raises(StageError, match=r"round 1 was selected by v\d+.*warm_start\.init: none"):
        train_stage(d / "ing/manifest.parquet", d / "splits.parquet", d / "m3", **{**train, "settings": None})


@pytest.mark.slow
def test_a_relabel_round_leaves_the_cold_start_bootstrap_as_it_was(small_pool, tmp_path):
    from PIL import Image, ImageOps

    from modops.data.labelstore import events_from_frame

    d, settings = tmp_path, load_settings()
    params = _params(d, ingest={"source": str(small_pool)})
    _ingest(small_pool, d, params, settings)
    cold = dict(store_dir=d / "store", labels_dir=d / "labels", params_path=params)
    before = cold_start_stage(d / "ing/source_manifest.parquet", d / "cold", **cold)
    source_manifest = (d / "ing/source_manifest.parquet").read_bytes()
    retrieved = LabelStore(d / "labels").snapshot(sources=["retrieval"]).sort_values("image_id")
    candidates = (d / "cold/candidates.csv").read_text()
    assert len(retrieved) == before["confirmed"] > 0

    # A round: reviewers label new uploads of a later day, which ingest adds to the pool.
    reviewed = d / "reviewed"
    reviewed.mkdir()
    for i, path in enumerate(sorted((small_pool / "images").iterdir())[:4]):
        ImageOps.mirror(Image.open(path).convert("RGB")).save(reviewed / f"day2_{i}.jpg", quality=90)
    params = _params(d, name="round.yaml", ingest={"source": str(small_pool), "reviewed_source": str(reviewed)})
    _ingest(small_pool, d, params, settings)
    manifest = pd.read_parquet(d / "ing/manifest.parquet")
    new = manifest[manifest["uri"].str.startswith("@reviewed/")]
    assert len(new) == 4
    # What cold start reads is byte-identical after the round, so DVC does not re-run it.
    assert (d / "ing/source_manifest.parquet").read_bytes() == source_manifest
    events = events_from_frame(
        new.assign(label="promo_spam"), source="reviewer", who="ana", when=pd.Timestamp("2026-12-02", tz="UTC"), round=1
    )
    LabelStore(d / "labels").append(events, source_name="reviewer-round1")

    # Given the full manifest (as dvc.yaml did before), the round's images still stay out of its pool.
    after = cold_start_stage(d / "ing/manifest.parquet", d / "cold", **{**cold, "params_path": params})
    again = LabelStore(d / "labels").snapshot(sources=["retrieval"]).sort_values("image_id")
    pd.testing.assert_frame_equal(again.reset_index(drop=True), retrieved.reset_index(drop=True))
    assert (d / "cold/candidates.csv").read_text() == candidates
    assert {k: after[k] for k in ("labelled", "unlabelled_pool", "confirmed", "precision_at_k")} == {
        k: before[k] for k in ("labelled", "unlabelled_pool", "confirmed", "precision_at_k")
    }
    assert not set(new["image_id"]) & set(again["image_id"])


def test_validation_failure_stops_with_report(small_pool, tmp_path):
    params = _params(tmp_path, validate={"min_count_per_class": 10_000})
    settings = load_settings()
    _ingest(small_pool, tmp_path, params, settings)
    with pytest.raises(StageError, match="class_count_min") as exc:
        validate_stage(tmp_path / "ing/manifest.parquet", tmp_path / "val", params_path=params)
    assert "index.html" in str(exc.value) and (tmp_path / "val/index.html").is_file()


def test_a_relative_reviewed_source_is_taken_from_the_project_folder_not_the_working_directory(tmp_path):
    from modops.stages import _reviewed_source

    params = tmp_path / "project" / "params.yaml"
    assert _reviewed_source("data/reviewed", params_path=params) == str(tmp_path.resolve() / "project/data/reviewed")
    assert _reviewed_source("/srv/reviewed", params_path=params) == "/srv/reviewed"
    assert _reviewed_source("s3://bucket/reviewed", params_path=params) == "s3://bucket/reviewed"
