"""A one-line description of an extracted synapse table."""

from __future__ import annotations

import numpy as np
import pandas as pd


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
