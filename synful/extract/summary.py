"""A one-line description of an extracted synapse table (in memory, or streamed from a file)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

#: a written table is summarised from at most this many evenly spaced scores, and its segment
#: pairs are counted only up to this many rows (a whole brain's table is never held in memory)
SAMPLED_SCORES = 1_000_000
COUNTED_PAIRS_ROWS = 10_000_000


def summarize(table: pd.DataFrame) -> str:
    """``N synapses; score min/25%/50%/75%/max ...`` (and the number of segment pairs)."""
    n = len(table)
    text = f"{n} synapse{'s' if n != 1 else ''}"
    if n and "score" in table.columns:
        q = np.quantile(table["score"].to_numpy(np.float64), [0.0, 0.25, 0.5, 0.75, 1.0])
        text += "; score min/25%/50%/75%/max " + "/".join(f"{v:.4g}" for v in q)
    if n and "pre_seg_id" in table.columns:
        pairs = table[["pre_seg_id", "post_seg_id"]].drop_duplicates()
        text += f"; {len(pairs)} segment pairs"
    return text


def summarize_file(path: str | os.PathLike) -> str:
    """:func:`summarize` of a written table, read in row batches: the count and the score's
    minimum and maximum are exact; the quartiles come from at most :data:`SAMPLED_SCORES`
    evenly spaced rows; segment pairs are counted for tables of up to
    :data:`COUNTED_PAIRS_ROWS` rows."""
    path = os.fspath(path)
    if not path.lower().endswith(".parquet"):
        return summarize(pd.read_csv(path))
    import pyarrow.parquet as pq

    source = pq.ParquetFile(path)
    n = source.metadata.num_rows
    names = source.schema_arrow.names
    text = f"{n} synapse{'s' if n != 1 else ''}"
    if not n:
        return text
    columns = [c for c in ("score", "pre_seg_id", "post_seg_id") if c in names]
    step = max(1, -(-n // SAMPLED_SCORES))
    sampled, low, high, pairs, seen = [], np.inf, -np.inf, set(), 0
    count_pairs = "pre_seg_id" in columns and n <= COUNTED_PAIRS_ROWS
    for batch in source.iter_batches(columns=columns, batch_size=1 << 16):
        if "score" in columns:
            score = batch.column("score").to_numpy(zero_copy_only=False).astype(np.float64)
            low, high = min(low, score.min()), max(high, score.max())
            sampled.append(score[(-seen) % step :: step])
        if count_pairs:
            pre = batch.column("pre_seg_id").to_numpy(zero_copy_only=False)
            post = batch.column("post_seg_id").to_numpy(zero_copy_only=False)
            pairs.update(zip(pre.tolist(), post.tolist()))
        seen += batch.num_rows
    if "score" in columns:
        q = np.quantile(np.concatenate(sampled), [0.25, 0.5, 0.75])
        values = [low, *q, high]
        text += "; score min/25%/50%/75%/max " + "/".join(f"{v:.4g}" for v in values)
    if count_pairs:
        text += f"; {len(pairs)} segment pairs"
    return text
