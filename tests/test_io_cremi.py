"""CREMI HDF5 round trips, offsets, polyadic sites, the `type` spelling and bad files."""

import h5py
import numpy as np
import pytest

from synful.errors import SynfulError
from synful.geometry import Coordinate, Roi
from synful.io.cremi import (
    CremiAnnotations,
    CremiFile,
    CremiSample,
    CremiVolume,
    read_cremi,
    write_cremi,
)
from synful.io.synapse_table import (
    annotations_from_synapses,
    read_synapses,
    synapses_from_annotations,
)
from synful.io.zarr_array import read


def polyadic_annotations(offset=(80.0, 40.0, 40.0)):
    # pre site 10 with three partners, pre site 20 with one
    ids = [10, 11, 12, 13, 20, 21]
    types = [
        "presynaptic_site",
        "postsynaptic_site",
        "postsynaptic_site",
        "postsynaptic_site",
        "presynaptic_site",
        "postsynaptic_site",
    ]
    locations = [
        [40, 100, 100],
        [40, 200, 100],
        [40, 100, 260],
        [80, 40, 100],
        [0, 0, 0],
        [0, 0, 120],
    ]
    partners = [[10, 11], [10, 12], [10, 13], [20, 21]]
    return CremiAnnotations(ids, types, locations, partners, offset, {11: "unsure"})


def sample(tmp_path):
    raw = CremiVolume(np.arange(4 * 8 * 8, dtype=np.uint8).reshape(4, 8, 8), (40, 4, 4))
    labels = CremiVolume(np.ones((2, 4, 4), np.uint64), (40, 4, 4), (40.0, 8.0, 8.0))
    path = tmp_path / "s.hdf"
    write_cremi(path, CremiSample(raw=raw, neuron_ids=labels, annotations=polyadic_annotations()))
    return path


def test_round_trip(tmp_path):
    path = sample(tmp_path)
    s = read_cremi(path)
    assert s.raw.data.dtype == np.uint8 and s.raw.resolution == (40, 4, 4)
    assert s.raw.offset == (0.0, 0.0, 0.0)
    assert s.neuron_ids.offset == (40.0, 8.0, 8.0)
    assert s.neuron_ids.to_array().roi == Roi((40, 8, 8), (80, 16, 16))
    assert s.clefts is None
    a = s.annotations
    ref = polyadic_annotations()
    np.testing.assert_array_equal(a.ids, ref.ids)
    np.testing.assert_array_equal(a.locations, ref.locations)
    np.testing.assert_array_equal(a.partners, ref.partners)
    assert list(a.types) == list(ref.types)
    assert a.comments == {11: "unsure"}
    np.testing.assert_array_equal(a.offset, [80, 40, 40])


def test_polyadic_offset_added_once_per_site(tmp_path):
    path = sample(tmp_path)
    with CremiFile(path) as f:
        ann = f.read_annotations()
    before = ann.locations.copy()
    pre, post = ann.pair_locations()
    # the shared pre site appears three times, always at location + offset (not k * offset)
    np.testing.assert_array_equal(pre[:3], np.tile([120, 140, 140], (3, 1)))
    np.testing.assert_array_equal(post[2], [160, 80, 140])
    np.testing.assert_array_equal(ann.locations, before)  # never modified in place
    table = synapses_from_annotations(ann)
    assert len(table) == 4
    back = annotations_from_synapses(table, offset=ann.offset)
    assert (back.types == "presynaptic_site").sum() == 2  # polyadic site kept as one site
    pre2, post2 = back.pair_locations()
    np.testing.assert_array_equal(pre2, pre)
    np.testing.assert_array_equal(post2, post)


def test_type_spelling_and_read_by_roi(tmp_path):
    path = sample(tmp_path)
    with h5py.File(path, "a") as f:
        types = f["annotations/types"][...]
        del f["annotations/types"]
        f.create_dataset("annotations/type", data=types)
    assert len(read_synapses(path)) == 4
    with CremiFile(path) as f:
        vol = f.read_volume("raw", Roi((40, 4, 8), (80, 8, 12)))
    assert vol.data.shape == (2, 2, 3) and vol.offset == (40, 4, 8)
    np.testing.assert_array_equal(vol.data, read_cremi(path).raw.data[1:3, 1:3, 2:5])


def test_errors(tmp_path):
    with pytest.raises(SynfulError, match="no such file"):
        CremiFile(tmp_path / "missing.hdf")
    bad = tmp_path / "bad.hdf"
    bad.write_text("not hdf5")
    with pytest.raises(SynfulError, match="not an HDF5 file"):
        CremiFile(bad)
    path = sample(tmp_path)
    with h5py.File(path, "a") as f:
        f["annotations/presynaptic_site/partners"][0] = [10, 99]
    with pytest.raises(SynfulError, match="partner id 99"):
        read_cremi(path)
    with h5py.File(path, "a") as f:
        del f["volumes/raw"]
    with CremiFile(path) as f, pytest.raises(SynfulError, match="missing dataset volumes/raw"):
        f.read_volume("raw")


def test_failed_write_leaves_nothing(tmp_path):
    path = tmp_path / "out.hdf"
    bad_offset = CremiVolume(np.zeros((2, 2, 2), np.uint8), (40, 4, 4), offset=("a", 0, 0))
    with pytest.raises(ValueError):
        write_cremi(path, CremiSample(raw=bad_offset))
    assert list(tmp_path.iterdir()) == []


def test_volume_array_uses_world_units():
    data = np.zeros((3, 5, 7), np.uint8)
    array = CremiVolume(data, (40.0, 4.0, 4.0), (80.0, 4.0, 0.0)).to_array()
    assert array.roi == Roi(Coordinate((80, 4, 0)), Coordinate((120, 20, 28)))
    assert array.voxel_size == Coordinate((40, 4, 4))
    assert np.shares_memory(read(array), data)


def test_volume_array_needs_whole_nm(tmp_path):
    with pytest.raises(SynfulError, match="must be whole nm"):
        CremiVolume(np.zeros((1, 2, 2), np.uint8), (40, 4, 4), (0.5, 0, 0)).to_array()
    path = tmp_path / "half.hdf"
    write_cremi(path, CremiSample(raw=CremiVolume(np.zeros((1, 2, 2), np.uint8), (40, 4, 4.5))))
    with CremiFile(path) as f, pytest.raises(SynfulError, match="volumes/raw resolution"):
        f.volume_array("raw")


def test_file_volume_array_reads_the_dataset(tmp_path):
    path = sample(tmp_path)
    with CremiFile(path) as f:
        labels = f.volume_array("neuron_ids")
        assert labels.roi == Roi((40, 8, 8), (80, 16, 16))
        np.testing.assert_array_equal(read(labels), read_cremi(path).neuron_ids.data)
