"""CBAM's cost: training steps of the demo network with CBAM, its pooling as written in the paper
(mean and max) against modops' pooling (sum / n and adaptive max pooling), in one run.

Both compute the same gates (tests/models/test_cbam.py checks values and gradients); the
difference is which torch kernels run. On CPUs, bf16 mean and amax over large channels-last
maps are far slower than a sum or a pooling layer, so under bf16 autocast the paper's form made
CBAM cost more than the convolutions. A row without CBAM shows what attention costs at all.

Run: ``.venv/bin/python benchmarks/cbam.py [--steps 20 --batch 64 --size 128]``. Prints a table
and writes JSON (``--out``). Ratios are against the paper's pooling at the same precision,
measured in the same run; absolute numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from modops.models.backbones import create_model
from modops.models.cbam import ChannelGate, SpatialGate
from modops.runtime import cpu_supports_bf16


def _paper_channel(self: ChannelGate, x: torch.Tensor) -> torch.Tensor:
    b, c = x.shape[:2]
    logits = self.mlp(torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=0))
    return torch.sigmoid(logits[:b] + logits[b:]).view(b, c, 1, 1)


def _paper_spatial(self: SpatialGate, x: torch.Tensor) -> torch.Tensor:
    pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
    return torch.sigmoid(self.bn(self.conv(pooled)))


def _images_per_s(*, cbam: bool, paper: bool, bf16: bool, steps: int, batch: int, size: int) -> float:
    """Training images per second of ``steps`` SGD steps on random inputs [batch, 3, size, size]."""
    torch.manual_seed(0)
    net = create_model("cnn_small", num_classes=4, cbam=cbam, input_size=size).to(memory_format=torch.channels_last)
    if paper:  # the instances' forward, so the library classes stay untouched
        for m in net.modules():
            if isinstance(m, ChannelGate):
                m.forward = _paper_channel.__get__(m)
            elif isinstance(m, SpatialGate):
                m.forward = _paper_spatial.__get__(m)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 4, (batch,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(net(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):  # warm-up: allocator and oneDNN primitive caches
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/cbam.json"))
    args = ap.parse_args()
    precisions = [False, True] if cpu_supports_bf16() else [False]
    rows = []
    for bf16 in precisions:
        label = "bf16" if bf16 else "fp32"
        kw = {"bf16": bf16, "steps": args.steps, "batch": args.batch, "size": args.size}
        base = _images_per_s(cbam=True, paper=True, **kw)
        for name, cbam, paper in (
            ("CBAM, paper's pooling", True, True),
            ("CBAM, modops", True, False),
            ("no CBAM", False, False),
        ):
            ips = base if paper else _images_per_s(cbam=cbam, paper=paper, **kw)
            rows.append({"variant": f"{name}, {label}", "images_per_s": round(ips, 1), "ratio": round(ips / base, 2)})
    print(f"{'variant':<34}{'img/s':>8}{'x paper':>9}")
    for r in rows:
        print(f"{r['variant']:<34}{r['images_per_s']:>8}{r['ratio']:>9}")
    if not cpu_supports_bf16():
        print("(no AVX512-BF16/AMX: bf16 rows skipped)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"machine": platform.processor() or platform.machine(), **vars(args), "rows": rows}, default=str, indent=2
        )
    )


if __name__ == "__main__":
    main()
