"""bfloat16 autocast is used only where the device computes in bfloat16 natively."""

import os

import pytest
import torch

from synful.train import precision
from synful.train.precision import bf16_autocast, native_bf16


@pytest.mark.parametrize("native", [True, False])
def test_cpu_bf16_follows_the_instruction_set(monkeypatch, native):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert native_bf16(torch.device("cpu")) is native


def test_amx_alone_counts_as_native(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert native_bf16(torch.device("cpu"))


def test_cuda_without_a_gpu_is_not_native(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not native_bf16(torch.device("cuda"))


@pytest.mark.parametrize(("native", "enabled", "expected"), [
    (True, True, True), (True, False, False), (False, True, False), (False, False, False),
])  # fmt: skip
def test_autocast_only_when_enabled_and_native(monkeypatch, native, enabled, expected):
    monkeypatch.setattr(precision, "native_bf16", lambda device: native)
    conv = torch.nn.Conv3d(1, 2, 3)
    with bf16_autocast(torch.device("cpu"), enabled):
        assert torch.is_autocast_enabled("cpu") is expected
        out = conv(torch.ones(1, 1, 3, 3, 3))
    assert out.dtype == (torch.bfloat16 if expected else torch.float32)
    assert not torch.is_autocast_enabled("cpu")


WEIGHT_GRADIENT = """
import sys, torch
from synful.train.precision import avoid_amx_weight_gradient_crash
torch.set_num_threads(2)
if sys.argv[1] == "guarded":
    avoid_amx_weight_gradient_crash(torch.device("cpu"), True, batch_size=2)
x = torch.rand(2, 6, 4, 128, 128).bfloat16().requires_grad_()
w = torch.rand(1, 6, 1, 1, 1).bfloat16().requires_grad_()
torch.nn.functional.conv3d(x, w).float().sum().backward()
print("finite", bool(torch.isfinite(w.grad.float()).all()))
"""


def test_bf16_weight_gradients_of_a_batch_of_two_on_two_threads_do_not_crash():
    """On CPUs with AMX, torch 2.13's oneDNN crashes computing bfloat16 weight gradients when
    the batch has as many samples as torch has threads; the guard keeps oneDNN off AMX there
    (a real crash, in a child process)."""
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-c", WEIGHT_GRADIENT, "guarded"],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if "MAX_CPU_ISA" not in k},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "finite True" in run.stdout


def test_the_amx_guard_acts_where_threads_do_not_exceed_the_batch(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    threads = torch.get_num_threads()
    try:
        guard = precision.avoid_amx_weight_gradient_crash
        torch.set_num_threads(2)
        assert not guard(torch.device("cpu"), True, batch_size=1)
        torch.set_num_threads(1)
        assert not guard(torch.device("cpu"), False, batch_size=1)
        assert not guard(torch.device("cuda"), True, batch_size=1)
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # the user's cap stays
        assert not guard(torch.device("cpu"), True, batch_size=1)
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
        assert guard(torch.device("cpu"), True, batch_size=1)
        assert os.environ["ONEDNN_MAX_CPU_ISA"] == precision.NO_AMX_ISA
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
        torch.set_num_threads(2)
        assert guard(torch.device("cpu"), True, batch_size=2)
    finally:
        torch.set_num_threads(threads)
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
