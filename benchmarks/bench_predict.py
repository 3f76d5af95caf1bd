"""Benchmark ``synful predict``: throughput, FLOP efficiency, blockwise overhead, memory, bf16.

Measured in one run, against baselines measured in the same run:

* **matmul peak**: float32 ``torch.mm`` of 2048 x 2048 matrices (best of several) on the
  device: the machine's attainable FLOP/s;
* **network FLOP/s**: convolution FLOPs counted from the layer shapes (forward hooks on a
  copy of the network on the ``meta`` device: 2 x MACs of every Conv3d / ConvTranspose3d)
  divided by the time of one whole-volume forward pass; printed as a fraction of the peak;
* **blockwise**: ``predict()`` over the same volume (serial, default or ``--block-shape``
  blocks); printed as voxels/s and as overhead over (a) one whole-volume forward pass and
  (b) the bare forward passes of its blocks (``num_blocks x`` one block's forward): (a)
  includes recomputing each block's context (a property of the block shape, also printed
  as a FLOP ratio), (b) is the cost of the mechanism itself (reading, writing, markers);
* **context recomputation by block shape**: blockwise / whole-volume FLOPs for a large
  volume, counted on the ``meta`` device (no compute), for a few block shapes;
* **memory**: peak RSS (``VmHWM``, or ``resource.getrusage`` off Linux) of ``predict()`` in a fresh subprocess for a
  volume and one 8x larger (2x per axis), same blocks, with a tiny network (so the run is
  short and the whole-volume arrays, 0.3 GB of float32 outputs at the larger size, would
  show if anything held them);
* **bf16 on CUDA**: speed and the largest change of the outputs (probability, nm, uint8
  steps) against float32; skipped without CUDA (says so).

    .venv/bin/python benchmarks/bench_predict.py [--setup default|small] [--volume Z Y X]
        [--block-shape Z Y X] [--device cpu|cuda] [--no-memory]

``--setup default`` is the paper's network (fmap 4, x5, downsampling 1x3x3, 1x3x3, 3x3x3
at 40x4x4 nm); ``small`` and ``tiny`` are small ones for a quick run. ``--volume`` is the predicted region
in voxels (default: 2 x 2 x 2 network outputs).
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import zarr

from synful.checkpoint import save_checkpoint
from synful.io.zarr_array import write_volume
from synful.models import build_model
from synful.predict import plan_prediction, predict, predict_raw, prepare_model
from synful.predict.plan import _bytes_per_input_voxel, default_block_shape, round_up

SETUPS = {
    "default": {
        "voxel_size": [40, 4, 4],
        "downsample_factors": [[1, 3, 3], [1, 3, 3], [3, 3, 3]],
        "fmap_num": 4,
        "fmap_inc_factor": 5,
        "min_input_shape": [42, 430, 430],
    },
    "tiny": {
        "voxel_size": [40, 4, 4],
        "downsample_factors": [[1, 2, 2]],
        "fmap_num": 2,
        "fmap_inc_factor": 2,
        "min_input_shape": [10, 20, 20],
    },
    "small": {
        "voxel_size": [40, 4, 4],
        "downsample_factors": [[1, 2, 2], [2, 2, 2]],
        "fmap_num": 3,
        "fmap_inc_factor": 2,
        "min_input_shape": [30, 60, 60],
    },
}


def make_setup(name: str) -> dict:
    setup = dict(SETUPS[name])
    model = build_model(setup)
    setup["input_shape"] = list(model.valid_input_shape(setup.pop("min_input_shape")))
    return setup


def conv_flops(model, input_shape) -> int:
    """FLOPs (2 x multiply-adds) of all convolutions for one input, from the layer shapes."""
    meta = copy.deepcopy(model).to("meta")
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        kernel = int(np.prod(module.kernel_size))
        if isinstance(module, torch.nn.ConvTranspose3d):
            positions = inputs[0].numel() // module.in_channels
            total += 2 * positions * module.in_channels * module.out_channels * kernel
        else:
            positions = output.numel() // module.out_channels
            total += 2 * positions * module.in_channels * module.out_channels * kernel

    for module in meta.modules():
        if isinstance(module, torch.nn.Conv3d | torch.nn.ConvTranspose3d):
            module.register_forward_hook(hook)
    with torch.inference_mode():
        meta(torch.zeros((1, 1, *input_shape), device="meta"))
    return total


def synchronize(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def matmul_peak(device, dtype=torch.float32, n=2048, repeats=5) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        torch.mm(a, b)
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def timed_forward(model, raw, device, bf16=False, repeats=1):
    if str(device).startswith("cuda"):  # warm-up: CUDA context, kernel selection
        predict_raw(model, raw, device, bf16)
        synchronize(device)
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = predict_raw(model, raw, device, bf16)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best, out


def write_inputs(root: Path, setup: dict, volume, seed=0):
    torch.manual_seed(seed)
    model = build_model(setup).eval()
    checkpoint = save_checkpoint(root / "checkpoint_1.pt", model=model, setup=setup, iteration=1)
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, size=tuple(volume), dtype=np.uint8)
    sample = root / "sample.zarr"
    write_volume(zarr.open_group(str(sample), mode="w"), "raw", raw, setup["voxel_size"], (0, 0, 0))
    return model, checkpoint, sample, raw


def memory_child(checkpoint: str, sample: str, out: str, block_shape) -> None:
    """Run one prediction and print its peak RSS (MiB) as JSON (called in a subprocess)."""
    start = time.perf_counter()
    predict(checkpoint, sample, out, block_shape=block_shape, device="cpu", progress=False)
    seconds = time.perf_counter() - start
    print(json.dumps({"peak_mib": peak_rss_mib(), "seconds": seconds}))


def peak_rss_mib() -> float:
    """Peak RSS of this process (MiB): ``VmHWM`` on Linux (reset by exec, unlike ru_maxrss,
    which a subprocess inherits from its parent), else ``resource.getrusage``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_memory(setup_name, volume, block_shape):
    """Peak RSS of predict() in a fresh process; the inputs are written by this process."""
    with tempfile.TemporaryDirectory() as tmp:
        _, checkpoint, sample, _ = write_inputs(Path(tmp), make_setup(setup_name), volume)
        command = [
            sys.executable,
            __file__,
            "--memory-child",
            str(checkpoint),
            str(sample),
            str(Path(tmp) / "pred.zarr"),
            "--block-shape",
            *map(str, block_shape),
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setup", choices=sorted(SETUPS), default="default")
    parser.add_argument("--volume", nargs=3, type=int, default=None)
    parser.add_argument("--block-shape", nargs=3, type=int, default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--memory-setup", choices=sorted(SETUPS), default="tiny")
    parser.add_argument("--memory-volume", nargs=3, type=int, default=[32, 256, 256])
    parser.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(*args.memory_child, args.block_shape)
        return

    device = args.device
    setup = make_setup(args.setup)
    model = build_model(setup)
    unit = model.output_shape(setup["input_shape"])
    volume = args.volume or [2 * u for u in unit]
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} CPU threads")
    print(
        f"setup {args.setup}: input {tuple(setup['input_shape'])} -> output {unit}, "
        f"volume {tuple(volume)} voxels"
    )

    peak = matmul_peak(device)
    print(f"matmul peak (float32 2048^2): {peak / 1e9:.1f} GFLOP/s")

    with tempfile.TemporaryDirectory() as tmp:
        model, checkpoint, sample, raw = write_inputs(Path(tmp), setup, volume)
        model = prepare_model(model, device)
        plan = plan_prediction(model, setup, _raw_roi(setup, volume), block_shape=args.block_shape)
        context = np.array(plan.context)
        # whole volume: one forward pass over raw zero-padded by the context (to whole outputs)
        whole_out = np.array(round_up(volume, plan.unit_shape))
        padded = np.zeros(tuple(whole_out + 2 * context), np.uint8)
        padded[tuple(slice(c, c + s) for c, s in zip(context, volume))] = raw
        whole_flops = conv_flops(model, padded.shape)
        whole_seconds, whole = timed_forward(model, padded, device)
        voxels = int(np.prod(volume))
        print(
            f"whole-volume forward: input {padded.shape}, {whole_flops / 1e9:.1f} GFLOP in "
            f"{whole_seconds:.2f} s = {whole_flops / whole_seconds / 1e9:.1f} GFLOP/s = "
            f"{whole_flops / whole_seconds / peak:.0%} of matmul peak; "
            f"{voxels / whole_seconds:.3g} voxels/s"
        )

        # one block's bare forward pass
        block_input = tuple(plan.block_input_shape)
        block_raw = raw[tuple(slice(0, min(s, b)) for s, b in zip(raw.shape, block_input))]
        block_raw = np.pad(block_raw, [(0, b - s) for s, b in zip(block_raw.shape, block_input)])
        block_flops = conv_flops(model, block_input)
        block_seconds, _ = timed_forward(model, block_raw, device)
        num_blocks = plan.task.num_blocks

        start = time.perf_counter()
        predict(
            checkpoint,
            sample,
            Path(tmp) / "pred.zarr",
            block_shape=args.block_shape,
            device=device,
            dtype="float32",
            progress=False,
        )
        blockwise_seconds = time.perf_counter() - start
        print(
            f"blockwise predict: {num_blocks} blocks of {tuple(plan.block_shape)} voxels "
            f"(input {block_input}) in {blockwise_seconds:.2f} s = "
            f"{voxels / blockwise_seconds:.3g} voxels/s; one block forward "
            f"{block_seconds:.2f} s = {block_flops / block_seconds / peak:.0%} of peak"
        )
        print(
            f"  overhead over one whole-volume forward: "
            f"{blockwise_seconds / whole_seconds - 1:+.0%} (context recomputation: blocks do "
            f"{num_blocks * block_flops / whole_flops:.2f}x the whole volume's FLOPs)"
        )
        print(
            f"  overhead of the mechanism over its bare block forwards: "
            f"{blockwise_seconds / (num_blocks * block_seconds) - 1:+.0%}"
        )
        stored = zarr.open_group(str(Path(tmp) / "pred.zarr"), mode="r")
        crop = tuple(slice(0, s) for s in volume)
        diff = np.abs(stored["post_indicator"][...] - whole["post_indicator"][crop]).max()
        print(f"  max |blockwise - whole-volume| probability: {diff:.2e}")

        if str(device).startswith("cuda"):
            bf16_seconds, bf16 = timed_forward(model, padded, device, bf16=True)
            dp = np.abs(bf16["post_indicator"] - whole["post_indicator"])
            dv = np.abs(bf16["partner_vectors"] - whole["partner_vectors"])
            steps = np.abs(
                np.rint(bf16["post_indicator"] * 255) - np.rint(whole["post_indicator"] * 255)
            )
            print(
                f"bf16 autocast: {bf16_seconds:.3f} s ({whole_seconds / bf16_seconds:.2f}x "
                f"float32); max |dp| {dp.max():.3g} (mean {dp.mean():.2g}), max |dv| "
                f"{dv.max():.3g} nm; uint8 mask changed in {np.mean(steps > 0):.2%} of "
                f"voxels (max {int(steps.max())} steps)"
            )
            print(f"bf16 matmul peak: {matmul_peak(device, torch.bfloat16) / 1e12:.1f} TFLOP/s")
        else:
            print("bf16 on CUDA: skipped (no CUDA device)")

    context_table(model, setup, plan)

    if not args.no_memory:
        blocks = [v // 2 for v in args.memory_volume]
        small = run_memory(args.memory_setup, args.memory_volume, blocks)
        large_volume = [2 * v for v in args.memory_volume]
        large = run_memory(args.memory_setup, large_volume, blocks)
        print(
            f"peak RSS ({args.memory_setup} net, blocks {tuple(blocks)}, uint8 output): "
            f"volume {tuple(args.memory_volume)}: "
            f"{small['peak_mib']:.0f} MiB; 8x volume {tuple(large_volume)}: "
            f"{large['peak_mib']:.0f} MiB (ratio {large['peak_mib'] / small['peak_mib']:.2f}); "
            f"{np.prod(args.memory_volume) / small['seconds']:.3g} and "
            f"{np.prod(large_volume) / large['seconds']:.3g} voxels/s"
        )


def context_table(model, setup, plan) -> None:
    """FLOPs of blockwise prediction over one whole-volume pass, by block shape (no compute).

    Counted on the ``meta`` device for a volume of 4 x 4 x 4 default blocks (the default for a
    large volume); with the mechanism's own overhead small, this ratio is what blockwise
    costs in time.
    """
    context = np.array(plan.context)
    unit = np.array(plan.unit_shape)
    large = unit * (64, 16, 16)
    default = np.array(default_block_shape(unit, context, large, _bytes_per_input_voxel(model)))
    volume = 4 * default
    whole = conv_flops(model, tuple(volume + 2 * context))
    rows = []
    for label, block in (
        ("1 network output", unit),
        ("default", default),
        ("2x default", 2 * default),
        ("whole", volume),
    ):
        blocks = int(np.prod(-(-volume // block)))
        flops = blocks * conv_flops(model, tuple(block + 2 * context))
        rows.append(f"{label} {tuple(int(b) for b in block)}: {flops / whole:.2f}x")
    print(
        f"blockwise / whole-volume FLOPs for a {tuple(int(v) for v in volume)} volume "
        f"(context {tuple(int(c) for c in context)}): " + "; ".join(rows)
    )


def _raw_roi(setup, volume):
    from synful.geometry import Coordinate, Roi

    return Roi((0, 0, 0), Coordinate(volume) * Coordinate(setup["voxel_size"]))


if __name__ == "__main__":
    main()
