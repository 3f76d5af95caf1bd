"""bfloat16 autocast is used only where the device computes in bfloat16 natively."""

import pytest
import torch

from synful import precision
from synful.precision import bf16_autocast, native_bf16


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
