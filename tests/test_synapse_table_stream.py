"""merge_synapse_tables: the streamed table equals the concatenated one, in bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import synful.io.synapse_table as st
from synful.extract.block import empty_table
from synful.io.synapse_table import make_synapses, merge_synapse_tables, write_synapses
from synful.outputs import MARK_KEY

GRID = (3, 4, 5)  # blocks
BLOCK = (10, 20, 20)  # voxels
VS = np.array([40.0, 4.0, 4.0])


def block_tables(directory: Path, grid=GRID, rows=(0, 200), seed=0, seg=True) -> list[Path]:
    """Tables like extraction's: ids = C-order index of the post voxel in the whole grid, so
    block order is not id order (blocks of one z slab interleave); some blocks are empty."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = tuple(g * b for g, b in zip(grid, BLOCK))
    paths = []
    for i, index in enumerate(np.ndindex(*grid)):
        n = int(rng.integers(*rows)) if i % 7 else 0
        flat = np.sort(rng.choice(int(np.prod(BLOCK)), n, replace=False))
        voxels = np.stack(np.unravel_index(flat, BLOCK), axis=1) + np.array(index) * BLOCK
        ids = np.ravel_multi_index(tuple(voxels.T), shape) if n else np.zeros(0)
        post = voxels * VS
        extra = {"score": rng.random(n) * 100}
        if seg:
            extra.update(pre_seg_id=rng.integers(0, 99, n), post_seg_id=rng.integers(0, 99, n))
        table = make_synapses(post + rng.normal(0, 50, post.shape), post, ids=ids, **extra)
        paths.append(directory / f"{i}.parquet")
        table.to_parquet(paths[-1], index=False)
    return paths


def concatenated(paths) -> pd.DataFrame:
    """What extraction did before: concatenate everything in memory, sort by id."""
    tables = [t for t in (pd.read_parquet(p) for p in paths) if len(t)]
    table = pd.concat(tables, ignore_index=True).sort_values("id", kind="stable")
    return table.reset_index(drop=True)


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize(
    "memory_rows, fan_in",
    [(None, 32), (1024, 32), (1024, 3), (1500, 2)],
    ids=["one-run", "runs", "two-levels", "three-levels"],
)
def test_streamed_table_equals_concatenated(tmp_path, monkeypatch, memory_rows, fan_in):
    monkeypatch.setattr(st, "MERGE_FAN_IN", fan_in)
    paths = block_tables(tmp_path / "blocks")
    expected = concatenated(paths)
    assert not expected["id"].equals(pd.concat([pd.read_parquet(p) for p in paths])["id"])
    write_synapses(expected, tmp_path / "expected.parquet")

    out = tmp_path / "out.parquet"
    rows = merge_synapse_tables(paths, out, memory_rows=memory_rows)
    assert rows == len(expected) > 4000
    table = pd.read_parquet(out)
    pd.testing.assert_frame_equal(table, pd.read_parquet(tmp_path / "expected.parquet"))
    pd.testing.assert_frame_equal(table, expected)  # same rows, order and dtypes
    schema = pq.read_schema(out)
    assert schema.metadata == pq.read_schema(tmp_path / "expected.parquet").metadata
    assert json.loads(schema.metadata[MARK_KEY.encode()])["kind"] == "synapse_table"
    if memory_rows:  # streamed: row groups, not one table
        assert pq.ParquetFile(out).num_row_groups > 1
    collected = merge_synapse_tables(paths, out, memory_rows=memory_rows, collect=True)
    pd.testing.assert_frame_equal(collected, expected)
    assert leftovers(tmp_path) == []


def test_csv_output_is_what_write_synapses_writes(tmp_path):
    paths = block_tables(tmp_path / "blocks", seg=False)
    write_synapses(concatenated(paths), tmp_path / "expected.csv")
    merge_synapse_tables(paths, tmp_path / "out.csv", memory_rows=1024)
    assert (tmp_path / "out.csv").read_text() == (tmp_path / "expected.csv").read_text()


