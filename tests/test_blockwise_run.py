"""run_blockwise: serial and dask schedulers, context, done markers, resume, retries."""

import os
import sys

import cloudpickle
import numpy as np
import pytest
import zarr
from scipy import ndimage

from synful.blockwise import (
    BlockwiseError,
    BlockwiseTask,
    DoneMarkers,
    run_blockwise,
)
from synful.errors import SynfulError
from synful.geometry import Coordinate, Roi
from synful.io.zarr_array import create_volume, open_array, read, write_volume

# worker processes cannot import this test module: ship its classes by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])

VOXEL = Coordinate(2, 1, 1)


class NeighbourSum:
    """Toy processor: 3x3x3 box sum of the input (needs a 1-voxel context).

    Args:
        source: input store; target: output store; calls_dir: one file per processed block
        and per setup() call, to count work done across processes.
    """

    def __init__(self, source, target, calls_dir, fail_after=None):
        self.source = str(source)
        self.target = str(target)
        self.calls_dir = str(calls_dir)
        self.fail_after = fail_after
        self.input = None

    def setup(self):
        self.input = open_array(self.source, "raw")
        self.output = open_array(self.target, "sum", mode="r+")
        open(os.path.join(self.calls_dir, f"setup-{os.getpid()}-{id(self)}"), "w").close()

    def process_block(self, block):
        if self.fail_after is not None:
            done = len([p for p in os.listdir(self.calls_dir) if p.startswith("block-")])
            if done >= self.fail_after:
                raise RuntimeError("simulated crash")
        data = read(self.input, block.read_roi).astype(np.int64)
        summed = ndimage.uniform_filter(data.astype(np.float64), size=3, mode="constant") * 27
        inner = tuple(slice(1, -1) for _ in range(3))
        result = np.rint(summed[inner]).astype(np.int64)
        self.output[block.write_roi] = result[: block.write_roi.shape[0] // VOXEL[0]]
        open(os.path.join(self.calls_dir, f"block-{block.block_id}"), "a").write("x")


@pytest.fixture
def volumes(tmp_path):
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 255, size=(9, 14, 11), dtype=np.uint8)
    offset = Coordinate(20, 10, 0)
    source = tmp_path / "in.zarr"
    write_volume(zarr.open_group(str(source), mode="w"), "raw", raw, VOXEL, offset)
    target = tmp_path / "out.zarr"
    block = Coordinate(4, 5, 6)
    create_volume(
        zarr.open_group(str(target), mode="w"),
        "sum",
        shape=raw.shape,
        dtype=np.int64,
        voxel_size=VOXEL,
        offset=offset,
        chunks=block,
    )
    calls = tmp_path / "calls"
    calls.mkdir()
    task = BlockwiseTask(
        total_roi=Roi(offset, Coordinate(raw.shape) * VOXEL),
        block_size=block * VOXEL,
        context=VOXEL,
        voxel_size=VOXEL,
    )
    expected = np.rint(
        ndimage.uniform_filter(raw.astype(np.float64), size=3, mode="constant") * 27
    ).astype(np.int64)
    return task, source, target, calls, expected


def block_calls(calls_dir):
    return sorted(
        int(p.name.split("-")[1]) for p in calls_dir.iterdir() if p.name.startswith("block-")
    )


def setups(calls_dir):
    return [p for p in calls_dir.iterdir() if p.name.startswith("setup-")]


@pytest.mark.parametrize("scheduler,workers", [(None, 1), ("threads", 2), ("processes", 2)])
def test_blockwise_equals_whole_volume(volumes, tmp_path, scheduler, workers):
    """Every block is processed once, with context, and the result equals the whole volume."""
    task, source, target, calls, expected = volumes
    processor = NeighbourSum(source, target, calls)
    done_dir = tmp_path / "done"
    result = run_blockwise(
        task, processor, done_dir=done_dir, workers=workers, scheduler=scheduler, progress=False
    )
    assert (result.num_blocks, result.skipped, result.processed) == (
        task.num_blocks,
        0,
        task.num_blocks,
    )
    np.testing.assert_array_equal(read(open_array(target, "sum")), expected)
    assert block_calls(calls) == list(range(task.num_blocks))
    # set up once per worker process (threads share one process), never per block
    assert 1 <= len(setups(calls)) <= (workers if scheduler == "processes" else 1)
    markers = DoneMarkers(done_dir)
    assert markers.done_ids() == set(range(task.num_blocks)) and markers.is_complete()


