"""Blockwise prediction end to end: exactness, outputs, resume, completion."""

import numpy as np
import pytest
import zarr
from _predict_fixtures import RAW_OFFSET, VOXEL, make_checkpoint, make_sample

import synful.predict.volume as predict_volume
from synful.blockwise import BlockwiseError
from synful.errors import SynfulError
from synful.geometry import Coordinate, Roi
from synful.io import zarr_array
from synful.io.prediction_store import read_values, scale
from synful.io.zarr_array import open_array
from synful.predict import PredictBlock, partial_path, predict, predict_raw


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    checkpoint, model = make_checkpoint(root / "checkpoint_7.pt")
    sample, raw = make_sample(root / "sample.zarr")
    return checkpoint, sample, raw, model


def whole_volume(model, raw):
    """One forward pass over all of raw, zero-padded by the context and to whole outputs."""
    unit, context = np.array([6, 20, 20]), np.array([12, 20, 20])
    padded_out = -(-np.array(raw.shape) // unit) * unit
    padded = np.zeros(tuple(padded_out + 2 * context), np.uint8)
    inner = tuple(slice(c, c + s) for c, s in zip(context, raw.shape))
    padded[inner] = raw
    out = predict_raw(model, padded)
    crop = tuple(slice(0, s) for s in raw.shape)
    return out["post_indicator"][crop], out["partner_vectors"][(slice(None),) + crop]


def read(store, head):
    return zarr_array.read(open_array(store, head))


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory):
    """Default blocks, serial, float32."""
    checkpoint, sample, raw, model = inputs
    out = tmp_path_factory.mktemp("ref") / "pred.zarr"
    predict(checkpoint, sample, out, dtype="float32", progress=False)
    return out


def test_default_blocks_equal_one_whole_volume_forward_pass(inputs, reference):
    checkpoint, sample, raw, model = inputs
    mask, vectors = whole_volume(model, raw)
    np.testing.assert_allclose(read(reference, "post_indicator"), mask, rtol=0, atol=1e-6)
    np.testing.assert_allclose(read(reference, "partner_vectors"), vectors, rtol=0, atol=2e-3)
    assert np.ptp(mask) > 0.3  # not a constant output: the comparison means something
    assert np.abs(vectors).max() > 600  # int8 clipping is exercised


@pytest.mark.parametrize(
    "block_shape,workers,scheduler",
    [
        ((1, 1, 1), 2, "threads"),
        ((7, 20, 41), 1, None),
        pytest.param((1, 1, 1), 2, "processes", marks=pytest.mark.slow),
    ],
)
def test_result_does_not_depend_on_blocks_or_workers(
    inputs, reference, tmp_path, block_shape, workers, scheduler
):
    """One network output per block on 2 workers (threads, processes) equals default blocks."""
    checkpoint, sample, *_ = inputs
    out = tmp_path / "pred.zarr"
    predict(
        checkpoint,
        sample,
        out,
        block_shape=block_shape,
        workers=workers,
        scheduler=scheduler,
        dtype="float32",
        progress=False,
    )
    # float32 sums in another order (thread count, conv algorithm): agree to rounding error
    np.testing.assert_allclose(
        read(out, "post_indicator"), read(reference, "post_indicator"), rtol=0, atol=1e-5
    )
    np.testing.assert_allclose(
        read(out, "partner_vectors"), read(reference, "partner_vectors"), rtol=0, atol=2e-3
    )
    assert not partial_path(out).exists()
    assert not (out / ".blocks_done").exists()


def test_uint8_output_is_the_quantised_float_output(inputs, tmp_path):
    checkpoint, sample, *_ = inputs
    reference = tmp_path / "float.zarr"
    predict(checkpoint, sample, reference, block_shape=(1, 1, 1), dtype="float32", progress=False)
    out = tmp_path / "pred.zarr"
    predict(checkpoint, sample, out, block_shape=(1, 1, 1), progress=False)
    mask, vectors = open_array(out, "post_indicator"), open_array(out, "partner_vectors")
    assert mask.dtype == np.uint8 and scale(mask) == 255
    assert vectors.dtype == np.int8 and scale(vectors) == 0.25
    assert mask.offset == RAW_OFFSET and mask.voxel_size == VOXEL
    expected_mask = read(reference, "post_indicator")
    np.testing.assert_array_equal(
        zarr_array.read(mask), np.rint(expected_mask * 255).astype(np.uint8)
    )
    expected_vectors = np.clip(np.rint(read(reference, "partner_vectors") * 0.25), -128, 127)
    np.testing.assert_array_equal(zarr_array.read(vectors), expected_vectors.astype(np.int8))
    assert np.isin(zarr_array.read(vectors), [-128, 127]).any()  # clipped at +-512 nm
    np.testing.assert_allclose(read_values(mask), expected_mask, atol=0.5 / 255 + 1e-6)
    mark = zarr.open_group(str(out), mode="r").attrs["synful"]
    assert mark["kind"] == "predictions" and len(mark["recipe"]) == 64 and mark["creation_id"]


