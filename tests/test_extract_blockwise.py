"""Extraction from prediction stores: blockwise = whole volume, ids, resume, seg ids, errors, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import zarr
from _extract_stores import (
    blob_map,
    random_vectors,
    write_prediction_store,
    write_sample_store,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synful.blockwise import DoneMarkers
from synful.cli import main
from synful.errors import SynfulError
from synful.extract import (
    ExtractConfig,
    extract_from_arrays,
    extract_synapses,
    run_extract_blocks,
    work_directory,
)
from synful.extract.predictions import open_predictions
from synful.io.synapse_table import read_synapses
from synful.io.zarr_array import world_array, write_volume

VS = (40, 4, 4)
SHAPE = (12, 64, 64)
# blob centres chosen to straddle the borders of 4 x 16 x 16 and 6 x 32 x 32 blocks
CENTRES = [(3, 15, 16), (4, 32, 31), (6, 8, 47), (8, 48, 48), (2, 40, 10), (9, 20, 56), (5, 55, 25)]
OFFSET = (400, 80, 120)


def in_memory_arrays(prob, vectors):
    """The probabilities and partner vectors as Arrays at ``OFFSET`` (for extract_from_arrays)."""
    return world_array(prob, VS, OFFSET), world_array(vectors, VS, OFFSET, channels=1)


@pytest.fixture
def prob():
    return blob_map(SHAPE, CENTRES, radius_vox=(1, 4, 4), value=0.95, seed=5)


@pytest.fixture
def vectors():
    return random_vectors(SHAPE, seed=6, steps=30)


@pytest.fixture
def store(tmp_path, prob, vectors):
    return write_prediction_store(
        tmp_path / "pred.zarr", prob, vectors, offset=OFFSET, chunks=(4, 16, 16)
    )


# mode, or mode + the original's rule (the CC location of master, NMS reflect at the border)
MODES = {
    "cc": {"mode": "cc"},
    "nms": {"mode": "nms"},
    "split": {"mode": "split"},
    "cc-master": {"mode": "cc", "cc_location": "master"},
    "nms-reflect": {"mode": "nms", "nms_border": "reflect"},
}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("block_shape", [(4, 16, 16), (6, 32, 32), (5, 21, 13)])
def test_blockwise_equals_whole_volume(tmp_path, store, prob, vectors, mode, block_shape):
    """Components straddle block borders; every block shape gives the whole-volume table."""
    kwargs = {**MODES[mode], "threshold": 0.5, "progress": False}
    whole = extract_synapses(store, tmp_path / "whole.parquet", **kwargs)
    blocks = extract_synapses(store, tmp_path / "blocks.parquet", block_shape=block_shape, **kwargs)
    assert len(whole) >= len(CENTRES)
    pd.testing.assert_frame_equal(whole, blocks)
    pd.testing.assert_frame_equal(blocks, read_synapses(tmp_path / "blocks.parquet"))
    in_memory = extract_from_arrays(*in_memory_arrays(prob, vectors), ExtractConfig(**MODES[mode]))
    pd.testing.assert_frame_equal(whole, in_memory)
    assert whole["id"].is_unique and whole["id"].is_monotonic_increasing
    assert not work_directory(tmp_path / "blocks.parquet").exists()


def test_without_context_straddling_components_split(tmp_path, store):
    """The context is what makes blocks agree: without it, border components split."""
    whole = extract_synapses(store, tmp_path / "w.parquet", progress=False)
    split = extract_synapses(
        store, tmp_path / "s.parquet", block_shape=(4, 16, 16), context=0, progress=False
    )
    assert len(split) > len(whole)


def test_quantized_store_honours_scale(tmp_path, prob, vectors):
    """uint8/255 probabilities and int8/0.25 vectors give the de-scaled values."""
    store = write_prediction_store(
        tmp_path / "q.zarr", prob, vectors, offset=OFFSET, quantized=True
    )
    table = extract_synapses(store, tmp_path / "q.parquet", block_shape=(4, 16, 16), progress=False)
    stored = zarr.open_array(str(store / "post_indicator"))[...]
    expected = extract_from_arrays(
        *in_memory_arrays(stored / np.float32(255), vectors), ExtractConfig()
    )
    pd.testing.assert_frame_equal(table, expected)
    post = table[["post_z", "post_y", "post_x"]].to_numpy()
    pre = table[["pre_z", "pre_y", "pre_x"]].to_numpy()
    voxel = ((post - OFFSET) / VS).astype(int)
    vec = vectors[(slice(None), *voxel.T)].T
    expected_pre = np.floor((post + vec - OFFSET) / VS + 0.5) * VS + OFFSET
    np.testing.assert_array_equal(pre, expected_pre)


def test_float16_store_with_unit_scale(tmp_path, prob, vectors):
    """The predict stage's float16 output (scale 1) reads as the float values themselves."""
    group = zarr.open_group(str(tmp_path / "f16.zarr"), mode="w")
    half = prob.astype(np.float16)
    write_volume(group, "post_indicator", half, VS, OFFSET, attrs={"scale": 1.0})
    write_volume(
        group,
        "partner_vectors",
        vectors.astype(np.float16),
        VS,
        OFFSET,
        channels=1,
        attrs={"scale": 1.0},
    )
    for mode in ("cc", "nms"):
        table = extract_synapses(
            tmp_path / "f16.zarr", tmp_path / f"{mode}.parquet", mode=mode, progress=False
        )
        config = ExtractConfig(mode=mode)
        expected = extract_from_arrays(*in_memory_arrays(half.astype(np.float32), vectors), config)
        assert len(table) >= len(CENTRES)
        pd.testing.assert_frame_equal(table, expected)


