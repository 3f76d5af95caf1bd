"""A brain-size rehearsal: plan FAFB, run >= 10^4 prediction and >= 10^5 extraction blocks,
and project the whole brain's cost on N GPUs.

Sections (each in a fresh subprocess, so that every peak RSS is that step's alone):

1. **plan**: a virtual FAFB raw (``zarr.create_array`` of FAFB's shape, uint8, funlib
   ``voxel_size``/``offset``/``axis_names``/``units``, no chunk written) is opened with
   ``open_raw_array``; p_setup52 (``config/setups/p_setup52.yaml``, built on the ``meta``
   device: no weights allocated) is planned with ``plan_prediction`` at its default block
   shape; the work directory ``predict`` would create (``BlockwiseWork.prepare``: the empty
   FAFB-size prediction store and the one-byte-per-block done store) is created; a rerun's
   scan of the done store and lazy block generation are timed. Time and RSS of each step.
2. **predict**: ``synful predict`` (``synful.cli.main`` in a subprocess, 2 local worker
   processes, CPU) with a tiny network over a sub-volume of the virtual FAFB raw (its chunks
   filled with random data) of >= 10^4 one-output blocks; wall time, peak RSS. In this
   process: the same blocks' ``process_block`` called directly, the network's forward pass
   alone, and ``process_block`` with a stub network (no compute: the per-block I/O).
3. **fafb-block**: the GPU-free part of one FAFB-size prediction block (p_setup52's default
   block, 48 x 864 x 864 voxels out of 90 x 1132 x 1132 in): ``PredictBlock.process_block``
   with the network replaced by a stub that returns precomputed outputs, so everything but
   the network runs: raw read + normalisation + encoding + sharded write.
4. **extract**: ``synful extract`` (``synful.cli.main`` in a subprocess, 2 local worker
   processes) over a sparse prediction store (zero except a few hundred blobs; chunks without
   a blob are never written, as zarr skips chunks of the fill value) in >= 10^5 blocks; wall,
   peak RSS, and a check that every blob gives exactly one synapse.
5. **extract-block**: one FAFB-size extraction block (48 x 864 x 864, context 120 nm) of a
   dense low-probability map with blobs: ``ExtractBlocks.process_block`` timed.

Then a projection for the whole brain on N = 1, 8, 64 GPUs (assumptions printed with it).
Results and assumptions: ``docs/scale.md``.

    .venv/bin/python benchmarks/bench_scale.py [--predict-grid 10 32 32] [--extract-shape ...]

About 20 minutes on 2 shared cores, most of it the extraction blocks (times: ``docs/scale.md``).

Per-block times of the CLI runs are after start-up (a 2-block run of the same command is
subtracted) and given as wall time and as CPU time of all processes (``wait4``'s
``ru_utime + ru_stime``: client and dask workers), since on a shared machine the wall time
depends on the other processes' load; the mechanism's cost per block is the CPU time beyond
``process_block`` called directly (``time.process_time``).

Peak RSS: ``os.wait4``'s ``ru_maxrss`` (``getrusage(RUSAGE_CHILDREN)`` for one child: the
largest process of the child's tree that was waited for) and the sum of the tree's RSS,
sampled every 0.2 s (the client and its dask worker processes together).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SETUP_PATH = REPO / "config" / "setups" / "p_setup52.yaml"
VECTOR_SETUP_PATH = REPO / "config" / "setups" / "p_setup10.yaml"

#: FAFB (issue 15, the synful_fafb release's volume): about 7,000 x 250,000 x 125,000 voxels
#: at 40 x 4 x 4 nm (z, y, x); the whole bounding box, not only tissue
FAFB_SHAPE = (7000, 250000, 125000)
FAFB_VOXEL = (40, 4, 4)
#: chunks of the virtual raw (uint8, 256 KiB)
RAW_CHUNKS = (16, 128, 128)
RAW_NAME = "volumes/raw"

#: the paper's speed (synful README, docs: /work/shared/reference/synful_method.md "Runtime"):
#: about 4 minutes per 5 x 5 x 5 um CREMI cube (125 x 1250 x 1250 voxels) on one GPU of its time
PAPER_SECONDS_PER_CUBE = 240.0
CREMI_CUBE_VOXELS = 125 * 1250 * 1250
#: assumed sustained network throughput of one current data-centre GPU in bfloat16 (not
#: measured here: no GPU; about 10 % of an H100's dense bf16 peak, thin 3D convolutions)
ASSUMED_GPU_FLOPS = 100e12

#: the tiny network of section 2: input (13, 20, 20) -> output (1, 4, 4) at 40 x 4 x 4 nm
TINY_SETUP = {
    "voxel_size": list(FAFB_VOXEL),
    "downsample_factors": [[1, 2, 2]],
    "fmap_num": 2,
    "fmap_inc_factor": 2,
}


# --- helpers --------------------------------------------------------------------------------


def status_mib(key: str) -> float:
    """``VmHWM`` (peak) or ``VmRSS`` of this process, MiB."""
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_text() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min) on {os.cpu_count()} cores"


def read_setup(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


def meta_model(setup: dict):
    """The setup's network on the ``meta`` device (shapes only, no weights allocated)."""
    import torch

    from synful.models import build_model

    with torch.device("meta"):
        return build_model(setup)


