"""Prediction geometry, output encoding and store layout (no network runs here)."""

import numpy as np
import pytest
import zarr
from _predict_fixtures import RAW_OFFSET, VOXEL, tiny_setup

from synful.errors import SynfulError
from synful.geometry import Coordinate, Roi
from synful.io.prediction_store import encode, stored_dtype
from synful.models import build_model
from synful.predict import create_prediction_store, plan_prediction
from synful.predict.output_store import chunking
from synful.predict.plan import default_block_shape, round_up

RAW_ROI = Roi(RAW_OFFSET, Coordinate(13, 30, 34) * Coordinate(VOXEL))


@pytest.fixture(scope="module")
def net():
    setup = tiny_setup()
    return build_model(setup), setup


def test_blocks_are_multiples_of_the_network_output(net):
    model, setup = net
    plan = plan_prediction(model, setup, RAW_ROI, block_shape=(1, 1, 1))
    assert plan.unit_shape == (6, 20, 20) and plan.block_shape == (6, 20, 20)
    assert plan.context == (12, 20, 20)
    assert model.output_shape(plan.block_input_shape) == tuple(plan.block_shape)
    plan = plan_prediction(model, setup, RAW_ROI, block_shape=(7, 20, 41))
    assert plan.block_shape == (12, 20, 60)
    assert model.output_shape(plan.block_input_shape) == tuple(plan.block_shape)
    task = plan.task
    assert task.fit == "overhang" and task.total_roi == RAW_ROI
    assert task.context == plan.context * Coordinate(VOXEL)


def test_default_block_covers_a_small_volume_in_one_block(net):
    model, setup = net
    plan = plan_prediction(model, setup, RAW_ROI)
    # raw's 13 x 30 x 34 voxels rounded up to the output grid (2, 4, 4), not to whole network
    # outputs (6, 20, 20), which would be (18, 40, 40)
    assert model.output_grid == (2, 4, 4)
    assert plan.block_shape == (14, 32, 36) and plan.task.num_blocks == 1
    assert model.output_shape(plan.block_input_shape) == (14, 32, 36)