def test_resume_processes_only_missing_blocks(tmp_path, store):
    out = tmp_path / "syn.parquet"
    config = ExtractConfig()
    processor, task, result = run_extract_blocks(
        store, out, config, block_shape=(4, 32, 32), progress=False
    )
    assert result.processed == task.num_blocks == 12
    work = work_directory(out)
    DoneMarkers(work).unmark([5])
    processor.table_path(5).unlink()
    _, _, result = run_extract_blocks(store, out, config, block_shape=(4, 32, 32), progress=False)
    assert (result.skipped, result.processed) == (11, 1)
    # bookkeeping: a few files, not one per block
    assert sorted(p.name for p in work.iterdir()) == ["done", "identity.json", "tables"]
    # other settings: the old work directory is never resumed, nor silently discarded
    with pytest.raises(
        SynfulError,
        match=r"syn.parquet.blocks: holds unfinished work of another "
        r"run \(config differ\); rerun with --restart to start fresh$",
    ):
        run_extract_blocks(
            store, out, ExtractConfig(threshold=0.6), block_shape=(4, 32, 32), progress=False
        )
    with pytest.raises(SynfulError, match=r"\(block_shape, context, config differ\)"):
        run_extract_blocks(
            store, out, ExtractConfig(context=200), block_shape=(6, 32, 32), progress=False
        )
    _, _, result = run_extract_blocks(
        store,
        out,
        ExtractConfig(threshold=0.6),
        block_shape=(4, 32, 32),
        progress=False,
        restart=True,
    )
    assert (result.skipped, result.processed) == (0, 12)
    resumed = extract_synapses(store, out, threshold=0.6, block_shape=(4, 32, 32), progress=False)
    fresh = extract_synapses(store, tmp_path / "fresh.parquet", threshold=0.6, progress=False)
    pd.testing.assert_frame_equal(resumed, fresh)
    assert not work.exists()


def test_a_rewritten_prediction_store_is_another_recipe(tmp_path, store, capsys):
    """Predictions by content: a store written anew (new creation id, as every synful predict
    gives) is never resumed; the CLI says so in one line and --restart starts fresh."""
    zarr.open_group(str(store), mode="r+").attrs["synful"] = {
        "kind": "predictions",
        "creation_id": "first",
    }
    out = tmp_path / "syn.parquet"
    run_extract_blocks(store, out, ExtractConfig(), block_shape=(4, 32, 32), progress=False)
    zarr.open_group(str(store), mode="r+").attrs["synful"] = {
        "kind": "predictions",
        "creation_id": "second",
    }
    args = ["--quiet", "extract", str(store), str(out), "--block-shape", "4", "32", "32"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"synful: error: {out}.blocks: holds unfinished work of another run "
        "(predictions differ); rerun with --restart to start fresh"
    ]
    assert main([*args, "--restart"]) == 0
    assert out.exists() and not work_directory(out).exists()


