"""Export a synapse table as a CREMI submission file (annotations only)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from .atomic import atomic_output
from .errors import SynfulError
from .io.cremi import CremiSample, write_cremi
from .io.synapse_table import annotations_from_synapses, read_synapses
from .outputs import CREMI_SUBMISSION, claim, mark_hdf5, output


def select_for_export(
    synapses: pd.DataFrame, score_threshold: float | None = None, path=None
) -> pd.DataFrame:
    """The rows to export: all, or those with ``score >= score_threshold``.

    Raises:
        SynfulError: a threshold is given but the table has no ``score`` column.
    """
    if score_threshold is None:
        return synapses
    if "score" not in synapses.columns:
        raise SynfulError(path, "synapse table has no score column to apply --score-threshold to")
    return synapses[synapses["score"].to_numpy(dtype=np.float64) >= score_threshold].reset_index(
        drop=True
    )


def export_cremi(
    synapses_path: str | os.PathLike,
    out_path: str | os.PathLike,
    offset=(0.0, 0.0, 0.0),
    score_threshold: float | None = None,
) -> int:
    """Write the pairs of a synapse table as CREMI annotations; returns the number written.

    Rows with the same pre location share one ``presynaptic_site``; locations are stored
    relative to ``offset`` (nm, z, y, x), which becomes the ``annotations`` offset attribute,
    so the absolute positions are unchanged. The file is written atomically and marked as
    synful's (an existing ``out_path`` is replaced only when it is such a file; it may not
    be the input).

    Args:
        synapses_path: a synapse table (Parquet, CSV or CREMI HDF5).
        out_path: the CREMI HDF5 file to write.
        offset: the annotation offset (nm).
        score_threshold: export only rows with ``score >= score_threshold``.
    """
    offset = np.asarray(offset, dtype=np.float64).reshape(-1)
    if offset.shape != (3,) or not np.all(np.isfinite(offset)):
        raise SynfulError("--offset", "must be three finite numbers (z, y, x nm)")
    with claim([output(out_path, CREMI_SUBMISSION)], inputs=[synapses_path]):
        synapses = select_for_export(read_synapses(synapses_path), score_threshold, synapses_path)
        annotations = annotations_from_synapses(synapses, offset=offset)
        with atomic_output(out_path, kind=CREMI_SUBMISSION) as tmp:
            write_cremi(tmp, CremiSample(annotations=annotations))
            mark_hdf5(tmp, CREMI_SUBMISSION)
    return len(synapses)
