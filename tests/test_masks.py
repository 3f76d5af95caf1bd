"""`synful masks`: split rules, given mask volumes aligned by world coordinates, synapse splits."""

import json

import h5py
import numpy as np
import pytest
import zarr

from synful.cli import main
from synful.errors import SynfulError
from synful.geometry import Roi
from synful.io.sample_store import open_mask
from synful.io.synapse_table import make_synapses, write_synapses
from synful.io.zarr_array import read, write_volume
from synful.masks import SplitRule, make_masks, split_container_path, synapses_in_split

VOXEL = (40, 4, 4)
LABEL_OFFSET = (80, 8, 12)
LABEL_SHAPE = (8, 6, 5)


def make_store(tmp_path, name="s.zarr"):
    store = tmp_path / name
    group = zarr.open_group(str(store), mode="w")
    write_volume(group, "raw", np.zeros((12, 10, 10), np.uint8), VOXEL, (0, 0, 0))
    write_volume(group, "neuron_ids", np.ones(LABEL_SHAPE, np.uint64), VOXEL, LABEL_OFFSET)
    return store


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def test_default_rule_is_first_75_percent_of_z(tmp_path, capsys):
    store = make_store(tmp_path)
    code, err = run_cli(capsys, "masks", store, "--summary", tmp_path / "summary.json")
    assert code == 0, err
    training, validation = open_mask(store, "training"), open_mask(store, "validation")
    for mask in (training, validation):
        assert mask.dtype == np.uint8
        assert mask.roi == Roi(LABEL_OFFSET, (320, 24, 20))
        assert mask.voxel_size == VOXEL
    t = read(training)
    assert t[:6].all() and not t[6:].any()
    np.testing.assert_array_equal(read(validation), 1 - t)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary == {"training": {"voxels": 6 * 30}, "validation": {"voxels": 2 * 30}}


@pytest.mark.parametrize(
    "argv, training_slices",
    [
        (["--training-fraction", "0"], []),
        (["--training-fraction", "1"], [np.s_[:, :, :]]),
        (["--split-axis", "y", "--training-fraction", "0.5"], [np.s_[:, :3, :]]),
        # voxel centres in z: 100, 140, ..., 380; [150, 270) holds 180, 220, 260 -> voxels 2..4
        (["--training-range", "150", "270"], [np.s_[2:5]]),
        (["--split-axis", "x", "--training-range", "0", "22"], [np.s_[:, :, :2]]),
    ],
)
def test_split_rules(tmp_path, capsys, argv, training_slices):
    store = make_store(tmp_path)
    assert run_cli(capsys, "masks", store, *argv)[0] == 0
    expected = np.zeros(LABEL_SHAPE, np.uint8)
    for s in training_slices:
        expected[s] = 1
    np.testing.assert_array_equal(read(open_mask(store, "training")), expected)
    np.testing.assert_array_equal(read(open_mask(store, "validation")), 1 - expected)


def test_given_hdf5_masks_are_aligned_by_world_coordinates(tmp_path, capsys):
    store = make_store(tmp_path)
    # a training mask at twice the label resolution in y/x, shifted; a validation mask on the
    # label grid covering only part of the labels
    fine = np.zeros((10, 20, 20), np.uint8)
    fine[:, 4:10, :] = 1  # world y in [8 + 4*2, 8 + 10*2) = [16, 28)
    with h5py.File(tmp_path / "m.hdf", "w") as f:
        ds = f.create_dataset("volumes/masks/training", data=fine)
        ds.attrs["resolution"] = [40.0, 2.0, 2.0]
        ds.attrs["offset"] = [40.0, 8.0, 8.0]
        v = f.create_dataset("volumes/masks/validation", data=np.full((2, 6, 5), 7, np.uint8))
        v.attrs["resolution"] = [40.0, 4.0, 4.0]
        v.attrs["offset"] = [360.0, 8.0, 12.0]
    code, err = run_cli(
        capsys,
        "masks",
        store,
        "--training-mask",
        tmp_path / "m.hdf" / "volumes/masks/training",
        "--validation-mask",
        f"{tmp_path / 'm.hdf'}/volumes/masks/validation",
    )
    assert code == 0, err
    # label voxel y centres: 10, 14, 18, 22, 26, 30 -> inside [16, 28) for y voxels 2, 3, 4;
    # z centres 100..380, the fine mask covers z [40, 440): all label sections
    expected = np.zeros(LABEL_SHAPE, np.uint8)
    expected[:, 2:5, :] = 1
    np.testing.assert_array_equal(read(open_mask(store, "training")), expected)
    expected = np.zeros(LABEL_SHAPE, np.uint8)
    expected[7:] = 1  # z 360..400 is the last label section; the rest of the mask is outside
    np.testing.assert_array_equal(read(open_mask(store, "validation")), expected)


