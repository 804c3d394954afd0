"""What each training method buys, side by side, from one run on the demo pool.

Every method sees the same seed images, the same labelled budget (the pool's random
``upload`` labels), the same frozen holdout and the same training budget (``train.epochs`` x
``train.samples_per_epoch`` from params.yaml); they differ only in what the issue asks to
compare:

- ``supervised``: seeds + labelled budget, cross-entropy;
- ``retrieval``: the same plus the cold start's retrieval-confirmed candidates;
- ``mean_teacher``: retrieval-expanded labels plus the unlabelled pool (consistency);
- ``ohem_cascade``: retrieval-expanded labels, OHEM stage 1, hard-example stage 2;
- ``<method>+cbam``: the same method with CBAM attention in the backbone.

For each: per-category holdout PR-AUC, recall at the threshold chosen on val for
``evaluate.target_precision`` (0.95, the same for every category here), the precision there,
the cascade's stage-2 share (and its stage 1 alone), and training minutes. The pipeline's own
stage functions do the work (ingest, cold start, split, train, evaluate), so the figures
are the pipeline's. No MLflow.

Run (about 45 minutes on 2 CPU cores for the default methods):
``.venv/bin/python benchmarks/methods.py --work /tmp/bench``; writes ``<work>/methods.json`` and
prints a Markdown table (``--out`` to also write it to a file).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import pandas as pd
import yaml

from modops.config import load_settings
from modops.stages import cold_start_stage, evaluate_stage, ingest_stage, split_stage, train_stage

REPO = Path(__file__).resolve().parents[1]
METHODS: dict[str, dict] = {
    "supervised": {"labels": "budget", "train": {"trainer": "supervised"}},
    "retrieval": {"labels": "retrieval", "train": {"trainer": "supervised"}},
    "mean_teacher": {"labels": "retrieval", "train": {"trainer": "mean_teacher"}},
    "ohem_cascade": {"labels": "retrieval", "train": {"trainer": "ohem_cascade"}},
}


def _method(name: str) -> dict:
    base, _, extra = name.partition("+")
    if base not in METHODS or extra not in ("", "cbam"):
        raise SystemExit(f"unknown method {name!r}; choose from {sorted(METHODS)}, optionally with +cbam")
    spec = json.loads(json.dumps(METHODS[base]))
    if extra == "cbam":
        spec["train"]["cbam"] = True
    return spec


def _params(work: Path, name: str, overrides: dict, base: dict) -> Path:
    params = json.loads(json.dumps(base))
    for section, values in overrides.items():
        params[section].update(values)
    path = work / f"params-{name}.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def _override(params: dict, item: str) -> None:
    """Apply one ``dotted.key=yaml-value`` override in place; the key must already exist."""
    key, sep, value = item.partition("=")
    if not sep:
        raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
    *parents, leaf = key.split(".")
    node = params
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            raise SystemExit(f"--set {key}: no section {part!r} in params")
    if leaf not in node:
        raise SystemExit(f"--set {key}: unknown key {leaf!r}; known: {sorted(node)}")
    node[leaf] = yaml.safe_load(value)


def prepare(work: Path, *, pool: Path, base: dict) -> dict:
    """Ingest the pool, run the cold start, and split twice (without and with retrieval labels)."""
    params = _params(work, "base", {"ingest": {"source": str(pool)}}, base)
    settings = load_settings()
    t0 = time.perf_counter()
    ingest_stage(
        str(pool),
        work / "ingested",
        store_dir=work / "store",
        labels_dir=work / "labels",
        params_path=params,
        settings=settings,
    )
    manifest = work / "ingested" / "manifest.parquet"
    cold = cold_start_stage(
        manifest, work / "cold_start", store_dir=work / "store", labels_dir=work / "labels", params_path=params
    )
    budget_labels = work / "labels_budget"
    budget_labels.mkdir(exist_ok=True)
    shutil.copy2(work / "labels" / "upload.parquet", budget_labels / "upload.parquet")
    holdout = work / "holdout.parquet"
    holdout.unlink(missing_ok=True)
    splits = {
        "budget": split_stage(
            manifest,
            work / "split_budget" / "splits.parquet",
            holdout_path=holdout,
            labels_dir=budget_labels,
            params_path=params,
        ),
        "retrieval": split_stage(
            manifest,
            work / "split_retrieval" / "splits.parquet",
            holdout_path=holdout,
            labels_dir=work / "labels",
            params_path=params,
        ),
    }
    return {"cold_start": cold, "splits": splits, "prepare_minutes": round((time.perf_counter() - t0) / 60, 2)}


def run_method(work: Path, name: str, *, base: dict) -> dict:
    spec = _method(name)
    params = _params(
        work, name, {"train": spec["train"], "evaluate": {"explain_examples": 0, "category_target_precision": {}}}, base
    )
    split = work / f"split_{spec['labels']}" / "splits.parquet"
    manifest = work / "ingested" / "manifest.parquet"
    t0 = time.perf_counter()
    train = train_stage(
        manifest, split, work / "models" / name, store_dir=work / "store", params_path=params, settings=None
    )
    minutes = (time.perf_counter() - t0) / 60
    metrics = evaluate_stage(
        work / "models" / name, manifest, split, work / "eval" / name, store_dir=work / "store", params_path=params
    )
    history = json.loads((work / "models" / name / "history.json").read_text())
    out = {"train": train, "metrics": metrics, "train_minutes": round(minutes, 2), "history": history["history"]}
    if metrics.get("kind") == "cascade":
        out["stage1_alone"] = stage1_alone(work / "models" / name, split, work / "store", params)
    return out


def stage1_alone(model_dir: Path, split: Path, store: Path, params: Path) -> dict:
    """Holdout metrics of a cascade's stage 1 on its own (same thresholds policy), to show what stage 2 adds."""
    from modops.config import load_params, load_section
    from modops.data.store import ImageStore
    from modops.evaluation.metrics import evaluate
    from modops.models.io import MemberSpec, ModelSpec, load_members
    from modops.models.predictor import SingleModel
    from modops.scoring.batch import score_ids
    from modops.stages import _split_rows

    raw = load_params(params)
    labels, ecfg = load_section(raw, "labels"), load_section(raw, "evaluate")
    networks, spec = load_members(model_dir)
    m = spec.members[0]
    single = SingleModel(
        ModelSpec(spec.classes, (MemberSpec("model", m.backbone, m.image_size, m.cbam),)), networks[m.name]
    )
    splits = pd.read_parquet(split)
    scored = {}
    for name in ("val", "holdout"):
        ids, y = _split_rows(splits, name, labels.all)
        scored[name] = (y, score_ids(single, ids, reader=ImageStore(store), batch_size=256, workers=1).probs)
    report, _ = evaluate(
        scored["val"][0],
        scored["val"][1],
        scored["holdout"][0],
        scored["holdout"][1],
        class_names=labels.all,
        negative=labels.negative,
        target_precision=ecfg.targets(labels.categories),
    )
    return report.to_metrics_json()