def test_roi_predicts_the_same_values_in_a_sub_region(inputs, reference, tmp_path):
    checkpoint, sample, raw, _ = inputs
    out = tmp_path / "pred.zarr"
    roi = Roi(Coordinate(RAW_OFFSET) + Coordinate(30, 2, 2), (4, 4, 4))
    predict(
        checkpoint, sample, out, roi=roi, block_shape=(1, 1, 1), dtype="float32", progress=False
    )
    part = open_array(out, "post_indicator")
    # grown to the block (6, 20, 20) voxels = (24, 40, 40) nm containing it
    assert part.roi == Roi(Coordinate(RAW_OFFSET) + Coordinate(24, 0, 0), (24, 40, 40))
    full = open_array(reference, "post_indicator")
    np.testing.assert_allclose(zarr_array.read(part), zarr_array.read(full, part.roi), atol=1e-6)


def test_default_blocks_of_a_grown_roi_predict_the_same_values(inputs, reference, tmp_path):
    checkpoint, sample, raw, _ = inputs
    out = tmp_path / "pred.zarr"
    # a region off the raw's output grid (2 x 4 x 4 voxels = 8 x 8 x 8 nm), grown by a margin
    # of 3 nm (rounded up to whole voxels of 4 x 2 x 2 nm: 4 nm) to 8 x 26 x 26 voxels from
    # the grid point at or before it
    roi = Roi(Coordinate(RAW_OFFSET) + Coordinate(12, 10, 10), (24, 38, 38))
    predict(checkpoint, sample, out, roi=roi, roi_margin=3, dtype="float32", progress=False)
    part = open_array(out, "post_indicator")
    assert part.roi.contains(roi.grow((4, 4, 4), (4, 4, 4)))
    # one block, the region rounded up to the grid (8 x 28 x 28 voxels), not 2 x 2 x 2 network
    # outputs of 6 x 20 x 20 voxels
    assert part.roi == Roi(Coordinate(RAW_OFFSET) + Coordinate(8, 0, 0), (32, 56, 56))
    full = open_array(reference, "post_indicator")
    np.testing.assert_allclose(zarr_array.read(part), zarr_array.read(full, part.roi), atol=1e-6)


def test_a_negative_roi_margin_is_an_error(inputs, tmp_path):
    checkpoint, sample, _, _ = inputs
    roi = Roi(Coordinate(RAW_OFFSET), (8, 8, 8))
    with pytest.raises(SynfulError, match="--roi-margin: must be >= 0, got -1"):
        predict(checkpoint, sample, tmp_path / "p.zarr", roi=roi, roi_margin=-1, progress=False)


def test_only_the_heads_of_the_setup_are_written(tmp_path):
    checkpoint, _ = make_checkpoint(tmp_path / "mask_only.pt", d_loss_scale=0.0)
    sample, _ = make_sample(tmp_path / "sample.zarr", shape=(6, 20, 20))
    out = tmp_path / "pred.zarr"
    predict(checkpoint, sample, out, progress=False)
    group = zarr.open_group(str(out), mode="r")
    assert sorted(group.array_keys()) == ["post_indicator"]


class CrashAfter(PredictBlock):
    """Fault injection: the real block processor, failing once N blocks were written."""

    limit = 5
    calls: list = []

    def process_block(self, block):
        if len(CrashAfter.calls) >= CrashAfter.limit:
            raise RuntimeError("killed")
        super().process_block(block)
        CrashAfter.calls.append(block.block_id)


def test_a_failed_run_resumes_without_redoing_finished_blocks(
    inputs, reference, tmp_path, monkeypatch
):
    checkpoint, sample, *_ = inputs
    out = tmp_path / "pred.zarr"
    monkeypatch.setattr(predict_volume, "PredictBlock", CrashAfter)
    CrashAfter.calls = []
    with pytest.raises(BlockwiseError, match="7 of 12 blocks failed"):
        predict(checkpoint, sample, out, block_shape=(1, 1, 1), dtype="float32", progress=False)
    first = list(CrashAfter.calls)
    assert len(first) == 5
    assert not out.exists() and partial_path(out).exists()  # never looks complete
    CrashAfter.limit = 10**6
    predict(checkpoint, sample, out, block_shape=(1, 1, 1), dtype="float32", progress=False)
    second = CrashAfter.calls[5:]
    assert sorted(first + second) == list(range(12))  # no block predicted twice
    assert not partial_path(out).exists()
    np.testing.assert_allclose(
        read(out, "post_indicator"), read(reference, "post_indicator"), atol=1e-5
    )
    np.testing.assert_allclose(
        read(out, "partner_vectors"), read(reference, "partner_vectors"), atol=2e-3
    )


