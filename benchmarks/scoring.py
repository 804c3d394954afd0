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

Then the **ceiling**: each engine's forward pass alone (normalise, forward, embedding) over the
same images decoded beforehand, in batches. ``naive / forward-only`` is the best ratio that engine
could reach if reading, decoding and logging cost nothing. With ``--int8`` it also times ONNX
Runtime static int8 (QDQ, per-channel weights, calibrated on the first batches of these images):
not a ``score.engine``, an experiment, reported with its agreement with fp32 (largest probability
difference, share of equal flag decisions at 0.5).

Run: ``.venv/bin/python benchmarks/scoring.py [--images 1024 --batch-size 32 --ort-threads 0 --compile --int8]``.
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

import numpy as np
import torch

from modops.data.images import open_rgb
from modops.data.sources import list_source
from modops.models import MemberSpec, ModelSpec, create_model
from modops.models.predictor import Predictor, SingleModel
from modops.runtime import cpu_supports_bf16, resolve_runtime
from modops.scoring.daily import score_uploads
from modops.scoring.engines import create_engine, default_threads
from modops.scoring.uploads import SourceReader, UploadDataset, collate_uploads

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


def _decoded(folder: Path, uris: list[str], predictor: Predictor, *, batch_size: int) -> list[torch.Tensor]:
    """The uploads decoded once, as the scoring path decodes them: uint8 batches [B, 3, S, S]."""
    dataset = UploadDataset(SourceReader(str(folder), max_bytes=10**9), uris, preset=predictor.preset(), min_side=8)
    batches = []
    for start in range(0, len(uris), batch_size):
        batch = collate_uploads([dataset[i] for i in range(start, min(start + batch_size, len(uris)))])
        batches.append(batch.images[batch.ok])
    return batches


def _forward_only(predictor: Predictor, batches: list[torch.Tensor]) -> float:
    """Seconds for ``predict_and_embed`` over pre-decoded batches (no reading, decoding or logging)."""
    predictor.predict_and_embed(batches[0])  # warm-up: kernels, arenas, a compiled graph
    started = time.perf_counter()
    for images in batches:
        predictor.predict_and_embed(images)
    return time.perf_counter() - started


def _int8_forward(predictor: SingleModel, batches: list[torch.Tensor], *, workdir: Path, threads: int) -> dict:
    """ONNX Runtime static int8 of the exported member: seconds over ``batches`` and agreement with fp32."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from modops.scoring.engines import export_onnx

    member, spec, runtime = predictor.member, predictor.spec, predictor.runtime
    feeds = [member.inputs(b, spec=spec, runtime=runtime).float().contiguous().numpy() for b in batches]

    class _Calibration(CalibrationDataReader):
        def __init__(self) -> None:
            self.left = iter(feeds[:4])

        def get_next(self) -> dict | None:
            x = next(self.left, None)
            return None if x is None else {"images": x}

    fp32 = export_onnx(member, workdir / "fp32.onnx")
    quant_pre_process(str(fp32), str(workdir / "pre.onnx"))
    quantize_static(
        str(workdir / "pre.onnx"), str(workdir / "int8.onnx"), _Calibration(), quant_format=QuantFormat.QDQ,
        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
    )  # fmt: skip
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    sessions = {k: ort.InferenceSession(str(workdir / f"{k}.onnx"), options) for k in ("fp32", "int8")}
    probs = {k: [s.run(["probs"], {"images": x})[0] for x in feeds[:2]] for k, s in sessions.items()}  # warm-up too
    started = time.perf_counter()
    for images in batches:  # normalising inside the timing, as the engines do
        sessions["int8"].run(["probs"], {"images": member.inputs(images, spec=spec, runtime=runtime).numpy()})
    seconds = time.perf_counter() - started
    a, b = np.concatenate(probs["fp32"]), np.concatenate(probs["int8"])
    return {
        "seconds": seconds,
        "max_prob_diff": float(np.abs(a - b).max()),
        "flag_agreement": float(((a[:, 1:] >= 0.5) == (b[:, 1:] >= 0.5)).mean()),
    }


def _ceiling(folder: Path, uris: list[str], *, args: argparse.Namespace, workdir: Path, threads: int) -> dict:
    """Forward-pass-only seconds per engine (and the int8 experiment) over the same uploads."""
    batches = _decoded(folder, uris, _predictor("fp32"), batch_size=args.batch_size)
    precision = "bf16" if cpu_supports_bf16() else "fp32"
    out = {f"eager {precision}": _forward_only(_predictor(precision), batches)}
    out["onnxruntime fp32"] = _forward_only(
        create_engine("onnx", _predictor("fp32"), workdir=workdir / "ceiling", threads=threads), batches
    )
    if args.compile:
        out[f"torch.compile {precision}"] = _forward_only(create_engine("compile", _predictor(precision)), batches)
    int8 = _int8_forward(_predictor("fp32"), batches, workdir=workdir / "int8", threads=threads) if args.int8 else None
    if int8:
        out["onnxruntime static int8 (experiment)"] = int8["seconds"]
    return {"seconds": out, "int8": int8}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2, help="runs per variant; the fastest counts")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--ort-threads", type=int, default=0, help="ONNX Runtime intra-op threads (0 = CPU count)")
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile")
    parser.add_argument("--int8", action="store_true", help="also time ONNX Runtime static int8 (forward only)")
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
        ceiling = _ceiling(folder, uris, args=args, workdir=Path(tmp), threads=ort_threads)
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
        "forward_only": {
            k: {"seconds": round(v, 2), "img_per_s": round(len(uris) / v, 1), "x_naive_ceiling": round(base / v, 2)}
            for k, v in ceiling["seconds"].items()
        },
        "int8_agreement": ceiling["int8"] and {k: v for k, v in ceiling["int8"].items() if k != "seconds"},
    }
    print(
        f"{len(uris)} images, {result['threads']} torch threads, {ort_threads} ONNX Runtime threads, "
        f"bf16 {'yes' if bf16 else 'no'}"
    )
    print(f"{'variant':<40} {'img/s':>8} {'x naive':>8}")
    for name, r in result["variants"].items():
        print(f"{name:<40} {r['img_per_s']:>8} {r['x_naive']:>8}")
    print("\nforward pass alone (decoded beforehand): the ceiling if decoding were free")
    print(f"{'engine':<40} {'img/s':>8} {'x naive':>8}")
    for name, r in result["forward_only"].items():
        print(f"{name:<40} {r['img_per_s']:>8} {r['x_naive_ceiling']:>8}")
    if result["int8_agreement"]:
        agree = result["int8_agreement"]
        print(
            f"int8 vs fp32: largest probability difference {agree['max_prob_diff']:.3f}, "
            f"flags equal {agree['flag_agreement']:.1%}"
        )
    print(f"ONNX export + session start: {export_s:.1f} s (not counted above)")
    if compile_s is not None:
        print(f"torch.compile warm-up: {compile_s:.1f} s (not counted above)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