def test_processor_runs_without_a_scheduler(volumes):
    """A block processor is testable directly: setup() then process_block(block)."""
    task, source, target, calls, expected = volumes
    processor = NeighbourSum(source, target, calls)
    processor.setup()
    block = task.block((1, 1, 1))
    processor.process_block(block)
    written = read(open_array(target, "sum"), block.write_roi)
    sl = tuple(
        slice(b // v, e // v)
        for b, e, v in zip(
            block.write_roi.begin - task.total_roi.begin,
            block.write_roi.end - task.total_roi.begin,
            VOXEL,
        )
    )
    np.testing.assert_array_equal(written, expected[sl])


@pytest.mark.parametrize("scheduler,workers", [(None, 1), ("threads", 2)])
def test_resume_after_crash_redoes_no_finished_block(volumes, tmp_path, scheduler, workers):
    task, source, target, calls, expected = volumes
    done_dir = tmp_path / "done"
    crashing = NeighbourSum(source, target, calls, fail_after=5)
    with pytest.raises(BlockwiseError, match="of 18 blocks failed.*simulated crash") as error:
        run_blockwise(
            task,
            crashing,
            done_dir=done_dir,
            workers=workers,
            scheduler=scheduler,
            progress=False,
            max_retries=1,
        )
    markers = DoneMarkers(done_dir)
    first = set(block_calls(calls))
    # two threads may both pass the "5 done" check: 5 or 6 blocks finish
    assert markers.done_ids() == first and 5 <= len(first) <= 4 + workers
    assert str(error.value).split(": ")[1].startswith(f"{18 - len(first)} of 18 blocks failed")
    assert not markers.is_complete()
    result = run_blockwise(
        task,
        NeighbourSum(source, target, calls),
        done_dir=done_dir,
        workers=workers,
        scheduler=scheduler,
        progress=False,
    )
    assert (result.skipped, result.processed) == (len(first), 18 - len(first))
    assert block_calls(calls) == list(range(task.num_blocks))  # each block exactly once
    assert markers.is_complete()
    np.testing.assert_array_equal(read(open_array(target, "sum")), expected)
    # a third run does nothing
    result = run_blockwise(
        task, NeighbourSum(source, target, calls), done_dir=done_dir, progress=False
    )
    assert (result.skipped, result.processed) == (18, 0)


class Flaky:
    """Fails the first attempt at every block (retries must absorb it)."""

    def __init__(self, calls_dir):
        self.calls_dir = str(calls_dir)

    def __call__(self, block):
        path = os.path.join(self.calls_dir, f"attempt-{block.block_id}")
        first = not os.path.exists(path)
        open(path, "a").write("x")
        if first:
            raise OSError("transient")


@pytest.mark.parametrize("scheduler,workers", [(None, 1), ("threads", 2)])
def test_failed_blocks_are_retried(volumes, tmp_path, scheduler, workers):
    task, *_, calls, _ = volumes
    result = run_blockwise(
        task,
        Flaky(calls),
        done_dir=tmp_path / "done",
        workers=workers,
        scheduler=scheduler,
        progress=False,
        max_retries=1,
    )
    assert result.processed == task.num_blocks
    sizes = [os.path.getsize(calls / f"attempt-{i}") for i in range(task.num_blocks)]
    assert sizes == [2] * task.num_blocks


def test_done_blocks_of_another_task_or_recipe_are_never_reused(volumes, tmp_path):
    task, *_ = volumes
    done_dir = tmp_path / "done"
    run_blockwise(task, lambda block: None, done_dir=done_dir, progress=False, recipe={"a": 1})
    other = BlockwiseTask(task.total_roi, task.block_size * 2, task.context, task.voxel_size)
    # the identity's stored key keeps its historical name "block_shape" (it holds nm)
    with pytest.raises(
        SynfulError, match=r"another run \(block_shape differ\); rerun with --restart"
    ):
        run_blockwise(other, lambda block: None, done_dir=done_dir, progress=False, recipe={"a": 1})
    with pytest.raises(SynfulError, match=r"another run \(a, b differ\)"):
        run_blockwise(task, lambda block: None, done_dir=done_dir, progress=False, recipe={"b": 1})
    calls = []
    result = run_blockwise(other, calls.append, done_dir=done_dir, progress=False, restart=True)
    assert (result.skipped, result.processed) == (0, other.num_blocks) == (0, len(calls))
    assert DoneMarkers(done_dir).identity()["task"] == other.to_dict()


def test_the_done_store_is_a_few_files_read_lazily(volumes, tmp_path):
    task, *_ = volumes
    markers = DoneMarkers(tmp_path / "done")
    assert markers.bind(task) == 0
    markers.mark(task.block_by_id(0))
    markers.mark(range(3, 6))
    markers.mark(np.array([17]))
    assert markers.done_ids() == {0, 3, 4, 5, 17} and markers.count() == 5
    assert not markers.is_complete()
    todo = np.concatenate(list(markers.todo(chunk=4)))
    assert todo.tolist() == [1, 2] + list(range(6, 17))
    markers.unmark([4])
    markers.close()
    again = DoneMarkers(tmp_path / "done")
    assert again.bind(task) == 4 and not again.is_done(4) and again.is_done(17)
    files = [p for p in (tmp_path / "done").rglob("*") if p.is_file()]
    assert sorted(p.name for p in files) == ["0", "identity.json", "zarr.json"]
    # the store is a plain zarr array: readable without synful
    assert zarr.open_array(str(tmp_path / "done" / "done"), mode="r")[:].sum() == 4


def test_a_second_run_on_the_same_done_store_fails_at_once(volumes, tmp_path):
    """The done store is locked while a run uses it (flock: held per open file)."""
    import fcntl

    from synful.outputs import lock_path

    task, *_ = volumes
    done_dir = tmp_path / "done"
    fd = os.open(lock_path(done_dir), os.O_RDWR | os.O_CREAT)
    os.write(fd, b"pid 12345 on elsewhere")
    fcntl.flock(fd, fcntl.LOCK_EX)  # as another run holds it
    try:
        with pytest.raises(SynfulError, match="another synful run .pid 12345 on elsewhere"):
            run_blockwise(task, lambda block: None, done_dir=done_dir, progress=False)
    finally:
        os.close(fd)
    assert not done_dir.exists()
    assert (
        run_blockwise(task, lambda block: None, done_dir=done_dir, progress=False).processed == 18
    )


def test_existing_cluster_by_address(volumes, tmp_path):
    """``scheduler=ADDRESS`` connects to a running dask cluster (as with dask-jobqueue)."""
    import distributed

    task, source, target, calls, expected = volumes
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        result = run_blockwise(
            task,
            NeighbourSum(source, target, calls),
            done_dir=tmp_path / "done",
            scheduler=cluster.scheduler_address,
            progress=False,
        )
        assert result.processed == task.num_blocks
    np.testing.assert_array_equal(read(open_array(target, "sum")), expected)


def test_scheduler_file_and_unknown_scheduler(volumes, tmp_path):
    """A scheduler file (``dask scheduler --scheduler-file``) works; a bad name is an error."""
    import distributed

    task, source, target, calls, expected = volumes
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.write_scheduler_file(str(tmp_path / "scheduler.json"))
        run_blockwise(
            task,
            NeighbourSum(source, target, calls),
            done_dir=tmp_path / "done",
            scheduler=str(tmp_path / "scheduler.json"),
            progress=False,
        )
    np.testing.assert_array_equal(read(open_array(target, "sum")), expected)
    with pytest.raises(SynfulError, match="unknown scheduler"):
        run_blockwise(task, lambda block: None, done_dir=tmp_path / "d2", scheduler="thread")
    with pytest.raises(SynfulError, match="no such dask scheduler file"):
        run_blockwise(task, lambda block: None, done_dir=tmp_path / "d3", scheduler="x.json")


def test_a_single_block_runs_in_this_process_whatever_the_workers(tmp_path):
    """A local cluster never gets more workers than blocks to do: one block, no cluster."""
    task = BlockwiseTask(Roi((0, 0, 0), (4, 4, 4)), (4, 4, 4), (0, 0, 0), VOXEL)
    pids = []
    result = run_blockwise(
        task,
        lambda block: pids.append(os.getpid()),
        done_dir=tmp_path / "done",
        workers=4,
        progress=False,
    )
    assert result.processed == 1 and pids == [os.getpid()]
