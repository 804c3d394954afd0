"""The noisy-label check: how many wrong labels it finds, against flagging at random, and what it costs.

One run generates a labelled demo pool whose labels are flipped at ``--noise-rate`` (the
generator flips mostly violations to clean, and clean look-alikes to the violation they resemble;
``true_label`` keeps the truth), stores it, and runs the check (``modops.active.noise``, with the
``noise`` section of ``--params``) on every labelled image. Reported: flags, precision (flags
that are real flips) and recall (flips found), per label and overall, with random flagging of
the same number of images as the baseline (its expected precision is the noise rate), and the
seconds spent embedding and in total.

Run: ``.venv/bin/python benchmarks/noise.py [--images 6000 --noise-rate 0.03]``. Prints a
table and writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from modops.active.noise import check_labels
from modops.config import load_params, load_section
from modops.data.images import DecodeLimits
from modops.data.store import ImageStore


def _pool(root: Path, *, n: int, positive_rate: float, noise_rate: float, seed: int) -> pd.DataFrame:
    """Generate and store a labelled pool; returns ``image_id``, ``label`` (observed), ``true_label``."""
    from modops.demo import generate_pool

    generate_pool(root / "pool", n_images=n, seed=seed, positive_rate=positive_rate, noise_rate=noise_rate)
    rows = pd.read_csv(root / "pool" / "labels.csv")
    store = ImageStore(root / "store")
    ids = [store.put((root / "pool" / path).read_bytes())[0] for path in rows["path"]]
    return rows.assign(image_id=ids)[["image_id", "label", "true_label"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=6000)
    ap.add_argument("--positive-rate", type=float, default=0.06)
    ap.add_argument("--noise-rate", type=float, default=0.03)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/noise.json"))
    args = ap.parse_args()
    params = load_params(args.params)
    classes, cfg = load_section(params, "labels").all, load_section(params, "noise")
    with tempfile.TemporaryDirectory() as tmp:
        rows = _pool(
            Path(tmp), n=args.images, positive_rate=args.positive_rate, noise_rate=args.noise_rate, seed=args.seed
        )
        y = rows["label"].map({c: i for i, c in enumerate(classes)}).to_numpy(np.int64)
        result = check_labels(
            ImageStore(Path(tmp) / "store"),
            rows["image_id"].tolist(),
            y,
            classes=classes,
            cfg=cfg,
            limits=DecodeLimits(),
        )
    wrong = (rows["label"] != rows["true_label"]).to_numpy()
    flagged = result.issues["issue"].to_numpy()
    rng = np.random.default_rng(0)
    random_hits = [wrong[rng.choice(len(wrong), size=int(flagged.sum()), replace=False)].sum() for _ in range(100)]
    report = {
        "images": args.images,
        "noise_rate": args.noise_rate,
        "wrong_labels": int(wrong.sum()),
        "flagged": int(flagged.sum()),
        "precision": float(wrong[flagged].mean()) if flagged.any() else None,
        "recall": float(flagged[wrong].mean()) if wrong.any() else None,
        "random_precision": float(np.mean(random_hits) / max(int(flagged.sum()), 1)),
        "by_given_label": {
            c: {
                "wrong": int((wrong & (rows["label"] == c)).sum()),
                "flagged": int((flagged & (rows["label"] == c)).sum()),
                "found": int((flagged & wrong & (rows["label"] == c).to_numpy()).sum()),
            }
            for c in classes
        },
        **{k: result.info[k] for k in ("embed_seconds", "seconds")},
        "noise_params": cfg.model_dump(),
    }
    print(
        f"{report['wrong_labels']} wrong labels in {args.images} ({args.noise_rate:.1%}); flagged {report['flagged']}"
    )
    print(
        f"precision {report['precision']:.3f} (random {report['random_precision']:.3f}), recall {report['recall']:.3f}"
    )
    for c, row in report["by_given_label"].items():
        print(f"  given {c:<11} wrong {row['wrong']:>4}  flagged {row['flagged']:>4}  found {row['found']:>4}")
    print(f"embedding {report['embed_seconds']} s, total {report['seconds']} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
