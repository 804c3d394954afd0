"""A synthetic dashboard data set: champion v1 (passed), failed candidate v2, and a rollback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modops.dashboard import DashboardData, VersionRecord

CATEGORIES = ("promo_spam", "weapon")
XSS = "<script>alert('pwned')</script>"


def category_row(precision: float, recall: float, pr_auc: float, *, support: int = 40) -> dict:
    """One holdout row in the metrics.json layout, counts consistent with precision and recall."""
    tp = round(recall * support)
    fp = round(tp / precision) - tp if precision > 0 else 0
    return {
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall),
        "pr_auc": pr_auc,
        "threshold": 0.61237,
        "support": support,
        "tp": tp,
        "fp": fp,
        "fn": support - tp,
        "precision_ci_low": precision - 0.0712,
        "precision_ci_high": min(1.0, precision + 0.0433),
        "recall_ci_low": recall - 0.0934,
        "recall_ci_high": min(1.0, recall + 0.0521),
        "val_met_target": True,
    }


def metrics_json(rows: dict[str, dict], *, review: bool = True) -> dict:
    out = {
        "holdout": rows,
        "macro": {k: float(np.mean([r[k] for r in rows.values()])) for k in ("precision", "recall", "f1", "pr_auc")},
        "thresholds": {c: r["threshold"] for c, r in rows.items()},
        "n_holdout": 1200,
        "n_val": 900,
        "kind": "single",
        "stage2_share": {"val": 0.0, "holdout": 0.0},
        "label_version": "labels-7f3a",
    }
    if review:
        out["review_load"] = {
            "n": 1200,
            "auto_allowed": 0.6125,
            "auto_blocked": 0.0875,
            "human_review": 0.3,
            "review_reduction": 0.7,
            "block_thresholds": {c: 0.9 for c in rows},
            "review_thresholds": {c: 0.35 for c in rows},
        }
    return out


def pr_curve(shift: float) -> list[dict]:
    """A plausible, monotone PR curve (increasing threshold: recall falls, precision rises)."""
    ts = np.linspace(0.05, 0.95, 25)
    return [
        {"recall": float(1 - t**1.5), "precision": float(min(1.0, 0.3 + shift + 0.6 * t)), "threshold": float(t)}
        for t in ts
    ]


def write_png(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(path, format="PNG")
    return path


def champion_metrics() -> dict:
    return metrics_json(
        {"promo_spam": category_row(0.9125, 0.8375, 0.9347), "weapon": category_row(0.95, 0.875, 0.9611)}
    )


def candidate_metrics() -> dict:
    return metrics_json(
        {"promo_spam": category_row(0.8571, 0.75, 0.8812), "weapon": category_row(0.9667, 0.725, 0.9402)},
        review=False,
    )


def build_data(tmp: Path, *, v1_metrics: dict | None = None, v2_metrics: dict | None = None) -> DashboardData:
    """Champion v1 (passed, with Grad-CAM) and a newer failed candidate v2 compared against it."""
    v1m = v1_metrics or champion_metrics()
    v2m = v2_metrics or candidate_metrics()
    v1 = VersionRecord(
        version="1",
        created_at="2026-04-01T09:30:00+00:00",
        run_id="run-one",
        aliases=["champion"],
        description="First model trained on the cold-start labels.",
        gate={
            "passed": True,
            "reasons": ["all 2 categories meet floors", "no current champion: regression check skipped"],
            "checks": [
                {
                    "category": c,
                    "check": "min_recall",
                    "value": v1m["holdout"][c]["recall"],
                    "limit": 0.7,
                    "passed": True,
                }
                for c in CATEGORIES
            ],
        },
        metrics=v1m,
        pr_curves={c: pr_curve(0.05 + 0.1 * i) for i, c in enumerate(CATEGORIES)},
        lineage={
            "data_version": "d41d8cd98f00b204e9800998ecf8427e",
            "holdout_hash": "0cc175b9c0f1b6a831c399e269772661",
            "label_version": "labels-7f3a",
            "git_revision": "1a2b3c4d",
            "params": {"train": {"epochs": 12, "backbone": "mobilenet_v3_small"}},
        },
        explain_images={
            "weapon_false_positives": str(write_png(tmp / "gradcam" / "weapon_false_positives.png", 1)),
            "promo_spam_top_positives": str(write_png(tmp / "gradcam" / "promo_spam_top_positives.png", 2)),
        },
    )
    v2 = VersionRecord(
        version="2",
        created_at="2026-04-20T16:05:00+00:00",
        run_id="run-two",
        aliases=["challenger"],
        description=f"Retrained with new uploads {XSS}",
        gate={
            "passed": False,
            "reasons": [f"weapon recall 0.725 < floor 0.75 {XSS}", "promo_spam pr_auc 0.881 vs champion v1 0.935"],
            "checks": [
                {"category": "weapon", "check": "min_recall", "value": 0.725, "limit": 0.75, "passed": False},
                {
                    "category": "promo_spam",
                    "check": "regression",
                    "value": 0.8812,
                    "limit": 0.9147,
                    "passed": False,
                    "point": -0.0535,
                    "ci_low": -0.0911,
                    "ci_high": -0.0172,
                    "p_worse": 0.998,
                },
            ],
        },
        metrics=v2m,
        champion_version="1",
        champion_metrics=v1m["holdout"],
        pr_curves={c: pr_curve(0.1 * i) for i, c in enumerate(CATEGORIES)},
        champion_pr_curves={c: pr_curve(0.05 + 0.1 * i) for i, c in enumerate(CATEGORIES)},
        lineage={"data_version": "e4da3b7fbbce2345d7772b0674a318d5", "git_revision": "5e6f7a8b"},
    )
    audit = [
        {
            "when": "2026-04-20T16:06:00+00:00",
            "who": "airflow",
            "action": "gate_failed",
            "alias": "champion",
            "from_version": "1",
            "to_version": "2",
            "reason": "weapon recall below floor",
        },
        {
            "when": "2026-04-12T08:00:00+00:00",
            "who": "alice",
            "action": "rollback",
            "alias": "champion",
            "from_version": "3",
            "to_version": "1",
            "reason": f"v3 blocked memes by mistake {XSS}",
        },
        {
            "when": "2026-04-01T09:31:00+00:00",
            "who": "airflow",
            "action": "promote",
            "alias": "champion",
            "from_version": None,
            "to_version": "1",
            "reason": "passed the gate",
        },
    ]
    return DashboardData(
        model_name="moderation",
        generated_at="2026-04-21T07:00:00+00:00",
        champion="1",
        versions=[v2, v1],
        audit=audit,
    )


@pytest.fixture()
def synthetic_data(tmp_path: Path) -> DashboardData:
    return build_data(tmp_path / "inputs")


def dump_metrics(path: Path, metrics: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2))
    return path
