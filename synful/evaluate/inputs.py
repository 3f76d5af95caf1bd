"""Loading the evaluation inputs: ground truth (CREMI HDF5 or a sample store), predictions, masks."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import SynfulError
from ..io.cremi import VOLUME_PATHS, CremiFile
from ..io.sample_store import default_synapse_table, open_neuron_ids, open_volume
from ..io.synapse_table import HDF5_SUFFIXES, POST, read_synapses
from ..io.zarr_array import Array
from ..lookup import values_at
from .labels import labels_at_points

log = logging.getLogger(__name__)


@dataclass
class GroundTruth:
    """True pairs (a synapse table in absolute nm) and the segmentation that labels points.

    ``segmentation`` is the ``neuron_ids`` :class:`~funlib.persistence.Array` (over the
    h5py dataset or the zarr array, read lazily); it is valid only inside the
    :func:`open_ground_truth` block.
    """

    path: Path
    pairs: pd.DataFrame
    segmentation: Array

    def labels(self, points, what: str = "points") -> np.ndarray:
        """(N,) labels at world points by the CREMI rounding rule (outside: the nearest voxel's,
        with a warning)."""
        return labels_at_points(self.segmentation, points, what)


def is_sample_store(path: str | os.PathLike) -> bool:
    path = Path(path)
    return path.suffix == ".zarr" or (path.is_dir() and (path / "zarr.json").exists())


@contextlib.contextmanager
def open_ground_truth(path: str | os.PathLike) -> Iterator[GroundTruth]:
    """Open ground truth: a CREMI HDF5 file, or a sample store beside its synapse table.

    Raises:
        SynfulError: a missing file, no ``neuron_ids``, or no synapse table.
    """
    path = Path(path)
    if not path.exists():
        raise SynfulError(path, "no such file")
    if is_sample_store(path):
        table_path = default_synapse_table(path)
        if not table_path.exists():
            raise SynfulError(path, f"no synapse table {table_path.name} beside the sample store")
        segmentation = open_neuron_ids(path)
        pairs = read_synapses(table_path)
        yield GroundTruth(path, pairs, segmentation)
        return
    if path.suffix.lower() not in HDF5_SUFFIXES:
        raise SynfulError(path, "ground truth must be a CREMI HDF5 file or a sample store (.zarr)")
    with CremiFile(path) as f:
        if not f.has_volume("neuron_ids"):
            raise SynfulError(
                path, f"ground truth has no {VOLUME_PATHS['neuron_ids']} to label the pairs with"
            )
        pairs = read_synapses(path)
        segmentation = f.volume_array("neuron_ids")
        yield GroundTruth(path, pairs, segmentation)


def load_predictions(path: str | os.PathLike) -> pd.DataFrame:
    """The predicted pairs (Parquet, CSV or CREMI HDF5 annotations), validated."""
    return read_synapses(path)


def split_mask_path(text: str | os.PathLike) -> tuple[Path, str]:
    """``STORE.zarr/masks/validation`` -> (``STORE.zarr``, ``masks/validation``).

    The store is the last path component ending in ``.zarr``.

    Raises:
        SynfulError: no ``.zarr`` component, or nothing after it.
    """
    parts = Path(text).parts
    stores = [i for i, part in enumerate(parts) if part.endswith(".zarr")]
    if not stores or stores[-1] == len(parts) - 1:
        raise SynfulError(
            text, "expected a mask array inside a store, like SAMPLE.zarr/masks/validation"
        )
    i = stores[-1]
    return Path(*parts[: i + 1]), "/".join(parts[i + 1 :])


def in_region(mask: Array, points) -> np.ndarray:
    """Boolean mask of world points (N x 3) inside a 0/1 region ``mask``: where the point's
    (floor) voxel is non-zero; points off the array are out."""
    values, inside = values_at(mask, points, "floor", outside="fill", fill=0, return_inside=True)
    return inside & (values != 0)


def open_region_mask(text: str | os.PathLike) -> Array:
    """Open ``STORE.zarr/ARRAY`` (a 3D 0/1 mask) as an :class:`~funlib.persistence.Array`
    for :func:`in_region`."""
    store, name = split_mask_path(text)
    mask = open_volume(store, name)
    if mask.channel_dims:
        raise SynfulError(text, "a mask must be a 3D array without channels")
    return mask


def post_points(pairs: pd.DataFrame) -> np.ndarray:
    return pairs[POST].to_numpy(dtype=np.float64).reshape(-1, 3)