def test_segment_ids_and_autapses(tmp_path):
    prob = np.zeros((6, 32, 32), np.float32)
    prob[2, 5:8, 5:8] = 0.9  # post (2, 6, 6): vector to (2, 6, 20) in another segment
    prob[3, 20:23, 20:23] = 0.9  # post (3, 21, 21): vector stays in the same segment
    vectors = np.zeros((3, 6, 32, 32), np.float32)
    vectors[2, 2, 6, 6] = 14 * 4
    vectors[2, 3, 21, 21] = -4 * 4
    store = write_prediction_store(tmp_path / "p.zarr", prob, vectors)
    seg = np.zeros((6, 32, 32), np.uint64)
    seg[:, :, :16] = 7
    seg[:, :, 16:] = 9
    sample = write_sample_store(tmp_path / "s.zarr", seg[:, :30])  # smaller: outside is 0
    table = extract_synapses(store, tmp_path / "a.parquet", seg_store=sample, progress=False)
    assert table[["pre_seg_id", "post_seg_id"]].to_numpy().tolist() == [[9, 7], [9, 9]]
    assert table["pre_seg_id"].dtype == np.uint64
    kept = extract_synapses(
        store, tmp_path / "b.parquet", seg_store=sample, drop_autapses=True, progress=False
    )
    assert kept[["pre_seg_id", "post_seg_id"]].to_numpy().tolist() == [[9, 7]]
    pd.testing.assert_frame_equal(kept, read_synapses(tmp_path / "b.parquet"))


def test_min_distance_and_nms_options(tmp_path, store):
    a = extract_synapses(store, tmp_path / "a.parquet", progress=False)
    b = extract_synapses(store, tmp_path / "b.parquet", min_distance=100, progress=False)
    pre, post = (
        a[["pre_z", "pre_y", "pre_x"]].to_numpy(),
        a[["post_z", "post_y", "post_x"]].to_numpy(),
    )
    assert len(b) == int((np.linalg.norm(pre - post, axis=1) >= 100).sum()) < len(a)
    c = extract_synapses(store, tmp_path / "c.parquet", mode="nms", nms_radius=80, progress=False)
    d = extract_synapses(store, tmp_path / "d.parquet", mode="nms", nms_radius=16, progress=False)
    assert len(c) <= len(d)
    assert (c["score"] <= 1).all()


def test_nothing_above_threshold_writes_an_empty_table(tmp_path, store, capsys):
    out = tmp_path / "empty.parquet"
    assert main(["--quiet", "extract", str(store), str(out), "--threshold", "1"]) == 0
    assert capsys.readouterr().out.strip() == f"{out}: 0 synapses"
    table = read_synapses(out)
    assert len(table) == 0 and "score" in table.columns


def test_dask_workers_give_the_same_table(tmp_path, store):
    serial = extract_synapses(
        store, tmp_path / "a.parquet", block_shape=(6, 32, 32), progress=False
    )
    threaded = extract_synapses(
        store,
        tmp_path / "b.parquet",
        block_shape=(6, 32, 32),
        workers=2,
        scheduler="threads",
        progress=False,
    )
    pd.testing.assert_frame_equal(serial, threaded)


def _tiny_merge(module) -> None:
    """Make the block-table merge spill runs of 2 rows and merge them 2 at a time."""
    module._MIN_BATCH_ROWS = 1
    module.MERGE_MEMORY_ROWS = 2
    module.MERGE_FAN_IN = 2


STALL_IN_MERGE = r"""
import sys, time
from pathlib import Path
import synful.io.synapse_table as st
from synful.extract import extract_synapses

store, out, flag = map(Path, sys.argv[1:4])
st._MIN_BATCH_ROWS, st.MERGE_MEMORY_ROWS, st.MERGE_FAN_IN = 1, 2, 2
write = st._TableSink.write

def stalling(self, table):
    write(self, table)
    if self.path.name.startswith(f".{out.name}.tmp-"):  # the first rows written to OUT
        flag.touch()
        time.sleep(600)

st._TableSink.write = stalling
extract_synapses(store, out, block_shape=(4, 16, 16), progress=False)
"""


