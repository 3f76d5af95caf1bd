"""Stored prediction values -> probabilities, without converting whole volumes.

A prediction array is stored as integers with a ``scale`` attribute (value = stored / scale,
e.g. uint8 with scale 255) or as floats without one; :func:`to_values` is
:func:`synful.io.prediction_store.decode`. Extraction thresholds the whole map but
needs the float values only at a few voxels, so these helpers work on the *stored* array:
for 8- and 16-bit integers a lookup table of all codes turns the threshold into a threshold
on the stored codes, so the volume is never converted to float32 (4x less memory, and
faster), and every value equals
``float32(stored) / float32(scale)`` bit for bit.
"""

from __future__ import annotations

import numpy as np

from ..io.prediction_store import decode as to_values

__all__ = ["above_threshold", "is_monotonic", "tile_maximum", "tiles_above_threshold", "to_values"]

_LOOKUP_DTYPES = (np.uint8, np.int8, np.uint16, np.int16)


def _lookup_table(dtype: np.dtype, scale: float | None) -> np.ndarray:
    info = np.iinfo(dtype)
    codes = np.arange(info.min, info.max + 1, dtype=np.int64).astype(dtype)
    return to_values(codes, scale)


def above_threshold(stored: np.ndarray, scale: float | None, threshold: float) -> np.ndarray:
    """Boolean mask of voxels whose value is strictly greater than ``threshold``.

    Equal to ``to_values(stored, scale) > threshold`` (compared in the values' float type),
    computed through a lookup table for 8/16-bit integer data.

    Args:
        stored: the array as stored.
        scale: the array's ``scale`` attribute, or ``None``.
        threshold: the probability threshold.
    """
    stored = np.asarray(stored)
    if stored.dtype.type in _LOOKUP_DTYPES:
        table = _lookup_table(stored.dtype, scale) > threshold
        passing = np.flatnonzero(table)
        if len(passing) == 0:
            return np.zeros(stored.shape, dtype=bool)
        first = int(passing[0])
        if table[first:].all():  # monotonic (positive scale): one comparison of stored codes
            return stored >= stored.dtype.type(first + int(np.iinfo(stored.dtype).min))
        index = stored.astype(np.intp) - int(np.iinfo(stored.dtype).min)
        return table[index]
    return to_values(stored, scale) > threshold


def is_monotonic(scale: float | None) -> bool:
    """Whether ``to_values`` never decreases with the stored value (no scale, or scale > 0)."""
    return scale is None or float(scale) > 0


def tile_maximum(stored: np.ndarray, tile) -> np.ndarray:
    """Maximum of ``stored`` over tiles of shape ``tile`` (partial tiles at the upper ends).

    NaN is ignored for floats.
    """
    reduce = np.fmax if np.asarray(stored).dtype.kind == "f" else np.maximum
    out = np.asarray(stored)
    for axis in reversed(range(out.ndim)):  # the last axis first: by far the fastest order
        if tile[axis] > 1:
            out = reduce.reduceat(out, np.arange(0, out.shape[axis], tile[axis]), axis=axis)
    return out


def tiles_above_threshold(
    stored: np.ndarray, scale: float | None, threshold: float, tile
) -> np.ndarray:
    """Boolean mask of tiles holding at least one voxel whose value is > ``threshold``."""
    stored = np.asarray(stored)
    if is_monotonic(scale):
        return above_threshold(tile_maximum(stored, tile), scale, threshold)
    return tile_maximum(above_threshold(stored, scale, threshold), tile)