def test_no_rows_writes_the_empty_table(tmp_path):
    paths = block_tables(tmp_path / "blocks", grid=(1, 1, 3), rows=(0, 1))
    for out in (tmp_path / "e.parquet", tmp_path / "e.csv"):
        assert merge_synapse_tables(paths, out, empty=empty_table(with_seg=True)) == 0
        back = pd.read_parquet(out) if out.suffix == ".parquet" else pd.read_csv(out)
        assert list(back.columns) == list(empty_table(with_seg=True).columns)
        assert len(back) == 0
    assert pq.read_schema(tmp_path / "e.parquet").metadata[MARK_KEY.encode()]


def test_a_repeated_id_fails_and_leaves_nothing(tmp_path):
    paths = block_tables(tmp_path / "blocks", grid=(1, 2, 2))
    table = pd.read_parquet(paths[1])
    table.iloc[:1].to_parquet(tmp_path / "blocks" / "again.parquet", index=False)
    paths.append(tmp_path / "blocks" / "again.parquet")
    for memory_rows in (None, 1024):
        with pytest.raises(RuntimeError, match=r"synapse id \d+ appears in two tables"):
            merge_synapse_tables(paths, tmp_path / "out.parquet", memory_rows=memory_rows)
        assert not (tmp_path / "out.parquet").exists()
        assert leftovers(tmp_path) == []


def test_tables_with_other_columns_are_an_error(tmp_path):
    with_seg = block_tables(tmp_path / "a", grid=(1, 1, 2), rows=(100, 101))
    without = block_tables(tmp_path / "b", grid=(1, 1, 2), rows=(100, 101), seg=False, seed=1)
    with pytest.raises(Exception, match="different columns"):
        merge_synapse_tables(with_seg + without, tmp_path / "out.parquet", memory_rows=1024)
    assert not (tmp_path / "out.parquet").exists() and leftovers(tmp_path) == []


# A separate process per measurement: arrow's peak (its memory pool's max_memory, not seen
# by tracemalloc) is per process. tracemalloc sees numpy's and pandas' allocations.
PEAK = r"""
import json, sys, tracemalloc
from pathlib import Path
import pyarrow as pa
from synful.io.synapse_table import merge_synapse_tables
directory, n, memory_rows = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
paths = [directory / f"{i}.parquet" for i in range(n)]
pool = pa.default_memory_pool()
arrow_before = pool.max_memory()
tracemalloc.start()
rows = merge_synapse_tables(paths, directory.parent / f"out{n}.parquet", memory_rows=memory_rows)
print(json.dumps({"rows": rows, "python": tracemalloc.get_traced_memory()[1],
                  "arrow": pool.max_memory() - arrow_before}))
"""


def merge_peak(directory: Path, n_blocks: int, memory_rows: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PEAK, str(directory), str(n_blocks), str(memory_rows)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_memory_does_not_grow_with_the_number_of_rows(tmp_path):
    """10x the blocks and rows: the merge's peak memory stays about the same."""
    grid = (20, 4, 5)  # 400 blocks
    paths = block_tables(tmp_path / "blocks", grid=grid, rows=(1000, 1500), seg=True)
    small, large = len(paths) // 10, len(paths)
    memory_rows = 1 << 14
    peaks = {n: merge_peak(tmp_path / "blocks", n, memory_rows) for n in (small, large)}
    rows = {n: peaks[n]["rows"] for n in peaks}
    total = {n: peaks[n]["python"] + peaks[n]["arrow"] for n in peaks}
    assert rows[large] > 9 * rows[small] and rows[large] > 4 * 10**5
    assert total[large] < 2 * total[small], (rows, peaks)  # measured: ~1.3x
    row_bytes = 10 * 8  # the table alone, in memory, once
    assert total[large] < 0.4 * rows[large] * row_bytes, (rows, peaks)  # measured: ~0.25x
    expected = concatenated(paths)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / f"out{large}.parquet"), expected)
