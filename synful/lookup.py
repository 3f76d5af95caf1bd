"""World points -> voxels, and the values of an array at world points: the one place for both.

Axis order is (z, y, x) and world units are nanometres; ``offset`` is the world position of the
corner of voxel (0, 0, 0). Two rules map a point ``p`` to a voxel index:

* ``"floor"`` (everything synful does): ``floor((p - offset) / voxel_size)``, the voxel that
  holds the point;
* ``"nearest"`` (snapping a point to the grid, e.g. a partner location ``post + vector``):
  ``floor((p - offset) / voxel_size + 0.5)``, the nearest voxel corner, halves up;
* ``"cremi"`` (the official CREMI evaluator, ``cremi/Volume.py``): ``round((p - offset) /
  voxel_size)`` with halves away from zero (Python 2's ``round``). The table's
  ``annotation_offset`` is already part of ``p`` here (synapse tables hold absolute nm).

:func:`values_at` reads a funlib.persistence ``Array`` (the one array type: its voxel size and
offset travel with it) at world points; what happens to points outside the array is the
caller's choice (``outside``). :func:`values_at_voxels` is the numpy kernel under it, in voxel
indices, for a bare numpy, zarr or h5py array. Pure numpy: no torch, no zarr or h5py import
(an ``Array``'s storage is found by :func:`synful.io.zarr_array.storage`, imported on use).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["RULES", "round_half_away_from_zero", "voxel_indices", "values_at_voxels", "values_at"]

#: the point -> voxel rules :func:`voxel_indices` knows
RULES = ("floor", "nearest", "cremi")
_OUTSIDE = ("raise", "fill", "nearest")


def round_half_away_from_zero(values) -> np.ndarray:
    """Round to the nearest integer, halves away from zero (Python 2 ``round``), exactly.

    ``floor(|x|)`` and ``|x| - floor(|x|)`` are exact in floating point, so the result is
    correct even for values like 0.49999999999999994 where ``floor(x + 0.5)`` is not.
    """
    values = np.asarray(values, dtype=np.float64)
    magnitude = np.abs(values)
    whole = np.floor(magnitude)
    rounded = whole + (magnitude - whole >= 0.5)
    return np.copysign(rounded, values)


def voxel_indices(
    points, offset: Sequence[float], voxel_size: Sequence[float], rule: str = "floor"
) -> np.ndarray:
    """Voxel indices (int64, N x 3) of world points (N x 3, nm) under ``rule``.

    Args:
        points: world positions (anything that reshapes to N x 3).
        offset: world position (nm) of the corner of voxel (0, 0, 0).
        voxel_size: voxel size (nm).
        rule: ``"floor"``, ``"nearest"`` or ``"cremi"`` (see the module docstring).
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    relative = (points - np.asarray(offset, dtype=np.float64)) / np.asarray(
        voxel_size, dtype=np.float64
    )
    if rule == "floor":
        return np.floor(relative).astype(np.int64)
    if rule == "nearest":
        return np.floor(relative + 0.5).astype(np.int64)
    if rule == "cremi":
        return round_half_away_from_zero(relative).astype(np.int64)
    raise ValueError(f"unknown point -> voxel rule {rule!r}; expected one of {RULES}")


def _section_depth(array) -> int:
    """How many z-sections to read at once: the array's chunk depth (1 when unchunked)."""
    chunks = getattr(array, "chunks", None)
    try:
        return max(1, int(chunks[-3]))
    except (TypeError, IndexError, ValueError):
        return 1


