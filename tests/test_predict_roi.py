"""``synful predict --roi``: explicit boxes and regions named after the sample store's arrays."""

import numpy as np
import pytest
import zarr
from _predict_fixtures import make_checkpoint, make_sample

from synful.cli import main
from synful.commands._args import parse_roi
from synful.errors import SynfulError
from synful.geometry import Roi
from synful.io.zarr_array import open_array, storage, world_array, write_volume
from synful.predict import partial_path
from synful.predict.roi import nonzero_bounding_box, resolve_roi

# the labels (and masks) grid inside the raw of _predict_fixtures (offset (8, 4, 6), 13x30x34)
LABELS_OFFSET = (16, 14, 16)
LABELS_SHAPE = (8, 20, 24)
VOXEL = (4, 2, 2)
# the L-shaped validation mask below: voxels z 1..4, y 2..8, x 3..9 of the labels grid
MASK_BOX = Roi((20, 18, 22), (16, 14, 14))
# MASK_BOX grown to the block grid of --block-shape 1 1 1 (one network output, 6x20x20 voxels =
# 24x40x40 nm, from the output grid point (2x4x4 voxels = 8x8x8 nm from the raw offset) at or
# before the box's begin): one block, less than raw's 52x60x68 nm
MASK_BLOCKS = Roi((16, 12, 22), (24, 40, 40))


def l_shaped_mask() -> np.ndarray:
    mask = np.zeros(LABELS_SHAPE, np.uint8)
    mask[1:3, 2:5, 3:7] = 1
    mask[2:5, 4:9, 6:10] = 1
    return mask


def make_store(path, mask=None, name="masks/validation"):
    """A sample store with raw, neuron_ids and (optionally) a mask on the labels' grid."""
    make_sample(path)
    group = zarr.open_group(str(path), mode="a")
    write_volume(group, "neuron_ids", np.ones(LABELS_SHAPE, np.uint64), VOXEL, LABELS_OFFSET)
    if mask is not None:
        write_volume(group, name, mask, VOXEL, LABELS_OFFSET, chunks=(2, 20, 24))
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("roi") / "sample.zarr", l_shaped_mask())


def test_parse_roi_boxes_and_names():
    assert parse_roi("0:40,8:16,-4:4") == Roi((0, 8, -4), (40, 8, 8))
    for name in ("raw", "labels", "masks/validation", "masks/training", " labels "):
        assert parse_roi(name) == name.strip()
    for bad in ("all", "masks/", "masks/a/b", "0:4,0:4", "neuron_ids"):
        with pytest.raises(Exception, match="raw, labels or masks/NAME"):
            parse_roi(bad)


def test_resolve_boxes_raw_and_labels(store):
    box = Roi((8, 4, 6), (8, 8, 8))
    assert resolve_roi(box, store) == box
    assert resolve_roi(None, store) is None
    assert resolve_roi("raw", store) is None
    assert resolve_roi("labels", store) == Roi(LABELS_OFFSET, (32, 40, 48))


def test_resolve_mask_is_the_bounding_box_of_a_non_cuboid_mask(store):
    assert resolve_roi("masks/validation", store) == MASK_BOX


def test_bounding_box_reads_slab_by_slab(store):
    opened = open_array(store, "masks/validation")
    reads = []

    class Recording:
        def __init__(self, array):
            self.array = array
            self.shape, self.dtype, self.chunks = array.shape, array.dtype, array.chunks
            self.ndim = array.ndim
            self.shards = None

        def __dask_tokenize__(self):  # else dask pickles this local class to name the array
            return id(self)

        def __getitem__(self, key):
            data = self.array[key]
            reads.append(data.shape)
            return data

    volume = world_array(Recording(storage(opened)), opened.voxel_size, opened.offset)
    reads.clear()  # dask's look at the array (a zero-size read) when wrapping it
    section = LABELS_SHAPE[1] * LABELS_SHAPE[2]
    assert nonzero_bounding_box(volume, slab_bytes=3 * section) == MASK_BOX
    assert reads == [(2, 20, 24)] * 4  # whole chunks along z, never the whole mask
    # a box touching the array's last voxels, with a partial last slab
    mask = np.zeros((5, 3, 4), np.uint8)
    mask[4, 2, 3] = 7
    mask[0, 0, 1] = 1
    group = zarr.open_group(str(store.parent / "edge.zarr"), mode="w")
    edge = write_volume(group, "m", mask, (1, 1, 1), (10, 20, 30), chunks=(2, 3, 4))
    assert nonzero_bounding_box(edge, slab_bytes=1) == Roi((10, 20, 31), (5, 3, 3))


def test_resolve_errors(tmp_path, store):
    bare = make_store(tmp_path / "bare.zarr")
    with pytest.raises(SynfulError, match="no such mask array") as missing:
        resolve_roi("masks/validation", bare)
    assert missing.value.path == f"{bare}/masks/validation"
    empty = make_store(tmp_path / "empty.zarr", np.zeros(LABELS_SHAPE, np.uint8))
    with pytest.raises(SynfulError, match="the mask is empty") as no_voxels:
        resolve_roi("masks/validation", empty)
    assert no_voxels.value.path == f"{empty}/masks/validation"
    with pytest.raises(SynfulError, match="unknown ROI 'everything'"):
        resolve_roi("everything", store)
    with pytest.raises(SynfulError, match="no such zarr store"):
        resolve_roi("masks/validation", tmp_path / "none.zarr")


# ---- the command line --------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("roi_ckpt") / "checkpoint_7.pt")[0]


def run_cli(capsys, *args):
    code = main(["predict", *map(str, args), "--quiet", "--device", "cpu"])
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize("roi", ["masks/validation", "20:36,18:32,22:36"])
def test_cli_predicts_the_mask_box_grown_to_the_block_grid(
    checkpoint, store, tmp_path, capsys, roi
):
    out = tmp_path / "pred.zarr"
    code, err = run_cli(capsys, checkpoint, store, out, "--roi", roi, "--block-shape", 1, 1, 1)
    assert code == 0, err
    assert open_array(out, "post_indicator").roi == MASK_BLOCKS


@pytest.mark.parametrize(
    "mask, problem",
    [
        (None, "no such mask array"),
        (np.zeros(LABELS_SHAPE, np.uint8), "the mask is empty: no region to predict"),
    ],
)
def test_cli_missing_or_empty_mask_is_a_one_line_error(checkpoint, tmp_path, capsys, mask, problem):
    sample = make_store(tmp_path / "sample.zarr", mask)
    out = tmp_path / "pred.zarr"
    code, err = run_cli(capsys, checkpoint, sample, out, "--roi", "masks/validation")
    assert code == 1
    assert err == f"synful: error: {sample}/masks/validation: {problem}"
    assert not out.exists() and not partial_path(out).exists()


def test_cli_rejects_an_unknown_roi(checkpoint, store, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["predict", str(checkpoint), str(store), str(tmp_path / "p.zarr"), "--roi", "all"])
    assert exit_.value.code == 2
    assert "expected z0:z1,y0:y1,x0:x1 in nm, raw, labels or masks/NAME" in capsys.readouterr().err
