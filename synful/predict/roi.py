"""The region to predict: an explicit box in nm or a region named after a sample store's arrays.

``--roi`` of ``synful predict`` takes

* ``z0:z1,y0:y1,x0:x1``: a box in world nm;
* ``raw``: all of raw (the same as no ROI);
* ``labels``: the ROI of the store's ``neuron_ids``;
* ``masks/NAME`` (e.g. ``masks/validation``): the world bounding box of the nonzero voxels of
  that mask array, found slab by slab along z so that a large mask is never read whole.

:func:`resolve_roi` turns a spec into a ``Roi`` (or ``None`` for all of raw) for a given store;
the command line's text is parsed by :func:`synful.commands._args.parse_roi` (without importing
zarr or torch). :func:`grow_roi` adds a margin on every side (``--roi-margin``: what a later
stage reads around the region, e.g. the extraction context). The prediction plan grows the
region to its block grid and cuts it to raw, as for an explicit box.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import SynfulError
from ..geometry import LABELS_REGION, RAW_REGION, REGION_NAMES_TEXT, Coordinate, Roi, is_region_name
from ..io.sample_store import NEURON_IDS, has_array, open_volume
from ..io.zarr_array import Array, array_path, storage

SLAB_BYTES = 64 * 2**20  # at most this much of a mask is read at once (whole chunks along z)

RoiSpec = Roi | str | None


def nonzero_bounding_box(volume: Array, slab_bytes: int = SLAB_BYTES) -> Roi | None:
    """The world ROI of the smallest box holding every nonzero voxel of ``volume``.

    The array is read in z-slabs of whole chunks (shards when sharded) of at most about
    ``slab_bytes``; ``None`` when every voxel is zero.
    """
    if volume.channel_dims:
        raise SynfulError(array_path(volume), "a mask must have 3 axes (z, y, x)")
    array = storage(volume)
    depth, height, width = array.shape
    unit = int((getattr(array, "shards", None) or array.chunks)[0])
    section = max(1, height * width * array.dtype.itemsize)
    step = unit * max(1, slab_bytes // (unit * section))
    z_found: list[int] = []
    yx_any = np.zeros((height, width), dtype=bool)
    for z0 in range(0, depth, step):
        z1 = min(z0 + step, depth)
        nonzero = np.asarray(array[z0:z1]) != 0
        in_z = np.flatnonzero(nonzero.any(axis=(1, 2)))
        if in_z.size:
            z_found += [z0 + int(in_z[0]), z0 + int(in_z[-1])]
            yx_any |= nonzero.any(axis=0)
    if not z_found:
        return None
    ys = np.flatnonzero(yx_any.any(axis=1))
    xs = np.flatnonzero(yx_any.any(axis=0))
    first = Coordinate(min(z_found), int(ys[0]), int(xs[0]))
    last = Coordinate(max(z_found), int(ys[-1]), int(xs[-1]))
    begin = volume.offset + first * volume.voxel_size
    end = volume.offset + (last + 1) * volume.voxel_size
    return Roi(begin, end - begin)


def resolve_roi(spec: RoiSpec, sample_store: str | os.PathLike) -> Roi | None:
    """The region (nm) that ``spec`` names in ``sample_store``; ``None``: all of raw.

    Args:
        spec: a ``Roi`` (returned as it is), ``None`` or ``raw`` (all of raw), ``labels`` (the
            ``neuron_ids`` ROI), ``masks/NAME`` (the bounding box of that mask's nonzero
            voxels).
        sample_store: the sample store the names refer to.

    Raises:
        SynfulError: an unknown spec, a missing array, or an empty mask.
    """
    if spec is None or isinstance(spec, Roi):
        return spec
    parsed = str(spec).strip()
    if parsed == RAW_REGION:
        return None
    if parsed == LABELS_REGION:
        return open_volume(sample_store, NEURON_IDS).roi
    if not is_region_name(parsed):
        raise SynfulError(None, f"unknown ROI {parsed!r}: expected a box (nm), {REGION_NAMES_TEXT}")
    if not has_array(sample_store, parsed):
        if not Path(sample_store).exists():
            raise SynfulError(sample_store, "no such zarr store")
        raise SynfulError(f"{sample_store}/{parsed}", "no such mask array")
    box = nonzero_bounding_box(open_volume(sample_store, parsed))
    if box is None:
        raise SynfulError(f"{sample_store}/{parsed}", "the mask is empty: no region to predict")
    return box


def grow_roi(roi: Roi | None, margin: float | None, voxel_size) -> Roi | None:
    """``roi`` grown by ``margin`` nm (>= 0, checked by :class:`~synful.settings.predict.
    PredictRun`; ``None``: none) on every side, rounded up to whole voxels; ``None`` (all of
    raw) stays ``None``."""
    if roi is None or not margin:
        return roi
    amount = Coordinate(int(np.ceil(margin / v)) * int(v) for v in voxel_size)
    return roi.grow(amount, amount)
