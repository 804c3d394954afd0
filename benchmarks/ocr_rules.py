"""OCR plus text rules on the demo pool: what they catch alone, and what they add to the model.

Generates a labelled slice of the demo pool (a normal day and, unless ``--drift-images 0``, a
drift day in the spammers' new style; a seed the training pool does not use), reads every image
with an OCR engine (:func:`modops.moderation.ocr.create_ocr`) and runs the text rules
(:func:`modops.moderation.rules.evaluate_rules`). The generator's plan (re-planned, nothing
rendered twice) says which variant each image is, so the false positives on clean *text* images
(benign prices, brands, menus, sale banners: the hard negatives) are counted apart.

Reports, per slice and overall:

- rules alone: precision and recall for ``promo_spam``, false-positive rate on clean images and
  on clean text images, recall per spam variant, per rule how often it fires on spam and on the rest;
- text coverage (:func:`~modops.moderation.ocr.text_coverage`): how much spam and clean text pass
  a coverage threshold (the policy's "text-heavy");
- OCR seconds per image (the models' load time apart);
- with ``--model PATH`` (scored with :func:`modops.scoring.daily.score_uploads`) or ``--scores
  PARQUET`` (columns ``uri`` or ``path``, ``p_promo_spam`` or ``score_promo_spam``, on images of
  ``--pool``): recall of ``promo_spam`` by the model alone and by model OR rules at the same
  precision (the best recall over thresholds whose precision reaches each ``--target-precision``),
  and both at the model's operating threshold.

Run: ``.venv/bin/python benchmarks/ocr_rules.py [--images 400 --drift-images 200 --model models/candidate]``.
Precision depends on the slice's spam share (``--positive-rate`` / 3 of the images, far above
production's), so the false-positive *rates* are the figures that carry over. Prints Markdown
tables and writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from modops.data.images import open_rgb
from modops.moderation.ocr import create_ocr, text_coverage
from modops.moderation.rules import RULES, check_rules, evaluate_rules

SPAM = "promo_spam"
DEFAULT_RULES = ("phone", "url", "email", "handle", "support_phrase", "call_to_action")
COVERAGE_STEPS = (0.0, 0.02, 0.05, 0.1, 0.2)


@dataclass(frozen=True)
class Slice:
    """A labelled folder of images: ``rows`` has ``path``, ``true_label`` and ``variant`` ("" when unknown)."""

    name: str
    folder: Path
    rows: pd.DataFrame


# --------------------------------------------------------------------------- data


def _generated(folder: Path, *, name: str, n: int, seed: int, day: int, drift: bool, positive_rate: float) -> Slice:
    """Render a demo pool slice and recover each image's variant from the generator's plan."""
    from modops.demo import generate_pool
    from modops.demo.plan import plan_pool

    generate_pool(folder, n_images=n, seed=seed, day=day, drift=drift, positive_rate=positive_rate, workers=0)
    plan = plan_pool(n, seed=seed, day=day, positive_rate=positive_rate, noise_rate=0.0, drift=drift)
    rows = pd.read_csv(folder / "labels.csv", keep_default_na=False)
    rows = rows[rows["label_source"] != "seed"]
    variants = {spec.relpath: spec.variant for spec in plan.specs}
    return Slice(name, folder, rows.assign(variant=rows["path"].map(variants))[["path", "true_label", "variant"]])


def _existing(folder: Path) -> Slice:
    """A labelled folder (``labels.csv`` with ``path`` and ``true_label`` or ``label``)."""
    rows = pd.read_csv(folder / "labels.csv", keep_default_na=False)
    truth = "true_label" if "true_label" in rows else "label"
    rows = rows[rows[truth] != ""].rename(columns={truth: "true_label"})
    return Slice(folder.name, folder, rows.assign(variant="")[["path", "true_label", "variant"]])


# --------------------------------------------------------------------------- OCR + rules


def _read_all(
    slices: Sequence[Slice], *, threads: int, max_side: int, min_confidence: float
) -> tuple[pd.DataFrame, float]:
    """OCR every image and run every rule: one row per image; returns (rows, model load seconds)."""
    started = time.perf_counter()
    engine = create_ocr("rapidocr", threads=threads, max_side=max_side)
    first = slices[0]
    engine.read(open_rgb((first.folder / first.rows["path"].iloc[0]).read_bytes()))  # warm the sessions
    load_s = time.perf_counter() - started
    records = []
    for sl in slices:
        for row in sl.rows.itertuples(index=False):
            image = open_rgb((sl.folder / row.path).read_bytes())
            t0 = time.perf_counter()
            lines = engine.read(image)
            seconds = time.perf_counter() - t0
            verdict = evaluate_rules(lines, rules=list(RULES), min_confidence=min_confidence)
            records.append(
                {
                    "slice": sl.name,
                    "uri": row.path,
                    "true_label": row.true_label,
                    "variant": row.variant,
                    "spam": row.true_label == SPAM,
                    "ocr_s": seconds,
                    "coverage": text_coverage(lines, image.size),
                    "text": " | ".join(line.text for line in lines),
                    **{f"rule_{name}": name in verdict.fired for name in RULES},
                }
            )
    return pd.DataFrame.from_records(records), load_s


def _rules_flag(df: pd.DataFrame, rules: Sequence[str]) -> np.ndarray:
    return df[[f"rule_{r}" for r in rules]].any(axis=1).to_numpy() if rules else np.zeros(len(df), bool)


# --------------------------------------------------------------------------- metrics


def _pr(flag: np.ndarray, spam: np.ndarray) -> dict:
    tp, fp = int((flag & spam).sum()), int((flag & ~spam).sum())
    n_spam = int(spam.sum())
    return {
        "tp": tp,
        "fp": fp,
        "spam": n_spam,
        "precision": round(tp / (tp + fp), 4) if tp + fp else None,
        "recall": round(tp / n_spam, 4) if n_spam else None,
    }


def _rules_alone(df: pd.DataFrame, rules: Sequence[str]) -> dict:
    flag, spam = _rules_flag(df, rules), df["spam"].to_numpy()
    clean = (df["true_label"] == "clean").to_numpy()
    clean_text = clean & (df["variant"] == "text").to_numpy()
    out = _pr(flag, spam)
    out["fp_clean"] = f"{int((flag & clean).sum())}/{int(clean.sum())}"
    out["fp_clean_text"] = f"{int((flag & clean_text).sum())}/{int(clean_text.sum())}"
    out["fp_other_violations"] = f"{int((flag & ~clean & ~spam).sum())}/{int((~clean & ~spam).sum())}"
    out["recall_by_variant"] = {
        v: f"{int(flag[(df['variant'] == v).to_numpy() & spam].sum())}/{int(((df['variant'] == v) & df['spam']).sum())}"
        for v in sorted(df.loc[df["spam"], "variant"].unique())
    }
    return out


def _per_rule(df: pd.DataFrame) -> dict:
    spam = df["spam"].to_numpy()
    return {
        name: {
            "fires_on_spam": f"{int(df[f'rule_{name}'].to_numpy()[spam].sum())}/{int(spam.sum())}",
            "fires_on_non_spam": f"{int(df[f'rule_{name}'].to_numpy()[~spam].sum())}/{int((~spam).sum())}",
        }
        for name in RULES
    }


def _coverage(df: pd.DataFrame, rules: Sequence[str]) -> dict:
    """Per coverage threshold: share of spam / clean text / other clean at or above it, and gated rules' P/R."""
    cov, spam, flag = df["coverage"].to_numpy(), df["spam"].to_numpy(), _rules_flag(df, rules)
    clean = (df["true_label"] == "clean").to_numpy()
    text = clean & (df["variant"] == "text").to_numpy()
    out = {}
    for t in COVERAGE_STEPS:
        heavy = cov >= t if t > 0 else np.ones(len(df), bool)
        out[str(t)] = {
            "spam_share": round(float(heavy[spam].mean()), 3) if spam.any() else None,
            "clean_text_share": round(float(heavy[text].mean()), 3) if text.any() else None,
            "other_clean_share": round(float(heavy[clean & ~text].mean()), 3) if (clean & ~text).any() else None,
            "rules_gated": _pr(flag & heavy, spam),
        }
    return out


