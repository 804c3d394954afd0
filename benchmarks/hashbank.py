"""Hash banks: one lookup among 1,000,000 known hashes, recall on copies, false matches of other pictures.

The bank holds ``--total`` codes (default 1,000,000): the bank codes (:func:`bank_codes`: the
picture and its 3 x 3 grid of light crops) of ``--images`` demo pictures
(``modops.demo.generate_pool``), topped up with uniformly random codes as distractors. Queries
are copies of those pictures, each decoded from bytes through ``open_rgb`` as the service does:

- ``jpeg``: re-encoded as JPEG, quality drawn from 50-75;
- ``0.5x``, ``0.75x``, ``1.5x``: resized (bicubic), stored as PNG;
- ``crop``: 2-5 % cut from each side (drawn per side), stored as PNG;
- ``crop+0.75x+jpeg60``: all three at once (harder than the target asks).

Reported:

- per index, ``flat`` (exhaustive ``IndexBinaryFlat``: the exact baseline) and ``multihash``
  (what :class:`HashBank` uses by default), in the same run: build time, latency of one query at
  a time (p50 / p99 / mean, one thread, through :meth:`HashBank.match`) and of one batched
  :meth:`HashBank.match_many` call (``--threads``), and recall at ``--max-distance``: the
  share of the copies (target kinds) whose own key is among the matches;
- a threshold sweep from exact distances: recall per copy kind (with and without the crop
  codes), and the false-match rate: the share of ``--distinct`` other demo pictures (another
  seed) that match any bank picture. Every picture is banked and every copy looked up; recall
  is given for the pictures at or above ``--min-quality`` (:func:`hash_quality`; per copy kind),
  for those below it (flat, near-black, finely periodic: their bits are noise) and for all.

Run: ``.venv/bin/python benchmarks/hashbank.py [--images 1000 --distinct 1000 --max-distance 32]``
(``--method phash`` for the former default: the bank and the queries are hashed alike).
Prints tables and writes JSON (``--out``). Random distractors are easier than real pictures'
codes (no clusters, never near a query), so false matches come from the demo pictures only.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import platform
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
from PIL import Image

from modops.data.images import open_rgb
from modops.moderation.hashbank import (
    DEFAULT_CROPS,
    DEFAULT_METHOD,
    DEFAULT_MIN_QUALITY,
    HASH_METHODS,
    HashBank,
    bank_codes,
    hash_quality,
    perceptual_hash,
)

KINDS = ("jpeg", "0.5x", "0.75x", "1.5x", "crop", "crop+0.75x+jpeg60")
TARGET_KINDS = KINDS[:5]  # the target: re-encoded, resized, lightly cropped
THRESHOLDS = (16, 24, 28, 32, 36, 40, 44, 48, 56)


def _pool(root: Path, *, n: int, seed: int) -> list[bytes]:
    """Encoded demo pictures (JPEG or PNG, as the generator wrote them), in file order."""
    from modops.demo import generate_pool

    generate_pool(root, n_images=n, seed=seed, positive_rate=0.3, workers=0)
    with (root / "labels.csv").open() as handle:
        return [(root / row["path"]).read_bytes() for row in csv.DictReader(handle)]


def _encode(image: Image.Image, fmt: str, **options: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _crop(image: Image.Image, fractions: np.ndarray) -> Image.Image:
    width, height = image.size
    left, top, right, bottom = fractions
    return image.crop(
        (round(width * left), round(height * top), width - round(width * right), height - round(height * bottom))
    )


def _resized(image: Image.Image, scale: float) -> Image.Image:
    return image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)


def _copies(image: Image.Image, rng: np.random.Generator) -> dict[str, bytes]:
    """The copy kinds of one picture, as the bytes an uploader would send."""
    crop = _crop(image, rng.uniform(0.02, 0.05, 4))
    return {
        "jpeg": _encode(image, "JPEG", quality=int(rng.integers(50, 76))),
        "0.5x": _encode(_resized(image, 0.5), "PNG"),
        "0.75x": _encode(_resized(image, 0.75), "PNG"),
        "1.5x": _encode(_resized(image, 1.5), "PNG"),
        "crop": _encode(crop, "PNG"),
        "crop+0.75x+jpeg60": _encode(_resized(_crop(image, rng.uniform(0.02, 0.05, 4)), 0.75), "JPEG", quality=60),
    }


def _hash(data: bytes, *, method: str, hash_size: int) -> np.ndarray:
    """The code of an upload, decoded as the service decodes it."""
    return perceptual_hash(open_rgb(data), method=method, hash_size=hash_size)


def _hamming(query: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Hamming distances in bits of one packed code to each of ``codes [k, bytes]``."""
    return np.unpackbits(np.bitwise_xor(codes, query), axis=1).sum(axis=1)


