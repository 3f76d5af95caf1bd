"""Benchmark ``synful.blockwise`` at scale; prints a table with the issue's targets.

Measured in one run:

* **10^6 no-op blocks on 2 local workers** (a ``LocalCluster`` of 2 worker processes, in a
  fresh subprocess so that its peak RSS is the client's alone): wall ms per block (cluster
  start-up included), the client's peak RSS (``VmHWM``), the time of a rerun with every
  block done, and the number of bookkeeping files in the done directory;
* **real prediction blocks** (a small network, one network output per block, CPU): the time
  per block of ``run_blockwise`` (serial, in this process) against the baseline measured in
  the same run: the same processor's ``process_block`` called directly on every block, with
  no scheduler and no done store. The ratio is the mechanism's per-block overhead (1.00 = none);
  2 local workers are shown as well, as steady-state wall time per block (their start-up,
  measured with a 2-block run, is subtracted and printed; 0.5 would be a perfect 2x).

    .venv/bin/python benchmarks/bench_blockwise.py [--blocks N] [--predict-blocks N]

Targets (issue 15): <= 0.2 ms/block, client peak RSS <= 300 MiB, rerun <= 5 s, <= 10
bookkeeping files; the prediction overhead ratio about 1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

NOOP_RUN = textwrap.dedent(
    """
    import json, sys, time
    from synful.blockwise import BlockwiseTask, run_blockwise
    from synful.geometry import Roi


    def nothing(block):
        pass


    def peak_rss_mib():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


    if __name__ == "__main__":
        blocks, done_dir, workers = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
        task = BlockwiseTask(Roi((0, 0, 0), (1, 1000, blocks // 1000)), (1, 1, 1), (0, 0, 0),
                             (1, 1, 1))
        start = time.perf_counter()
        result = run_blockwise(task, nothing, done_dir=done_dir, workers=workers,
                               scheduler="processes" if workers > 1 else None, progress=False)
        seconds = time.perf_counter() - start
        print(json.dumps({"blocks": task.num_blocks, "seconds": seconds,
                          "processed": result.processed, "skipped": result.skipped,
                          "rss_mib": peak_rss_mib()}))
    """
)


def noop_run(script: Path, blocks: int, done_dir: Path, workers: int) -> dict:
    out = subprocess.run(
        [sys.executable, str(script), str(blocks), str(done_dir), str(workers)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def noop_benchmark(blocks: int, root: Path) -> list[tuple[str, str, str]]:
    script = root / "noop.py"
    script.write_text(NOOP_RUN)
    done_dir = root / "done"
    first = noop_run(script, blocks, done_dir, 2)
    assert first["processed"] == blocks, first
    again = noop_run(script, blocks, done_dir, 2)
    assert again["skipped"] == blocks, again
    files = [p for p in done_dir.rglob("*") if p.is_file()]
    label = f"{blocks:,} no-op blocks, 2 local workers"
    return [
        (label + ": ms/block", f"{1000 * first['seconds'] / blocks:.3f}", "<= 0.2"),
        (label + ": client peak RSS", f"{first['rss_mib']:.0f} MiB", "<= 300 MiB"),
        ("rerun with all blocks done", f"{again['seconds']:.2f} s", "<= 5 s"),
        ("bookkeeping files", str(len(files)), "<= 10"),
    ]


def prediction_benchmark(blocks: int, root: Path) -> list[tuple[str, str, str]]:
    import numpy as np
    import torch
    import zarr

    from synful.blockwise import BlockwiseTask, run_blockwise
    from synful.checkpoint import save_checkpoint
    from synful.io.zarr_array import write_volume
    from synful.models import build_model
    from synful.predict import PredictBlock, plan_prediction
    from synful.predict.output_store import create_prediction_store

    torch.set_num_threads(1)
    setup = {
        "voxel_size": [4, 2, 2],
        "downsample_factors": [[1, 2, 2], [2, 2, 2]],
        "fmap_num": 3,
        "fmap_inc_factor": 2,
    }
    model = build_model(setup)
    setup["input_shape"] = list(model.valid_input_shape((30, 60, 60)))
    checkpoint = root / "checkpoint.pt"
    save_checkpoint(checkpoint, model=model, setup=setup, iteration=1)
    unit = model.output_shape(tuple(setup["input_shape"]))
    # a volume of about `blocks` network outputs (one per block)
    per_axis = max(1, round(blocks ** (1 / 3)))
    shape = tuple(int(u * per_axis) for u in unit)
    sample = root / "sample.zarr"
    raw = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    write_volume(zarr.open_group(str(sample), mode="w"), "raw", raw, setup["voxel_size"], (0, 0, 0))
    from synful.geometry import Coordinate, Roi

    raw_roi = Roi((0, 0, 0), tuple(s * v for s, v in zip(shape, setup["voxel_size"])))
    plan = plan_prediction(model, setup, raw_roi, block_shape=(1, 1, 1))
    task = plan.task
    heads = tuple(model.heads)

    def processor(out: Path) -> PredictBlock:
        create_prediction_store(out, plan, heads, "float32")
        return PredictBlock(str(checkpoint), str(sample / "raw"), str(out), heads,
                            dtype="float32", device="cpu", threads=1)  # fmt: skip

    direct = processor(root / "direct.zarr")
    direct.setup()
    direct.process_block(task.block_by_id(0))  # warm-up (first call allocates)
    start = time.perf_counter()
    for block in task.blocks():
        direct.process_block(block)
    baseline = (time.perf_counter() - start) / task.num_blocks

    def timed_run(name: str, workers: int, run_task) -> float:
        target = processor(root / f"{name}.zarr")
        start = time.perf_counter()
        run_blockwise(
            run_task, target, done_dir=root / f"done-{name}", workers=workers,
            scheduler="processes" if workers > 1 else None, progress=False,
        )  # fmt: skip
        return time.perf_counter() - start

    serial = timed_run("serial", 1, task) / task.num_blocks
    # 2 workers: start-up (cluster, imports, model loads) measured with a 2-block task of the
    # same blocks and subtracted, so the per-block wall time is the steady state
    small = BlockwiseTask(
        Roi(task.total_roi.begin, task.block_size * Coordinate(1, 1, 2)), task.block_size,
        task.context, task.voxel_size, fit=task.fit,
    )  # fmt: skip
    startup = timed_run("startup", 2, small)
    parallel = (timed_run("parallel", 2, task) - startup) / (task.num_blocks - small.num_blocks)
    label = f"prediction, {task.num_blocks} blocks of {tuple(plan.block_shape)} voxels"
    return [
        (label + ": direct calls (baseline)", f"{1000 * baseline:.1f} ms/block", ""),
        (
            label + ": run_blockwise serial",
            f"{1000 * serial:.1f} ms/block",
            f"ratio {serial / baseline:.2f} (target ~1)",
        ),
        (
            label + ": run_blockwise 2 workers",
            f"{1000 * parallel:.1f} ms/block",
            f"ratio {parallel / baseline:.2f} (wall after {startup:.1f} s start-up; 0.5 = 2x)",
        ),
    ]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=10**6, help="no-op blocks (default 10^6)")
    parser.add_argument(
        "--predict-blocks",
        type=int,
        default=216,
        help="about this many real prediction blocks (default 216)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_blockwise-") as tmp:
        rows = noop_benchmark(args.blocks, Path(tmp))
        rows += prediction_benchmark(args.predict_blocks, Path(tmp))
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>16}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>16}  {target}")


if __name__ == "__main__":
    main()