def test_a_partial_store_of_another_recipe_is_never_resumed(inputs, tmp_path, monkeypatch):
    """Other options or another checkpoint (by content, at the same path): a one-line error
    naming what differs; restart=True starts fresh."""
    import shutil

    checkpoint, sample, *_ = inputs
    own = tmp_path / "checkpoint.pt"
    shutil.copy(checkpoint, own)
    out = tmp_path / "pred.zarr"
    monkeypatch.setattr(predict_volume, "PredictBlock", CrashAfter)
    CrashAfter.calls, CrashAfter.limit = [], 3
    with pytest.raises(BlockwiseError):
        predict(own, sample, out, block_shape=(1, 1, 1), progress=False)
    CrashAfter.calls, CrashAfter.limit = [], 10**6
    with pytest.raises(
        SynfulError,
        match=r"partial: holds unfinished work of another run "
        r"\(dtype differ\); rerun with --restart to start fresh$",
    ):
        predict(own, sample, out, block_shape=(1, 1, 1), dtype="float32", progress=False)
    with pytest.raises(SynfulError, match=r"\(block_shape differ\)"):
        predict(own, sample, out, block_shape=(12, 40, 40), progress=False)
    make_checkpoint(own, seed=3)  # same path, other weights
    with pytest.raises(SynfulError, match=r"\(checkpoint differ\)"):
        predict(own, sample, out, block_shape=(1, 1, 1), progress=False)
    assert CrashAfter.calls == [] and not out.exists()
    predict(own, sample, out, block_shape=(1, 1, 1), dtype="float32", progress=False, restart=True)
    assert sorted(CrashAfter.calls) == list(range(12))
    assert open_array(out, "post_indicator").dtype == np.float32
    assert not partial_path(out).exists()


def test_a_rewritten_sample_is_another_recipe(inputs, tmp_path, monkeypatch):
    """The sample's raw by content: a store written anew (new creation id) is not resumed."""
    checkpoint, *_ = inputs
    sample, _ = make_sample(tmp_path / "sample.zarr")
    zarr.open_group(str(sample), mode="r+").attrs["synful"] = {"kind": "sample", "creation_id": "a"}
    out = tmp_path / "pred.zarr"
    monkeypatch.setattr(predict_volume, "PredictBlock", CrashAfter)
    CrashAfter.calls, CrashAfter.limit = [], 3
    with pytest.raises(BlockwiseError):
        predict(checkpoint, sample, out, block_shape=(1, 1, 1), progress=False)
    zarr.open_group(str(sample), mode="r+").attrs["synful"] = {"kind": "sample", "creation_id": "b"}
    with pytest.raises(SynfulError, match=r"\(raw differ\)"):
        predict(checkpoint, sample, out, block_shape=(1, 1, 1), progress=False)


def test_a_complete_store_is_not_predicted_again(inputs, tmp_path, monkeypatch):
    checkpoint, sample, *_ = inputs
    out = tmp_path / "pred.zarr"
    monkeypatch.setattr(predict_volume, "PredictBlock", CrashAfter)
    CrashAfter.calls, CrashAfter.limit = [], 10**6
    predict(checkpoint, sample, out, progress=False)
    assert CrashAfter.calls == [0]
    predict(checkpoint, sample, out, progress=False)
    assert CrashAfter.calls == [0]  # same inputs and options: nothing to do
    predict(checkpoint, sample, out, dtype="float16", progress=False)
    assert CrashAfter.calls == [0, 0]  # other options: predicted again, replacing the store
    assert open_array(out, "post_indicator").dtype == np.float16


def test_existing_dask_cluster_by_address(inputs, reference, tmp_path):
    """``scheduler=ADDRESS``: blocks run on the workers of a running cluster."""
    import distributed

    checkpoint, sample, *_ = inputs
    out = tmp_path / "pred.zarr"
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        predict(
            checkpoint,
            sample,
            out,
            block_shape=(1, 1, 1),
            scheduler=cluster.scheduler_address,
            dtype="float32",
            progress=False,
        )
    np.testing.assert_allclose(
        read(out, "post_indicator"), read(reference, "post_indicator"), atol=1e-5
    )