def _timed(fn: Callable[[], object]) -> tuple[object, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # Linux: KiB -> GB


def _measure_index(
    entries: list[tuple[str, np.ndarray]],
    queries: np.ndarray,
    owners: list[str],
    *,
    bits: int,
    index: str,
    max_distance: int,
    threads: int,
) -> dict:
    """Build a bank over ``entries``; time single and batched lookups of ``queries``; recall of ``owners``."""
    bank, build_s = _timed(lambda: HashBank.from_entries(entries, bits=bits, index=index, threads=1))
    for query in queries[:50]:  # warm caches
        bank.match(query, max_distance=max_distance)
    times, found = [], []
    for query, owner in zip(queries, owners, strict=True):
        started = time.perf_counter()
        matches = bank.match(query, max_distance=max_distance)
        times.append(time.perf_counter() - started)
        found.append(any(m.key == owner for m in matches))
    bank.threads = threads
    batched, batch_s = _timed(lambda: bank.match_many(queries, max_distance=max_distance))
    assert [any(m.key == o for m in ms) for ms, o in zip(batched, owners, strict=True)] == found
    ms = np.array(times) * 1e3
    return {
        "index": index,
        "exact_radius": bank.exact_radius,
        "codes": bank.n_codes,
        "build_s": build_s,
        "max_rss_gb_after_build": _rss_gb(),
        "single_ms_p50": float(np.percentile(ms, 50)),
        "single_ms_p99": float(np.percentile(ms, 99)),
        "single_ms_mean": float(ms.mean()),
        "batched_ms_per_query": batch_s * 1e3 / len(queries),
        "batched_threads": threads,
        "recall": float(np.mean(found)),
        "queries": len(queries),
    }


def _sweep(
    own: dict[str, np.ndarray], own_plain: dict[str, np.ndarray], distinct: np.ndarray, *, stable: np.ndarray
) -> list[dict]:
    """Recall per copy kind and false-match rate at each threshold, from exact distances.

    ``own[kind]``: per picture, the distance of its copy to the picture's nearest bank code;
    ``own_plain`` the same against the picture's own hash only (no crop codes); ``distinct``:
    per other picture, its distance to the nearest code of any bank picture; ``stable``: per
    picture, whether its :func:`hash_quality` reaches the floor.
    """
    rows = []
    for t in THRESHOLDS:
        row: dict = {"max_distance": t}
        for kind in KINDS:
            row[f"recall_{kind}"] = float(np.mean(own[kind][stable] <= t))
            row[f"recall_{kind}_no_crop_codes"] = float(np.mean(own_plain[kind][stable] <= t))
        target = np.stack([own[k] for k in TARGET_KINDS], axis=1) <= t  # [pictures, kinds]
        row["recall_target_kinds"] = float(target[stable].mean())
        row["recall_target_kinds_below_quality"] = float(target[~stable].mean()) if (~stable).any() else None
        row["recall_target_kinds_all_pictures"] = float(target.mean())
        row["false_match_rate"] = float(np.mean(distinct <= t))
        rows.append(row)
    return rows


def _copy_distances(
    pictures: list[Image.Image], codes: list[np.ndarray], *, rng: np.random.Generator, hashing: dict
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray, list[str]]:
    """Copies of each picture: exact distances to its own codes, and the target kinds' codes as queries."""
    own = {k: np.full(len(pictures), np.inf) for k in KINDS}
    own_plain = {k: np.full(len(pictures), np.inf) for k in KINDS}
    queries, owners = [], []
    for i, picture in enumerate(pictures):
        for kind, data in _copies(picture, rng).items():
            code = _hash(data, **hashing)
            distances = _hamming(code, codes[i])
            own[kind][i], own_plain[kind][i] = distances.min(), distances[0]
            if kind in TARGET_KINDS:
                queries.append(code)
                owners.append(f"picture-{i}")
    return own, own_plain, np.stack(queries), owners


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1000, help="demo pictures in the bank (and copied as queries)")
    parser.add_argument("--distinct", type=int, default=1000, help="other demo pictures, for false matches")
    parser.add_argument("--total", type=int, default=1_000_000, help="codes in the bank, random distractors included")
    parser.add_argument(
        "--method", default=DEFAULT_METHOD, choices=sorted(HASH_METHODS), help="hash method, bank and queries alike"
    )
    parser.add_argument("--hash-size", type=int, default=16)
    parser.add_argument("--max-distance", type=int, default=32)
    parser.add_argument(
        "--min-quality", type=float, default=DEFAULT_MIN_QUALITY, help="quality floor: recall is split at it"
    )
    parser.add_argument("--threads", type=int, default=2, help="faiss threads for the batched lookups")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/hashbank.json"))
    args = parser.parse_args()
    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    hashing = {"method": args.method, "hash_size": args.hash_size}
    bits = args.hash_size**2
    with tempfile.TemporaryDirectory() as tmp:
        banked = _pool(Path(tmp) / "bank", n=args.images, seed=args.seed + 101)
        others = _pool(Path(tmp) / "others", n=args.distinct, seed=args.seed + 202)
    pictures = [open_rgb(data) for data in banked]
    stable = np.array([hash_quality(p, hash_size=args.hash_size) >= args.min_quality for p in pictures])
    codes = [bank_codes(p, **hashing) for p in pictures]
    own, own_plain, queries, owners = _copy_distances(pictures, codes, rng=rng, hashing=hashing)
    hashed_s = time.perf_counter() - started

    real = [(f"picture-{i}", c) for i, c in enumerate(codes)]
    n_real_codes = sum(len(c) for _, c in real)
    distractors = rng.integers(0, 256, (max(0, args.total - n_real_codes), bits // 8), dtype=np.uint8)
    entries = real + [(f"random-{j}", c) for j, c in enumerate(distractors)]

    # Other pictures against the bank pictures: each one's nearest distance (exact, flat scan).
    reference = HashBank.from_entries(real, bits=bits, index="flat")
    other_codes = np.stack([_hash(data, **hashing) for data in others])
    found = reference.match_many(other_codes, max_distance=max(THRESHOLDS))
    distinct = np.array([m[0].distance if m else np.inf for m in found])

    measure = {"bits": bits, "max_distance": args.max_distance, "threads": args.threads}
    indexes = [_measure_index(entries, queries, owners, index=kind, **measure) for kind in ("flat", "multihash")]
    result = {
        "benchmark": "hashbank",
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "faiss": faiss.__version__},
        "config": {**vars(args), "out": str(args.out), "crops": [list(c) for c in DEFAULT_CROPS]},
        "bank": {
            "codes": n_real_codes + len(distractors),
            "pictures": len(pictures),
            "codes_per_picture": 1 + len(DEFAULT_CROPS),
            "random_distractors": len(distractors),
            "below_quality_share": float(1 - stable.mean()),
            "distinct_pictures": len(other_codes),
        },
        "indexes": indexes,
        "sweep": _sweep(own, own_plain, distinct, stable=stable),
        "seconds": {"generate_and_hash": hashed_s, "total": time.perf_counter() - started},
    }
    _print(result, max_distance=args.max_distance)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.out} ({result['seconds']['total']:.0f} s)")


