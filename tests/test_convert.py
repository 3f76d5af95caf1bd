"""`synful convert`: CREMI HDF5 -> sample store + synapse table, and every bad input."""

import h5py
import numpy as np
import pytest

from synful.cli import main
from synful.convert import convert_cremi
from synful.geometry import Roi
from synful.io.cremi import CremiAnnotations, CremiSample, CremiVolume, write_cremi
from synful.io.sample_store import open_neuron_ids, open_raw
from synful.io.synapse_table import read_synapses
from synful.io.zarr_array import read, storage


def cremi_sample(resolution=(40, 4, 4), label_resolution=None):
    rng = np.random.default_rng(0)
    raw = CremiVolume(rng.integers(0, 255, (10, 24, 20), dtype=np.uint8), resolution)
    labels = CremiVolume(
        rng.integers(1, 5, (6, 12, 8)).astype(np.uint64),
        label_resolution or resolution,
        (80.0, 24.0, 16.0),
    )
    annotations = CremiAnnotations(
        ids=[1, 2, 3, 7],
        types=["presynaptic_site", "postsynaptic_site", "postsynaptic_site", "presynaptic_site"],
        locations=[[40, 8, 8], [40, 20, 8], [80, 8, 28], [0, 0, 0]],
        partners=[[1, 2], [1, 3], [7, 2]],
        offset=(80.0, 24.0, 16.0),
    )
    return CremiSample(raw=raw, neuron_ids=labels, annotations=annotations)


def write_sample(path, **kwargs):
    write_cremi(path, cremi_sample(**kwargs))
    return path


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.err


def test_convert_round_trip(tmp_path, capsys):
    hdf = write_sample(tmp_path / "s.hdf")
    store, table = tmp_path / "s.zarr", tmp_path / "s.parquet"
    code, err = run_cli(capsys, "convert", hdf, store, "--synapses", table, "--chunks", 4, 8, 8)
    assert code == 0, err
    expected = cremi_sample()
    raw = open_raw(store)
    assert raw.dtype == np.uint8
    assert raw.roi == Roi((0, 0, 0), (400, 96, 80))
    np.testing.assert_array_equal(read(raw), expected.raw.data)
    assert storage(raw).chunks == (4, 8, 8)
    labels = open_neuron_ids(store)
    assert labels.dtype == np.uint64
    assert labels.roi == Roi((80, 24, 16), (240, 48, 32))
    np.testing.assert_array_equal(read(labels), expected.neuron_ids.data)
    synapses = read_synapses(table)
    assert len(synapses) == 3
    # absolute nm: annotation offset added once per point, polyadic pre site repeated
    np.testing.assert_array_equal(
        synapses[["pre_z", "pre_y", "pre_x"]].to_numpy(),
        [[120, 32, 24], [120, 32, 24], [80, 24, 16]],
    )
    np.testing.assert_array_equal(
        synapses[["post_z", "post_y", "post_x"]].to_numpy(),
        [[120, 44, 24], [160, 32, 44], [120, 44, 24]],
    )


def test_store_opens_with_funlib_persistence(tmp_path):
    funlib_persistence = pytest.importorskip("funlib.persistence")
    hdf = write_sample(tmp_path / "s.hdf")
    store = tmp_path / "s.zarr"
    convert_cremi(hdf, store, tmp_path / "s.parquet")
    labels = funlib_persistence.open_ds(store / "neuron_ids")
    assert tuple(labels.voxel_size) == (40, 4, 4)
    assert tuple(labels.offset) == (80, 24, 16)
    assert list(labels.axis_names) == ["z", "y", "x"]
    np.testing.assert_array_equal(labels.to_ndarray(labels.roi), cremi_sample().neuron_ids.data)
    raw = funlib_persistence.open_ds(store / "raw")
    assert raw.roi == Roi((0, 0, 0), (400, 96, 80))


