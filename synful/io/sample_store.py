"""The sample store ``<name>.zarr`` (zarr v3): ``raw``, ``neuron_ids``, ``masks/{training,validation}``."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import SynfulError
from .zarr_array import Array, open_array

RAW = "raw"
NEURON_IDS = "neuron_ids"
SPLITS = ("training", "validation")


def has_array(path: str | os.PathLike, name: str) -> bool:
    return (Path(path) / name / "zarr.json").exists()


def open_volume(path: str | os.PathLike, name: str, mode: str = "r") -> Array:
    """Open array ``name`` of a store as an :class:`~funlib.persistence.Array`, with a clear
    error if missing."""
    if not Path(path).exists():
        raise SynfulError(path, "no such zarr store")
    if not has_array(path, name):
        raise SynfulError(path, f"missing array {name}")
    return open_array(path, name, mode=mode)


def open_raw(path) -> Array:
    return open_volume(path, RAW)


def open_neuron_ids(path) -> Array:
    return open_volume(path, NEURON_IDS)


def mask_name(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}, expected one of {SPLITS}")
    return f"masks/{split}"


def open_mask(path, split: str) -> Array | None:
    """The training or validation mask of a store, or ``None`` when the store has none."""
    name = mask_name(split)
    return open_volume(path, name) if has_array(path, name) else None


def default_synapse_table(store: str | os.PathLike) -> Path:
    """Where the synapse table of a sample store lives by convention: beside it, ``.parquet``."""
    store = Path(store)
    return store.with_suffix(".parquet")
