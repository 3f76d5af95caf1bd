"""bfloat16 mixed precision: where it is fast, and the autocast context for it.

bfloat16 autocast runs convolutions in bfloat16 and keeps reductions, normalisation and the
losses in float32. It pays off only where the hardware computes in bfloat16 natively: CUDA
GPUs that support it (Ampere and later) and CPUs with AVX512-BF16 or AMX instructions (the
demo's speed-up there: docs/training.md, "Training speed on CPU"). Elsewhere bfloat16 is
emulated and slower than float32, so it is not used.
"""

from __future__ import annotations

import os
from contextlib import nullcontext

import torch

#: the oneDNN instruction-set cap that keeps bfloat16 training off AMX (see
#: :func:`avoid_amx_weight_gradient_crash`)
NO_AMX_ISA = "AVX512_CORE_BF16"


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


def avoid_amx_weight_gradient_crash(device: torch.device, bf16: bool, batch_size: int) -> bool:
    """Keep oneDNN off AMX for bfloat16 training where its weight-gradient kernel crashes;
    returns whether it did.

    With torch 2.13 (oneDNN 3.x), the AMX kernel for convolution weight gradients
    (``brgconv_bwd_w:avx10_1_512_amx``) crashes the process (SIGSEGV) when torch runs on no
    more threads than the batch has samples, e.g. a 1x1x1 ``Conv3d(6, 1)`` over 4x128x128
    bfloat16 inputs: batch 2 on 1 or 2 threads, batch 3 on 2, batch 4 on 4 (and batch 1 on
    one thread, though not every time); batch 1 on 2-4 threads, batch 2 on 3-4 and batch 4 on
    8 ran. There this caps oneDNN at AVX512-BF16 (``ONEDNN_MAX_CPU_ISA``, read when oneDNN
    first dispatches a primitive, so call it before the first convolution): bfloat16 training
    then runs without AMX. A cap the user set is left alone.
    """
    if not bf16 or device.type != "cpu" or torch.get_num_threads() > batch_size:
        return False
    if "ONEDNN_MAX_CPU_ISA" in os.environ or "DNNL_MAX_CPU_ISA" in os.environ:
        return False
    if not bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()):
        return False
    os.environ["ONEDNN_MAX_CPU_ISA"] = NO_AMX_ISA
    return True