def _best_recall(score: np.ndarray, spam: np.ndarray, *, target: float, extra: np.ndarray) -> dict:
    """Max recall of (score >= t) | extra over thresholds t whose precision reaches ``target``."""
    best = {"threshold": None, "precision": None, "recall": None}
    n_spam = int(spam.sum())
    for t in np.concatenate([[np.inf], np.unique(score)]):
        flag = (score >= t) | extra
        tp, fp = int((flag & spam).sum()), int((flag & ~spam).sum())
        if tp + fp == 0 or tp / (tp + fp) < target or not n_spam:
            continue
        if best["recall"] is None or tp / n_spam > best["recall"]:
            best = {"threshold": float(t), "precision": round(tp / (tp + fp), 4), "recall": round(tp / n_spam, 4)}
    return best


def _combined(
    df: pd.DataFrame, rules: Sequence[str], *, threshold: float | None, targets: Sequence[float], stage1: float
) -> dict:
    """Model alone vs model OR rules: at equal precision targets and at the model's operating threshold.

    ``service_policy`` is what ``modops serve`` does: OCR reads only what stage 1 flags
    (``promo_spam`` score >= ``stage1``), so the rules add only spam the model scored above it.
    """
    score, spam, flag = df["score"].to_numpy(), df["spam"].to_numpy(), _rules_flag(df, rules)
    none = np.zeros(len(df), bool)
    out: dict = {
        "at_precision": {
            str(p): {
                "model": _best_recall(score, spam, target=p, extra=none),
                "model_or_rules": _best_recall(score, spam, target=p, extra=flag),
            }
            for p in targets
        }
    }
    if threshold is not None:
        model = score >= threshold
        out["at_operating_threshold"] = {
            "threshold": threshold,
            "model": _pr(model, spam),
            "model_or_rules": _pr(model | flag, spam),
            "spam_missed_by_model_caught_by_rules": int((~model & flag & spam).sum()),
            "non_spam_added_by_rules": int((~model & flag & ~spam).sum()),
        }
        gated = flag & (score >= stage1)
        out["service_policy"] = {
            "stage1": stage1,
            "ocr_share": round(float((score >= stage1).mean()), 4),
            "flags": _pr(model | gated, spam),
            "spam_missed_by_model_caught_by_rules": int((~model & gated & spam).sum()),
        }
    return out