def table(results: dict, categories: list[str]) -> str:
    head = "| method | " + " | ".join(f"{c} PR-AUC / R@P / P" for c in categories) + " | stage-2 share | train min |"
    lines = [head, "|" + "---|" * (len(categories) + 3)]
    for name, r in results.items():
        rows = [
            (name, r["metrics"], r["metrics"].get("stage2_share", {}).get("holdout", 0.0), f"{r['train_minutes']:.1f}")
        ]
        if "stage1_alone" in r:
            rows.append((f"{name}: stage 1 alone", r["stage1_alone"], 0.0, "(same run)"))
        for label, metrics, share, minutes in rows:
            h = metrics["holdout"]
            cells = [f"{h[c]['pr_auc']:.3f} / {h[c]['recall']:.3f} / {h[c]['precision']:.3f}" for c in categories]
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {share:.3f} | {minutes} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--work", type=Path, required=True, help="scratch folder (the pool is generated there unless --pool)"
    )
    ap.add_argument("--pool", type=Path, default=None, help="an existing demo pool folder (labels.csv with true_label)")
    ap.add_argument(
        "--params", type=Path, default=REPO / "params.yaml", help="base params (training budget, cold start)"
    )
    ap.add_argument("--methods", default="supervised,retrieval,mean_teacher,ohem_cascade,ohem_cascade+cbam")
    ap.add_argument("--n-images", type=int, default=30000)
    ap.add_argument("--labelled-fraction", type=float, default=0.667)
    ap.add_argument("--positive-rate", type=float, default=0.03)
    ap.add_argument("--seeds-per-category", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="also write the Markdown table here")
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="reuse the ingest, cold start, splits and finished methods already in --work",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a params key for every method, e.g. --set train.epochs=4 (repeatable)",
    )
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    pool = args.pool or args.work / "raw"
    if args.pool is None and not (pool / "labels.csv").is_file():
        from modops.demo import generate_pool

        generate_pool(
            pool,
            n_images=args.n_images,
            seed=args.seed,
            positive_rate=args.positive_rate,
            labelled_fraction=args.labelled_fraction,
            seeds_per_category=args.seeds_per_category,
        )
    base = yaml.safe_load(args.params.read_text())
    for item in args.set:
        _override(base, item)
    previous = args.work / "methods.json"
    if args.reuse and previous.is_file():
        report = json.loads(previous.read_text())
    else:
        report = {
            "args": {k: str(v) for k, v in vars(args).items()},
            **prepare(args.work, pool=pool, base=base),
            "methods": {},
        }
    for name in args.methods.split(","):
        if args.reuse and name in report["methods"]:
            continue
        report["methods"][name] = run_method(args.work, name, base=base)
        (args.work / "methods.json").write_text(json.dumps(report, indent=2, default=str))
        print(f"{name}: done in {report['methods'][name]['train_minutes']} min", flush=True)
    md = table(report["methods"], list(base["labels"]["categories"]))
    print(md)
    if args.out:
        args.out.write_text(md + "\n")


if __name__ == "__main__":
    main()
