"""The synapse table: one row per directed (pre, post) pair, absolute world nm.

Columns: ``id`` (uint64), ``pre_z, pre_y, pre_x, post_z, post_y, post_x`` (float64), optional
``score`` (float64), ``pre_seg_id``, ``post_seg_id`` (uint64). Written as Parquet; CSV and
CREMI HDF5 annotations (``annotations/presynaptic_site/partners``) are accepted on input.

Row order: a table synful writes is sorted by ``id``. :func:`merge_synapse_tables` builds one
table from many (extraction's per-block tables) by an external merge sort whose memory is
bounded by :data:`MERGE_MEMORY_ROWS` (or the largest input table), not by the total.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_output, discard, temporary_sibling
from ..errors import SynfulError
from ..outputs import MARK_KEY, SYNAPSE_TABLE, mark_json
from .cremi import POSTSYNAPTIC, PRESYNAPTIC, CremiAnnotations, CremiFile

PRE = ["pre_z", "pre_y", "pre_x"]
POST = ["post_z", "post_y", "post_x"]
LOCATION_COLUMNS = PRE + POST
REQUIRED_COLUMNS = ["id"] + LOCATION_COLUMNS
OPTIONAL_COLUMNS = {"score": np.float64, "pre_seg_id": np.uint64, "post_seg_id": np.uint64}
HDF5_SUFFIXES = (".hdf", ".h5", ".hdf5")


def empty_synapses(with_score: bool = False) -> pd.DataFrame:
    columns = {"id": np.zeros(0, np.uint64)}
    columns.update({c: np.zeros(0, np.float64) for c in LOCATION_COLUMNS})
    if with_score:
        columns["score"] = np.zeros(0, np.float64)
    return pd.DataFrame(columns)


def make_synapses(pre, post, ids=None, **extra) -> pd.DataFrame:
    """Build a table from (N x 3) pre and post locations in nm, plus optional columns."""
    pre = np.asarray(pre, dtype=np.float64).reshape(-1, 3)
    post = np.asarray(post, dtype=np.float64).reshape(-1, 3)
    if ids is None:
        ids = np.arange(len(pre), dtype=np.uint64)
    columns = {"id": np.asarray(ids, dtype=np.uint64)}
    for i, c in enumerate(PRE):
        columns[c] = pre[:, i]
    for i, c in enumerate(POST):
        columns[c] = post[:, i]
    for name, values in extra.items():
        if values is not None:
            columns[name] = np.asarray(values, dtype=OPTIONAL_COLUMNS.get(name, None))
    return pd.DataFrame(columns)


def validate_synapses(df: pd.DataFrame, path: str | os.PathLike | None = None) -> pd.DataFrame:
    """Check columns and values and return a copy with the contract's dtypes.

    Raises:
        SynfulError: a missing column, NaN/infinite coordinates or scores, or negative ids.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise SynfulError(path, f"synapse table is missing column(s) {', '.join(missing)}")
    out = df.copy()
    try:
        locations = out[LOCATION_COLUMNS].to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise SynfulError(path, "synapse table has non-numeric coordinates") from None
    if not np.all(np.isfinite(locations)):
        bad = int(np.flatnonzero(~np.all(np.isfinite(locations), axis=1))[0])
        raise SynfulError(path, f"synapse table has NaN or infinite coordinates (row {bad})")
    for c in LOCATION_COLUMNS:
        out[c] = out[c].astype(np.float64)
    for name in ["id", "pre_seg_id", "post_seg_id"]:
        if name not in out.columns:
            continue
        values = pd.to_numeric(out[name], errors="coerce").to_numpy(dtype=np.float64)
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise SynfulError(path, f"synapse table column {name} must hold non-negative integers")
        out[name] = out[name].astype(np.uint64)
    if "score" in out.columns:
        scores = pd.to_numeric(out["score"], errors="coerce").to_numpy(dtype=np.float64)
        if not np.all(np.isfinite(scores)):
            raise SynfulError(path, "synapse table has NaN or non-numeric scores")
        out["score"] = scores
    return out.reset_index(drop=True)


def synapses_from_annotations(ann: CremiAnnotations, path=None) -> pd.DataFrame:
    """One row per partner row of CREMI annotations (absolute nm; polyadic sites repeat)."""
    pre, post = ann.pair_locations(path)
    ids = ann.partners[:, 1] if len(np.unique(ann.partners[:, 1])) == len(ann.partners) else None
    return make_synapses(pre, post, ids=ids)


