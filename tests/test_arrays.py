"""synful.io.zarr_array: funlib.persistence ``Array`` as synful's one array type.

The direct reads (:func:`read`, :func:`storage`) must equal funlib's own ``to_ndarray``, and
the stores synful writes must open with ``funlib.persistence.open_ds`` with the metadata
synful gives them.
"""

import h5py
import numpy as np
import pytest
import zarr
from funlib.persistence import Array, open_ds

from synful.errors import SynfulError
from synful.geometry import Coordinate, Roi
from synful.io.zarr_array import (
    array_path,
    create_volume,
    in_memory,
    nbytes,
    open_array,
    read,
    spatial_shape,
    storage,
    world_array,
    write_volume,
)

VOXEL, OFFSET = (40, 4, 2), (80, -8, 6)


@pytest.fixture
def store(tmp_path):
    rng = np.random.default_rng(1)
    group = zarr.open_group(str(tmp_path / "s.zarr"), mode="w")
    raw = rng.integers(1, 255, (5, 7, 9), dtype=np.uint8)
    vectors = rng.integers(-100, 100, (3, 5, 7, 9), dtype=np.int8)
    write_volume(group, "raw", raw, VOXEL, OFFSET, chunks=(2, 3, 4))
    write_volume(group, "vectors", vectors, VOXEL, OFFSET, channels=1, attrs={"scale": 0.25})
    return tmp_path / "s.zarr", raw, vectors


ROIS = [
    Roi((80, -8, 6), (200, 28, 18)),  # the whole array
    Roi((120, 0, 10), (80, 12, 8)),  # inside
    Roi((0, -16, 0), (160, 20, 12)),  # across the lower faces
    Roi((200, 12, 20), (120, 12, 10)),  # across the upper faces
    Roi((400, 100, 100), (40, 4, 2)),  # all outside
]


@pytest.mark.parametrize("roi", ROIS)
@pytest.mark.parametrize("name", ["raw", "vectors"])
def test_read_equals_funlib_to_ndarray(store, name, roi):
    path, *_ = store
    array = open_array(path, name)
    theirs = open_ds(str(path / name))
    for fill in (0, 7):
        np.testing.assert_array_equal(read(array, roi, fill), theirs.to_ndarray(roi, fill))
        np.testing.assert_array_equal(
            read(in_memory(array), roi, fill), theirs.to_ndarray(roi, fill)
        )


def test_open_array_gives_the_metadata_funlib_reads(store):
    path, raw, vectors = store
    for name, data in (("raw", raw), ("vectors", vectors)):
        ours, theirs = open_array(path, name), open_ds(str(path / name))
        assert isinstance(ours, Array)
        assert (ours.voxel_size, ours.offset, ours.roi) == (
            theirs.voxel_size,
            theirs.offset,
            theirs.roi,
        )
        assert (ours.axis_names, ours.units, ours.types) == (
            theirs.axis_names,
            theirs.units,
            theirs.types,
        )
        assert ours.channel_dims == data.ndim - 3
        assert spatial_shape(ours) == Coordinate(data.shape[-3:])
        assert nbytes(ours) == data.nbytes
        # the storage is the zarr array itself: reads and writes skip dask
        assert isinstance(storage(ours), zarr.Array)
        assert array_path(ours) == str(path / name)
        np.testing.assert_array_equal(read(ours), data)
    assert open_array(path, "vectors").attrs["scale"] == 0.25


def test_writes_by_roi_land_in_the_store(store):
    path, raw, _ = store
    array = open_array(path, "raw", mode="r+")
    roi = Roi((120, -4, 8), (80, 8, 4))
    array[roi] = np.full((2, 2, 2), 3, np.uint8)
    expected = raw.copy()
    expected[1:3, 1:3, 1:3] = 3
    np.testing.assert_array_equal(read(open_array(path, "raw")), expected)
    with pytest.raises(IndexError):
        array[Roi((0, 0, 0), (40, 4, 2))] = np.zeros((1, 1, 1), np.uint8)


def test_in_memory_is_a_read_only_numpy_copy(store):
    path, raw, _ = store
    loaded = in_memory(open_array(path, "raw"))
    assert isinstance(storage(loaded), np.ndarray) and not storage(loaded).flags.writeable
    assert (loaded.voxel_size, loaded.offset) == (Coordinate(VOXEL), Coordinate(OFFSET))
    assert array_path(loaded) == "<memory>"
    np.testing.assert_array_equal(read(loaded), raw)


def test_lazy_arrays_read_through_funlib(store):
    path, raw, _ = store
    array = open_array(path, "raw")
    array.lazy_op(lambda d: d // 2)
    assert storage(array) is None
    np.testing.assert_array_equal(
        read(array, ROIS[2]), open_ds(str(path / "raw")).to_ndarray(ROIS[2]) // 2
    )


def test_hdf5_dataset_as_array(tmp_path):
    data = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    with h5py.File(tmp_path / "m.hdf", "w") as f:
        f.create_dataset("volumes/mask", data=data)
    with h5py.File(tmp_path / "m.hdf", "r") as f:
        array = world_array(f["volumes/mask"], VOXEL, OFFSET)
        assert array_path(array) == f"{tmp_path / 'm.hdf'}/volumes/mask"
        np.testing.assert_array_equal(read(array, Roi((120, -8, 6), (40, 8, 4))), data[1:2, :2, :2])


def test_create_volume_metadata(tmp_path):
    group = zarr.open_group(str(tmp_path / "c.zarr"), mode="w")
    array = create_volume(group, "p", shape=(3, 4, 5, 6), dtype=np.float32, voxel_size=VOXEL,
                          offset=OFFSET, channels=1)  # fmt: skip
    attrs = dict(zarr.open_array(str(tmp_path / "c.zarr" / "p")).attrs)
    assert attrs == {
        "voxel_size": list(VOXEL), "offset": list(OFFSET), "axis_names": ["c^", "z", "y", "x"],
        "units": ["nm"] * 3, "types": ["channel", "space", "space", "space"],
    }  # fmt: skip
    assert array.roi == Roi(OFFSET, (160, 20, 12)) and array.channel_dims == 1


def test_missing_metadata_is_an_error(tmp_path):
    zarr.create_array(str(tmp_path / "s.zarr" / "bare"), shape=(2, 2, 2), dtype=np.uint8)
    with pytest.raises(SynfulError, match="no voxel_size or offset attribute"):
        open_array(tmp_path / "s.zarr", "bare")
    with pytest.raises(SynfulError, match="missing array"):
        open_array(tmp_path / "s.zarr", "other")