def virtual_raw(root: Path) -> tuple[str, float]:
    """Create (once) the virtual FAFB raw; returns its spec and the creation time (s)."""
    import zarr

    container = root / "fafb.zarr"
    spec = str(container / RAW_NAME)
    if (container / RAW_NAME / "zarr.json").exists():
        return spec, 0.0
    start = time.perf_counter()
    array = zarr.create_array(
        store=str(container), name=RAW_NAME, shape=FAFB_SHAPE, dtype="uint8",
        chunks=RAW_CHUNKS, fill_value=0, zarr_format=3,
        attributes={"voxel_size": list(FAFB_VOXEL), "offset": [0, 0, 0],
                    "axis_names": ["z", "y", "x"], "units": ["nm", "nm", "nm"]},
    )  # fmt: skip
    del array
    return spec, time.perf_counter() - start


def fill_raw(spec: str, roi, seed: int = 0) -> float:
    """Write random uint8 raw into ``roi`` (nm) of the virtual raw, widened to whole chunks."""
    import numpy as np
    import zarr

    array = zarr.open_array(spec, mode="r+")
    begin = [b // v for b, v in zip(roi.begin, FAFB_VOXEL)]
    end = [-(-e // v) for e, v in zip(roi.end, FAFB_VOXEL)]
    begin = [(b // c) * c for b, c in zip(begin, RAW_CHUNKS)]
    end = [min(s, -(-e // c) * c) for e, c, s in zip(end, RAW_CHUNKS, FAFB_SHAPE)]
    shape = [e - b for b, e in zip(begin, end)]
    data = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    start = time.perf_counter()
    array[tuple(slice(b, e) for b, e in zip(begin, end))] = data
    return time.perf_counter() - start


def centre_roi(block_nm, blocks) -> object:
    """A ROI of ``blocks`` blocks of ``block_nm`` near FAFB's centre, on the block grid."""
    from synful.geometry import Coordinate, Roi

    block_nm = Coordinate(block_nm)
    centre = Coordinate(s * v // 2 for s, v in zip(FAFB_SHAPE, FAFB_VOXEL))
    begin = Coordinate((c // b) * b for c, b in zip(centre, block_nm))
    return Roi(begin, block_nm * Coordinate(blocks))


class StubNet:
    """Stands in for a network: returns precomputed outputs (no compute), so that a block's
    time is everything but the network (the GPU's part). Outputs are noise, so that their
    encoding and compression cost what real outputs cost."""

    def __init__(self, output_shape, heads, seed: int = 0):
        import torch

        generator = torch.Generator().manual_seed(seed)
        shape = tuple(int(s) for s in output_shape)
        self.heads = tuple(heads)
        self.mask_activation = "sigmoid"
        self.outputs = {}
        if "post_indicator" in self.heads:  # mostly low probabilities, as a real map
            self.outputs["post_indicator"] = torch.randn((1, 1, *shape), generator=generator) - 5
        if "partner_vectors" in self.heads:  # nm, within the int8 range at 0.25 / nm
            self.outputs["partner_vectors"] = 100 * torch.randn((1, 3, *shape), generator=generator)

    def __call__(self, x):
        return self.outputs


def run_measured(command: list[str], env: dict | None = None) -> dict:
    """Run ``command``; wall time, ``wait4`` peak RSS (largest waited process) and the sampled
    peak of the summed RSS of its process tree (MiB)."""
    import psutil

    start = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=str(REPO)
    )
    peak_tree = 0.0
    done = threading.Event()

    def sample():
        nonlocal peak_tree
        try:
            parent = psutil.Process(process.pid)
        except psutil.Error:
            return
        while not done.is_set():
            total = 0
            try:
                for p in [parent, *parent.children(recursive=True)]:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            peak_tree = max(peak_tree, total / 2**20)
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out_chunks, err_chunks = [], []
    readers = [
        threading.Thread(target=lambda s=s, c=c: c.append(s.read()), daemon=True)
        for s, c in ((process.stdout, out_chunks), (process.stderr, err_chunks))
    ]
    for reader in readers:
        reader.start()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    done.set()
    for reader in readers:
        reader.join()
    sampler.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    stdout = b"".join(out_chunks).decode(errors="replace")
    stderr = b"".join(err_chunks).decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command[:4])}... failed ({process.returncode}):\n{stderr[-3000:]}"
        )
    return {"seconds": seconds, "cpu_s": usage.ru_utime + usage.ru_stime,
            "maxrss_mib": usage.ru_maxrss / 1024,
            "tree_peak_mib": peak_tree, "stdout": stdout, "stderr": stderr}  # fmt: skip


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from synful.cli import main; sys.exit(main())",
            *args]  # fmt: skip


def section(name: str, root: Path, *extra: str) -> dict:
    """Run one section of this file in a fresh subprocess; its JSON result."""
    result = run_measured([sys.executable, __file__, "--section", name, "--root", str(root),
                           *extra])  # fmt: skip
    data = json.loads(result["stdout"].strip().splitlines()[-1])
    data["wall_s"] = result["seconds"]
    return data


def roi_text(roi) -> str:
    return ",".join(f"{b}:{e}" for b, e in zip(roi.begin, roi.end))


# --- sections (run in subprocesses) -----------------------------------------------------------


def plan_section(root: Path) -> dict:
    """Plan a FAFB-size prediction; time and RSS of each step."""
    import numpy as np
    import torch  # noqa: F401  (imported before the baseline RSS)

    from synful.blockwise import BlockwiseTask, BlockwiseWork, DoneMarkers
    from synful.errors import SynfulError
    from synful.geometry import Coordinate
    from synful.io.volumes import open_raw_array
    from synful.predict.output_store import create_prediction_store
    from synful.predict.plan import plan_prediction
    from synful.predict.volume import MARKERS, partial_path, raw_identity

    out = {"rss_after_imports_mib": status_mib("VmRSS")}
    spec, out["create_virtual_raw_s"] = virtual_raw(root)
    steps, rss = {}, {}

    def step(name, function):
        start = time.perf_counter()
        value = function()
        steps[name] = time.perf_counter() - start
        rss[name] = status_mib("VmRSS")
        return value

    raw = step("open_raw_array", lambda: open_raw_array(spec, voxel_size=FAFB_VOXEL))
    setup = read_setup(SETUP_PATH)
    model = step("build p_setup52 (meta device)", lambda: meta_model(setup))
    plan = step("plan_prediction (default block)", lambda: plan_prediction(model, setup, raw.roi))
    task = plan.task
    num_blocks = step("count blocks", lambda: task.num_blocks)
    recipe = step("raw identity (metadata only)", lambda: {
        "stage": "predict", "raw": raw_identity(Path(spec).parent.parent, raw),
        "unit_shape": list(plan.unit_shape), "heads": list(model.heads), "dtype": "uint8",
    })  # fmt: skip
    out_store = root / "fafb_predictions.zarr"
    partial = partial_path(out_store)
    shutil.rmtree(partial, ignore_errors=True)
    work = BlockwiseWork(partial, task, recipe, done=MARKERS)
    step("work directory: empty FAFB store + done store", lambda: work.prepare(
        lambda path: create_prediction_store(path, plan, model.heads, "uint8")))  # fmt: skip
    chunk = DoneMarkers(partial / MARKERS).chunk_path
    markers = DoneMarkers(partial / MARKERS)
    done = step("rerun: open the done store + count done", markers.count)
    todo = step("rerun: scan all ids not done", lambda: sum(len(ids) for ids in markers.todo()))
    sample = 10**5

    def generate():
        made = 0
        for ids in markers.todo():
            for _block in task.blocks(ids[: sample - made]):
                made += 1
            if made >= sample:
                return made
        return made

    generated = step(f"generate {sample:,} blocks lazily", generate)
    markers.mark(np.arange(0, num_blocks, 2))  # half done: what a rerun's scan then finds
    step("rerun (half done): scan ids not done", lambda: sum(len(ids) for ids in markers.todo()))
    markers.close()
    planning_peak = status_mib("VmHWM")
    # p_setup52's training output (6 x 216 x 216) as the block: over the block limit
    try:
        small = BlockwiseTask(
            plan.total_roi,
            Coordinate(6, 216, 216) * plan.voxel_size,
            plan.context * plan.voxel_size,
            plan.voxel_size,
            fit="overhang",
        )
        small_text = f"{small.num_blocks} blocks"  # fmt: skip
    except SynfulError as exc:
        small_text = str(exc)
    from bench_predict import conv_flops  # the FLOP count the prediction benchmark uses

    flops = conv_flops(model, tuple(plan.block_input_shape))
    vector_setup = read_setup(VECTOR_SETUP_PATH)
    vector_flops = conv_flops(meta_model(vector_setup), tuple(plan.block_input_shape))
    out.update({
        "fafb_shape": list(FAFB_SHAPE), "voxel_size": list(FAFB_VOXEL),
        "raw_chunks": list(RAW_CHUNKS), "raw_files": sum(1 for _ in (Path(spec)).rglob("*")),
        "block_shape": list(plan.block_shape), "unit_shape": list(plan.unit_shape),
        "context": list(plan.context), "block_input_shape": list(plan.block_input_shape),
        "grid_shape": list(task.grid_shape), "num_blocks": num_blocks, "heads": list(model.heads),
        "steps_s": steps, "rss_mib": rss, "done_store_bytes": chunk.stat().st_size,
        "done_store_disk_bytes": chunk.stat().st_blocks * 512, "done_at_start": done,
        "todo_at_start": todo, "generated": generated,
        "work_files": sum(1 for p in partial.rglob("*") if p.is_file()),
        "block_6x216x216": small_text, "flops_per_block": flops,
        "vector_flops_per_block": vector_flops,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "rss_end_mib": status_mib("VmRSS"), "planning_peak_rss_mib": planning_peak, "peak_rss_mib": status_mib("VmHWM"),
        "output_voxels": int(np.prod(plan.output_shape)),
    })  # fmt: skip
    shutil.rmtree(partial, ignore_errors=True)
    return out


def tiny_checkpoint(root: Path) -> tuple[Path, dict]:
    """A randomly initialised tiny network at FAFB's voxel size, saved as a checkpoint."""
    import torch

    from synful.checkpoint import save_checkpoint
    from synful.models import build_model

    path = root / "tiny.pt"
    setup = dict(TINY_SETUP)
    model = build_model(setup)
    setup["input_shape"] = list(model.valid_input_shape((10, 20, 20)))
    if not path.exists():
        torch.manual_seed(0)
        save_checkpoint(path, model=build_model(setup), setup=setup, iteration=1)
    return path, setup


def predict_prepare_section(root: Path, grid) -> dict:
    """Fill the raw under the sub-volume of ``grid`` tiny blocks; print the sub-volume."""
    from synful.geometry import Coordinate
    from synful.models import build_model

    spec, _ = virtual_raw(root)
    checkpoint, setup = tiny_checkpoint(root)
    model = build_model(setup)
    unit = Coordinate(model.output_shape(setup["input_shape"]))
    context = (Coordinate(setup["input_shape"]) - unit) / 2
    roi = centre_roi(unit * Coordinate(FAFB_VOXEL), grid)
    fill = roi.grow(context * Coordinate(FAFB_VOXEL), context * Coordinate(FAFB_VOXEL))
    seconds = fill_raw(spec, fill)
    small = centre_roi(unit * Coordinate(FAFB_VOXEL), (1, 1, 2))  # start-up: 2 blocks
    return {"roi": roi_text(roi), "small_roi": roi_text(small), "unit": list(unit),
            "context": list(context), "fill_s": seconds, "checkpoint": str(checkpoint),
            "raw": spec}  # fmt: skip


def predict_direct_section(root: Path, blocks: int) -> dict:
    """Per-block times of the tiny network's blocks without any scheduler (1 thread)."""
    import numpy as np
    import torch

    from synful.geometry import Roi
    from synful.io.volumes import open_raw_array
    from synful.io.zarr_array import read
    from synful.predict import PredictBlock
    from synful.predict.block import predict_raw
    from synful.predict.output_store import create_prediction_store
    from synful.predict.plan import plan_prediction

    torch.set_num_threads(1)
    info = json.loads((root / "predict_info.json").read_text())
    from synful.checkpoint import load_checkpoint

    loaded = load_checkpoint(info["checkpoint"], device="cpu")
    raw = open_raw_array(info["raw"], voxel_size=FAFB_VOXEL)
    (z0, z1), (y0, y1), (x0, x1) = (tuple(map(int, a.split(":"))) for a in info["roi"].split(","))
    roi = Roi((z0, y0, x0), (z1 - z0, y1 - y0, x1 - x0))
    plan = plan_prediction(loaded.model, loaded.setup, raw.roi, roi=roi, block_shape=(1, 1, 1))
    task = plan.task
    heads = tuple(loaded.model.heads)
    ids = np.linspace(0, task.num_blocks - 1, min(blocks, task.num_blocks)).astype(int)

    def processor(name):
        out = root / f"direct-{name}.zarr"
        shutil.rmtree(out, ignore_errors=True)
        create_prediction_store(out, plan, heads, "uint8")
        block = PredictBlock(info["checkpoint"], info["raw"], str(out), heads, dtype="uint8",
                             device="cpu", threads=1)  # fmt: skip
        block.setup()
        return block

    def per_block(function) -> tuple[float, float]:
        """Wall and CPU seconds per block."""
        function(task.block_by_id(int(ids[0])))  # warm-up
        start, cpu = time.perf_counter(), time.process_time()
        for i in ids:
            function(task.block_by_id(int(i)))
        return ((time.perf_counter() - start) / len(ids),
                (time.process_time() - cpu) / len(ids))  # fmt: skip

    real = processor("real")
    full, full_cpu = per_block(real.process_block)
    raw_block = np.asarray(read(raw, task.block_by_id(0).read_roi, fill_value=0))
    forward, forward_cpu = per_block(lambda block: predict_raw(real._model, raw_block, "cpu"))
    stub = processor("stub")
    stub._model = StubNet(plan.block_shape, heads)  # everything but the network
    io, io_cpu = per_block(stub.process_block)
    return {"blocks_timed": len(ids), "process_block_s": full, "process_block_cpu_s": full_cpu,
            "forward_s": forward, "forward_cpu_s": forward_cpu, "io_s": io, "io_cpu_s": io_cpu,
            "num_blocks": task.num_blocks}  # fmt: skip


def fafb_block_section(root: Path) -> dict:
    """The GPU-free part of one FAFB-size p_setup52 block (and of its vector network's)."""
    from synful.io.volumes import open_raw_array
    from synful.io.zarr_array import read
    from synful.predict import PredictBlock
    from synful.predict.output_store import create_prediction_store
    from synful.predict.plan import plan_prediction

    spec, _ = virtual_raw(root)
    checkpoint, _ = tiny_checkpoint(root)
    raw = open_raw_array(spec, voxel_size=FAFB_VOXEL)
    setup = read_setup(SETUP_PATH)
    model = meta_model(setup)
    first = plan_prediction(model, setup, raw.roi)
    roi = centre_roi(first.block_shape * first.voxel_size, (1, 1, 1))
    plan = plan_prediction(model, setup, raw.roi, roi=roi)
    task = plan.task
    assert task.num_blocks == 1, task.num_blocks
    block = task.block_by_id(0)
    fill_s = fill_raw(spec, block.read_roi, seed=2)
    out = {"fill_raw_s": fill_s, "read_shape": list(plan.block_input_shape),
           "write_shape": list(plan.block_shape)}  # fmt: skip
    baseline = status_mib("VmRSS")
    from synful.models import normalize_raw

    raw_times, normalize_times = [], []
    for _ in range(2):
        start = time.perf_counter()
        data = read(raw, block.read_roi, fill_value=0)
        raw_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        normalize_raw(data)
        normalize_times.append(time.perf_counter() - start)
    out["read_raw_s"], out["normalize_s"] = min(raw_times), min(normalize_times)
    del data
    for heads in (("post_indicator",), ("partner_vectors",)):
        store = root / f"fafb-block-{heads[0]}.zarr"
        shutil.rmtree(store, ignore_errors=True)
        create_prediction_store(store, plan, heads, "uint8")
        processor = PredictBlock(str(checkpoint), spec, str(store), heads, dtype="uint8",
                                 device="cpu", threads=1)  # fmt: skip
        processor.setup()
        processor._model = StubNet(plan.block_shape, heads)  # no network: the GPU-free part
        times = []
        for _ in range(2):
            start = time.perf_counter()
            processor.process_block(block)
            times.append(time.perf_counter() - start)
        out[heads[0]] = {"seconds": min(times), "all_s": times,
                         "stored_bytes": sum(p.stat().st_size for p in store.rglob("*")
                                             if p.is_file())}  # fmt: skip
        del processor
        shutil.rmtree(store, ignore_errors=True)
    out["rss_baseline_mib"] = baseline
    out["peak_rss_mib"] = status_mib("VmHWM")
    return out


def blob_centres(shape, count: int, seed: int = 3):
    """``count`` blob centres (voxels) on a jittered lattice: at least 20 voxels apart in y and
    x and 4 in z, away from the faces."""
    import numpy as np

    rng = np.random.default_rng(seed)
    if count == 0:
        return np.zeros((0, 3), dtype=np.int64)
    zs = np.arange(4, shape[0] - 4, 8)
    ys = np.arange(40, shape[1] - 40, 80)
    xs = np.arange(40, shape[2] - 40, 80)
    lattice = np.stack(np.meshgrid(zs, ys, xs, indexing="ij"), -1).reshape(-1, 3)
    chosen = lattice[rng.choice(len(lattice), size=min(count, len(lattice)), replace=False)]
    jitter = rng.integers((-1, -20, -20), (2, 21, 21), size=chosen.shape)
    return chosen + jitter


def write_blobs(pred, vectors, centres, voxel_size) -> None:
    """Write a blob (probability 0.9, 3 sections of radius 6 voxels) and its partner vector
    around each centre."""
    import numpy as np

    from synful.geometry import Coordinate, Roi
    from synful.io.zarr_array import read

    zz, yy, xx = np.mgrid[-1:2, -6:7, -6:7]
    ball = ((zz / 1.5) ** 2 + (yy / 6.5) ** 2 + (xx / 6.5) ** 2) <= 1
    stored = (ball * 230).astype(np.uint8)
    vector = np.zeros((3, *ball.shape), np.int8)
    vector[1], vector[2] = 80, -48  # 320 nm in y, -192 nm in x at 0.25 per nm
    for centre in centres:
        roi = Roi(Coordinate(int(c) - r for c, r in zip(centre, (1, 6, 6))) * voxel_size,
                  Coordinate(ball.shape) * voxel_size)  # fmt: skip
        roi = roi.shift(pred.roi.begin)
        pred[roi] = np.maximum(stored, read(pred, roi))
        vectors[roi] = vector


def sparse_store(path: Path, shape, blobs: int, chunk_block) -> dict:
    """A prediction store of ``shape`` voxels at FAFB's voxel size: zero except ``blobs``
    blobs; chunks that hold no blob are never written."""
    from synful.geometry import Coordinate, Roi
    from synful.predict.output_store import create_prediction_store, open_prediction
    from synful.predict.plan import PredictPlan

    voxel_size = Coordinate(FAFB_VOXEL)
    shutil.rmtree(path, ignore_errors=True)
    offset = centre_roi(Coordinate(chunk_block) * voxel_size, (1, 1, 1)).begin
    plan = PredictPlan(voxel_size, Coordinate(chunk_block), Coordinate(chunk_block),
                       Coordinate(0, 0, 0), Roi(offset, Coordinate(shape) * voxel_size))  # fmt: skip
    create_prediction_store(path, plan, ("post_indicator", "partner_vectors"), "uint8")
    pred = open_prediction(path, "post_indicator", "r+")
    vectors = open_prediction(path, "partner_vectors", "r+")
    centres = blob_centres(shape, blobs)
    start = time.perf_counter()
    write_blobs(pred, vectors, centres, voxel_size)
    return {"blobs": len(centres), "write_s": time.perf_counter() - start,
            "files": sum(1 for p in path.rglob("*") if p.is_file())}  # fmt: skip


def extract_prepare_section(root: Path, shape, blobs: int, block) -> dict:
    # and a store of 2 blocks without blobs, for the start-up time
    sparse_store(root / "small.zarr", [b * m for b, m in zip(block, (1, 1, 2))], 0, block)
    return sparse_store(root / "sparse.zarr", shape, blobs, (8, 256, 256))


def extract_direct_section(root: Path, block_shape, blocks: int) -> dict:
    """Per-block time of ``ExtractBlocks.process_block`` without any scheduler."""
    import numpy as np

    from synful.extract.volume import ExtractBlocks, make_task
    from synful.predict.output_store import open_prediction
    from synful.settings.extract import ExtractConfig

    store = root / "sparse.zarr"
    pred = open_prediction(store, "post_indicator")
    config = ExtractConfig()
    task = make_task(pred.roi, pred.voxel_size, config, block_shape)
    tables = root / "direct-tables"
    shutil.rmtree(tables, ignore_errors=True)
    tables.mkdir()
    processor = ExtractBlocks(store, config, tables)
    processor.setup()
    ids = np.linspace(0, task.num_blocks - 1, min(blocks, task.num_blocks)).astype(int)
    processor.process_block(task.block_by_id(int(ids[0])))
    start, cpu = time.perf_counter(), time.process_time()
    for i in ids:
        processor.process_block(task.block_by_id(int(i)))
    seconds = (time.perf_counter() - start) / len(ids)
    cpu = (time.process_time() - cpu) / len(ids)
    shutil.rmtree(tables, ignore_errors=True)
    return {"blocks_timed": len(ids), "process_block_s": seconds, "process_block_cpu_s": cpu,
            "num_blocks": task.num_blocks}  # fmt: skip


def extract_block_section(root: Path) -> dict:
    """One FAFB-size extraction block (p_setup52's default prediction block) of a dense map."""
    import numpy as np

    from synful.extract.volume import ExtractBlocks, make_task
    from synful.geometry import Coordinate, Roi
    from synful.io.zarr_array import read
    from synful.predict.output_store import open_prediction
    from synful.settings.extract import ExtractConfig

    block = (48, 864, 864)
    config = ExtractConfig()
    context = config.context_for(FAFB_VOXEL) / Coordinate(FAFB_VOXEL)
    shape = tuple(b + 2 * c for b, c in zip(block, context))
    store = root / "dense-block.zarr"
    info = sparse_store(store, shape, 400, block)
    pred = open_prediction(store, "post_indicator", "r+")
    # dense: a low-probability background everywhere (below the 0.5 threshold), as a network's
    noise = np.random.default_rng(4).integers(0, 60, size=shape, dtype=np.uint8)
    pred[pred.roi] = np.maximum(noise, read(pred))
    # one block whose read ROI (block + context) is the whole store
    inner = Roi(
        pred.roi.begin + config.context_for(FAFB_VOXEL), Coordinate(block) * Coordinate(FAFB_VOXEL)
    )
    task = make_task(inner, pred.voxel_size, config, block)
    assert task.num_blocks == 1 and task.block_by_id(0).read_roi == pred.roi
    middle = task.block_by_id(0)
    tables = root / "dense-tables"
    shutil.rmtree(tables, ignore_errors=True)
    tables.mkdir()
    processor = ExtractBlocks(store, config, tables)
    processor.setup()
    times = []
    for _ in range(2):
        start = time.perf_counter()
        processor.process_block(middle)
        times.append(time.perf_counter() - start)
    import pandas as pd

    found = len(pd.read_parquet(processor.table_path(middle.block_id)))
    shutil.rmtree(store, ignore_errors=True)
    shutil.rmtree(tables, ignore_errors=True)
    return {"seconds": min(times), "all_s": times, "block": list(middle.write_roi.shape
            / Coordinate(FAFB_VOXEL)), "read": list(middle.read_roi.shape / Coordinate(FAFB_VOXEL)),
            "synapses": found, "blobs_in_store": info["blobs"],
            "peak_rss_mib": status_mib("VmHWM")}  # fmt: skip


SECTIONS = {
    "plan": lambda args: plan_section(args.root),
    "predict-prepare": lambda args: predict_prepare_section(args.root, args.predict_grid),
    "predict-direct": lambda args: predict_direct_section(args.root, args.direct_blocks),
    "fafb-block": lambda args: fafb_block_section(args.root),
    "extract-prepare": lambda args: extract_prepare_section(args.root, args.extract_shape,
                                                            args.blobs, args.extract_block),
    "extract-direct": lambda args: extract_direct_section(args.root, args.extract_block,
                                                          args.direct_blocks),
    "extract-block": lambda args: extract_block_section(args.root),
}  # fmt: skip


# --- the benchmark --------------------------------------------------------------------------


def hours(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--predict-grid",
        type=int,
        nargs=3,
        default=[10, 32, 32],
        help="tiny prediction blocks (z y x) of the sub-volume (default 10 32 32)",
    )
    parser.add_argument(
        "--extract-shape",
        type=int,
        nargs=3,
        default=[40, 2048, 2560],
        help="voxels of the sparse prediction store (default 40 2048 2560)",
    )
    parser.add_argument(
        "--extract-block",
        type=int,
        nargs=3,
        default=[2, 32, 32],
        help="extraction block (voxels; default 2 32 32: 102,400 blocks)",
    )
    parser.add_argument("--blobs", type=int, default=300, help="blobs in the sparse store")
    parser.add_argument("--workers", type=int, default=2, help="local dask worker processes")
    parser.add_argument(
        "--direct-blocks",
        type=int,
        default=1000,
        help="blocks timed without a scheduler (default 1000)",
    )
    parser.add_argument("--gpus", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--section", choices=sorted(SECTIONS), help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)  # fmt: skip
    if args.section:
        print(json.dumps(SECTIONS[args.section](args)))
        return
    with tempfile.TemporaryDirectory(prefix="bench_scale-") as tmp:
        report(args, Path(tmp))


def report(args, root: Path) -> None:
    args.root = root
    W = args.workers
    loads = [load_text()]
    print(f"load at start: {loads[0]}", flush=True)

    # 1. plan
    plan = section("plan", root)
    print(f"\n## 1. Planning FAFB ({' x '.join(map(str, FAFB_SHAPE))} voxels at "
          f"{' x '.join(map(str, FAFB_VOXEL))} nm, virtual raw: {plan['raw_files']} files, "
          f"no chunk; created in {plan['create_virtual_raw_s']:.2f} s)")  # fmt: skip
    print(f"p_setup52 ({plan['params_m']:.1f} M parameters, heads {plan['heads']}): default block "
          f"{tuple(plan['block_shape'])} voxels (input {tuple(plan['block_input_shape'])}, "
          f"context {tuple(plan['context'])}), grid {tuple(plan['grid_shape'])} = "
          f"{plan['num_blocks']:,} blocks")  # fmt: skip
    print(f"  {'step':<48} {'time':>9}   RSS after")
    for name, seconds in plan["steps_s"].items():
        print(f"  {name:<48} {seconds:9.3f} s {plan['rss_mib'][name]:6.0f} MiB")
    print(f"  done store: {plan['done_store_bytes'] / 1e6:.2f} MB ({plan['done_store_disk_bytes'] / 1e6:.2f} "
          f"MB on disk); work directory {plan['work_files']} files; ids not done at start "
          f"{plan['todo_at_start']:,}")  # fmt: skip
    print(f"  RSS after imports (torch, zarr, synful) {plan['rss_after_imports_mib']:.0f} MiB; peak "
          f"until here {plan['planning_peak_rss_mib']:.0f} MiB; peak with the FLOP count of two "
          f"meta networks {plan['peak_rss_mib']:.0f} MiB")  # fmt: skip
    print(f"  block = p_setup52's training output 6 x 216 x 216: {plan['block_6x216x216']}")

    # 2. prediction, tiny network
    info = section("predict-prepare", root, "--predict-grid", *map(str, args.predict_grid))
    (root / "predict_info.json").write_text(json.dumps(info))
    out = root / "sub.zarr"

    def predict_cli(roi: str, store: Path) -> dict:
        return run_measured(cli_command(
            "predict", info["checkpoint"], info["raw"], str(store), "--roi", roi,
            "--block-shape", "1", "1", "1", "--device", "cpu", "--workers", str(W), "--quiet",
        ))  # fmt: skip

    small_run = predict_cli(info["small_roi"], root / "small-predictions.zarr")
    startup, startup_cpu = small_run["seconds"], small_run["cpu_s"]
    loads.append(load_text())
    predict_volume = predict_cli(info["roi"], out)
    import zarr

    written = zarr.open_array(str(out / "post_indicator"))
    assert written.nchunks_initialized > 0
    direct = section("predict-direct", root, "--direct-blocks", str(args.direct_blocks))
    blocks = direct["num_blocks"]
    steady = (predict_volume["seconds"] - startup) / (blocks - 2)
    # CPU seconds of all processes (client and workers) per block after start-up: what a block
    # costs whatever else runs on the machine's cores
    cpu = (predict_volume["cpu_s"] - startup_cpu) / (blocks - 2)
    print(f"\n## 2. Prediction, tiny network ({info['unit']} voxels per block, context "
          f"{info['context']}), {blocks:,} blocks of a FAFB sub-volume, {W} local workers "
          f"(1 torch thread each), CPU; load {loads[-1]}")  # fmt: skip
    print(f"  synful predict: {predict_volume['seconds']:.1f} s = {1000 * predict_volume['seconds'] / blocks:.2f}"
          f" ms/block wall; after {startup:.1f} s start-up (a 2-block run) {1000 * steady:.2f} "
          f"ms/block wall, {1000 * cpu:.2f} ms CPU (all processes); peak RSS largest "
          f"process {predict_volume['maxrss_mib']:.0f} MiB, all processes {predict_volume['tree_peak_mib']:.0f} MiB")  # fmt: skip
    print(f"  without a scheduler, {direct['blocks_timed']} blocks, CPU (wall) per block: "
          f"process_block {1000 * direct['process_block_cpu_s']:.2f} ({1000 * direct['process_block_s']:.2f}) ms;"
          f" network forward alone {1000 * direct['forward_cpu_s']:.2f} ({1000 * direct['forward_s']:.2f}) ms;"
          f" process_block with a stub network {1000 * direct['io_cpu_s']:.2f} ({1000 * direct['io_s']:.2f}) ms")  # fmt: skip
    bookkeeping = max(0.0, cpu - direct["process_block_cpu_s"])
    print(f"  => scheduler + done store + dask messages (CPU of all processes beyond process_block):"
          f" {1000 * bookkeeping:.2f} ms per block")  # fmt: skip

    # 3. a FAFB-size block without the network
    fafb = section("fafb-block", root)
    io_mask = fafb["post_indicator"]["seconds"]
    io_vectors = fafb["partner_vectors"]["seconds"]
    print(
        f"\n## 3. One FAFB-size block, GPU-free part (raw {tuple(fafb['read_shape'])} read, "
        f"{tuple(fafb['write_shape'])} written, stub network), 1 thread; load {load_text()}"
    )
    print(f"  p_setup52 (post_indicator, uint8): {io_mask:.2f} s/block; p_setup10 "
          f"(partner_vectors, int8 x 3): {io_vectors:.2f} s/block; peak RSS "
          f"{fafb['peak_rss_mib']:.0f} MiB")  # fmt: skip
    print(f"  of which raw read {fafb['read_raw_s']:.2f} s and normalisation "
          f"{fafb['normalize_s']:.2f} s (measured alone); the rest: the sigmoid (on the GPU in a "
          f"real run), encoding, the sharded write")  # fmt: skip

    # 4. extraction over a sparse store
    sparse = section("extract-prepare", root, "--extract-shape", *map(str, args.extract_shape),
                     "--blobs", str(args.blobs), "--extract-block",
                     *map(str, args.extract_block))  # fmt: skip
    table = root / "synapses.parquet"

    def extract_cli(store: Path, out: Path) -> dict:
        return run_measured(cli_command(
            "extract", str(store), str(out), "--block-shape", *map(str, args.extract_block),
            "--workers", str(W), "--quiet",
        ))  # fmt: skip

    e_small = extract_cli(root / "small.zarr", root / "small.parquet")
    e_startup, e_startup_cpu = e_small["seconds"], e_small["cpu_s"]
    loads.append(load_text())
    extract_run = extract_cli(root / "sparse.zarr", table)
    import pandas as pd

    found = len(pd.read_parquet(table))
    edirect = section("extract-direct", root, "--extract-block", *map(str, args.extract_block),
                      "--direct-blocks", str(args.direct_blocks))  # fmt: skip
    eblocks = edirect["num_blocks"]
    e_steady = (extract_run["seconds"] - e_startup) / (eblocks - 2)
    e_cpu = (extract_run["cpu_s"] - e_startup_cpu) / (eblocks - 2)
    print(f"\n## 4. Extraction over a sparse prediction store ({' x '.join(map(str, args.extract_shape))}"
          f" voxels, {sparse['blobs']} blobs, {sparse['files']} files), {eblocks:,} blocks of "
          f"{tuple(args.extract_block)}, {W} local workers; load {loads[-1]}")  # fmt: skip
    print(f"  synful extract: {extract_run['seconds']:.1f} s = {1000 * extract_run['seconds'] / eblocks:.2f}"
          f" ms/block wall; after {e_startup:.1f} s start-up (a 2-block run) {1000 * e_steady:.2f} "
          f"ms/block wall, {1000 * e_cpu:.2f} ms CPU (all processes; table merge included);"
          f" peak RSS largest process {extract_run['maxrss_mib']:.0f} MiB, all processes "
          f"{extract_run['tree_peak_mib']:.0f} MiB; {found} synapses for {sparse['blobs']} blobs")  # fmt: skip
    print(f"  without a scheduler, {edirect['blocks_timed']} blocks: process_block "
          f"{1000 * edirect['process_block_cpu_s']:.2f} ms CPU ({1000 * edirect['process_block_s']:.2f}"
          f" ms wall)")  # fmt: skip
    eblock = section("extract-block", root)
    print(f"  one FAFB-size extraction block {tuple(eblock['block'])} (read {tuple(eblock['read'])}),"
          f" dense map: {eblock['seconds']:.2f} s ({eblock['synapses']} synapses); peak RSS "
          f"{eblock['peak_rss_mib']:.0f} MiB")  # fmt: skip
    e_bookkeeping = max(0.0, e_cpu - edirect["process_block_cpu_s"])
    print(f"  => scheduler + done store + dask messages + table merge (CPU beyond process_block): "
          f"{1000 * e_bookkeeping:.2f} ms per block")  # fmt: skip

    # 5. projection
    n = plan["num_blocks"]
    out_voxels = math.prod(plan["block_shape"])
    gpu_paper = PAPER_SECONDS_PER_CUBE * out_voxels / CREMI_CUBE_VOXELS
    gpu_flops = plan["flops_per_block"] / ASSUMED_GPU_FLOPS
    overhead = io_mask + bookkeeping
    print(
        f"\n## 5. Whole FAFB, p_setup52 (post_indicator), {n:,} blocks of "
        f"{tuple(plan['block_shape'])}; load at the end {load_text()}"
    )
    print(
        f"  GPU-free overhead per block (measured): {overhead:.2f} s = I/O {io_mask:.2f} s "
        f"(section 3) + scheduler/done store {1000 * bookkeeping:.2f} ms (section 2)"
    )
    print(f"  GPU time per block, assumption A (the paper: {PAPER_SECONDS_PER_CUBE / 60:.0f} min per "
          f"CREMI cube, by output voxels): {gpu_paper:.1f} s; assumption B "
          f"({plan['flops_per_block'] / 1e12:.2f} TFLOP counted / {ASSUMED_GPU_FLOPS / 1e12:.0f} "
          f"TFLOP/s assumed): {gpu_flops:.2f} s")  # fmt: skip
    header = (
        f"  {'GPUs':>5} | {'overhead only':>14} | {'A: GPU':>9} | {'A: total':>9} | "
        f"{'B: GPU':>9} | {'B: total':>9} | {'B: raw read rate':>16}"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    read_bytes = math.prod(plan["block_input_shape"])
    for gpus in args.gpus:
        rate = gpus * read_bytes / (gpu_flops + overhead) / 1e9
        print(f"  {gpus:>5} | {hours(n * overhead / gpus):>14} | {hours(n * gpu_paper / gpus):>9} | "
              f"{hours(n * (gpu_paper + overhead) / gpus):>9} | {hours(n * gpu_flops / gpus):>9} | "
              f"{hours(n * (gpu_flops + overhead) / gpus):>9} | {rate:>11.2f} GB/s")  # fmt: skip
    print(f"  B: the GPU is busy {gpu_flops / (gpu_flops + overhead):.0%} of a block's time (blocks "
          f"are read, predicted and written in turn by one worker process per GPU)")  # fmt: skip
    vector_overhead = io_vectors + bookkeeping
    vector_gpu = plan["vector_flops_per_block"] / ASSUMED_GPU_FLOPS
    print(f"  p_setup10 (the published pair's vector network, "
          f"{plan['vector_flops_per_block'] / 1e12:.2f} TFLOP/block, I/O {io_vectors:.2f} s/block) "
          f"as well, total on " + ", ".join(
              f"{g} GPUs: A {hours(n * (2 * gpu_paper + overhead + vector_overhead) / g)}, "
              f"B {hours(n * (gpu_flops + vector_gpu + overhead + vector_overhead) / g)}"
              for g in args.gpus))  # fmt: skip
    e_total = n * (eblock["seconds"] + e_bookkeeping)
    print(
        f"  extraction at the same blocks: {eblock['seconds']:.2f} + {1000 * e_bookkeeping:.2f} ms "
        f"per block = {e_total / 3600:,.0f} CPU-core hours ({hours(e_total / 64)} on 64 cores)"
    )
    print(
        f"  client bookkeeping for {n:,} blocks: {hours(n * 0.009e-3)} at bench_blockwise's "
        f"0.009 ms/block (docs/architecture.md; not rerun here); done store "
        f"{plan['done_store_bytes'] / 1e6:.1f} MB"
    )


if __name__ == "__main__":
    main()