def _read_in_slabs(array, indices: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = array[..., *indices[i]]`` for an array-like with numpy-style slicing only
    (h5py): the points are grouped by z into slabs one chunk deep and only the bounding box
    of each slab's points is read, so no chunk is read twice and a large volume never whole."""
    depth = _section_depth(array)
    slab_of = indices[:, 0] // depth
    order = np.argsort(slab_of, kind="stable")
    rows, slab_of = order, slab_of[order]
    starts = np.flatnonzero(np.r_[True, slab_of[1:] != slab_of[:-1]])
    ends = np.r_[starts[1:], len(rows)]
    for start, end in zip(starts, ends):
        group = indices[rows[start:end]]
        low = group.min(axis=0)
        high = group.max(axis=0) + 1
        slab = np.asarray(array[..., low[0] : high[0], low[1] : high[1], low[2] : high[2]])
        local = group - low
        values = slab[..., local[:, 0], local[:, 1], local[:, 2]]
        out[rows[start:end]] = np.moveaxis(values, -1, 0)


def _read_coordinates(array, indices: np.ndarray) -> np.ndarray:
    """``array[..., *indices[i]]`` for every row of a zarr array, by coordinate selection
    (only the chunks holding the points are read): (n, *channels)."""
    channels = tuple(array.shape[:-3])
    n = len(indices)
    if not channels:
        return np.asarray(array.get_coordinate_selection(tuple(indices.T)))
    count = int(np.prod(channels))
    channel = np.unravel_index(np.repeat(np.arange(count), n), channels)
    selection = tuple(channel) + tuple(np.tile(i, count) for i in indices.T)
    values = np.asarray(array.get_coordinate_selection(selection))
    return np.moveaxis(values.reshape(channels + (n,)), -1, 0)


def values_at_voxels(array, indices, fill=0) -> tuple[np.ndarray, np.ndarray]:
    """Values of an array at voxel indices, ``fill`` for indices outside it.

    The last three axes of ``array`` are (z, y, x); axes before them are channels, read
    whole at every voxel. numpy arrays are indexed directly, zarr arrays read by coordinate
    selection, anything else with numpy-style slicing (h5py) in slabs one chunk deep.

    Args:
        array: numpy, zarr or h5py array (channels first).
        indices: N x 3 integer voxel indices.
        fill: the value of indices outside the array (cast to its dtype).

    Returns:
        (values, inside): the values (N, *channels) in the array's dtype and a boolean mask
        (N,) of the indices that lie inside the array.
    """
    indices = np.asarray(indices, dtype=np.int64).reshape(-1, 3)
    channels = tuple(int(c) for c in array.shape[:-3])
    shape = np.asarray(array.shape[-3:], dtype=np.int64)
    inside = np.all((indices >= 0) & (indices < shape), axis=1)
    values = np.full((len(indices),) + channels, fill, dtype=array.dtype)
    if not inside.any():
        return values, inside
    voxels = indices[inside]
    if isinstance(array, np.ndarray):
        values[inside] = np.moveaxis(array[(Ellipsis, *voxels.T)], -1, 0)
    elif hasattr(array, "get_coordinate_selection"):
        values[inside] = _read_coordinates(array, voxels)
    else:
        found = np.empty((len(voxels),) + channels, dtype=array.dtype)
        _read_in_slabs(array, voxels, found)
        values[inside] = found
    return values, inside


def values_at(
    array,
    points,
    rule: str = "floor",
    *,
    outside: str = "raise",
    fill=0,
    return_inside: bool = False,
):
    """Values of ``array`` at world points (N x 3, nm): the voxel of each point by ``rule``.

    Args:
        array: a funlib.persistence ``Array`` (its storage is read directly, without dask;
            wrap a bare numpy, zarr or h5py array with
            :func:`synful.io.zarr_array.world_array`, or index it in voxels with
            :func:`values_at_voxels`).
        points: world positions (anything that reshapes to N x 3).
        rule: ``"floor"`` or ``"cremi"`` (see :func:`voxel_indices`).
        outside: ``"raise"`` (IndexError when a point lies outside the array), ``"fill"``
            (``fill``) or ``"nearest"`` (the value of the array's voxel nearest to the point:
            each index clipped into the array).
        fill: the value of points outside the array with ``outside="fill"``.
        return_inside: also return the boolean mask (N,) of points inside the array.

    Returns:
        values (N, *channels) in the array's dtype; ``(values, inside)`` with ``return_inside``.

    Raises:
        TypeError: ``array`` is not an ``Array`` (has no voxel size and offset).
    """
    if outside not in _OUTSIDE:
        raise ValueError(f"outside must be one of {_OUTSIDE}, got {outside!r}")
    if not (hasattr(array, "voxel_size") and hasattr(array, "roi")):
        raise TypeError(
            f"values_at needs a funlib.persistence Array, got {type(array).__name__}: wrap it "
            "with synful.io.zarr_array.world_array (or use values_at_voxels)"
        )
    from .io.zarr_array import storage

    offset = array.offset
    data = storage(array)
    if data is None:  # lazy operations: read their dask array slab by slab
        data = array.data
    indices = voxel_indices(points, offset, array.voxel_size, rule)
    shape = np.asarray(data.shape[-3:], dtype=np.int64)
    inside = np.all((indices >= 0) & (indices < shape), axis=1)
    if outside == "nearest":
        indices = np.clip(indices, 0, shape - 1)
    values, _ = values_at_voxels(data, indices, fill)
    if outside == "raise" and not inside.all():
        raise IndexError(
            f"{int((~inside).sum())} of {len(inside)} points lie outside the array of shape "
            f"{tuple(data.shape[-3:])} at offset {tuple(offset)} nm"
        )
    return (values, inside) if return_inside else values
