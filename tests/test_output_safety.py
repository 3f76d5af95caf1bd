"""Never delete what synful did not write (issue 14, item 1), and bounds before allocation.

Every command is run with an output that is an input's parent, an input itself, a foreign
directory with files in it, and a symbolic link to that directory: each must fail with one
line naming the output, and every byte under the test directory must stay as it was.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
import zarr
from _extract_stores import blob_map, random_vectors, write_prediction_store
from _predict_fixtures import make_checkpoint, make_sample
from _train_stores import TINY_SETUP, write_store

from synful.atomic import atomic_output
from synful.blockwise.markers import DoneMarkers
from synful.blockwise.task import BlockwiseTask
from synful.cli import main
from synful.errors import SynfulError
from synful.geometry import Roi
from synful.io.zarr_array import create_volume
from synful.outputs import SAMPLE, is_kind

SHAPE = ["--shape", "8", "64", "64", "--padding", "2", "8", "8"]


def listing(root: Path) -> dict:
    """Every path under ``root``: directories, link targets and file hashes."""
    out = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory) / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                out[key] = ("link", os.readlink(path))
            elif path.is_dir():
                out[key] = ("dir",)
            else:
                out[key] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def run(capsys, *argv) -> tuple[int, list[str]]:
    code = main(["--quiet", *map(str, argv)])
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("safety")
    data = root / "data"
    assert main(["--quiet", "synthesize", str(data / "A.hdf"), *SHAPE]) == 0
    assert main(["--quiet", "convert", str(data / "A.hdf"), str(data / "A.zarr"),
                 "--synapses", str(data / "A.parquet")]) == 0  # fmt: skip
    shape = (6, 32, 32)
    write_prediction_store(
        data / "pred.zarr", blob_map(shape, [(2, 8, 8), (3, 20, 24)]), random_vectors(shape, 1, 4)
    )
    make_checkpoint(data / "checkpoint_7.pt")
    make_sample(data / "sample.zarr")
    write_store(data / "train.zarr")
    (data / "setup.yaml").write_text(yaml.safe_dump(TINY_SETUP))
    foreign = root / "foreign"
    (foreign / "sub").mkdir(parents=True)
    (foreign / "notes.txt").write_text("a user's file\n")
    (foreign / "sub" / "data.bin").write_bytes(bytes(range(256)))
    (root / "link").symlink_to(foreign, target_is_directory=True)
    return root


#: command -> (argv for an output OUT, the input that OUT is tried as)
COMMANDS = {
    "synthesize": (lambda d, out: ["synthesize", out, *SHAPE], None),
    "synthesize --preview": (
        lambda d, out: ["synthesize", d / "new.hdf", *SHAPE, "--preview", out],
        None,
    ),
    "convert": (
        lambda d, out: ["convert", d / "A.hdf", out, "--synapses", d / "new.parquet"],
        "A.hdf",
    ),
    "convert --synapses": (
        lambda d, out: ["convert", d / "A.hdf", d / "new.zarr", "--synapses", out],
        "A.hdf",
    ),
    "masks --summary": (lambda d, out: ["masks", d / "A.zarr", "--summary", out], "A.zarr"),
    "train": (
        lambda d, out: [
            "train",
            d / "setup.yaml",
            "--samples",
            d / "train.zarr",
            "--out",
            out,
            "--iterations",
            "1",
            "--device",
            "cpu",
        ],
        "train.zarr",
    ),  # fmt: skip
    "predict": (
        lambda d, out: [
            "predict",
            d / "checkpoint_7.pt",
            d / "sample.zarr",
            out,
            "--device",
            "cpu",
        ],
        "sample.zarr",
    ),
    "extract": (lambda d, out: ["extract", d / "pred.zarr", out], "pred.zarr"),
    "evaluate": (
        lambda d, out: ["evaluate", "--pred", d / "A.parquet", "--gt", d / "A.hdf", "--out", out],
        "A.parquet",
    ),
    "evaluate --plot": (
        lambda d, out: [
            "evaluate",
            "--pred",
            d / "A.parquet",
            "--gt",
            d / "A.zarr",
            "--score-thresholds",
            "0",
            "--out",
            d / "m.json",
            "--plot",
            out,
        ],
        "A.zarr",
    ),  # fmt: skip
    "export": (lambda d, out: ["export", d / "A.parquet", out], "A.parquet"),
}
CASES = ["input's parent", "input", "foreign directory", "link to a foreign directory"]


def _out(world: Path, case: str, the_input: str | None) -> Path:
    return {
        "input's parent": world / "data",
        "input": world / "data" / str(the_input),
        "foreign directory": world / "foreign",
        "link to a foreign directory": world / "link",
    }[case]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_refused_and_nothing_touched(world, capsys, command, case):
    make_argv, the_input = COMMANDS[command]
    if the_input is None and case == "input":
        pytest.skip("synthesize has no input")
    out = _out(world, case, the_input)
    before = listing(world)
    code, err = run(capsys, *make_argv(world / "data", out))
    assert code == 1
    assert len(err) == 1 and err[0].startswith(f"synful: error: {out}: "), err
    assert listing(world) == before


def test_the_issue_scenario(tmp_path, capsys, monkeypatch):
    """``convert data/A.hdf data --synapses A.parquet`` used to delete data/A.hdf."""
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "synthesize", "data/A.hdf", *SHAPE)[0] == 0
    before = listing(tmp_path)
    code, err = run(capsys, "convert", "data/A.hdf", "data", "--synapses", "A.parquet")
    assert code == 1 and err == [
        "synful: error: data: contains the input data/A.hdf; not replacing it"
    ]
    assert listing(tmp_path) == before


def test_swapped_extract_arguments_keep_the_sample_store(world, capsys):
    before = listing(world)
    store = world / "data" / "A.zarr"
    code, err = run(capsys, "extract", world / "data" / "pred.zarr", store)
    assert code == 1 and len(err) == 1
    assert err[0].startswith(f"synful: error: {store}: is a directory, not a synapse table")
    assert listing(world) == before


@pytest.mark.parametrize(
    "argv,out",
    [
        # an output of another kind: a sample store is no prediction store, and so on
        (lambda d: ["predict", d / "checkpoint_7.pt", d / "sample.zarr", d / "A.zarr"], "A.zarr"),
        (
            lambda d: ["convert", d / "A.hdf", d / "pred.zarr", "--synapses", d / "x.parquet"],
            "pred.zarr",
        ),
        (lambda d: ["export", d / "A.parquet", d / "A.hdf"], "A.hdf"),
        (lambda d: ["synthesize", d / "setup.yaml", *SHAPE], "setup.yaml"),
        (lambda d: ["extract", d / "pred.zarr", d / "setup.yaml"], "setup.yaml"),
        (
            lambda d: [
                "train",
                d / "setup.yaml",
                "--samples",
                d / "train.zarr",
                "--out",
                d / "A.zarr",
            ],
            "A.zarr",
        ),
        # two outputs on one path
        (lambda d: ["convert", d / "A.hdf", d / "x.zarr", "--synapses", d / "x.zarr"], "x.zarr"),
    ],
)
def test_an_existing_output_of_another_kind_is_refused(world, capsys, argv, out):
    before = listing(world)
    code, err = run(capsys, *argv(world / "data"))
    assert (
        code == 1
        and len(err) == 1
        and err[0].startswith(f"synful: error: {world / 'data' / out}: ")
    )
    assert listing(world) == before


def test_foreign_work_directories_are_refused(world, tmp_path, capsys):
    data = world / "data"
    blocks = tmp_path / "new.parquet.blocks"
    blocks.mkdir()
    (blocks / "mine.txt").write_text("x")
    code, err = run(capsys, "extract", data / "pred.zarr", tmp_path / "new.parquet")
    assert code == 1 and err[0].startswith(
        f"synful: error: {blocks}: is a directory that synful did not"
    )
    partial = tmp_path / ".new.zarr.partial"
    partial.mkdir()
    (partial / "mine.txt").write_text("x")
    code, err = run(capsys, "predict", data / "checkpoint_7.pt", data / "sample.zarr",
                    tmp_path / "new.zarr", "--device", "cpu")  # fmt: skip
    assert code == 1 and err[0].startswith(
        f"synful: error: {partial}: is a directory that synful did not"
    )
    assert (blocks / "mine.txt").read_text() == (partial / "mine.txt").read_text() == "x"


def test_reruns_replace_their_own_outputs(world, tmp_path, capsys):
    data = world / "data"
    for _ in range(2):
        assert (
            run(capsys, "synthesize", tmp_path / "s.hdf", *SHAPE, "--preview", tmp_path / "s.png")[
                0
            ]
            == 0
        )
        assert run(capsys, "export", data / "A.parquet", tmp_path / "e.hdf")[0] == 0
        assert run(capsys, "extract", data / "pred.zarr", tmp_path / "t.parquet")[0] == 0
        assert run(capsys, "extract", data / "pred.zarr", tmp_path / "t.csv")[0] == 0
        assert run(capsys, "evaluate", "--pred", data / "A.parquet", "--gt", data / "A.hdf",
                   "--out", tmp_path / "m.json")[0] == 0  # fmt: skip
        assert run(capsys, "convert", tmp_path / "s.hdf", tmp_path / "s.zarr",
                   "--synapses", tmp_path / "s.parquet")[0] == 0  # fmt: skip
        assert run(capsys, "masks", tmp_path / "s.zarr", "--summary", tmp_path / "s.json")[0] == 0
    assert is_kind(tmp_path / "s.zarr", SAMPLE)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_stores_without_a_mark_are_not_replaced(tmp_path, capsys):
    """A zarr store synful did not write as a sample store (no ``synful`` attribute)."""
    hdf = tmp_path / "A.hdf"
    assert run(capsys, "synthesize", hdf, *SHAPE)[0] == 0
    store = tmp_path / "theirs.zarr"
    zarr.open_group(str(store), mode="w").attrs["owner"] = "someone else"
    before = listing(tmp_path)
    code, err = run(capsys, "convert", hdf, store, "--synapses", tmp_path / "t.parquet")
    assert code == 1 and "synful did not write as a sample store" in err[0]
    assert listing(tmp_path) == before


def test_atomic_output_never_replaces_a_foreign_directory(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("keep")
    with pytest.raises(SynfulError, match="is a directory"):
        with atomic_output(target) as tmp:
            tmp.mkdir()
    assert (target / "keep.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_done_markers_refuse_a_foreign_directory(tmp_path):
    done = tmp_path / "done"
    done.mkdir()
    (done / "thesis.tex").write_text("x")
    task = BlockwiseTask(Roi((0, 0, 0), (4, 4, 4)), (2, 2, 2), (0, 0, 0), (1, 1, 1))
    markers = DoneMarkers(done)
    with pytest.raises(SynfulError, match="not a done-marker directory"):
        markers.bind(task)
    with pytest.raises(SynfulError, match="not a done-marker directory"):
        markers.clear()
    assert (done / "thesis.tex").read_text() == "x"


# --- bounds before allocation -------------------------------------------------------------


def huge_cremi(path: Path, shape) -> Path:
    with h5py.File(path, "w") as f:  # chunked and never written: no data on disk
        ds = f.create_dataset("volumes/raw", shape=shape, dtype=np.uint8, chunks=(1, 64, 64))
        ds.attrs["resolution"] = np.asarray([40.0, 4.0, 4.0])
    return path


@pytest.mark.parametrize(
    "shape,message",
    [
        ((100, 100_000, 100_000), "one section needs 9.3 GiB of memory to copy (limit 1 GiB)"),
        ((64, 16384, 16384), "a slab of 8 sections needs 2.0 GiB of memory (limit 1 GiB); "
                             "use --chunks with at most 4 sections"),
    ],
)  # fmt: skip
def test_convert_refuses_a_huge_slab_before_reading(tmp_path, capsys, shape, message):
    hdf = huge_cremi(tmp_path / "huge.hdf", shape)
    code, err = run(
        capsys, "convert", hdf, tmp_path / "h.zarr", "--synapses", tmp_path / "h.parquet"
    )
    assert code == 1 and err == [f"synful: error: {hdf}: volumes/raw has shape {shape}: {message}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.hdf"]


def test_masks_refuse_a_much_finer_mask_before_reading(tmp_path, capsys):
    store = tmp_path / "s.zarr"
    group = zarr.open_group(str(store), mode="w")
    create_volume(group, "neuron_ids", shape=(16, 1024, 1024), dtype=np.uint64,
                  voxel_size=(40, 4, 4), offset=(0, 0, 0))  # fmt: skip
    mask = tmp_path / "mask.hdf"
    with h5py.File(mask, "w") as f:  # 1 nm voxels over the same region, never written
        ds = f.create_dataset("mask", shape=(640, 4096, 4096), dtype=np.uint8, chunks=(1, 256, 256))
        ds.attrs["resolution"] = np.asarray([1.0, 1.0, 1.0])
    code, err = run(capsys, "masks", store, "--training-mask", f"{mask}/mask")
    assert code == 1 and len(err) == 1
    assert err[0] == (
        f"synful: error: {mask}/mask: voxel size [1, 1, 1] nm is much finer than the labels' "
        "[40, 4, 4] nm: a slab of 16 sections would read 9.4 GiB of the mask (limit 1 GiB); "
        "downsample the mask first"
    )
    assert not (store / "masks").exists()
