"""Local dask clusters give each worker a memory limit; a worker that exceeds it is restarted."""

import sys
import time

import cloudpickle
import dask
import numpy as np
import pytest
from distributed.system import MEMORY_LIMIT

from synful.blockwise import BlockwiseError, BlockwiseTask, DoneMarkers, dask_client, run_blockwise
from synful.blockwise.scheduler import worker_memory_limit
from synful.errors import SynfulError
from synful.geometry import Coordinate, Roi

# worker processes cannot import this test module: ship its functions by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def worker_limits(client):
    return client.run(
        lambda dask_worker: (
            dask_worker.memory_manager.memory_limit,
            dask_worker.memory_manager.memory_pause_fraction,
        )
    )


def test_local_processes_share_the_memory(monkeypatch):
    monkeypatch.delenv("SYNFUL_WORKER_MEMORY", raising=False)
    with dask_client(2, "processes") as client:
        limits = worker_limits(client)
    assert sorted(limits.values()) == [(MEMORY_LIMIT // 2, False)] * 2


def test_worker_memory_from_the_environment(monkeypatch):
    monkeypatch.setenv("SYNFUL_WORKER_MEMORY", "1.5GiB")
    assert worker_memory_limit(4) == worker_memory_limit(1, processes=False) == 3 << 29
    monkeypatch.delenv("SYNFUL_WORKER_MEMORY")
    assert worker_memory_limit(4) == MEMORY_LIMIT // 4
    assert worker_memory_limit(4, processes=False) == MEMORY_LIMIT  # threads share a process
    for bad in ("lots", "-1GB", "0"):
        monkeypatch.setenv("SYNFUL_WORKER_MEMORY", bad)
        with pytest.raises(SynfulError, match="SYNFUL_WORKER_MEMORY: expected a size"):
            worker_memory_limit(2)


def greedy(block):
    """Block 1 takes 3 GiB for a few seconds; the others take nothing."""
    if block.block_id == 1:
        hog = np.ones(3 << 30, dtype=np.uint8)
        time.sleep(4)
        del hog


@pytest.mark.skipif(MEMORY_LIMIT < 8 << 30, reason="needs 8 GiB of memory to exceed 1 GiB safely")
def test_a_worker_over_its_limit_is_restarted_and_its_block_fails(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNFUL_WORKER_MEMORY", "1GiB")
    vs = Coordinate(1, 1, 1)
    task = BlockwiseTask(Roi((0, 0, 0), (3, 1, 1)), vs, Coordinate(0, 0, 0), vs)
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        pytest.raises(BlockwiseError) as info,
    ):
        run_blockwise(
            task, greedy, done_dir=tmp_path / "done", workers=2, scheduler="processes",
            progress=False,
        )  # fmt: skip
    assert "1 of 3 blocks failed" in str(info.value) and "KilledWorker" in str(info.value)
    assert DoneMarkers(tmp_path / "done").done_ids() == {0, 2}