def test_default_block_minimises_recomputed_context_within_the_memory_budget():
    unit, context, volume = (3, 162, 162), (21, 134, 134), (126, 1296, 1296)
    block = np.array(default_block_shape(unit, context, volume, 48, budget=2 * 2**30))
    assert (block % unit == 0).all()
    assert np.prod(block + 2 * np.array(context)) * 48 <= 2 * 2**30

    def cost(b):
        b = np.array(b)
        return np.prod(-(-np.array(volume) // b) * (b + 2 * np.array(context)))

    assert cost(block) < cost((24, 324, 324)) < cost(unit)
    assert default_block_shape(unit, context, volume, 48, budget=1) == unit


def test_default_block_counts_the_blocks_of_a_region_off_the_grid():
    # a labelled region 8 sections and 96 pixels in from the raw's begin (the grid origin), as
    # in the synthetic samples: blocks of (32, 384, 384) would need 2 per axis there
    unit, context, volume, offset = (4, 128, 128), (8, 46, 46), (32, 320, 320), (8, 96, 96)
    block = np.array(default_block_shape(unit, context, volume, 72, offset=offset))
    begin, end = np.array(offset), np.array(offset) + volume
    count = -(-end // block) - begin // block

    def fed(b, n):
        return np.prod(n * (np.array(b) + 2 * np.array(context)))

    assert (count == 1).all() and (block * count >= end).all()
    assert default_block_shape(unit, context, volume, 72) == (32, 384, 384)
    assert fed(block, count) < fed((32, 384, 384), 2)


def test_default_block_covers_a_region_in_one_block_on_the_output_grid():
    # the demo network (output 4 x 128 x 128, grid 2 x 8 x 8) on a synthetic test cube grown
    # by the extraction context: one block of the region rounded up to the grid, not (40, 384,
    # 384) (whole network outputs) with 1.3x the input voxels
    unit, context, grid = (4, 128, 128), (4, 46, 46), (2, 8, 8)
    assert default_block_shape(unit, context, (32, 320, 320), 72, grid=grid) == (32, 320, 320)
    block = default_block_shape(unit, context, (38, 380, 380), 72, offset=(1, 2, 2), grid=grid)
    assert block == (40, 384, 384)
    block = default_block_shape(unit, context, (37, 316, 316), 72, offset=(1, 2, 2), grid=grid)
    assert block == (38, 320, 320)
    # a region no block within the memory budget covers: multiples of the unit, as without
    # the grid
    volume = (1000, 10000, 10000)
    assert default_block_shape(unit, context, volume, 48, grid=grid) == (72, 640, 640)
    assert default_block_shape(unit, context, volume, 48) == (72, 640, 640)


def test_predict_input_shape_sets_the_unit(net):
    model, setup = net
    setup = dict(setup, predict_input_shape=list(model.valid_input_shape((32, 64, 64))))
    plan = plan_prediction(model, setup, RAW_ROI, block_shape=(1, 1, 1))
    assert plan.unit_shape == model.output_shape(setup["predict_input_shape"])


def test_roi_is_grown_to_the_block_grid_and_cut_to_raw(net):
    model, setup = net
    # block (6, 20, 20) voxels = (24, 40, 40) nm, grid anchored at the raw offset (8, 4, 6)
    roi = Roi((8 + 25, 4 + 1, 6 + 41), (2, 2, 80))
    plan = plan_prediction(model, setup, RAW_ROI, roi=roi, block_shape=(1, 1, 1))
    assert plan.total_roi.begin == (8 + 24, 4, 6 + 40)
    assert plan.total_roi.end == (8 + 48, 4 + 40, RAW_ROI.end[2])
    # blocks begin on the output grid (2, 4, 4) voxels = (8, 8, 8) nm at or before the region,
    # not on a grid of whole blocks from the raw's begin (which would begin at 8 + 24)
    plan = plan_prediction(model, setup, RAW_ROI, roi=Roi((8 + 33, 4, 6), (4, 4, 4)))
    assert plan.total_roi.begin == (8 + 32, 4, 6)
    with pytest.raises(SynfulError, match="does not overlap"):
        plan_prediction(model, setup, RAW_ROI, roi=Roi((0, 0, 10_000), (4, 4, 4)))


def test_invalid_network_input_shape_is_an_error(net):
    model, setup = net
    with pytest.raises(SynfulError, match="invalid network input shape"):
        plan_prediction(model, dict(setup, input_shape=[31, 60, 60]), RAW_ROI)


def test_round_up():
    assert round_up((1, 21, 40), (6, 20, 20)) == (6, 40, 40)


def test_encode_uint8_and_int8_like_the_original():
    prob = np.array([0.0, 0.5, 0.999, 1.0], dtype=np.float32)
    np.testing.assert_array_equal(encode("post_indicator", prob, "uint8"), [0, 128, 255, 255])
    vectors = np.array([-1000.0, -2.1, 0.0, 1.9, 37.0, 510.0, 600.0], dtype=np.float32)
    stored = encode("partner_vectors", vectors, "uint8")
    assert stored.dtype == np.int8
    np.testing.assert_array_equal(stored, [-128, -1, 0, 0, 9, 127, 127])
    assert encode("partner_vectors", vectors, "float16").dtype == np.float16
    assert stored_dtype("post_indicator", "float32") == np.float32


def test_chunks_and_shards_equal_the_write_block():
    assert chunking((6, 20, 20)) == ((6, 20, 20), None)
    chunks, shards = chunking((54, 920, 920))
    assert shards == (54, 920, 920)
    assert all(s % c == 0 and c <= m for s, c, m in zip(shards, chunks, (32, 256, 256)))


def test_store_layout_follows_the_contract(net, tmp_path):
    model, setup = net
    plan = plan_prediction(model, setup, RAW_ROI, block_shape=(1, 1, 1))
    create_prediction_store(
        tmp_path / "p.zarr", plan, ("post_indicator", "partner_vectors"), "uint8"
    )
    group = zarr.open_group(str(tmp_path / "p.zarr"), mode="r")
    mask, vectors = group["post_indicator"], group["partner_vectors"]
    assert mask.shape == (13, 30, 34) and vectors.shape == (3, 13, 30, 34)
    assert mask.chunks == (6, 20, 20) and vectors.chunks == (3, 6, 20, 20)
    assert mask.dtype == np.uint8 and vectors.dtype == np.int8
    assert mask.attrs["scale"] == 255 and vectors.attrs["scale"] == 0.25
    assert mask.attrs["offset"] == list(RAW_OFFSET) and mask.attrs["voxel_size"] == list(VOXEL)
    assert vectors.attrs["axis_names"] == ["c^", "z", "y", "x"]
    assert vectors.attrs["types"] == ["channel", "space", "space", "space"]