def _print(result: dict, *, max_distance: int) -> None:
    bank = result["bank"]
    print(
        f"method {result['config']['method']} ({result['config']['hash_size'] ** 2} bits); "
        f"bank: {bank['codes']:,} codes = {bank['pictures']} demo pictures x {bank['codes_per_picture']} codes"
        f" + {bank['random_distractors']:,} random; {bank['below_quality_share']:.1%} of the pictures are below the"
        f" quality floor; {bank['distinct_pictures']} distinct pictures looked up"
    )
    head = f"{'index':<10} {'exact<=':>7} {'build s':>8} {'p50 ms':>7} {'p99 ms':>7} {'mean ms':>8} {'batch ms/q':>10}"
    print(f"\n{head} {f'recall@{max_distance}':>10}")
    for row in result["indexes"]:
        print(
            f"{row['index']:<10} {row['exact_radius']:>7} {row['build_s']:>8.1f} {row['single_ms_p50']:>7.3f}"
            f" {row['single_ms_p99']:>7.3f} {row['single_ms_mean']:>8.3f} {row['batched_ms_per_query']:>10.3f}"
            f" {row['recall']:>10.4f}"
        )
    flat, multi = result["indexes"]
    print(f"multihash vs flat, single queries: {flat['single_ms_mean'] / multi['single_ms_mean']:.1f}x faster (mean)")
    print("\nrecall of copies of pictures at/above the quality floor (in brackets: without the crop codes);")
    print("target kinds: at/above the floor, below it, all pictures; false match: share of distinct pictures matched")
    kinds = " ".join(f"{k:>17}" for k in KINDS)
    print(f"{'T':>3} {kinds} {'target kinds':>12} {'(below)':>8} {'(all)':>7} {'false match':>11}")
    for row in result["sweep"]:
        cells = " ".join(f"{row[f'recall_{k}']:.4f} ({row[f'recall_{k}_no_crop_codes']:.3f})" for k in KINDS)
        below = row["recall_target_kinds_below_quality"]
        print(
            f"{row['max_distance']:>3} {cells} {row['recall_target_kinds']:>12.4f} {below or float('nan'):>8.4f}"
            f" {row['recall_target_kinds_all_pictures']:>7.4f} {row['false_match_rate']:>11.4f}"
        )


if __name__ == "__main__":
    main()
