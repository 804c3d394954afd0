"""Bounded load test of the moderation service on loopback: requests/s, p50/p99 latency, errors.

The service runs in a child process (uvicorn, one worker, as ``modops serve`` runs it) on a
temporary SQLite review store; the parent posts demo uploads (the generator's images, another seed
than the training pool) with a fixed number of requests in flight, and reports throughput, latency
percentiles, the decisions' mix and every non-201 answer as an error.

The model: ``--model-dir`` (e.g. ``models/candidate`` after ``make demo``), else the demo
profile's network (``cnn_small`` + CBAM, 128 px) at random init, which costs the same per image.
OCR follows ``params.yaml: moderate.ocr`` (``--no-ocr`` turns it off): it runs only on what stage 1
flags, about a second per image on 2 cores, so the flagged share drives the latency.

Run: ``.venv/bin/python benchmarks/load.py [--model-dir models/candidate --requests 400 --concurrency 8]``.
Prints a table and writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import platform
import socket
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

CLASSES = ("clean", "promo_spam", "disgusting", "weapon")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _predictor(model_dir: str | None):  # noqa: ANN202
    import torch

    from modops.models import MemberSpec, ModelSpec, create_model
    from modops.models.predictor import SingleModel, load_predictor

    if model_dir:
        return load_predictor(model_dir)
    torch.manual_seed(0)
    net = create_model("cnn_small", num_classes=len(CLASSES), cbam=True).eval()
    spec = ModelSpec(CLASSES, (MemberSpec("model", "cnn_small", 128),), thresholds={c: 0.5 for c in CLASSES[1:]})
    return SingleModel(spec, net)


def _serve(port: int, workdir: str, model_dir: str | None, params: str, ocr: bool) -> None:
    """Child process: the service on a fresh store, until killed."""
    import uvicorn

    from modops.config import load_params, load_section, parse_section
    from modops.moderation.app import create_app
    from modops.moderation.service import FixedModel, ModerationService
    from modops.moderation.store import ReviewStore

    raw = load_params(params)
    moderate = dict(raw.get("moderate") or {})
    if not ocr:
        moderate["ocr"] = {**(moderate.get("ocr") or {}), "engine": "none"}
    cfg = parse_section(type(load_section(raw, "moderate")), moderate, name="moderate")
    root = Path(workdir)
    service = ModerationService(
        cfg,
        ReviewStore(f"sqlite:///{root / 'review.db'}"),
        model=FixedModel("bench", _predictor(model_dir)),
        images_dir=root / "images",
        labels=load_section(raw, "labels"),
    )
    uvicorn.run(create_app(service), host="127.0.0.1", port=port, log_level="warning")


def _wait_ready(base: str, *, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the service did not answer {base}/healthz within {timeout:.0f} s")


async def _load(base: str, files: list[bytes], *, requests: int, concurrency: int) -> dict:
    latencies: list[float] = []
    decisions: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    todo = iter(range(requests))

    async def worker(client: httpx.AsyncClient) -> None:
        for i in todo:
            data = files[i % len(files)]
            started = time.perf_counter()
            try:
                r = await client.post(
                    "/v1/uploads",
                    files={"image": (f"{i}.png", data, "image/png")},
                    data={"uploader_id": f"user{i % 50}", "business_category": "restaurants"},
                )
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] += 1
                continue
            latencies.append(time.perf_counter() - started)
            if r.status_code == 201:
                decisions[r.json()["decision"]] += 1
            else:
                errors[f"HTTP {r.status_code}"] += 1

    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [float("nan")] * 99
    return {
        "requests": requests,
        "concurrency": concurrency,
        "seconds": round(seconds, 2),
        "requests_per_s": round(requests / seconds, 2),
        "p50_ms": round(q[49] * 1000, 1),
        "p99_ms": round(q[98] * 1000, 1),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "decisions": dict(decisions),
    }


def _images(root: Path, n: int) -> list[bytes]:
    from modops.demo import generate_pool

    generate_pool(root, n_images=n, seed=11, positive_rate=0.05, workers=0)
    return [p.read_bytes() for p in sorted((root / "images").rglob("*.*"))[:n]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", default=None, help="a modops model folder (default: random-init demo network)")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--images", type=int, default=100, help="distinct demo uploads, posted round-robin")
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--no-ocr", action="store_true", help="moderate.ocr.engine: none")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="modops-load-") as tmp:
        files = _images(Path(tmp) / "pool", args.images)
        port = _free_port()
        ctx = mp.get_context("spawn")
        child = ctx.Process(target=_serve, args=(port, tmp, args.model_dir, args.params, not args.no_ocr), daemon=True)
        child.start()
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(base)
            asyncio.run(_load(base, files, requests=args.warmup, concurrency=2))
            result = asyncio.run(_load(base, files, requests=args.requests, concurrency=args.concurrency))
        finally:
            child.terminate()
            child.join(10)
    result.update(
        model=args.model_dir or "random-init cnn_small+CBAM 128px",
        ocr=not args.no_ocr,
        images=len(files),
        cpu=platform.processor() or platform.machine(),
    )
    print(
        f"{result['requests']} uploads, {result['concurrency']} in flight: {result['requests_per_s']} req/s, "
        f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, errors {result['errors']} {result['error_kinds']}"
    )
    print(f"decisions: {result['decisions']}  (model: {result['model']}, OCR {'on' if result['ocr'] else 'off'})")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
