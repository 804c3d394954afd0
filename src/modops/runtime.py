"""Where and in what precision torch runs: ``device: auto | cpu | cuda``, ``precision: auto | ...``.

Mixed precision pays where the hardware has it: bf16 autocast on CPUs with AVX512-BF16 or
AMX (1.3 to 2.5x for convolutions, measured in ``benchmarks/``), AMP on CUDA (bf16 where the
GPU supports it, else fp16 with a gradient scaler). Elsewhere fp32 is both faster and exact.
Nothing here runs at import; core modules call :func:`resolve_runtime` explicitly.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["Runtime", "resolve_runtime", "cpu_supports_bf16"]

_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def cpu_supports_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when the CPU has native bf16 matrix instructions (AVX512-BF16 or AMX-BF16).

    Without them torch emulates bf16 and autocast is slower than fp32, so ``auto`` must not
    choose it. Reads the Linux CPU flags; elsewhere asks oneDNN.
    """
    path = Path(cpuinfo)
    if path.is_file():
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("flags"):
                return any(flag in line.split() for flag in _BF16_CPU_FLAGS)
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@dataclass(frozen=True)
class Runtime:
    """A resolved device and autocast policy.

    Attributes:
        device: Where tensors and models live.
        amp_dtype: The autocast dtype (``torch.bfloat16`` / ``torch.float16``), or None for fp32.
    """

    device: torch.device
    amp_dtype: torch.dtype | None = None

    @property
    def precision(self) -> str:
        """``fp32``, ``bf16`` or ``fp16``: what is recorded with a run."""
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]

    @property
    def needs_grad_scaler(self) -> bool:
        """fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none."""
        return self.amp_dtype == torch.float16

    def autocast(self) -> contextlib.AbstractContextManager:
        """The autocast context for forward passes (a no-op in fp32)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    @contextlib.contextmanager
    def inference(self) -> Iterator[None]:
        """``inference_mode`` plus autocast: forward passes whose outputs need no gradients."""
        with torch.inference_mode(), self.autocast():
            yield

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A gradient scaler, enabled only for fp16."""
        return torch.amp.GradScaler(self.device.type, enabled=self.needs_grad_scaler)


def resolve_runtime(device: str = "auto", precision: str = "auto") -> Runtime:
    """Turn the ``device`` and ``precision`` settings into a :class:`Runtime`.

    Args:
        device: ``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda``.
        precision: ``auto`` (bf16/fp16 autocast where the hardware supports it, else fp32),
            ``fp32``, ``bf16`` or ``fp16``.

    Raises:
        ValueError: On an unknown value, CUDA asked for but absent, or fp16 on the CPU.
    """
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be 'auto', 'fp32', 'bf16' or 'fp16', got {precision!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no CUDA device; use device: auto or cpu")
    dev = torch.device("cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu")
    if precision == "fp16" and dev.type == "cpu":
        raise ValueError("precision 'fp16' is for CUDA; on the CPU use bf16 (with AVX512-BF16 or AMX) or fp32")
    dtypes = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision != "auto":
        return Runtime(dev, dtypes[precision])
    if dev.type == "cuda":
        return Runtime(dev, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    return Runtime(dev, torch.bfloat16 if cpu_supports_bf16() else None)
