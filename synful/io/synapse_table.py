"""The synapse table: one row per directed (pre, post) pair, absolute world nm.

Columns: ``id`` (uint64), ``pre_z, pre_y, pre_x, post_z, post_y, post_x`` (float64), optional
``score`` (float64), ``pre_seg_id``, ``post_seg_id`` (uint64). Written as Parquet; CSV and
CREMI HDF5 annotations (``annotations/presynaptic_site/partners``) are accepted on input.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_output
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
            raise SynfulError(path, "unknown synapse table format (expected .parquet, .csv or .hdf)")
    except SynfulError:
        raise
    except Exception as exc:
        raise SynfulError(path, f"cannot read synapse table ({type(exc).__name__}: {exc})") from None
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
            metadata = dict(table.schema.metadata or {})
            metadata[MARK_KEY.encode()] = mark_json(SYNAPSE_TABLE).encode()
            pq.write_table(table.replace_schema_metadata(metadata), tmp)
