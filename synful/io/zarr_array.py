"""Arrays in world units: funlib.persistence :class:`Array`, the one array type of synful.

Every array synful writes is a zarr v3 array carrying ``voxel_size``, ``offset`` (nm, spatial
axes only), ``axis_names``, ``units`` and ``types`` attributes (:func:`spatial_metadata`,
funlib.persistence's default metadata format), so it opens with
``funlib.persistence.open_ds`` and in neuroglancer/napari tooling. Sample stores, prediction
stores, masks, ground-truth segmentations and raw volumes all open as :class:`Array`.

Reading and writing: ``array.roi``, ``array.voxel_size``, ``array.offset``,
``array.channel_dims``, ``array.attrs``, ``array[roi] = data`` are funlib's. Reads go through
:func:`read` (zero-filled outside the array): it indexes the storage under the ``Array``
(zarr, numpy, h5py, N5) directly, because funlib's ``array[roi]`` and
``to_ndarray(roi, fill_value)`` compute through dask, several times slower than a direct slice
(docs/performance.md, "Reads through funlib's Array").
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import zarr
from funlib.persistence import Array

from ..errors import SynfulError
from ..geometry import Coordinate, Roi, roi_to_slices

__all__ = [
    "Array",
    "SPATIAL_AXES",
    "array_path",
    "create_volume",
    "in_memory",
    "nbytes",
    "open_array",
    "read",
    "spatial_metadata",
    "spatial_shape",
    "storage",
    "world_array",
    "write_volume",
]

SPATIAL_AXES = ("z", "y", "x")


def spatial_metadata(voxel_size, offset, channels: int = 0) -> dict:
    """Attributes for an array with ``channels`` leading channel axes and 3 spatial axes."""
    channel_names = ["c^"] if channels == 1 else [f"c{i}^" for i in range(channels)]
    return {
        "voxel_size": [int(v) for v in voxel_size],
        "offset": [int(o) for o in offset],
        "axis_names": channel_names + list(SPATIAL_AXES),
        "units": ["nm"] * 3,
        "types": ["channel"] * channels + ["space"] * 3,
    }


def world_array(data, voxel_size, offset, channels: int = 0, axis_names=None) -> Array:
    """``data`` (numpy, zarr, h5py or any array-like; ``channels`` leading channel axes, then
    z, y, x) as an :class:`Array` with a voxel size and offset (whole nm)."""
    metadata = spatial_metadata(voxel_size, offset, channels)
    chunks = getattr(data, "chunks", None)
    return Array(
        data,
        offset=metadata["offset"],
        voxel_size=metadata["voxel_size"],
        axis_names=list(axis_names) if axis_names is not None else metadata["axis_names"],
        units=metadata["units"],
        types=metadata["types"],
        chunks=tuple(chunks)
        if isinstance(chunks, tuple) and len(chunks) == len(data.shape)
        else "auto",
    )


def _from_zarr(array: zarr.Array, name: str) -> Array:
    """An opened zarr array with funlib attributes as an :class:`Array` (checked)."""
    attrs = dict(array.attrs)
    missing = [k for k in ("voxel_size", "offset") if k not in attrs]
    if missing:
        raise SynfulError(name, f"array has no {' or '.join(missing)} attribute")
    voxel_size = [int(v) for v in attrs["voxel_size"]]
    offset = [int(o) for o in attrs["offset"]]
    if len(voxel_size) != 3 or len(offset) != 3:
        raise SynfulError(name, "voxel_size and offset must have 3 entries (z, y, x)")
    if any(v <= 0 for v in voxel_size):
        raise SynfulError(name, f"invalid voxel_size {voxel_size}")
    if array.ndim < 3:
        raise SynfulError(name, f"expected at least 3 axes (z, y, x), got shape {array.shape}")
    names = attrs.get("axis_names")
    names = names if isinstance(names, list) and len(names) == array.ndim else None
    return world_array(array, voxel_size, offset, array.ndim - 3, axis_names=names)


def create_volume(
    group: zarr.Group,
    name: str,
    *,
    shape: Sequence[int],
    dtype,
    voxel_size: Sequence[int],
    offset: Sequence[int],
    chunks: Sequence[int] | None = None,
    shards: Sequence[int] | None = None,
    channels: int = 0,
    fill_value=0,
    attrs: dict | None = None,
    overwrite: bool = True,
) -> Array:
    """Create a zarr v3 array ``name`` in ``group`` with world-unit metadata.

    ``shape``/``chunks``/``shards`` include the channel axes when ``channels > 0``.
    """
    shape = tuple(int(s) for s in shape)
    if chunks is None:
        spatial = shape[channels:]
        chunks = shape[:channels] + tuple(min(s, c) for s, c in zip(spatial, (16, 256, 256)))
    chunks = tuple(max(1, int(c)) for c in chunks)
    attributes = spatial_metadata(voxel_size, offset, channels)
    if attrs:
        attributes.update(attrs)
    array = group.create_array(
        name,
        shape=shape,
        dtype=dtype,
        chunks=chunks,
        shards=None if shards is None else tuple(int(s) for s in shards),
        fill_value=fill_value,
        attributes=attributes,
        dimension_names=attributes["axis_names"],
        overwrite=overwrite,
    )
    return _from_zarr(array, name)


def write_volume(
    group: zarr.Group, name: str, data: np.ndarray, voxel_size, offset, **kwargs
) -> Array:
    """Create ``name`` from an in-memory array and write it."""
    channels = kwargs.pop("channels", 0)
    array = create_volume(
        group,
        name,
        shape=data.shape,
        dtype=data.dtype,
        voxel_size=voxel_size,
        offset=offset,
        channels=channels,
        **kwargs,
    )
    storage(array)[...] = data
    return array


def open_array(store: str | os.PathLike, name: str, mode: str = "r") -> Array:
    """Open array ``name`` inside the zarr store at ``store`` as an :class:`Array`.

    Raises:
        SynfulError: no such store or array, no (or an invalid) ``voxel_size``/``offset``.
    """
    path = Path(store) / name
    if not Path(store).exists():
        raise SynfulError(store, "no such zarr store")
    try:
        array = zarr.open_array(str(path), mode=mode)
    except (FileNotFoundError, KeyError, ValueError, zarr.errors.NodeTypeValidationError) as exc:
        raise SynfulError(store, f"missing array {name}") from exc
    except Exception as exc:  # zarr raises several types for a missing node
        if type(exc).__name__ in ("ArrayNotFoundError", "GroupNotFoundError", "NodeNotFoundError"):
            raise SynfulError(store, f"missing array {name}") from exc
        raise
    return _from_zarr(array, str(path))


def storage(array: Array):
    """The array under an :class:`Array` (zarr, numpy, h5py, N5), for direct indexing in
    voxels, or ``None`` when lazy operations (a slice, a callable) sit in between."""
    source = getattr(array, "_source_data", None)
    if source is None or array.lazy_ops or tuple(source.shape) != tuple(array.shape):
        return None
    return source


def array_path(array: Array) -> str:
    """Where an array lives (the zarr array's or N5 dataset's directory, the HDF5
    ``file/dataset``), for messages and for reopening it in a worker; ``"<memory>"``."""
    source = storage(array)
    store_path = getattr(source, "store_path", None)
    if isinstance(store_path, str):  # N5Array
        return store_path
    root = getattr(getattr(store_path, "store", None), "root", None)
    if root is not None:
        return str(Path(root) / store_path.path) if store_path.path else str(root)
    file = getattr(source, "file", None)
    if file is not None and hasattr(source, "name"):  # h5py dataset
        return f"{file.filename}/{source.name.lstrip('/')}"
    return "<memory>"


def read(array: Array, roi: Roi | None = None, fill_value=0) -> np.ndarray:
    """Read ``roi`` (world nm, voxel-aligned; ``None``: all), channels first; parts outside
    the array are ``fill_value``. From memory the result may be a read-only view."""
    source = storage(array)
    if source is None:  # lazy operations: funlib's (slower) dask path
        return array.to_ndarray(array.roi if roi is None else roi, fill_value)
    if roi is None:
        return source[...]
    # funlib's metadata properties are rebuilt on every access: read them once
    voxel_size, offset = array.voxel_size, array.offset
    lead = tuple(source.shape[: source.ndim - len(voxel_size)])
    channels = (slice(None),) * len(lead)
    inside = roi.intersect(Roi(offset, voxel_size * Coordinate(source.shape[len(lead) :])))
    if inside == roi:
        return source[channels + roi_to_slices(roi, offset, voxel_size)]
    out = np.full(lead + tuple(roi.shape / voxel_size), fill_value, dtype=source.dtype)
    if not inside.empty:
        target = channels + roi_to_slices(inside, roi.begin, voxel_size)
        out[target] = source[channels + roi_to_slices(inside, offset, voxel_size)]
    return out


def in_memory(array: Array) -> Array:
    """A read-only copy of ``array`` with its data read into memory (numpy); same voxel size,
    offset and axes, so :func:`read` gives the same values."""
    data = np.asarray(read(array))
    data.flags.writeable = False
    return Array(
        data,
        offset=array.offset,
        voxel_size=array.voxel_size,
        axis_names=array.axis_names,
        units=array.units,
        types=array.types,
        chunks=data.shape,
    )


def nbytes(array: Array) -> int:
    """Size of the whole array in memory (bytes)."""
    return int(np.prod(array.shape, dtype=np.int64)) * np.dtype(array.dtype).itemsize


def spatial_shape(array: Array) -> Coordinate:
    """The array's shape in voxels along z, y, x (without channel axes)."""
    return Coordinate(array.shape[array.channel_dims :])
