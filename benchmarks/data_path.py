"""Training throughput: the streaming data path against the old preloaded path, in one run.

Both paths train the same network for the same number of steps on the same images:

- ``preloaded``: every image decoded up front into one uint8 tensor (what modops did before
  the streaming path), augmented per batch in the training process;
- ``streaming``: a ``StoreDataset`` over the image store read by DataLoader workers, which
  decode and augment while the main process trains (memory bounded by the prefetch);

plus the precision and memory-format variants that matter on a CPU (fp32 vs bf16 autocast,
channels-last or not). Throughput counts images per second of training steps, decode and
augmentation included; the preloaded path's up-front decode is reported separately.

Run: ``.venv/bin/python benchmarks/data_path.py [--images 2000 --steps 40 --size 128]``.
Prints a table and writes JSON (``--out``). Ratios are against the preloaded fp32 baseline
measured in the same run; absolute numbers depend on the machine.
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
import torch.nn.functional as F
from torchvision.transforms import v2

from modops.config import AugmentConfig, TrainConfig
from modops.data.datasets import StoreDataset, balanced_sampler, make_loader
from modops.data.store import ImageStore
from modops.data.transforms import IMAGENET_MEAN, IMAGENET_STD, EvalPreset, TrainPreset, color_jitter, normalize
from modops.models.backbones import create_model
from modops.runtime import cpu_supports_bf16, resolve_runtime


def _pool(root: Path, n: int) -> tuple[ImageStore, list[str], np.ndarray]:
    from modops.demo import generate_pool

    generate_pool(root / "raw", n_images=n, seed=1, positive_rate=0.1, workers=0)
    store, ids, labels = ImageStore(root / "store"), [], []
    import csv

    classes = ("clean", "promo_spam", "disgusting", "weapon")
    with open(root / "raw" / "labels.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            ids.append(store.put((root / "raw" / row["path"]).read_bytes())[0])
            labels.append(classes.index(row["label"]))
    return store, ids, np.array(labels)


def _step(net, x, y, opt, runtime) -> None:  # noqa: ANN001
    with runtime.autocast():
        logits = net(x)
    loss = F.cross_entropy(logits.float(), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def _net(size: int, channels_last: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    net = create_model("cnn_small", num_classes=4, input_size=size)
    return net.to(memory_format=torch.channels_last) if channels_last else net


def preloaded(store, ids, y, *, size, steps, batch, precision, channels_last=True) -> dict:  # noqa: ANN001
    """The old path: decode everything first, then augment each batch in the training process."""
    t0 = time.perf_counter()
    preset = EvalPreset(size)
    images = torch.stack([preset(store.get(i)) for i in ids])
    decode_s = time.perf_counter() - t0
    aug = v2.Compose(
        [
            v2.RandomResizedCrop(size, scale=(0.75, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(0.2, 0.2, 0.2),
        ]
    )
    runtime = resolve_runtime("cpu", precision)
    net = _net(size, channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    sampler = list(balanced_sampler(y, num_classes=4, cap=20, num_samples=steps * batch, seed=0))
    t1 = time.perf_counter()
    for s in range(steps):
        idx = sampler[s * batch : (s + 1) * batch]
        x = normalize(torch.stack([aug(images[i]) for i in idx]), mean=IMAGENET_MEAN, std=IMAGENET_STD)
        if not channels_last:
            x = x.contiguous()
        _step(net, x, torch.as_tensor(y[idx]), opt, runtime)
    train_s = time.perf_counter() - t1
    return {
        "images_per_s": steps * batch / train_s,
        "decode_s": round(decode_s, 1),
        "resident_mb": round(images.numel() / 2**20, 1),
    }


def streaming(store, ids, y, *, size, steps, batch, precision, workers, channels_last=True) -> dict:  # noqa: ANN001
    """The streaming path: DataLoader workers decode and augment from the store while the net trains."""
    runtime = resolve_runtime("cpu", precision)
    net = _net(size, channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    dataset = StoreDataset(store, ids, y, transform=TrainPreset(size, augment=AugmentConfig()))
    gen = torch.Generator().manual_seed(0)
    sampler = balanced_sampler(y, num_classes=4, cap=20, num_samples=steps * batch, seed=0)
    loader = make_loader(dataset, batch_size=batch, workers=workers, sampler=sampler, seed=0)
    t1 = time.perf_counter()
    for b in loader:
        x = normalize(color_jitter(b.images, strength=0.2, generator=gen), mean=IMAGENET_MEAN, std=IMAGENET_STD)
        if not channels_last:
            x = x.contiguous()
        _step(net, x, b.labels, opt, runtime)
    train_s = time.perf_counter() - t1
    return {"images_per_s": steps * batch / train_s, "decode_s": 0.0, "resident_mb": 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/data_path.json"))
    args = ap.parse_args()
    TrainConfig()  # fail early on an import/config problem
    bf16 = "bf16" if cpu_supports_bf16() else None
    with tempfile.TemporaryDirectory() as tmp:
        store, ids, y = _pool(Path(tmp), args.images)
        common = dict(size=args.size, steps=args.steps, batch=args.batch)
        runs = {"preloaded fp32": preloaded(store, ids, y, precision="fp32", **common)}
        runs["streaming fp32, 1 worker"] = streaming(store, ids, y, precision="fp32", workers=1, **common)
        runs["streaming fp32, in-process"] = streaming(store, ids, y, precision="fp32", workers=0, **common)
        if bf16:
            runs["preloaded bf16"] = preloaded(store, ids, y, precision="bf16", **common)
            for w in (0, 1, 2):
                runs[f"streaming bf16, {w} worker(s)"] = streaming(store, ids, y, precision="bf16", workers=w, **common)
            runs["streaming bf16, 1 worker, no channels-last"] = streaming(
                store, ids, y, precision="bf16", workers=1, channels_last=False, **common
            )
    base = runs["preloaded fp32"]["images_per_s"]
    print(f"{'path':46s} {'img/s':>8s} {'x baseline':>10s} {'decode s':>9s} {'resident MB':>11s}")
    for name, r in runs.items():
        r["ratio"] = r["images_per_s"] / base
        print(f"{name:46s} {r['images_per_s']:8.1f} {r['ratio']:10.2f} {r['decode_s']:9.1f} {r['resident_mb']:11.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(), "bf16": bool(bf16)}
    args.out.write_text(
        json.dumps({"args": vars(args) | {"out": str(args.out)}, "machine": meta, "runs": runs}, indent=2)
    )


if __name__ == "__main__":
    main()
