"""Benchmark ``synful train``: iterations per second and the share of step time spent waiting
for data, with 0 (inline) and 1-2 background data workers.

Measured in one run, against baselines measured in the same run:

* **compute only**: forward + backward + Adam step on one fixed batch held in memory (the
  speed the loop would reach if data were free), in float32 (the baseline) and, where the
  device computes in bfloat16 natively (``synful/train/precision.py``), under bfloat16 autocast,
  as training runs with ``mixed_precision: true``;
* **data only**: ``make_batch`` (sampling, augmentation, targets) in the main process, with
  the sample arrays read through zarr for every batch (the baseline) and read into memory
  once (``in_memory_mib``, as training does);
* **the loop**: ``train_setup`` for ``--iterations`` iterations with ``num_workers`` = 0, 1, 2;
  from its ``training_log.csv``: iterations/s, the ratio to the compute-only speed, and the
  share of the step time spent in ``next(batches)`` (data wait). The first iterations (start-up
  of the workers) are skipped.

    .venv/bin/python benchmarks/bench_train.py [--setup config/setups/demo.yaml]
        [--iterations 12] [--workers 0 1 2] [--device cpu|cuda]

The sample stores are two small random stores written to a temporary directory.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import zarr

from synful.io.sample_store import default_synapse_table
from synful.io.synapse_table import make_synapses, write_synapses
from synful.io.zarr_array import write_volume
from synful.models import build_model
from synful.train.batch import make_batch
from synful.train.loop import resolve_device, train_setup
from synful.train.losses import training_loss
from synful.train.precision import bf16_autocast, native_bf16
from synful.train.sampling import load_small_arrays, open_training_sample
from synful.train.setup import load_setup, resolve_setup

ROOT = Path(__file__).resolve().parents[1]
WARMUP = 3


def write_random_store(path: Path, input_shape, seed: int) -> None:
    """A store whose labelled region holds a few output windows, with context padding."""
    rng = np.random.default_rng(seed)
    vs = (40, 4, 4)
    shape = np.asarray(input_shape) * np.asarray([2, 2, 2])
    raw = rng.integers(0, 256, size=tuple(shape), dtype=np.uint8)
    padding = np.asarray(input_shape) // 2
    label_shape = tuple(shape - 2 * padding)
    labels = (np.arange(label_shape[2]) // 40 + 1).astype(np.uint64)[None, None, :] * np.ones(
        label_shape, np.uint64
    )
    offset = padding * np.asarray(vs)
    group = zarr.open_group(str(path), mode="w")
    write_volume(group, "raw", raw, vs, (0, 0, 0))
    write_volume(group, "neuron_ids", labels, vs, tuple(offset))
    n = 40
    post = offset + rng.uniform(0, 1, (n, 3)) * (np.asarray(label_shape) * vs)
    pre = post + np.asarray([0.0, 0.0, 160.0])
    write_synapses(make_synapses(pre, post), default_synapse_table(path))


def compute_only(setup, device, steps: int, batch, bf16: bool = False) -> float:
    """Seconds per training step on a fixed batch (after a warm-up step)."""
    model = build_model(setup.to_dict()).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=setup.learning_rate)
    tensors = {
        k: torch.from_numpy(v).to(device)
        for k, v in batch.items()
        if k in ("raw", "post_indicator", "partner_vectors", "vector_mask", "loss_weights")
    }
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with bf16_autocast(device, bf16):
            outputs = model(tensors["raw"])
        loss, _ = training_loss(outputs, tensors, setup)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:]))


def data_time(samples, setup, input_shape, output_shape, batches: int = 8) -> float:
    """Median seconds of ``make_batch`` over the same ``batches`` batches."""
    times = []
    for i in range(batches):
        start = time.perf_counter()
        make_batch(np.random.default_rng([0, i]), samples, setup, input_shape, output_shape, i)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--setup", default=str(ROOT / "config" / "setups" / "demo.yaml"))
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = resolve_device(args.device)
    setup = load_setup(args.setup)
    model = build_model(setup.to_dict())
    input_shape, output_shape = tuple(setup.input_shape), model.output_shape(setup.input_shape)
    print(
        f"setup {args.setup}: input {input_shape} -> output {output_shape}, "
        f"{sum(p.numel() for p in model.parameters()):,} parameters, device {device}, "
        f"torch threads {torch.get_num_threads()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        stores = [tmp / f"s{i}.zarr" for i in range(2)]
        for i, path in enumerate(stores):
            write_random_store(path, input_shape, seed=i)
        on_disk = [open_training_sample(p, setup.voxel_size) for p in stores]
        samples = [load_small_arrays(s, setup.in_memory_mib << 20) for s in on_disk]
        batch = make_batch(np.random.default_rng(0), samples, setup, input_shape, output_shape, 1)
        zarr_s = data_time(on_disk, setup, input_shape, output_shape)
        data_s = data_time(samples, setup, input_shape, output_shape)
        compute_s = compute_only(setup, device, 5, batch)
        print(
            f"compute only, float32 (baseline): {compute_s:.3f} s/step = {1 / compute_s:.2f} it/s"
        )
        if native_bf16(device):
            bf16_s = compute_only(setup, device, 5, batch, bf16=True)
            print(
                f"compute only, bfloat16 autocast: {bf16_s:.3f} s/step = {compute_s / bf16_s:.2f}x the float32 speed"
            )
            if setup.mixed_precision:
                compute_s = bf16_s  # the loop below trains in bfloat16: compare it with that
        else:
            print(
                "compute only, bfloat16 autocast: not native on this device (training stays float32)"
            )
        print(f"data only, arrays read through zarr per batch (baseline): {zarr_s:.3f} s/batch")
        print(
            f"data only, arrays in memory (in_memory_mib {setup.in_memory_mib}): {data_s:.3f} s/batch "
            f"= {zarr_s / data_s:.2f}x faster, {data_s / compute_s:.2f} x the compute step"
        )
        print(f"{'workers':>8} {'it/s':>8} {'vs compute':>11} {'vs first':>9} {'data wait':>10}")
        first = None
        for workers in args.workers:
            config = resolve_setup(
                {
                    **setup.to_dict(),
                    "num_workers": workers,
                    "log_every": 1,
                    "checkpoint_every": 10**9,
                    "snapshot_every": 10**9,
                }
            )
            out = tmp / f"run{workers}"
            train_setup(
                config, stores, out, iterations=args.iterations, device=str(device), progress=False
            )
            with open(out / "training_log.csv") as f:
                rows = list(csv.DictReader(f))[WARMUP:]
            step = np.array([float(r["step_seconds"]) for r in rows])
            wait = np.array([float(r["data_seconds"]) for r in rows])
            rate = len(step) / step.sum()
            first = first or rate
            print(
                f"{workers:>8} {rate:>8.2f} {rate * compute_s:>10.2f}x {rate / first:>8.2f}x "
                f"{wait.sum() / step.sum():>9.0%}"
            )
        print(
            "(on a shared machine the speeds vary with its load; the data-wait share is the "
            "number to read)"
        )


if __name__ == "__main__":
    main()