def test_one_given_zarr_mask_and_its_complement(tmp_path, capsys):
    store = make_store(tmp_path)
    masks = zarr.open_group(str(tmp_path / "masks.zarr"), mode="w")
    data = np.zeros(LABEL_SHAPE, np.uint8)
    data[1:3, 2:, 1:4] = 1
    write_volume(masks, "validation", data, VOXEL, LABEL_OFFSET)
    code, err = run_cli(
        capsys, "masks", store, "--validation-mask", tmp_path / "masks.zarr" / "validation"
    )
    assert code == 0, err
    np.testing.assert_array_equal(read(open_mask(store, "validation")), data)
    np.testing.assert_array_equal(read(open_mask(store, "training")), 1 - data)


def test_rerun_is_idempotent_and_replaces(tmp_path):
    store = make_store(tmp_path)
    make_masks(store, SplitRule(training_fraction=0.5))
    make_masks(store, SplitRule(training_fraction=0.5))
    first = read(open_mask(store, "training"))
    make_masks(store, SplitRule(training_fraction=0.25))
    assert read(open_mask(store, "training")).sum() < first.sum()
    assert sorted(p.name for p in (store / "masks").iterdir()) == [
        "training",
        "validation",
        "zarr.json",
    ]


def test_failure_leaves_previous_mask(tmp_path):
    store = make_store(tmp_path)
    make_masks(store, SplitRule(training_fraction=0.5))

    def broken(z0, z1):
        raise OSError("disk full")

    from synful.masks import write_mask

    with pytest.raises(OSError):
        write_mask(store, "training", Roi(LABEL_OFFSET, (320, 24, 20)), VOXEL, broken)
    assert read(open_mask(store, "training"))[:4].all()
    assert sorted(p.name for p in (store / "masks").iterdir()) == [
        "training",
        "validation",
        "zarr.json",
    ]


def test_synapses_follow_their_postsynaptic_point(tmp_path, capsys):
    store = make_store(tmp_path)
    make_masks(store, SplitRule(training_fraction=0.5))  # training z world [80, 240)
    pre = [[500, 0, 0], [100, 10, 14], [239, 10, 14], [100, 10, 14], [100, 10, 14]]
    post = [[100, 10, 14], [240, 10, 14], [239.9, 31.9, 31.9], [0, 0, 0], [399.9, 10, 14]]
    table = make_synapses(pre, post)
    write_synapses(table, tmp_path / "s.parquet")
    training = synapses_in_split(table, store, "training")
    assert training["id"].tolist() == [0, 2]
    validation = synapses_in_split(tmp_path / "s.parquet", store, "validation")
    assert validation["id"].tolist() == [1, 4]  # id 3 lies outside the labelled region
    code, err = run_cli(capsys, "masks", store, "--summary", tmp_path / "summary.json")
    assert code == 0, err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["training"]["synapses"] == 3 and summary["validation"]["synapses"] == 1


def test_synapses_in_split_needs_the_mask(tmp_path):
    store = make_store(tmp_path)
    with pytest.raises(SynfulError, match="has no masks/validation"):
        synapses_in_split(make_synapses([[0, 0, 0]], [[0, 0, 0]]), store, "validation")


def test_container_paths():
    assert split_container_path("a/b.hdf/volumes/m") == (
        __import__("pathlib").Path("a/b.hdf"),
        "volumes/m",
    )
    with pytest.raises(SynfulError):
        split_container_path("a/b.hdf")


@pytest.mark.parametrize(
    "argv, problem",
    [
        (["--training-fraction", "1.5"], "--training-fraction: must lie in [0, 1], got 1.5"),
        (["--training-fraction", "0.5", "--training-range", "0", "10"], "not both"),
        (["--training-range", "10", "10"], "training range [10.0, 10.0] is empty"),
        (["--training-mask", "{tmp}/none.hdf/m"], "none.hdf: no such file"),
        (["--training-mask", "{tmp}/s.zarr"], "expected a mask as file.hdf/path/to/dataset"),
        (["--training-mask", "{tmp}/s.zarr/nothing"], "missing array nothing"),
        (["--training-mask", "{tmp}/m.hdf/x", "--training-fraction", "0.5"], "not both"),
    ],
)
def test_bad_arguments(tmp_path, capsys, argv, problem):
    store = make_store(tmp_path)
    code, err = run_cli(capsys, "masks", store, *[a.format(tmp=tmp_path) for a in argv])
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("synful: error: ")
    assert problem in err
    assert not (store / "masks").exists()


def test_store_without_labels(tmp_path, capsys):
    store = tmp_path / "t.zarr"
    write_volume(
        zarr.open_group(str(store), mode="w"),
        "raw",
        np.zeros((2, 2, 2), np.uint8),
        VOXEL,
        (0, 0, 0),
    )
    code, err = run_cli(capsys, "masks", store)
    assert code == 1 and "missing array neuron_ids" in err