def annotations_from_synapses(df: pd.DataFrame, offset=(0.0, 0.0, 0.0)) -> CremiAnnotations:
    """CREMI annotations for a synapse table; rows sharing a pre location share one pre site.

    Locations are written relative to ``offset`` (nm). Annotation ids are consecutive: the
    distinct pre sites first, then one post site per row.
    """
    offset = np.asarray(offset, dtype=np.float64).reshape(3)
    pre = df[PRE].to_numpy(dtype=np.float64).reshape(-1, 3)
    post = df[POST].to_numpy(dtype=np.float64).reshape(-1, 3)
    if len(pre):
        unique_pre, pre_index = np.unique(pre, axis=0, return_inverse=True)
        pre_index = pre_index.reshape(-1)
    else:
        unique_pre, pre_index = np.zeros((0, 3)), np.zeros(0, np.int64)
    n_pre, n_post = len(unique_pre), len(post)
    ids = np.arange(n_pre + n_post, dtype=np.uint64)
    types = np.asarray([PRESYNAPTIC] * n_pre + [POSTSYNAPTIC] * n_post, dtype=object)
    locations = np.concatenate([unique_pre, post], axis=0) - offset
    partners = np.stack([ids[pre_index], ids[n_pre:]], axis=1) if n_post else np.zeros((0, 2))
    return CremiAnnotations(ids, types, locations, partners, offset)


def read_synapses(path: str | os.PathLike) -> pd.DataFrame:
    """Read a synapse table from Parquet, CSV or CREMI HDF5 annotations, validated."""
    path = Path(path)
    if not path.exists():
        raise SynfulError(path, "no such file")
    suffix = path.suffix.lower()
    if suffix in HDF5_SUFFIXES:
        with CremiFile(path) as f:
            return synapses_from_annotations(f.read_annotations(), path)
    try:
        if suffix == ".csv":
            df = pd.read_csv(path)
        elif suffix in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        else:
            raise SynfulError(
                path, "unknown synapse table format (expected .parquet, .csv or .hdf)"
            )
    except SynfulError:
        raise
    except Exception as exc:
        raise SynfulError(
            path, f"cannot read synapse table ({type(exc).__name__}: {exc})"
        ) from None
    return validate_synapses(df, path)