# --------------------------------------------------------------------------- model scores


def _model_scores(model_dir: Path, slices: Sequence[Slice]) -> tuple[pd.DataFrame, float | None]:
    """``slice, uri, score`` from a saved model, and its operating threshold for promo_spam."""
    from modops.models.predictor import load_predictor
    from modops.scoring.daily import score_uploads
    from modops.scoring.uploads import SourceReader

    predictor = load_predictor(model_dir)
    frames = []
    for sl in slices:
        reader = SourceReader(str(sl.folder), max_bytes=predictor.spec.decode_limits.max_bytes)
        scored = score_uploads(predictor, reader, list(sl.rows["path"]), batch_size=64)
        frames.append(scored.predictions[["uri", f"p_{SPAM}"]].assign(slice=sl.name))
    scores = pd.concat(frames).rename(columns={f"p_{SPAM}": "score"})
    return scores, predictor.spec.thresholds.get(SPAM)


def _parquet_scores(path: Path, slices: Sequence[Slice]) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    uri = "uri" if "uri" in frame else "path"
    col = next((c for c in (f"p_{SPAM}", f"score_{SPAM}") if c in frame), None)
    if col is None:
        raise ValueError(f"{path} needs a p_{SPAM} or score_{SPAM} column; it has {list(frame.columns)}")
    return frame[[uri, col]].rename(columns={uri: "uri", col: "score"}).assign(slice=slices[0].name)


# --------------------------------------------------------------------------- report


def _summarise(df: pd.DataFrame, args: argparse.Namespace, threshold: float | None) -> dict:
    summary = {
        "images": len(df),
        "rules_alone": _rules_alone(df, args.rules),
        "per_rule": _per_rule(df),
        "coverage": _coverage(df, args.rules),
    }
    if "score" in df:
        summary["combined"] = _combined(
            df, args.rules, threshold=threshold, targets=args.target_precision, stage1=args.stage1
        )
    return summary


def _print(name: str, s: dict) -> None:
    r = s["rules_alone"]
    print(f"\n### {name}: {s['images']} images, {r['spam']} promo_spam")
    print("\n| rules alone | precision | recall | FP clean | FP clean text | FP other violations |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {r['tp']} TP, {r['fp']} FP | {r['precision']} | {r['recall']} | {r['fp_clean']} | "
        f"{r['fp_clean_text']} | {r['fp_other_violations']} |"
    )
    print("\nrecall by spam variant: " + ", ".join(f"{k} {v}" for k, v in r["recall_by_variant"].items()))
    print("\n| rule | fires on spam | fires on non-spam |\n|---|---|---|")
    for rule, v in s["per_rule"].items():
        print(f"| {rule} | {v['fires_on_spam']} | {v['fires_on_non_spam']} |")
    print("\n| coverage >= | spam | clean text | other clean | rules gated: precision / recall |")
    print("|---|---|---|---|---|")
    for t, v in s["coverage"].items():
        g = v["rules_gated"]
        print(
            f"| {t} | {v['spam_share']} | {v['clean_text_share']} | {v['other_clean_share']} | "
            f"{g['precision']} / {g['recall']} |"
        )
    if "combined" in s:
        c = s["combined"]
        print("\n| target precision | model: thr / P / recall | model OR rules: thr / P / recall |\n|---|---|---|")
        for p, v in c["at_precision"].items():
            m, mr = v["model"], v["model_or_rules"]
            print(
                f"| {p} | {_fmt(m['threshold'])} / {m['precision']} / {m['recall']} | "
                f"{_fmt(mr['threshold'])} / {mr['precision']} / {mr['recall']} |"
            )
        if "at_operating_threshold" in c:
            o = c["at_operating_threshold"]
            m, mr = o["model"], o["model_or_rules"]
            print(
                f"\nat the model's threshold {o['threshold']:.3f}: model P {m['precision']} R {m['recall']}; "
                f"model OR rules P {mr['precision']} R {mr['recall']} "
                f"(+{o['spam_missed_by_model_caught_by_rules']} spam, +{o['non_spam_added_by_rules']} non-spam)"
            )
        if "service_policy" in c:
            sp = c["service_policy"]
            print(
                f"the service's policy (OCR on stage-1 flags, promo_spam >= {sp['stage1']}: "
                f"{sp['ocr_share']:.1%} of images): P {sp['flags']['precision']} R {sp['flags']['recall']} "
                f"(+{sp['spam_missed_by_model_caught_by_rules']} spam by the rules)"
            )


