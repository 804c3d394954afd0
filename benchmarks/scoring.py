"""Scoring throughput: ``modops score``'s path against a naive per-image eager fp32 loop, in one run.

All variants score the same demo upload folder with the same model (the demo profile's network:
``cnn_small`` + CBAM at 128 px, random init: speed does not depend on the weights), decoding
included, from the files on disk:

- ``naive``: one image at a time: read the file, decode, letterbox, one fp32 forward pass;
- ``batched fp32``: :func:`modops.scoring.daily.score_uploads` (batches, channels-last, one
  decode per file that also yields the image properties), decoding in the main process;
- ``batched bf16``: the same with bf16 autocast (CPUs with AVX512-BF16 or AMX only);
- ``+ N workers``: decoding in DataLoader workers while the main process runs the model;
- ``onnxruntime fp32``: the same path with the predictor wrapped by
  :func:`modops.scoring.engines.create_engine` (``"onnx"``): the network exported once
  (export time reported apart) and run by ONNX Runtime with ``--ort-threads`` intra-op threads
  (0 = the process's CPU count), alone and beside decode workers;
- ``torch.compile`` (``--compile``): the ``"compile"`` engine (compile time reported apart),
  decoding in the main process and in one worker.

Run: ``.venv/bin/python benchmarks/scoring.py [--images 1024 --batch-size 32 --ort-threads 0 --compile]``.
Each variant runs ``--repeats`` times and the fastest counts (a shared 2-core machine is noisy).
Prints a table and writes JSON (``--out``). Ratios are against ``naive`` measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from modops.data.images import open_rgb
from modops.data.sources import list_source
from modops.models import MemberSpec, ModelSpec, create_model
from modops.models.predictor import Predictor, SingleModel
from modops.runtime import cpu_supports_bf16, resolve_runtime
from modops.scoring.daily import score_uploads
from modops.scoring.engines import create_engine, default_threads
from modops.scoring.uploads import SourceReader

CLASSES = ("clean", "promo_spam", "disgusting", "weapon")


def _folder(root: Path, n: int) -> Path:
    from modops.demo import generate_pool

    generate_pool(root, n_images=n, seed=3, positive_rate=0.05, workers=0)
    (root / "labels.csv").unlink()  # real uploads come without labels
    return root


def _predictor(precision: str) -> SingleModel:
    torch.manual_seed(0)
    net = create_model("cnn_small", num_classes=len(CLASSES), cbam=True).eval()
    spec = ModelSpec(CLASSES, (MemberSpec("model", "cnn_small", 128),), thresholds={c: 0.5 for c in CLASSES[1:]})
    return SingleModel(spec, net, runtime=resolve_runtime("cpu", precision))


def _naive(folder: Path, uris: list[str]) -> float:
    """Per-image eager fp32: decode, letterbox, forward; returns seconds."""
    torch.manual_seed(0)
    net = create_model("cnn_small", num_classes=len(CLASSES), cbam=True).eval()
    spec = ModelSpec(CLASSES, (MemberSpec("model", "cnn_small", 128),))
    preset = SingleModel(spec, net).preset()
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    started = time.perf_counter()
    with torch.inference_mode():
        for uri in uris:
            x = preset.tensor(open_rgb((folder / uri).read_bytes(), limits=preset.limits))[None].float() / 255
            torch.softmax(net((x - mean) / std), dim=1)
    return time.perf_counter() - started


def _ours(folder: Path, uris: list[str], predictor: Predictor, *, workers: int, batch_size: int) -> float:
    reader = SourceReader(str(folder), max_bytes=predictor.spec.decode_limits.max_bytes)
    started = time.perf_counter()
    scored = score_uploads(predictor, reader, uris, min_side=8, batch_size=batch_size, workers=workers)
    elapsed = time.perf_counter() - started
    assert len(scored.predictions) + len(scored.quarantine) == len(uris)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2, help="runs per variant; the fastest counts")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--ort-threads", type=int, default=0, help="ONNX Runtime intra-op threads (0 = CPU count)")
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/scoring.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = _folder(Path(tmp) / "uploads", args.images)
        uris = [i.uri for i in list_source(str(folder))]
        _ours(folder, uris[:64], _predictor("fp32"), workers=0, batch_size=64)  # warm caches and kernels
        rows = {"naive (per image, eager fp32)": min(_naive(folder, uris) for _ in range(args.repeats))}
        bf16 = cpu_supports_bf16()
        variants = [("batched fp32", "fp32", 0), ("batched fp32 + 1 worker", "fp32", 1)]
        if bf16:
            variants += [
                ("batched bf16", "bf16", 0),
                ("batched bf16 + 1 worker", "bf16", 1),
                ("batched bf16 + 2 workers", "bf16", 2),
            ]  # noqa: E501
        for name, precision, workers in variants:
            predictor = _predictor(precision)
            rows[name] = min(
                _ours(folder, uris, predictor, workers=workers, batch_size=args.batch_size) for _ in range(args.repeats)
            )
        ort_threads = args.ort_threads or default_threads()
        started = time.perf_counter()
        engine = create_engine("onnx", _predictor("fp32"), workdir=Path(tmp) / "onnx", threads=ort_threads)
        export_s = time.perf_counter() - started
        _ours(folder, uris[:64], engine, workers=0, batch_size=64)  # first runs allocate ONNX Runtime's arenas
        for workers in (0, 1, 2):
            name = "onnxruntime fp32" + (f" + {workers} worker{'s' * (workers > 1)}" if workers else "")
            rows[name] = min(
                _ours(folder, uris, engine, workers=workers, batch_size=args.batch_size) for _ in range(args.repeats)
            )
        compile_s = None
        if args.compile:
            precision = "bf16" if bf16 else "fp32"
            predictor = create_engine("compile", _predictor(precision))
            started = time.perf_counter()
            _ours(folder, uris[: args.batch_size], predictor, workers=0, batch_size=args.batch_size)
            compile_s = time.perf_counter() - started
            for workers in (0, 1):
                name = f"torch.compile {precision}" + (f" + {workers} worker" if workers else "")
                rows[name] = min(
                    _ours(folder, uris, predictor, workers=workers, batch_size=args.batch_size)
                    for _ in range(args.repeats)
                )
    base = rows["naive (per image, eager fp32)"]
    result = {
        "images": len(uris),
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "bf16": bf16,
        "onnx_threads": ort_threads,
        "onnx_export_s": round(export_s, 2),
        "compile_warmup_s": compile_s,
        "variants": {
            k: {"seconds": round(v, 2), "img_per_s": round(len(uris) / v, 1), "x_naive": round(base / v, 2)}
            for k, v in rows.items()
        },  # noqa: E501
    }
    print(
        f"{len(uris)} images, {result['threads']} torch threads, {ort_threads} ONNX Runtime threads, "
        f"bf16 {'yes' if bf16 else 'no'}"
    )
    print(f"{'variant':<40} {'img/s':>8} {'x naive':>8}")
    for name, r in result["variants"].items():
        print(f"{name:<40} {r['img_per_s']:>8} {r['x_naive']:>8}")
    print(f"ONNX export + session start: {export_s:.1f} s (not counted above)")
    if compile_s is not None:
        print(f"torch.compile warm-up: {compile_s:.1f} s (not counted above)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