def test_streamed_merge_of_many_runs_equals_whole_volume(tmp_path, store, monkeypatch):
    """Block order is not id order: the merged runs still give the id-sorted table."""
    import synful.io.synapse_table as table_module

    whole = extract_synapses(store, tmp_path / "whole.parquet", progress=False)
    for name in ("_MIN_BATCH_ROWS", "MERGE_MEMORY_ROWS", "MERGE_FAN_IN"):
        monkeypatch.setattr(table_module, name, getattr(table_module, name))
    _tiny_merge(table_module)
    out = tmp_path / "blocks.parquet"
    rows = extract_synapses(store, out, block_shape=(4, 16, 16), progress=False, return_table=False)
    assert rows == len(whole)
    pd.testing.assert_frame_equal(read_synapses(out), whole)
    assert pq.ParquetFile(out).num_row_groups > 1
    assert json.loads(pq.read_schema(out).metadata[b"synful"])["kind"] == "synapse_table"
    table = extract_synapses(store, tmp_path / "c.csv", block_shape=(6, 32, 32), progress=False)
    pd.testing.assert_frame_equal(table, whole)
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name or p.name.endswith(".blocks")]


def test_a_kill_during_the_merge_leaves_no_output_and_the_rerun_finishes(
    tmp_path, store, monkeypatch
):
    import synful.io.synapse_table as table_module

    whole = extract_synapses(store, tmp_path / "whole.parquet", progress=False)
    out, flag = tmp_path / "syn.parquet", tmp_path / "merging"
    child = subprocess.Popen(
        [sys.executable, "-c", STALL_IN_MERGE, str(store), str(out), str(flag)],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not flag.exists():
            assert child.poll() is None, child.stderr.read().decode()
            assert time.monotonic() < deadline, "the merge never started"
            time.sleep(0.05)
    finally:
        child.kill()  # SIGKILL, in the middle of writing OUT
        child.wait()
    assert not out.exists()
    work = work_directory(out)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(f".{out.name}.tmp-")]
    assert [p.name for p in work.iterdir() if p.name.startswith(".merge.tmp-")]  # its runs

    for name in ("_MIN_BATCH_ROWS", "MERGE_MEMORY_ROWS", "MERGE_FAN_IN"):
        monkeypatch.setattr(table_module, name, getattr(table_module, name))
    _tiny_merge(table_module)
    rerun = extract_synapses(store, out, block_shape=(4, 16, 16), progress=False)
    pd.testing.assert_frame_equal(rerun, whole)
    pd.testing.assert_frame_equal(read_synapses(out), whole)
    assert not work.exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def _no_outputs(tmp_path, out):
    assert not out.exists() and not work_directory(out).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_bad_inputs_raise_and_leave_nothing(tmp_path, store):
    out = tmp_path / "out.parquet"
    sample = tmp_path / "raw_only.zarr"
    write_volume(
        zarr.open_group(str(sample), mode="w"), "raw", np.zeros((4, 8, 8), np.uint8), VS, (0, 0, 0)
    )
    with pytest.raises(SynfulError, match="not a prediction store"):
        extract_synapses(sample, out, progress=False)
    with pytest.raises(SynfulError, match=r"\[0, 1\]"):
        extract_synapses(store, out, threshold=1.5, progress=False)
    seg = write_sample_store(tmp_path / "seg.zarr", np.ones((4, 8, 8)), voxel_size=(40, 8, 8))
    with pytest.raises(SynfulError, match="voxel size"):
        extract_synapses(store, out, seg_store=seg, progress=False)
    with pytest.raises(SynfulError, match="no such"):
        extract_synapses(tmp_path / "missing.zarr", out, progress=False)
    with pytest.raises(SynfulError, match="segmentation"):
        extract_synapses(store, out, drop_autapses=True, progress=False)
    with pytest.raises(SynfulError, match="scheduler"):
        extract_synapses(store, out, workers=2, scheduler="nonsense", progress=False)
    with pytest.raises(SynfulError, match="block-shape"):
        extract_synapses(store, out, block_shape=(0, 4, 4), progress=False)
    _no_outputs(tmp_path, out)


