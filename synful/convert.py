"""CREMI HDF5 -> sample store (zarr v3) + synapse table (Parquet).

The store holds ``raw`` (uint8) and, for labelled samples, ``neuron_ids`` (uint64, with its own
offset); both carry the funlib.persistence attributes (``voxel_size``, ``offset``, ...). Volumes
are copied in z-slabs, so a padded CREMI sample (200 x 3072 x 3072) never sits in memory. The
synapse table has one row per ``annotations/presynaptic_site/partners`` row, in absolute nm.
Both outputs appear only when complete.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr
from tqdm import tqdm

from .atomic import atomic_output, remove_path
from .errors import SynfulError
from .geometry import Coordinate, Roi
from .identity import CREATION_ID, new_creation_id
from .io.cremi import CREMI_VOXEL_SIZE, VOLUME_PATHS, CremiFile
from .io.sample_store import NEURON_IDS, RAW
from .io.synapse_table import synapses_from_annotations, write_synapses
from .io.zarr_array import create_volume
from .outputs import SAMPLE, SYNAPSE_TABLE, claim, mark, output

logger = logging.getLogger(__name__)

DEFAULT_CHUNKS = (8, 256, 256)
#: the most memory one slab (``chunks[0]`` sections, as read plus as converted) may take
MAX_SLAB_BYTES = 1 << 30
STORE_VOLUMES = {RAW: np.uint8, NEURON_IDS: np.uint64}


@dataclass
class ConversionSummary:
    """What :func:`convert_cremi` wrote."""

    raw_roi: Roi
    neuron_ids_roi: Roi | None
    n_synapses: int


def _check_volume(
    path: Path, name: str, f: CremiFile, voxel_size: Coordinate, chunks: Sequence[int]
) -> Roi:
    """The world ROI of volume ``name`` after checking its dtype, resolution, offset and that
    one slab of ``chunks[0]`` sections fits in :data:`MAX_SLAB_BYTES` (before reading any)."""
    key = VOLUME_PATHS[name]
    dtype = f.read_volume_slab(name, (slice(0, 0),) * 3).dtype  # no data read
    if name == RAW and dtype != np.uint8:
        raise SynfulError(path, f"{key} has dtype {dtype}, expected uint8")
    if name == NEURON_IDS and dtype.kind not in "iu":
        raise SynfulError(path, f"{key} has dtype {dtype}, expected integers")
    resolution = f.volume_resolution(name)
    if tuple(float(r) for r in voxel_size) != resolution:
        raise SynfulError(
            path, f"{key} has resolution {_fmt(resolution)}, expected {_fmt(voxel_size)}"
        )
    offset = f.volume_offset(name)
    if any(float(o) % float(v) != 0 for o, v in zip(offset, voxel_size)):
        raise SynfulError(
            path,
            f"{key} offset {_fmt(offset)} is not a multiple of the voxel size {_fmt(voxel_size)}",
        )
    roi = f.volume_roi(name)
    _check_slab(path, key, tuple(roi.shape / voxel_size), chunks, dtype, STORE_VOLUMES[name])
    return roi


def _check_slab(path, key: str, shape, chunks, source_dtype, target_dtype) -> None:
    sections = max(1, min(int(chunks[0]), int(shape[0])))
    source, target = np.dtype(source_dtype), np.dtype(target_dtype)
    per_voxel = source.itemsize + (target.itemsize if target != source else 0)
    section = int(shape[1]) * int(shape[2]) * per_voxel
    if section * sections <= MAX_SLAB_BYTES:
        return
    limit = f"{MAX_SLAB_BYTES / 2**30:g} GiB"
    if section > MAX_SLAB_BYTES:
        raise SynfulError(
            path,
            f"{key} has shape {tuple(int(s) for s in shape)}: one section needs "
            f"{section / 2**30:.1f} GiB of memory to copy (limit {limit})",
        )
    raise SynfulError(
        path,
        f"{key} has shape {tuple(int(s) for s in shape)}: a slab of {sections} sections needs "
        f"{section * sections / 2**30:.1f} GiB of memory (limit {limit}); use --chunks with "
        f"at most {MAX_SLAB_BYTES // section} sections",
    )


def _fmt(values) -> str:
    return "(" + ", ".join(f"{float(v):g}" for v in values) + ")"


def _copy_volume(
    f: CremiFile,
    name: str,
    group: zarr.Group,
    roi: Roi,
    voxel_size: Coordinate,
    chunks: Sequence[int],
    progress: bool,
) -> None:
    """Copy volume ``name`` into ``group`` slab by slab (one chunk row of z at a time)."""
    shape = tuple(roi.shape / voxel_size)
    dtype = STORE_VOLUMES[name]
    chunks = tuple(max(1, min(int(c), s)) for c, s in zip(chunks, shape))
    volume = create_volume(
        group,
        name,
        shape=shape,
        dtype=dtype,
        voxel_size=voxel_size,
        offset=roi.begin,
        chunks=chunks,
    )
    slab = chunks[0]
    starts = range(0, shape[0], slab)
    for z in tqdm(starts, desc=f"convert {name}", unit="slab", disable=not progress, leave=False):
        data = f.read_volume_slab(
            name, (slice(z, min(z + slab, shape[0])), slice(None), slice(None))
        )
        if name == NEURON_IDS and np.any(data < 0):
            raise SynfulError(f.path, f"{VOLUME_PATHS[name]} contains negative ids")
        volume[z : z + len(data)] = data.astype(dtype, copy=False)


def convert_cremi(
    hdf_path: str | os.PathLike,
    store_path: str | os.PathLike,
    synapses_path: str | os.PathLike,
    voxel_size: Sequence[int] = CREMI_VOXEL_SIZE,
    chunks: Sequence[int] = DEFAULT_CHUNKS,
    progress: bool = False,
) -> ConversionSummary:
    """Convert a CREMI HDF5 file into a sample store and a synapse table.

    Args:
        hdf_path: the CREMI file; it must have ``volumes/raw``; ``volumes/labels/neuron_ids``
            and ``annotations`` are copied when present (test samples have neither).
        store_path: the sample store to write (``<name>.zarr``); replaced if it is a sample
            store synful wrote (anything else there is refused, see :mod:`synful.outputs`).
        synapses_path: the synapse table to write (Parquet, or CSV by suffix); the same rule.
        voxel_size: the expected resolution (z, y, x nm) of every volume.
        chunks: zarr chunk shape (voxels); volumes are copied one chunk row of z at a time.
        progress: show a tqdm progress bar per volume.

    Raises:
        SynfulError: a missing or non-HDF5 file, a missing ``volumes/raw``, a partner id
            absent from ``annotations/ids``, a resolution other than ``voxel_size``, an offset
            off the voxel grid, a slab over :data:`MAX_SLAB_BYTES`, an output that is (or holds)
            the input or is not synful's, or another run writing the same outputs. Nothing is
            written then.
    """
    hdf_path = Path(hdf_path)
    store_path, synapses_path = Path(store_path), Path(synapses_path)
    voxel_size = Coordinate(int(v) for v in voxel_size)
    outputs = [output(store_path, SAMPLE), output(synapses_path, SYNAPSE_TABLE)]
    with claim(outputs, inputs=[hdf_path]), CremiFile(hdf_path) as f:
        if not f.has_volume(RAW):
            raise SynfulError(hdf_path, f"missing dataset {VOLUME_PATHS[RAW]}")
        rois = {RAW: _check_volume(hdf_path, RAW, f, voxel_size, chunks)}
        if f.has_volume(NEURON_IDS):
            rois[NEURON_IDS] = _check_volume(hdf_path, NEURON_IDS, f, voxel_size, chunks)
        synapses = synapses_from_annotations(f.read_annotations(), hdf_path)
        if NEURON_IDS in rois and not rois[RAW].contains(rois[NEURON_IDS]):
            logger.warning(
                "%s: neuron_ids %s reach beyond raw %s", hdf_path, rois[NEURON_IDS], rois[RAW]
            )
        table_written = False
        try:
            with atomic_output(store_path, kind=SAMPLE) as tmp:
                group = zarr.open_group(str(tmp), mode="w")
                group.attrs["synful"] = mark(
                    SAMPLE, source=str(hdf_path), **{CREATION_ID: new_creation_id()}
                )
                for name, roi in rois.items():
                    _copy_volume(f, name, group, roi, voxel_size, chunks, progress)
                write_synapses(synapses, synapses_path)
                table_written = True
        except BaseException:
            if table_written:
                remove_path(synapses_path)
            raise
    logger.info(
        "%s -> %s (raw %s, neuron_ids %s) + %s (%d synapses)",
        hdf_path,
        store_path,
        rois[RAW],
        rois.get(NEURON_IDS),
        synapses_path,
        len(synapses),
    )
    return ConversionSummary(rois[RAW], rois.get(NEURON_IDS), len(synapses))
