"""Self-describing zarr v3 arrays in world units (the funlib.persistence convention).

Every array carries ``voxel_size``, ``offset`` (nm, spatial axes only), ``axis_names``,
``units`` and ``types`` attributes, so it opens with ``funlib.persistence.open_ds`` and in
neuroglancer/napari tooling. :class:`Volume` reads and writes by world-unit ROI.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import zarr

from ..errors import SynfulError
from ..geometry import Coordinate, Roi, roi_to_slices

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
) -> Volume:
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
    return Volume(array, name=str(Path(str(group.store_path)) / name))


def write_volume(group: zarr.Group, name: str, data: np.ndarray, voxel_size, offset, **kwargs) -> Volume:
    """Create ``name`` from an in-memory array and write it."""
    channels = kwargs.pop("channels", 0)
    volume = create_volume(
        group, name, shape=data.shape, dtype=data.dtype, voxel_size=voxel_size, offset=offset,
        channels=channels, **kwargs,
    )
    volume.array[...] = data
    return volume


class Volume:
    """A zarr array with a voxel size and offset: read and write by world ROI.

    Args:
        array: the zarr array (channel axes first, then z, y, x).
        name: a label for error messages (usually ``store/array``).
    """

    def __init__(self, array: zarr.Array, name: str | None = None):
        self.array = array
        self.name = name or str(array.store_path)
        attrs = dict(array.attrs)
        missing = [k for k in ("voxel_size", "offset") if k not in attrs]
        if missing:
            raise SynfulError(self.name, f"array has no {' or '.join(missing)} attribute")
        self.voxel_size = Coordinate(int(v) for v in attrs["voxel_size"])
        self.offset = Coordinate(int(o) for o in attrs["offset"])
        if len(self.voxel_size) != 3 or len(self.offset) != 3:
            raise SynfulError(self.name, "voxel_size and offset must have 3 entries (z, y, x)")
        if any(v <= 0 for v in self.voxel_size):
            raise SynfulError(self.name, f"invalid voxel_size {list(self.voxel_size)}")
        self.channels = array.ndim - 3
        self.attrs = attrs

    @classmethod
    def open(cls, store: str | os.PathLike, name: str, mode: str = "r") -> Volume:
        """Open array ``name`` inside the zarr store at ``store``."""
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
        return cls(array, name=str(path))

    @property
    def nbytes(self) -> int:
        """Size of the whole array in memory (bytes)."""
        return int(np.prod(self.array.shape, dtype=np.int64)) * np.dtype(self.array.dtype).itemsize

    def in_memory(self) -> Volume:
        """A read-only copy of this volume with its data read into memory (a numpy array);
        same name, voxel size, offset and attributes, so ``read`` works as before."""
        loaded = copy.copy(self)
        loaded.array = np.asarray(self.array[...])
        loaded.array.flags.writeable = False
        return loaded

    @property
    def shape(self) -> Coordinate:
        """Spatial shape in voxels."""
        return Coordinate(self.array.shape[self.channels :])

    @property
    def roi(self) -> Roi:
        return Roi(self.offset, self.shape * self.voxel_size)

    @property
    def dtype(self):
        return self.array.dtype

    @property
    def scale(self) -> float | None:
        scale = self.attrs.get("scale")
        return None if scale is None else float(scale)

    def _slices(self, roi: Roi) -> tuple:
        return (slice(None),) * self.channels + roi_to_slices(roi, self.offset, self.voxel_size)

    def read(self, roi: Roi | None = None, fill_value=0) -> np.ndarray:
        """Read ``roi`` (world nm, voxel-aligned); parts outside the array are ``fill_value``."""
        if roi is None:
            return self.array[...]
        inside = roi.intersect(self.roi)
        out_shape = tuple(self.array.shape[: self.channels]) + tuple(roi.shape / self.voxel_size)
        if inside == roi:
            return self.array[self._slices(roi)]
        out = np.full(out_shape, fill_value, dtype=self.array.dtype)
        if not inside.empty:
            target = (slice(None),) * self.channels + roi_to_slices(inside, roi.begin, self.voxel_size)
            out[target] = self.array[self._slices(inside)]
        return out

    def read_values(self, roi: Roi | None = None, fill_value=0) -> np.ndarray:
        """Read and divide by the ``scale`` attribute when there is one (float32 result;
        :func:`synful.io.prediction_store.decode`)."""
        from .prediction_store import decode  # it imports this module

        return decode(self.read(roi, fill_value), self.scale)

    def write(self, roi: Roi, data: np.ndarray) -> None:
        """Write ``data`` at ``roi``; ``roi`` must lie inside the array."""
        if not self.roi.contains(roi):
            raise ValueError(f"{self.name}: write ROI {roi} is outside {self.roi}")
        self.array[self._slices(roi)] = data
