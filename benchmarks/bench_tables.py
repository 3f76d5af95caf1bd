"""Benchmark merging extraction's per-block synapse tables into one table.

Synthetic block tables like extraction writes them (``id``, pre/post locations, ``score``,
``pre_seg_id``, ``post_seg_id``; ids = C-order index of the post voxel, so consecutive blocks'
ids interleave and block order is not id order) are merged into one Parquet table twice, each
in its own subprocess:

* streaming: :func:`synful.io.synapse_table.merge_synapse_tables` (external merge sort,
  memory bounded by ``MERGE_MEMORY_ROWS``), what ``synful extract`` does now;
* in memory: read every block table, ``pd.concat``, sort by id, ``write_synapses`` (what
  ``synful extract`` did before).

Prints each one's peak RSS (``ru_maxrss``; also above the RSS after imports), wall time, and
the ratios in-memory / streaming, and checks that both wrote the same table. Default 10^4
blocks x 10^3 rows = 10^7 rows (about 2 GB of peak memory for the in-memory merge; ~1 GB of
disk in a temporary directory).

    .venv/bin/python benchmarks/bench_tables.py [--blocks N] [--rows-per-block N]
        [--memory-rows N] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import numpy as np, pandas as pd, pyarrow as pa, pyarrow.parquet as pq
from synful.io.synapse_table import merge_synapse_tables, write_synapses

how, directory, n_blocks, out, memory_rows = sys.argv[1:6]
paths = [Path(directory) / f"{i}.parquet" for i in range(int(n_blocks))]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
if how == "streaming":
    rows = merge_synapse_tables(paths, out, memory_rows=int(memory_rows) or None)
else:
    tables = [pd.read_parquet(p) for p in paths]
    table = pd.concat([t for t in tables if len(t)], ignore_index=True)
    del tables
    table = table.sort_values("id", kind="stable").reset_index(drop=True)
    write_synapses(table, out)
    rows = len(table)
wall = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rows": rows, "wall_s": wall, "peak_kib": peak, "imports_kib": before,
                  "arrow_peak": pa.default_memory_pool().max_memory()}))
"""


def write_blocks(directory: Path, n_blocks: int, rows_per_block: int, seed: int = 0) -> float:
    """Block tables over a grid of blocks (z slabs of (ny x nx) blocks); returns seconds."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from synful.extract.block import empty_table

    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    nx = int(round(n_blocks ** (1 / 3))) or 1
    ny = nx
    nz = -(-n_blocks // (nx * ny))
    block = np.array([20, 500, 500])  # voxels
    shape = block * (nz, ny, nx)
    voxel = np.array([40.0, 4.0, 4.0])
    schema = pa.Table.from_pandas(empty_table(with_seg=True), preserve_index=False).schema
    for i in range(n_blocks):
        index = np.array(np.unravel_index(i, (nz, ny, nx)))
        flat = rng.choice(int(np.prod(block)), rows_per_block, replace=False)
        flat.sort()
        local = np.stack(np.unravel_index(flat, block), axis=1)
        post_vox = local + index * block
        ids = np.ravel_multi_index(tuple(post_vox.T), shape).astype(np.uint64)
        post = post_vox * voxel
        pre = post + rng.normal(0, 100, post.shape)
        columns = {"id": ids}
        for j, axis in enumerate("zyx"):
            columns[f"pre_{axis}"] = pre[:, j]
        for j, axis in enumerate("zyx"):
            columns[f"post_{axis}"] = post[:, j]
        columns["score"] = rng.random(rows_per_block) * 1000
        columns["pre_seg_id"] = rng.integers(1, 10**6, rows_per_block).astype(np.uint64)
        columns["post_seg_id"] = rng.integers(1, 10**6, rows_per_block).astype(np.uint64)
        pq.write_table(pa.table(columns, schema=schema), directory / f"{i}.parquet")
    return time.perf_counter() - start


def measure(how: str, directory: Path, n_blocks: int, out: Path, memory_rows: int) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, how, str(directory), str(n_blocks), str(out),
         str(memory_rows)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode:
        raise SystemExit(f"{how} merge failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def same_table(a: Path, b: Path) -> bool:
    """Column by column (one column of both tables in memory at a time)."""
    import pyarrow.parquet as pq

    fa, fb = pq.ParquetFile(a), pq.ParquetFile(b)
    if fa.schema_arrow != fb.schema_arrow or fa.metadata.num_rows != fb.metadata.num_rows:
        return False
    if fa.schema_arrow.metadata != fb.schema_arrow.metadata:
        return False
    return all(fa.read([c]).column(0).equals(fb.read([c]).column(0)) for c in fa.schema_arrow.names)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=10_000)
    parser.add_argument("--rows-per-block", type=int, default=1_000)
    parser.add_argument("--memory-rows", type=int, default=0, help="0: MERGE_MEMORY_ROWS")
    parser.add_argument("--dir", default=None, help="where to write the tables (default: tmp)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        tmp = Path(tmp)
        blocks = tmp / "tables"
        blocks.mkdir()
        made = write_blocks(blocks, args.blocks, args.rows_per_block)
        total = args.blocks * args.rows_per_block
        print(f"{args.blocks} block tables x {args.rows_per_block} rows = {total:.3g} rows "
              f"(written in {made:.1f} s)")  # fmt: skip
        results = {}
        for how in ("streaming", "in-memory"):
            out = tmp / f"{how}.parquet"
            results[how] = r = measure(how, blocks, args.blocks, out, args.memory_rows)
            assert r["rows"] == total, r
            print(f"{how:>10}: peak RSS {r['peak_kib'] / 2**20:6.2f} GiB "
                  f"({(r['peak_kib'] - r['imports_kib']) / 2**20:6.2f} GiB above imports), "
                  f"wall {r['wall_s']:6.1f} s, "
                  f"{r['wall_s'] / total * 1e9:5.0f} ns/row")  # fmt: skip
        s, m = results["streaming"], results["in-memory"]
        print(f"ratio in-memory / streaming: peak RSS {m['peak_kib'] / s['peak_kib']:.1f}x "
              f"(above imports {(m['peak_kib'] - m['imports_kib']) / max(1, s['peak_kib'] - s['imports_kib']):.1f}x), "  # noqa: E501
              f"wall {m['wall_s'] / s['wall_s']:.2f}x")  # fmt: skip
        same = same_table(tmp / "streaming.parquet", tmp / "in-memory.parquet")
        print(f"same table (rows, order, dtypes, schema metadata incl. the synful mark): {same}")
        if not same:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
