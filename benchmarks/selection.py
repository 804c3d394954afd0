"""Active-learning selection: how many violations each strategy finds for the same labelling budget.

One run scores ``--days`` unseen upload days (the demo generator, other seeds than the training
pool, optionally with ``--drift``: spam in a style the model never saw) with a trained model, then
lets each strategy spend the same budget on each day:

- ``random``: the baseline (mean over ``--random-repeats`` seeds);
- ``entropy``: the most uncertain class distributions;
- ``band + loss + diversity``: modops' default (``select.strategy: confidence_band``): scores in
  the confidence band, ranked by the loss head's predicted loss, spread by k-center greedy over
  the embeddings;
- ablations: ``band (central) + diversity`` (the band without the loss head) and ``loss`` (the
  Learning-Loss paper's own rule: highest predicted loss anywhere);
- the novelty share (``select.novelty_fraction``): ``band + loss + diversity + novelty F`` spends
  the share ``F`` of the budget first on the day's images farthest from the reference embeddings
  (core-set greedy seeded with them), the rest as the default; ``novelty only`` is ``F = 1``.
  The reference is the model's scores on the holdout, computed as ``modops drift`` computes
  its reference (the holdout of ``--splits`` read from ``--store``, the ``score`` section's
  projection), or read from ``--reference`` (the ``predictions.parquet`` that ``modops drift``
  cached for this very model).

Reported per budget: positives (any violating category, ground truth from the generator) found
per 1,000 labels, the ratio to random's (the mean of ``--random-repeats`` seeded draws, measured
in the run) and to random's exact expectation (the day's prevalence x 1,000: a few seeded draws
of a 1 % prevalence scatter by a third), and recall reached (found / positives in the day).
With several days, found, selected and positives are summed over the days before the ratios (a
day of 4,000 uploads at 1 % holds only ~40 violations, so one day's cells move by a whole
violation); the JSON keeps each day's counts.

Run (after ``make demo``, whose candidate carries a loss head and whose split holds the holdout):
``.venv/bin/python benchmarks/selection.py --model models/candidate [--images 4000 --days 3 --drift]``.
Prints a table and writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from modops.active.selection import select
from modops.config import SelectConfig, load_params, load_section
from modops.data.store import ImageStore
from modops.models.predictor import Predictor, load_predictor
from modops.runtime import resolve_runtime
from modops.scoring.daily import score_uploads
from modops.scoring.uploads import SourceReader


def _day(root: Path, *, n: int, positive_rate: float, drift: bool, seed: int) -> pd.DataFrame:
    """Write an upload day to ``root``; return its ground truth (``uri``, ``label``), labels file removed."""
    from modops.demo import generate_pool

    generate_pool(root, n_images=n, seed=seed, positive_rate=positive_rate, drift=drift, day=30)
    truth = pd.read_csv(root / "labels.csv")[["path", "label"]].rename(columns={"path": "uri"})
    (root / "labels.csv").unlink()  # real uploads come without labels
    return truth


def _reference(predictor: Predictor, *, splits: Path, store: Path, embedding_dims: int, seed: int) -> pd.DataFrame:
    """The model's scores on the holdout (rows with ``emb_*`` [N, embedding_dims]), as drift's reference.

    Same call as ``modops drift`` makes (``modops.stages._reference``): every holdout image of
    ``splits`` read from the image store, projected with the ``score`` section's dims and seed.
    """
    split = pd.read_parquet(splits, columns=["image_id", "split"])
    ids = sorted(split.loc[split["split"] == "holdout", "image_id"])
    if not ids:
        raise SystemExit(f"{splits} has no holdout rows: run `make demo` first, or pass --reference")
    scored = score_uploads(predictor, ImageStore(store), ids, batch_size=64, embedding_dims=embedding_dims, seed=seed)
    if len(scored.quarantine):
        raise SystemExit(f"{len(scored.quarantine)} holdout image(s) unreadable in {store}: run `modops pull`")
    return scored.predictions


def _strategies(*, low: float, high: float, pool_factor: int, novelty: Sequence[float]) -> dict[str, dict]:
    """Name -> keyword arguments of :func:`select` (``no_loss``: hide the loss head's scores)."""
    band = {"strategy": "confidence_band", "low": low, "high": high, "pool_factor": pool_factor}
    out = {
        "entropy": {"strategy": "entropy", "diversity": False},
        "band + loss + diversity": {**band, "diversity": True},
        "band (central) + diversity": {**band, "diversity": True, "no_loss": True},
        "band + loss": {**band, "diversity": False},
        "loss": {"strategy": "loss", "diversity": False},
    }
    for fraction in novelty:
        name = "novelty only" if fraction == 1 else f"band + loss + diversity + novelty {fraction:g}"
        out[name] = {**band, "diversity": True, "novelty_fraction": fraction}
    return out


def _found(picked: pd.DataFrame, positive: dict[str, bool]) -> int:
    return int(sum(positive[u] for u in picked["uri"]))


def _score_day(predictor: Predictor, *, args: argparse.Namespace, seed: int, projection: dict) -> tuple:
    """Generate and score one upload day of ``args.images``; ``(rows, uri -> is violation, seconds)``."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "day"
        truth = _day(root, n=args.images, positive_rate=args.positive_rate, drift=args.drift, seed=seed)
        reader = SourceReader(str(root), max_bytes=predictor.spec.decode_limits.max_bytes)
        start = time.perf_counter()
        scored = score_uploads(predictor, reader, sorted(truth["uri"]), batch_size=64, **projection).predictions
        seconds = time.perf_counter() - start
    positive = dict(zip(truth["uri"], truth["label"] != predictor.spec.classes[0], strict=True))
    return scored, positive, seconds


def _day_counts(
    scored: pd.DataFrame,
    positive: dict[str, bool],
    *,
    args: argparse.Namespace,
    cfg: SelectConfig,
    classes: tuple[str, ...],
    reference: pd.DataFrame | None,
) -> dict[tuple[str, int], tuple[float, int]]:
    """``(strategy, budget) -> (violations found, images selected)`` on one scored day; random: mean of repeats."""
    has_loss = bool(np.isfinite(scored["predicted_loss"]).all())
    out = {}
    for budget in args.budgets:
        rand = [
            _found(select(scored, classes=classes, strategy="random", budget=budget, seed=s), positive)
            for s in range(args.random_repeats)
        ]
        out["random", budget] = (float(np.mean(rand)), budget)
        strategies = _strategies(low=cfg.low, high=cfg.high, pool_factor=cfg.pool_factor, novelty=args.novelty)
        for name, kw in strategies.items():
            if not has_loss and (name == "loss" or "loss" in name.split(" + ")):
                continue
            frame = scored.assign(predicted_loss=np.nan) if kw.pop("no_loss", False) else scored
            novel = {"reference": reference} if kw.get("novelty_fraction") else {}
            picked = select(frame, classes=classes, budget=budget, **kw, **novel)
            out[name, budget] = (float(_found(picked, positive)), len(picked))
    return out


def run(args: argparse.Namespace) -> dict:
    """Every strategy on ``args.days`` seeded upload days; counts summed over the days (one table)."""
    params = load_params(args.params)
    cfg, score_cfg = load_section(params, "select"), load_section(params, "score")
    projection = {"embedding_dims": score_cfg.embedding_dims, "seed": score_cfg.seed}  # as days and reference
    predictor = load_predictor(args.model, runtime=resolve_runtime("cpu", args.precision))
    start = time.perf_counter()
    if not args.novelty:
        reference = None
    elif args.reference is not None:
        reference = pd.read_parquet(args.reference)
    else:
        reference = _reference(predictor, splits=args.splits, store=args.store, **projection)
    reference_s = time.perf_counter() - start
    classes = predictor.spec.classes
    days, totals, sums = [], {"images": 0, "positives": 0, "has_loss": True}, {}
    for seed in range(args.seed, args.seed + args.days):
        scored, positive, seconds = _score_day(predictor, args=args, seed=seed, projection=projection)
        counts = _day_counts(scored, positive, args=args, cfg=cfg, classes=classes, reference=reference)
        n_pos = int(sum(positive[u] for u in scored["uri"]))
        days.append({"seed": seed, "images": len(scored), "positives": n_pos, "score_seconds": round(seconds, 1)})
        days[-1]["found"] = {f"{name} @ {budget}": found for (name, budget), (found, _) in counts.items()}
        totals["images"] += len(scored)
        totals["positives"] += n_pos
        totals["has_loss"] &= bool(np.isfinite(scored["predicted_loss"]).all())
        for key, (found, n) in counts.items():
            prev = sums.get(key, (0.0, 0))
            sums[key] = (prev[0] + found, prev[1] + n)
    total = totals["positives"]
    expected = total / max(totals["images"], 1) * 1000  # random's exact expectation per 1,000 labels
    rows = []
    for (name, budget), (found, n) in sums.items():
        rand_found, rand_n = sums["random", budget]
        base = rand_found / rand_n * 1000
        rows.append(_row(name, budget, found=found, n=n, total=total, base=base, expected=expected))
    return {
        "model": str(args.model),
        "days": days,
        "images_scored": totals["images"],
        "positives": total,
        "positive_rate": total / max(totals["images"], 1),
        "drift": args.drift,
        "band": [cfg.low, cfg.high],
        "loss_head": totals["has_loss"],
        "reference_rows": 0 if reference is None else len(reference),
        "seconds": {"score_days": round(sum(d["score_seconds"] for d in days), 1), "reference": round(reference_s, 1)},
        "rows": rows,
    }


def _ratio(value: float, base: float) -> float | None:
    """``value / base``; infinite when only the base found nothing, None (no ratio) when neither did."""
    if base:
        return value / base
    return float("inf") if value else None


def _x(ratio: float | None) -> str:
    return "        -" if ratio is None else f"{ratio:>8.2f}x"


def _row(name: str, budget: int, *, found: float, n: int, total: int, base: float, expected: float) -> dict:
    per_1000 = found / max(n, 1) * 1000
    return {
        "strategy": name,
        "budget": budget,
        "selected": n,
        "positives_found": found,
        "per_1000_labels": per_1000,
        "x_random": _ratio(per_1000, base),
        "x_expected_random": _ratio(per_1000, expected),
        "recall": found / total if total else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/candidate"), help="a modops model folder")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="select: band and pool factor")
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--positive-rate", type=float, default=0.01)
    parser.add_argument("--drift", action="store_true", help="the day's spam in a style the model never saw")
    parser.add_argument("--budgets", type=int, nargs="+", default=[100, 200, 400])
    parser.add_argument("--random-repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=11, help="seed of the first upload day (not the pool's 0)")
    parser.add_argument("--days", type=int, default=1, help="upload days (seeds --seed, --seed+1, ...); counts summed")
    parser.add_argument("--precision", default="auto")
    parser.add_argument(
        "--novelty", type=float, nargs="*", default=[0.5, 1.0], help="novelty shares to compare (none: skip)"
    )
    parser.add_argument("--splits", type=Path, default=Path("data/split/splits.parquet"), help="holdout: reference")
    parser.add_argument("--store", type=Path, default=Path("data/store"), help="the image store (holdout images)")
    parser.add_argument("--reference", type=Path, help="this model's holdout scores, as `modops drift` cached them")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/selection.json"))
    args = parser.parse_args()
    if args.days < 1 or args.images < 1:
        raise SystemExit(f"--days and --images must be at least 1, got {args.days} and {args.images}")
    if not (args.model / "model.json").is_file():
        raise SystemExit(f"{args.model} is not a modops model folder: run `make demo` first, or pass --model DIR")
    result = run(args)
    print(
        f"{len(result['days'])} day(s), {result['images_scored']} uploads, {result['positives']} violations "
        f"({result['positive_rate']:.2%}), drift={result['drift']}, band {result['band']}, "
        f"loss head: {result['loss_head']}, reference: {result['reference_rows']} holdout rows"
    )
    print(f"{'strategy':44} {'budget':>6} {'found':>7} {'per 1k':>7} {'x random':>9} {'x E[rand]':>9} {'recall':>7}")
    for r in result["rows"]:
        print(
            f"{r['strategy']:44} {r['budget']:>6} {r['positives_found']:>7.1f} {r['per_1000_labels']:>7.1f} "
            f"{_x(r['x_random'])} {_x(r['x_expected_random'])} {r['recall']:>7.1%}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
