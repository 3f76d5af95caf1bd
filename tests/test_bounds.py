"""Sizes that would exhaust memory or disk are one-line errors before anything is allocated."""

import time

import pytest
import zarr

from synful.blockwise import BlockwiseTask
from synful.blockwise.task import MAX_BLOCKS
from synful.cli import main
from synful.errors import SynfulError
from synful.geometry import Coordinate, Roi
from synful.io.zarr_array import create_volume
from synful.synthetic.sample import (
    BYTES_PER_VOXEL,
    estimated_bytes,
    memory_limit,
    synthesize_sample,
)


def run_cli(capsys, *argv):
    start = time.perf_counter()
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err, time.perf_counter() - start


def test_huge_synthetic_shape_is_refused_at_once(tmp_path, capsys):
    out = tmp_path / "s.hdf"
    code, err, seconds = run_cli(capsys, "synthesize", out, "--shape", 10**5, 10**5, 10**5)
    assert code == 1 and err.count("\n") == 1 and seconds < 5, err
    assert err.startswith(
        "synful: error: a synthetic sample of 100016x100192x100192 voxels (shape plus padding) "
        "needs about "
    )
    assert "GiB of memory, more than the" in err and err.endswith(
        "use a smaller shape or padding\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_synthetic_memory_estimate_and_limit():
    assert estimated_bytes((4, 40, 40), (1, 2, 2)) == 6 * 44 * 44 * BYTES_PER_VOXEL
    assert memory_limit() > 2**28  # this machine (or job) has memory
    # a limit below the estimate refuses before generating, one at or above it generates
    needed = estimated_bytes((4, 40, 40), (0, 0, 0))
    with pytest.raises(SynfulError, match=r"needs about 0\.0 GiB of memory"):
        synthesize_sample(shape=(4, 40, 40), padding=(0, 0, 0), max_bytes=needed - 1)
    sample = synthesize_sample(shape=(4, 40, 40), padding=(0, 0, 0), max_bytes=needed)
    assert sample.raw.data.shape == (4, 40, 40)


def grid_task(grid, block=(1, 1, 1)):
    vs = Coordinate(40, 4, 4)
    return BlockwiseTask(
        total_roi=Roi((0, 0, 0), Coordinate(g * b for g, b in zip(grid, block)) * vs),
        block_size=Coordinate(block) * vs,
        context=Coordinate(0, 0, 0),
        voxel_size=vs,
    )


def test_block_count_is_bounded():
    assert grid_task((100, 1000, 1000)).num_blocks == MAX_BLOCKS == 10**8  # allowed: the limit
    assert grid_task((10, 1000, 1000)).num_blocks == 10**7
    with pytest.raises(SynfulError) as info:
        grid_task((101, 1000, 1000), block=(1, 2, 2))
    assert str(info.value) == (
        "a block shape of 1x2x2 voxels makes 101000000 blocks over 101x2000x2000 voxels, more "
        "than the limit of 100,000,000: use a larger block shape"
    )


def test_extract_with_tiny_blocks_on_a_large_volume_is_a_one_line_error(tmp_path, capsys):
    # 500^3 voxels of predictions (the chunks are never written, so the store is tiny)
    pred = tmp_path / "pred.zarr"
    group = zarr.open_group(str(pred), mode="w")
    shape, vs = (500, 500, 500), (40, 4, 4)
    create_volume(group, "post_indicator", shape=shape, dtype="float32", voxel_size=vs,
                  offset=(0, 0, 0))  # fmt: skip
    create_volume(group, "partner_vectors", shape=(3, *shape), dtype="float32", voxel_size=vs,
                  offset=(0, 0, 0), channels=1)  # fmt: skip
    out = tmp_path / "syn.parquet"
    code, err, seconds = run_cli(capsys, "extract", pred, out, "--block-shape", 1, 1, 1)
    assert code == 1 and seconds < 30, err
    assert err == (
        "synful: error: a block shape of 1x1x1 voxels makes 125000000 blocks over 500x500x500 "
        "voxels, more than the limit of 100,000,000: use a larger block shape\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.zarr"]