def test_unlabelled_sample_gives_raw_and_empty_table(tmp_path, capsys):
    sample = cremi_sample()
    write_cremi(tmp_path / "t.hdf", CremiSample(raw=sample.raw))
    code, err = run_cli(
        capsys,
        "convert",
        tmp_path / "t.hdf",
        tmp_path / "t.zarr",
        "--synapses",
        tmp_path / "t.parquet",
    )
    assert code == 0, err
    assert not (tmp_path / "t.zarr" / "neuron_ids").exists()
    assert len(read_synapses(tmp_path / "t.parquet")) == 0


def test_rerun_replaces_outputs(tmp_path):
    hdf = write_sample(tmp_path / "s.hdf")
    store, table = tmp_path / "s.zarr", tmp_path / "s.parquet"
    convert_cremi(hdf, store, table)
    convert_cremi(hdf, store, table)
    np.testing.assert_array_equal(read(open_raw(store)), cremi_sample().raw.data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.hdf", "s.parquet", "s.zarr"]


def missing_raw(path):
    write_sample(path)
    with h5py.File(path, "a") as f:
        del f["volumes/raw"]


def bad_partner(path):
    write_sample(path)
    with h5py.File(path, "a") as f:
        f["annotations/presynaptic_site/partners"][0, 1] = 99


def wrong_resolution(path):
    write_sample(path, resolution=(40, 8, 8))


def labels_disagree(path):
    write_sample(path, label_resolution=(40, 8, 8))


def off_grid_offset(path):
    write_sample(path)
    with h5py.File(path, "a") as f:
        f["volumes/labels/neuron_ids"].attrs["offset"] = [80.0, 26.0, 16.0]


def not_hdf5(path):
    path.write_text("this is not an HDF5 file\n")


def float_raw(path):
    write_sample(path)
    with h5py.File(path, "a") as f:
        del f["volumes/raw"]
        f.create_dataset("volumes/raw", data=np.zeros((2, 2, 2), np.float32))
        f["volumes/raw"].attrs["resolution"] = [40.0, 4.0, 4.0]


@pytest.mark.parametrize(
    "make_bad, problem",
    [
        (None, "no such file"),
        (not_hdf5, "not an HDF5 file"),
        (missing_raw, "missing dataset volumes/raw"),
        (bad_partner, "partner id 99"),
        (wrong_resolution, "volumes/raw has resolution (40, 8, 8), expected (40, 4, 4)"),
        (labels_disagree, "volumes/labels/neuron_ids has resolution (40, 8, 8)"),
        (off_grid_offset, "not a multiple of the voxel size"),
        (float_raw, "expected uint8"),
    ],
)
def test_bad_input_is_one_line_and_leaves_nothing(tmp_path, capsys, make_bad, problem):
    hdf = tmp_path / "bad.hdf"
    if make_bad is not None:
        make_bad(hdf)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, err = run_cli(
        capsys, "convert", hdf, tmp_path / "o.zarr", "--synapses", tmp_path / "o.parquet"
    )
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"synful: error: {hdf}: ")
    assert problem in lines[0]
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_expected_voxel_size_is_configurable(tmp_path, capsys):
    hdf = write_sample(tmp_path / "s.hdf", resolution=(40, 8, 8))
    code, err = run_cli(
        capsys,
        "convert",
        hdf,
        tmp_path / "s.zarr",
        "--synapses",
        tmp_path / "s.parquet",
        "--voxel-size",
        40,
        8,
        8,
    )
    assert code == 0, err
    assert open_raw(tmp_path / "s.zarr").voxel_size == (40, 8, 8)


def test_failure_midway_leaves_no_store_and_no_table(tmp_path, monkeypatch):
    hdf = write_sample(tmp_path / "s.hdf")
    import synful.convert as convert

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(convert, "write_synapses", fail)
    with pytest.raises(OSError):
        convert_cremi(hdf, tmp_path / "s.zarr", tmp_path / "s.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.hdf"]


def test_debug_shows_traceback(tmp_path):
    from synful.errors import SynfulError

    with pytest.raises(SynfulError):
        main(
            [
                "--debug",
                "convert",
                str(tmp_path / "none.hdf"),
                str(tmp_path / "o.zarr"),
                "--synapses",
                "o.parquet",
            ]
        )
