"""The inputs of an extraction: the prediction store (:mod:`synful.io.prediction_store`,
re-exported here) and the segmentation, checked against the predictions' voxel size."""

from __future__ import annotations

import os

from ..errors import SynfulError
from ..io.prediction_store import Predictions, open_predictions
from ..io.sample_store import open_neuron_ids
from ..io.zarr_array import Array, array_path

__all__ = ["Predictions", "open_predictions", "open_segmentation"]


def open_segmentation(store: str | os.PathLike, voxel_size) -> Array:
    """The ``neuron_ids`` of a sample store, checked to have the predictions' voxel size."""
    seg = open_neuron_ids(store)
    if seg.channel_dims != 0:
        raise SynfulError(array_path(seg), f"expected 3 axes (z, y, x), got shape {seg.shape}")
    if tuple(seg.voxel_size) != tuple(voxel_size):
        raise SynfulError(
            store,
            f"neuron_ids voxel size {list(seg.voxel_size)} differs from the predictions' "
            f"{list(voxel_size)}",
        )
    return seg
