from __future__ import annotations

import pytest
import torch

from modops import runtime as runtime_module
from modops.runtime import Runtime, cpu_supports_bf16, resolve_runtime

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
flags\t\t: fpu vme de pse {extra} sse sse2
bogomips\t: 4000.00
"""


def _cpuinfo(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_fp32_has_no_autocast():
    rt = resolve_runtime("cpu", "fp32")
    assert rt == Runtime(torch.device("cpu"), None)
    assert rt.precision == "fp32"
    a = torch.randn(4, 4)
    with rt.autocast():
        assert (a @ a).dtype == torch.float32


def test_bf16_autocasts_matmuls():
    rt = resolve_runtime("cpu", "bf16")
    assert rt.device.type == "cpu" and rt.amp_dtype == torch.bfloat16
    a = torch.randn(4, 4)
    with rt.autocast():
        assert (a @ a).dtype == torch.bfloat16
    with rt.inference():
        out = a @ a
    assert out.dtype == torch.bfloat16 and out.is_inference()


def test_fp16_on_the_cpu_is_refused():
    with pytest.raises(ValueError, match="fp16"):
        resolve_runtime("cpu", "fp16")


@pytest.mark.parametrize(("device", "precision"), [("gpu", "fp32"), ("cpu", "int8")])
def test_unknown_settings_are_refused(device, precision):
    with pytest.raises(ValueError, match="must be"):
        resolve_runtime(device, precision)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_refused():
    with pytest.raises(ValueError, match="no CUDA"):
        resolve_runtime("cuda", "fp32")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_auto_device_without_a_gpu_is_the_cpu():
    assert resolve_runtime("auto", "fp32").device == torch.device("cpu")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [("avx2 avx512f avx512_bf16", True), ("avx2 amx_tile amx_bf16", True), ("avx2 avx512f avx512_vnni", False)],
)
def test_cpu_supports_bf16_reads_the_flags(tmp_path, extra, expected):
    path = _cpuinfo(tmp_path, "cpuinfo", CPUINFO.format(extra=extra))
    assert cpu_supports_bf16.__wrapped__(path) is expected


def test_cpu_supports_bf16_needs_a_whole_flag(tmp_path):
    # "avx512_bf16x" is not "avx512_bf16": flags are matched as words.
    path = _cpuinfo(tmp_path, "cpuinfo", CPUINFO.format(extra="avx512_bf16x"))
    assert cpu_supports_bf16.__wrapped__(path) is False


def test_cpu_supports_bf16_without_a_flags_line(tmp_path):
    path = _cpuinfo(tmp_path, "cpuinfo", "processor\t: 0\n")
    assert cpu_supports_bf16.__wrapped__(path) is False


def test_cpu_supports_bf16_is_cached_per_path(tmp_path):
    with_bf16 = _cpuinfo(tmp_path, "a", CPUINFO.format(extra="amx_bf16"))
    without = _cpuinfo(tmp_path, "b", CPUINFO.format(extra="avx2"))
    assert cpu_supports_bf16(with_bf16) is True
    assert cpu_supports_bf16(without) is False


@pytest.mark.skipif(torch.cuda.is_available(), reason="auto picks CUDA on a GPU machine")
@pytest.mark.parametrize("supported", [True, False])
def test_auto_precision_on_the_cpu_follows_the_bf16_check(monkeypatch, supported):
    monkeypatch.setattr(runtime_module, "cpu_supports_bf16", lambda: supported)
    rt = resolve_runtime("cpu", "auto")
    assert rt.amp_dtype == (torch.bfloat16 if supported else None)
    assert resolve_runtime("auto", "auto") == rt


def test_auto_precision_on_the_cpu_matches_this_machine():
    expected = torch.bfloat16 if cpu_supports_bf16() else None
    assert resolve_runtime("cpu", "auto").amp_dtype == expected


@pytest.mark.parametrize(("dtype", "name"), [(None, "fp32"), (torch.bfloat16, "bf16"), (torch.float16, "fp16")])
def test_precision_names(dtype, name):
    assert Runtime(torch.device("cpu"), dtype).precision == name


@pytest.mark.parametrize(("dtype", "scaled"), [(None, False), (torch.bfloat16, False), (torch.float16, True)])
def test_grad_scaler_only_for_fp16(dtype, scaled):
    rt = Runtime(torch.device("cpu"), dtype)
    assert rt.needs_grad_scaler is scaled
    assert rt.grad_scaler().is_enabled() is scaled
