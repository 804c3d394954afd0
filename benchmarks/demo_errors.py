"""Error analysis on the demo pool: a trained model's scores by the generator's variant, per split.

The demo generator knows what it painted (a knife or a pistol, a tool, benign text, ...); the
labels do not. Re-planning the pool (no rendering) recovers each image's variant, so this
script shows which variants a model separates, on its own training images as well as on val
and the holdout: low scores on training positives mean the network underfits, high scores there
but low ones on the holdout mean it memorises.

Run after ``make demo`` (same pool arguments as the Makefile's defaults):
``.venv/bin/python benchmarks/demo_errors.py --model models/candidate --category weapon
--variants knife,pistol,tool``. Prints per split and variant the count, the score's mean and
percentiles, and how often each class is the argmax.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from modops.data.store import ImageStore
from modops.demo.plan import plan_pool
from modops.models.predictor import load_predictor
from modops.scoring.batch import score_ids


def _variants(*, n_images: int, seed: int, positive_rate: float, labelled: float) -> dict[str, str]:
    """Pool-relative path -> variant, from the generator's plan (no images rendered)."""
    plan = plan_pool(
        n_images, seed=seed, day=0, positive_rate=positive_rate, noise_rate=0.0, drift=False, labelled_fraction=labelled
    )
    return {spec.relpath: spec.variant for spec in plan.specs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=Path("models/candidate"))
    ap.add_argument("--manifest", type=Path, default=Path("data/ingested/manifest.parquet"))
    ap.add_argument("--splits", type=Path, default=Path("data/split/splits.parquet"))
    ap.add_argument("--store", type=Path, default=Path("data/store"))
    ap.add_argument("--category", default="weapon")
    ap.add_argument("--variants", default="knife,pistol,tool", help="comma-separated generator variants")
    ap.add_argument("--per-group", type=int, default=150, help="images scored per split and variant")
    ap.add_argument("--n-images", type=int, default=30000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--positive-rate", type=float, default=0.03)
    ap.add_argument("--labelled", type=float, default=0.667)
    args = ap.parse_args()

    variant = _variants(
        n_images=args.n_images, seed=args.seed, positive_rate=args.positive_rate, labelled=args.labelled
    )
    manifest = pd.read_parquet(args.manifest, columns=["image_id", "uri"])
    manifest["variant"] = manifest.uri.map(variant)
    rows = pd.read_parquet(args.splits).merge(manifest, on="image_id")
    rows = rows[rows.variant.isin(args.variants.split(",")) & rows.split.isin(["train", "val", "holdout"])]
    rows = rows.groupby(["split", "variant"]).head(args.per_group).reset_index(drop=True)

    predictor = load_predictor(args.model)
    classes = list(predictor.spec.classes)
    scores = score_ids(predictor, rows.image_id.tolist(), reader=ImageStore(args.store))
    rows["score"] = scores.probs[:, classes.index(args.category)]
    rows["argmax"] = [classes[i] for i in scores.probs.argmax(axis=1)]
    by = rows.groupby(["split", "variant"])
    print(f"p({args.category}) by split and variant ({args.model}):")
    print(by.score.describe(percentiles=[0.1, 0.5, 0.9]).round(3).to_string())
    print("\nargmax class:")
    print(by.argmax.value_counts().unstack(fill_value=0).to_string())


if __name__ == "__main__":
    main()