def _fmt(t: float | None) -> str:
    return "-" if t is None else ("inf" if np.isinf(t) else f"{t:.3f}")


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=400, help="images of the normal day")
    ap.add_argument("--drift-images", type=int, default=200, help="images of the drift day (0: none)")
    ap.add_argument("--positive-rate", type=float, default=0.45, help="violations (a third of them promo_spam)")
    ap.add_argument("--seed", type=int, default=7, help="pool seed (the demo trains on seed 0)")
    ap.add_argument("--pool", type=Path, help="an existing labelled folder instead of generating one")
    ap.add_argument("--rules", type=lambda s: check_rules(s.split(",")), default=DEFAULT_RULES)
    ap.add_argument("--min-confidence", type=float, default=0.6, help="OCR lines below are ignored")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-side", type=int, default=960)
    ap.add_argument("--model", type=Path, help="a saved model folder (e.g. models/candidate)")
    ap.add_argument("--scores", type=Path, help="a parquet of model scores for the images of --pool")
    ap.add_argument(
        "--threshold",
        type=float,
        help="the model's operating threshold for promo_spam (default: the saved model's; eval/thresholds.json has it "
        "for a model saved before evaluation)",
    )
    ap.add_argument("--stage1", type=float, default=0.1, help="the service's stage-1 threshold (moderate.stage1)")
    ap.add_argument("--target-precision", type=float, nargs="+", default=[0.8, 0.9, 0.95])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/ocr_rules.json"))
    args = ap.parse_args()
    if args.scores and not args.pool:
        ap.error("--scores needs --pool: the folder of the images the scores belong to")
    return args


def main() -> None:
    args = _args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.pool:
            slices = [_existing(args.pool)]
        else:
            common = {"seed": args.seed, "positive_rate": args.positive_rate}
            slices = [_generated(Path(tmp) / "day0", name="normal day", n=args.images, day=0, drift=False, **common)]
            if args.drift_images:
                slices.append(
                    _generated(Path(tmp) / "drift", name="drift day", n=args.drift_images, day=30, drift=True, **common)
                )
        df, load_s = _read_all(slices, threads=args.threads, max_side=args.max_side, min_confidence=args.min_confidence)
        threshold = args.threshold
        if args.model:
            scores, own = _model_scores(args.model, slices)
            threshold = own if threshold is None else threshold
            df = df.merge(scores, on=["slice", "uri"], how="left", validate="one_to_one")
        elif args.scores:
            df = df.merge(_parquet_scores(args.scores, slices), on=["slice", "uri"], how="left", validate="one_to_one")
    if "score" in df and df["score"].isna().any():
        raise SystemExit(f"{int(df['score'].isna().sum())} images have no model score (quarantined or missing)")
    groups = {name: part for name, part in df.groupby("slice", sort=False)}
    if len(groups) > 1:
        groups["all"] = df
    result = {
        "rules": list(args.rules),
        "min_confidence": args.min_confidence,
        "max_side": args.max_side,
        "threads": args.threads,
        "ocr_load_s": round(load_s, 2),
        "ocr_s_per_image": {
            "mean": round(float(df["ocr_s"].mean()), 3),
            "p50": round(float(df["ocr_s"].median()), 3),
            "p95": round(float(df["ocr_s"].quantile(0.95)), 3),
        },
        "slices": {name: _summarise(part, args, threshold) for name, part in groups.items()},
    }
    t = result["ocr_s_per_image"]
    print(
        f"rules {','.join(args.rules)}; min_confidence {args.min_confidence}; max_side {args.max_side}; "
        f"threads {args.threads}; OCR load {result['ocr_load_s']} s; per image mean {t['mean']} s, "
        f"p50 {t['p50']} s, p95 {t['p95']} s (text images: "
        f"{statistics.fmean(df.loc[df['coverage'] > 0, 'ocr_s']) if (df['coverage'] > 0).any() else 0:.3f} s)"
    )
    for name, summary in result["slices"].items():
        _print(name, summary)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    df.to_parquet(args.out.with_suffix(".parquet"))  # per image (text read, rules fired), for error analysis


if __name__ == "__main__":
    main()
