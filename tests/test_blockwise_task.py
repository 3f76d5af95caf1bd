"""Block geometry: tiling, context, border fit, ownership."""

import numpy as np
import pytest

from synful.blockwise import BlockwiseTask
from synful.geometry import Coordinate, Roi, points_in_roi


def make_task(fit="shrink", shape=(10, 20, 30), block=(4, 8, 12), context=(1, 2, 3)):
    vs = Coordinate(2, 1, 1)
    return BlockwiseTask(
        total_roi=Roi(Coordinate(100, 50, 0), Coordinate(shape) * vs),
        block_size=Coordinate(block) * vs,
        context=Coordinate(context) * vs,
        voxel_size=vs,
        fit=fit,
    )


def test_shrink_blocks_tile_the_total_roi_exactly():
    """Shrunk write ROIs are disjoint, inside the total ROI, and cover it."""
    task = make_task()
    blocks = list(task.blocks())
    assert task.grid_shape == (3, 3, 3) and len(blocks) == task.num_blocks == 27
    assert [b.block_id for b in blocks] == list(range(27))
    covered = sum(b.write_roi.size for b in blocks)
    assert covered == task.total_roi.size
    for b in blocks:
        assert task.total_roi.contains(b.write_roi)
        assert b.read_roi == b.write_roi.grow(task.context, task.context)
        offset = (b.write_roi.begin - task.total_roi.begin) % task.block_size
        assert offset == Coordinate(0, 0, 0)  # begins on the block grid: chunk-aligned
    last = task.block((2, 2, 2))
    assert last.write_roi.end == task.total_roi.end
    assert last.write_roi.shape == Coordinate(2, 4, 6) * task.voxel_size


def test_overhang_blocks_keep_their_shape():
    task = make_task(fit="overhang")
    for b in task.blocks():
        assert b.write_roi.shape == task.block_size
    assert task.total_write_roi.shape == Coordinate(12, 24, 36) * task.voxel_size
    assert task.total_read_roi == task.total_write_roi.grow(task.context, task.context)


@pytest.mark.parametrize("fit", ["shrink", "overhang"])
def test_every_point_has_exactly_one_owner(fit):
    task = make_task(fit=fit)
    rng = np.random.default_rng(0)
    roi = task.total_roi
    points = rng.uniform(roi.begin, roi.end, size=(500, 3))
    # points on block faces belong to the upper block (half-open)
    face = np.array([roi.begin[0] + task.block_size[0], 55.0, 7.0])
    points = np.vstack([points, face])
    owners = task.owner_block_ids(points)
    blocks = list(task.blocks())
    owns = np.stack([points_in_roi(points, b.write_roi) for b in blocks], axis=1)
    assert (owns.sum(axis=1) == 1).all()
    assert (np.argmax(owns, axis=1) == owners).all()
    assert task.block_by_id(owners[-1]).index == (1, 0, 0)


def test_points_outside_have_no_owner():
    task = make_task()
    outside = [[99.9, 60, 5], [100 + 20, 60, 5], [110, 49, 5], [110, 60, 30]]
    assert (task.owner_block_ids(outside) == -1).all()


def test_block_by_id_round_trips():
    task = make_task()
    for b in task.blocks():
        assert task.block_by_id(b.block_id) == b


@pytest.mark.parametrize(
    "kwargs",
    [
        {"block_size": Coordinate(3, 8, 8)},  # not a multiple of voxel size 2 in z
        {"context": Coordinate(1, 0, 0)},
        {"block_size": Coordinate(0, 8, 8)},
        {"fit": "valid"},
        {"total_roi": Roi((1, 0, 0), (8, 8, 8))},
    ],
)
def test_invalid_tasks_are_rejected(kwargs):
    args = dict(
        total_roi=Roi((0, 0, 0), (8, 8, 8)),
        block_size=Coordinate(4, 4, 4),
        context=Coordinate(0, 0, 0),
        voxel_size=Coordinate(2, 1, 1),
    )
    args.update(kwargs)
    with pytest.raises(ValueError):
        BlockwiseTask(**args)


def test_identity_keeps_the_historical_block_shape_key_in_nm():
    # done directories written before the rename to block_size must still resume
    task = make_task(block=(4, 8, 12))
    identity = task.to_dict()
    assert "block_size" not in identity
    assert identity["block_shape"] == [8, 8, 12] == list(task.block_size)