def write_synapses(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a validated table as Parquet (or CSV by suffix), atomically.

    Parquet tables carry ``synful`` = ``{"kind": "synapse_table", ...}`` in their schema
    metadata, so a later run recognises them as replaceable (:mod:`synful.outputs`). An
    existing ``path`` that is not a synapse table is refused, not replaced.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    df = validate_synapses(df, path)
    with atomic_output(path, kind=SYNAPSE_TABLE) as tmp:
        if path.suffix.lower() == ".csv":
            df.to_csv(tmp, index=False)
        else:
            table = pa.Table.from_pandas(df, preserve_index=False)
            pq.write_table(table.replace_schema_metadata(_marked(table.schema)), tmp)


def _marked(schema) -> dict:
    """``schema``'s metadata plus the ``synful`` mark of a synapse table."""
    metadata = dict(schema.metadata or {})
    metadata[MARK_KEY.encode()] = mark_json(SYNAPSE_TABLE).encode()
    return metadata


# --- merging many sorted tables into one, in bounded memory --------------------------------

#: rows the merge holds at once: one sorted run while runs are formed, and the read buffers
#: of all runs together while they are merged (about 90 bytes per row with segment ids)
MERGE_MEMORY_ROWS = 1 << 19
#: runs merged at once; more runs are first merged in groups (one more pass over the data)
MERGE_FAN_IN = 32
_MIN_BATCH_ROWS = 1024


class _TableSink:
    """Writes sorted arrow chunks to a Parquet (or CSV) file in row groups of ``group_rows``;
    checks that ids strictly increase across everything written."""

    def __init__(self, path: Path, schema, group_rows: int, csv: bool = False, collect=False):
        import pyarrow.parquet as pq

        self.path, self.schema, self.group_rows, self.csv = path, schema, group_rows, csv
        self.pending: list = []
        self.n_pending = 0
        self.rows = 0
        self.last_id: int | None = None
        self.collected = [] if collect else None
        if csv:
            self._file = open(path, "w", newline="")
            self._writer = None
        else:
            self._file = None
            self._writer = pq.ParquetWriter(path, schema)

    def write(self, table) -> None:
        if table.num_rows == 0:
            return
        ids = table.column("id").to_numpy()
        if self.last_id is not None:
            ids = np.concatenate([[np.uint64(self.last_id)], ids])
        repeated = np.flatnonzero(ids[1:] <= ids[:-1])
        if len(repeated):
            raise RuntimeError(
                f"synapse id {int(ids[repeated[0] + 1])} appears in two tables "
                "(block ownership is broken)"
            )
        self.last_id = int(ids[-1])
        self.pending.append(table)
        self.n_pending += table.num_rows
        if self.n_pending >= self.group_rows:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

        if not self.pending:
            return
        table = pa.concat_tables(self.pending)
        self.pending, self.n_pending = [], 0
        if self.csv:
            table.to_pandas().to_csv(self._file, header=self.rows == 0, index=False)
        else:
            self._writer.write_table(table, row_group_size=max(table.num_rows, 1))
        if self.collected is not None:
            self.collected.append(table)
        self.rows += table.num_rows

    def close(self, empty: pd.DataFrame | None = None) -> None:
        """Flush and close; a CSV with no rows gets the header of ``empty``."""
        self.flush()
        if self.csv:
            if self.rows == 0 and empty is not None:
                empty.to_csv(self._file, index=False)
            self._file.close()
        else:
            self._writer.close()

    def abort(self) -> None:
        for f in (self._file, self._writer):
            if f is not None:
                try:
                    f.close()
                except Exception:  # clean-up after a failure must not raise
                    pass


def _read_table(path):
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as f:
        return f.read()


def _sorted_run(pieces: list, where):
    """Concatenate arrow tables, validate (contract dtypes) and sort them by id; empties
    ``pieces`` (so that their memory is freed as soon as possible)."""
    import pyarrow as pa

    try:
        table = pa.concat_tables(pieces)
    except pa.ArrowInvalid as exc:
        raise SynfulError(where, f"block tables have different columns ({exc})") from None
    finally:
        pieces.clear()
    df = table.to_pandas()
    del table
    df = validate_synapses(df, where).sort_values("id", kind="stable")
    return pa.Table.from_pandas(df, preserve_index=False)


def _run_reader(path, batch_rows: int):
    """The batches of a run file, one row group at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as f:
        for i in range(f.num_row_groups):
            group = f.read_row_group(i)
            for batch in group.to_batches(max_chunksize=batch_rows):
                yield pa.Table.from_batches([batch])


def _merge_sorted(sources: list, emit) -> None:
    """Merge iterators of id-sorted arrow tables into ``emit`` calls, in id order.

    Every round takes, from each source's current chunk, the rows up to the smallest of the
    chunks' last ids (no row still unread can come before them), sorts those and emits them;
    at least one chunk is used up per round, so rounds <= chunks and memory = one chunk per
    source.
    """
    import pyarrow as pa

    heads = []  # [table, ids, iterator]

    def advance(iterator):
        for table in iterator:
            if table.num_rows:
                heads.append([table, table.column("id").to_numpy(), iterator])
                return

    for source in sources:
        advance(iter(source))
    while heads:
        frontier = min(ids[-1] for _, ids, _ in heads)
        parts, exhausted = [], []
        for head in heads:
            table, ids, _ = head
            k = int(np.searchsorted(ids, frontier, side="right"))
            if k:
                parts.append(table.slice(0, k))
                head[0], head[1] = table.slice(k), ids[k:]
            if head[0].num_rows == 0:
                exhausted.append(head)
        for head in exhausted:
            heads.remove(head)
            advance(head[2])
        if len(parts) == 1:
            emit(parts[0])
        else:
            merged = pa.concat_tables(parts)
            order = np.argsort(merged.column("id").to_numpy(), kind="stable")
            emit(merged.take(order))


def merge_synapse_tables(
    tables: Iterable[str | os.PathLike],
    path: str | os.PathLike,
    *,
    empty: pd.DataFrame | None = None,
    memory_rows: int | None = None,
    scratch: str | os.PathLike | None = None,
    collect: bool = False,
):
    """Write the rows of many Parquet tables to one synapse table, sorted by id, streaming.

    An external merge sort: the tables are read one at a time (in the given order) and
    gathered into *runs* of about ``memory_rows`` rows, each validated, sorted by id and
    written to ``scratch``; the runs are then merged (:data:`MERGE_FAN_IN` at a time, in
    batches of ``memory_rows / MERGE_FAN_IN`` rows) straight into ``path``'s Parquet row
    groups. Peak memory is a few times ``memory_rows`` rows or the largest input table,
    whichever is more, however many rows there are in total; the data is read twice (three
    times beyond ``memory_rows * MERGE_FAN_IN`` rows). When everything fits in one run it is
    written directly.

    ``path`` is written like :func:`write_synapses`: atomically (it appears complete or not
    at all), marked as a synapse table, Parquet or CSV by suffix; rows strictly increase in
    id. The result equals ``write_synapses(concat(tables).sort_values("id"))``.

    Args:
        tables: Parquet files with the synapse table columns (all the same columns); empty
            ones are skipped.
        path: the table to write.
        empty: what to write when there are no rows (default :func:`empty_synapses`).
        memory_rows: rows per run (default :data:`MERGE_MEMORY_ROWS`).
        scratch: a directory to create for the runs (default: a temporary sibling of
            ``path``, which :func:`synful.outputs.claim` sweeps after a kill); removed at the
            end.
        collect: also return the whole table (in memory: for callers that want it).

    Returns:
        the number of rows written, or the table when ``collect``.

    Raises:
        SynfulError: tables with different columns or invalid values.
        RuntimeError: an id in more than one table.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    memory_rows = max(int(memory_rows or MERGE_MEMORY_ROWS), _MIN_BATCH_ROWS)
    batch_rows = max(memory_rows // MERGE_FAN_IN, _MIN_BATCH_ROWS)
    group_rows = max(memory_rows // 4, batch_rows)
    csv = path.suffix.lower() == ".csv"
    scratch = Path(scratch) if scratch is not None else temporary_sibling(path)
    empty = validate_synapses(empty if empty is not None else empty_synapses(), path)

    with atomic_output(path, kind=SYNAPSE_TABLE) as tmp:
        scratch.mkdir(parents=True)
        sink = None
        try:
            runs: list = []
            schema = None
            pending: list = []
            n_pending = 0

            def spill() -> None:
                nonlocal schema, pending, n_pending
                run = _sorted_run(pending, path)
                pending, n_pending = [], 0
                if schema is None:
                    schema = run.schema
                elif not run.schema.equals(schema):
                    raise SynfulError(path, "block tables have different columns or types")
                target = scratch / f"run-{len(runs)}.parquet"
                pq.write_table(run, target, row_group_size=batch_rows)
                runs.append(target)

            for source in tables:
                table = _read_table(source)
                if table.num_rows == 0:
                    continue
                pending.append(table)
                n_pending += table.num_rows
                if n_pending >= memory_rows:
                    spill()
            final = None
            if pending and not runs:  # everything fits in one run: write it directly
                final = _sorted_run(pending, path)
                schema = final.schema
                pending = []
            elif pending:
                spill()

            if schema is None:  # no rows at all
                schema = pa.Table.from_pandas(empty, preserve_index=False).schema
            out_schema = schema.with_metadata(_marked(schema))
            sink = _TableSink(tmp, out_schema, group_rows, csv=csv, collect=collect)
            if final is not None:
                for batch in final.to_batches(max_chunksize=group_rows):
                    sink.write(pa.Table.from_batches([batch], schema))
                del final
            else:
                level = 0
                while len(runs) > MERGE_FAN_IN:
                    merged = []
                    for g in range(0, len(runs), MERGE_FAN_IN):
                        group = runs[g : g + MERGE_FAN_IN]
                        target = scratch / f"merge-{level}-{g}.parquet"
                        writer = _TableSink(target, schema, group_rows=batch_rows)
                        try:
                            _merge_sorted([_run_reader(r, batch_rows) for r in group], writer.write)
                            writer.close()
                        except BaseException:
                            writer.abort()
                            raise
                        for r in group:
                            r.unlink()
                        merged.append(target)
                    runs, level = merged, level + 1
                _merge_sorted([_run_reader(r, batch_rows) for r in runs], sink.write)
            sink.close(empty)
        except BaseException:
            if sink is not None:
                sink.abort()
            raise
        finally:
            discard(scratch)
    if not collect:
        return sink.rows
    if not sink.collected:
        return empty
    return pa.concat_tables(sink.collected).to_pandas()
