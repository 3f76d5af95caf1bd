"""Open and check a prediction store: ``post_indicator`` (z, y, x), ``partner_vectors`` (3, z, y, x)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from ..errors import SynfulError
from ..io.sample_store import has_array, open_neuron_ids, open_volume
from ..io.zarr_array import Volume

POST_INDICATOR = "post_indicator"
PARTNER_VECTORS = "partner_vectors"


@dataclasses.dataclass
class Predictions:
    """The two arrays of a prediction store.

    Args:
        post_indicator: postsynaptic probability (z, y, x); ``stored / scale`` when scaled.
        partner_vectors: vectors (3, z, y, x), nm, from the post voxel to its partner.
    """

    post_indicator: Volume
    partner_vectors: Volume


def _check_scale(volume: Volume) -> None:
    scale = volume.attrs.get("scale")
    if scale is None:
        if volume.dtype.kind != "f":
            raise SynfulError(volume.name, f"{volume.dtype} array without a scale attribute")
        return
    try:
        ok = float(scale) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise SynfulError(volume.name, f"scale attribute must be a positive number, got {scale!r}")


def open_predictions(store: str | os.PathLike) -> Predictions:
    """Open a prediction store and check its arrays agree.

    Raises:
        SynfulError: no such store, a missing array, wrong shapes, different voxel sizes or
            an invalid ``scale``.
    """
    store = Path(store)
    if not store.exists():
        raise SynfulError(store, "no such prediction store")
    missing = [n for n in (POST_INDICATOR, PARTNER_VECTORS) if not has_array(store, n)]
    if missing:
        raise SynfulError(store, f"not a prediction store: missing array {' and '.join(missing)}")
    mask = open_volume(store, POST_INDICATOR)
    vectors = open_volume(store, PARTNER_VECTORS)
    if mask.channels != 0:
        raise SynfulError(mask.name, f"expected 3 axes (z, y, x), got shape {mask.array.shape}")
    if vectors.channels != 1 or vectors.array.shape[0] != 3:
        raise SynfulError(vectors.name, f"expected shape (3, z, y, x), got {vectors.array.shape}")
    if vectors.voxel_size != mask.voxel_size:
        raise SynfulError(
            vectors.name,
            f"voxel size {list(vectors.voxel_size)} differs from {POST_INDICATOR}'s "
            f"{list(mask.voxel_size)}",
        )
    _check_scale(mask)
    _check_scale(vectors)
    return Predictions(mask, vectors)


def open_segmentation(store: str | os.PathLike, voxel_size) -> Volume:
    """The ``neuron_ids`` of a sample store, checked to have the predictions' voxel size."""
    seg = open_neuron_ids(store)
    if seg.channels != 0:
        raise SynfulError(seg.name, f"expected 3 axes (z, y, x), got shape {seg.array.shape}")
    if tuple(seg.voxel_size) != tuple(voxel_size):
        raise SynfulError(
            store,
            f"neuron_ids voxel size {list(seg.voxel_size)} differs from the predictions' "
            f"{list(voxel_size)}",
        )
    return seg