def test_scale_and_vector_shape_are_checked(tmp_path, prob, vectors):
    store = write_prediction_store(tmp_path / "p.zarr", prob, vectors)
    group = zarr.open_group(str(store), mode="a")
    write_volume(group, "partner_vectors", vectors[:2], VS, (0, 0, 0), channels=1)
    with pytest.raises(SynfulError, match=r"\(3, z, y, x\)"):
        open_predictions(store)
    write_volume(group, "partner_vectors", vectors, VS, (0, 0, 0), channels=1)
    write_volume(group, "post_indicator", (prob * 255).astype(np.uint8), VS, (0, 0, 0))
    with pytest.raises(SynfulError, match="without a scale"):
        open_predictions(store)


def test_cli_summary_and_error_line(tmp_path, store, capsys):
    out = tmp_path / "cli.parquet"
    assert main(["--quiet", "extract", str(store), str(out), "--block-shape", "4", "16", "16"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{out}: ") and "synapses; score min/25%/50%/75%/max" in line
    assert len(read_synapses(out)) == int(line.split(": ")[1].split()[0])
    bad = tmp_path / "bad.parquet"
    assert main(["extract", str(store), str(bad), "--threshold", "2"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "synful: error: --threshold: must lie in [0, 1], got 2"
    _no_outputs(tmp_path, bad)


def test_cli_passes_every_option(tmp_path, store, capsys):
    seg = write_sample_store(tmp_path / "s.zarr", np.arange(12 * 64 * 64).reshape(12, 64, 64) % 3)
    options = dict(
        mode="nms",
        threshold=0.4,
        nms_radius=30.0,
        nms_border="reflect",
        score_threshold=0.5,
        min_distance=8.0,
        context=160.0,
        seg_store=seg,
        drop_autapses=True,
        block_shape=(4, 32, 32),
    )
    expected = extract_synapses(store, tmp_path / "api.parquet", progress=False, **options)
    argv = [
        "--quiet",
        "extract",
        str(store),
        str(tmp_path / "cli.parquet"),
        "--mode",
        "nms",
        "--threshold",
        "0.4",
        "--nms-radius",
        "30",
        "--nms-border",
        "reflect",
        "--score-threshold",
        "0.5",
        "--min-distance",
        "8",
        "--context",
        "160",
        "--seg",
        str(seg),
        "--drop-autapses",
        "--block-shape",
        "4",
        "32",
        "32",
        "--workers",
        "1",
        "--scheduler",
        "serial",
    ]
    assert main(argv) == 0
    assert "segment pairs" in capsys.readouterr().out
    assert len(expected) > 0 and "post_seg_id" in expected.columns
    pd.testing.assert_frame_equal(read_synapses(tmp_path / "cli.parquet"), expected)


def test_extract_never_imports_torch(tmp_path, store):
    code = (
        "import sys\n"
        "from synful.cli import main\n"
        f"assert main(['--quiet', 'extract', {str(store)!r}, {str(tmp_path / 't.parquet')!r}]) == 0\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    mode=st.sampled_from(list(MODES)),
    block_shape=st.tuples(st.integers(2, 6), st.integers(7, 24), st.integers(7, 24)),
    density=st.floats(0.05, 0.4),
)
def test_any_map_any_blocks_equal_whole_volume_with_covering_context(
    seed, mode, block_shape, density
):
    """With a context that covers the volume every block sees everything: for any map the
    blockwise table is the whole-volume table (ownership, ids and no duplicates)."""
    rng = np.random.default_rng(seed)
    shape = (6, 24, 24)
    prob = np.where(rng.random(shape) < density, rng.random(shape), 0).astype(np.float32)
    prob = np.round(prob * 8) / 8  # plateaus and ties
    vectors = (rng.integers(-10, 10, (3, *shape)) * 4).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        store = write_prediction_store(Path(tmp) / "p.zarr", prob, vectors, offset=(40, 8, -4))
        kwargs = {
            **MODES[mode],
            "threshold": 0.3,
            "nms_radius": 12,
            "min_piece_volume": 3 * 40 * 4 * 4,
            "context": 1000,
            "progress": False,
        }
        whole = extract_synapses(store, Path(tmp) / "w.parquet", **kwargs)
        blocks = extract_synapses(store, Path(tmp) / "b.parquet", block_shape=block_shape, **kwargs)
    pd.testing.assert_frame_equal(whole, blocks)
    assert whole["id"].is_unique