def test_bf16_autocast_runs_and_stays_close(inputs, reference, tmp_path):
    """--bf16 (autocast; on CPU here) changes the outputs by bfloat16 rounding only, and
    nothing where the CPU has no native bfloat16 (float32 then)."""
    import torch

    from synful.train.precision import native_bf16

    checkpoint, sample, *_ = inputs
    out = tmp_path / "pred.zarr"
    predict(checkpoint, sample, out, dtype="float32", bf16=True, device="cpu", progress=False)
    mask, expected = read(out, "post_indicator"), read(reference, "post_indicator")
    if not native_bf16(torch.device("cpu")):
        np.testing.assert_array_equal(mask, expected)
        return
    assert not np.array_equal(mask, expected)  # it did run in bfloat16
    # the test net's heads are scaled up (x10, x16), which amplifies bfloat16 rounding
    assert np.abs(mask - expected).mean() < 0.01 and np.abs(mask - expected).max() < 0.3
    vectors, expected = read(out, "partner_vectors"), read(reference, "partner_vectors")
    assert np.abs(vectors - expected).mean() < 0.01 * np.abs(expected).max()


def test_resolve_device():
    import torch

    from synful.predict import resolve_device

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda:0" if torch.cuda.is_available() else "cpu")


def test_parallel_writes_into_sharded_arrays_lose_nothing(inputs, reference, tmp_path, monkeypatch):
    """Blocks stored as shards of smaller inner chunks, written by 2 workers at once."""
    import synful.predict.output_store as output_store

    monkeypatch.setattr(output_store, "MAX_CHUNK", (2, 4, 4))
    checkpoint, sample, *_ = inputs
    out = tmp_path / "pred.zarr"
    predict(
        checkpoint,
        sample,
        out,
        block_shape=(1, 1, 1),
        workers=2,
        scheduler="threads",
        dtype="float32",
        progress=False,
    )
    array = zarr.open_array(str(out / "post_indicator"), mode="r")
    assert array.shards == (6, 20, 20) and array.chunks == (2, 4, 4)
    np.testing.assert_allclose(
        read(out, "post_indicator"), read(reference, "post_indicator"), atol=1e-5
    )
    np.testing.assert_allclose(
        read(out, "partner_vectors"), read(reference, "partner_vectors"), atol=2e-3
    )


def test_missing_sections_are_filled_before_the_network(inputs, reference, tmp_path):
    """--fill-missing-sections: black sections read as the interpolation of their present
    neighbours (the same as filling the volume first); without black sections nothing
    changes; the option is part of the work's identity."""
    from synful.predict.sections import fill_missing_sections, missing_sections

    checkpoint, _, raw, _ = inputs
    holed = raw.copy()
    holed[[4, 8, 9]] = 0  # one missing section and a run of two
    sample, _ = make_sample(tmp_path / "holed.zarr", shape=raw.shape)
    zarr.open_array(str(sample / "raw"), mode="r+")[:] = holed
    filled, _ = make_sample(tmp_path / "filled.zarr", shape=raw.shape)
    zarr.open_array(str(filled / "raw"), mode="r+")[:] = fill_missing_sections(
        holed, missing_sections(holed)
    )
    options = dict(dtype="float32", block_shape=(6, 20, 20), progress=False)
    predict(checkpoint, sample, tmp_path / "on.zarr", fill_missing_sections=True, **options)
    predict(checkpoint, filled, tmp_path / "first.zarr", **options)
    predict(checkpoint, sample, tmp_path / "off.zarr", **options)
    on, first = (
        read(tmp_path / "on.zarr", "post_indicator"),
        read(tmp_path / "first.zarr", "post_indicator"),
    )
    np.testing.assert_array_equal(on, first)
    assert not np.array_equal(on, read(tmp_path / "off.zarr", "post_indicator"))
    # another identity: the complete store is predicted again, not kept
    predict(checkpoint, sample, tmp_path / "on.zarr", **options)
    np.testing.assert_array_equal(
        read(tmp_path / "on.zarr", "post_indicator"), read(tmp_path / "off.zarr", "post_indicator")
    )
    # nothing black: the same as without the option
    checkpoint, clean, *_ = inputs
    predict(
        checkpoint,
        clean,
        tmp_path / "clean.zarr",
        fill_missing_sections=True,
        dtype="float32",
        progress=False,
    )
    np.testing.assert_array_equal(
        read(tmp_path / "clean.zarr", "post_indicator"), read(reference, "post_indicator")
    )
