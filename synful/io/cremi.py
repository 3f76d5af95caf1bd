"""Read and write CREMI HDF5 files exactly (https://cremi.org/data).

Layout::

    volumes/raw                         uint8,  attrs resolution (z, y, x nm), offset (nm, optional)
    volumes/labels/neuron_ids           uint64, attrs resolution, offset
    volumes/labels/clefts               uint64 (optional)
    annotations/                        attr offset (nm, optional): locations are relative to it
    annotations/ids                     uint64 (N,)
    annotations/types                   vlen str (N,), also accepted as annotations/type
    annotations/locations               float64 (N, 3), z, y, x nm
    annotations/presynaptic_site/partners   uint64 (M, 2) rows of (pre_id, post_id)
    annotations/comments/target_ids, annotations/comments/comments   (optional)

Locations are never modified in place: the absolute position of an annotation is computed on a
copy (the original Synful reader added the offset once per partner row).

:class:`CremiVolume` is the file's record of one volume (data, float ``resolution`` and
``offset`` as stored, an optional comment), written back exactly; it is not an array type for
computation. Computation uses the funlib.persistence ``Array`` that :meth:`CremiVolume.to_array`
(in memory) or :meth:`CremiFile.volume_array` (lazily, over the HDF5 dataset) make: the one
conversion, which requires whole nm.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from ..atomic import atomic_output
from ..errors import SynfulError
from ..geometry import Coordinate, Roi, roi_to_slices

if TYPE_CHECKING:  # funlib.persistence (dask, pandas) only when an Array is made
    from .zarr_array import Array

VOLUME_PATHS = {
    "raw": "volumes/raw",
    "neuron_ids": "volumes/labels/neuron_ids",
    "clefts": "volumes/labels/clefts",
}
CREMI_VOXEL_SIZE = (40, 4, 4)
PRESYNAPTIC = "presynaptic_site"
POSTSYNAPTIC = "postsynaptic_site"


@dataclass
class CremiVolume:
    """The CREMI file's record of a volume: ``data`` with its ``resolution`` (voxel size, nm)
    and ``offset`` (nm), both (z, y, x) floats as stored, and an optional ``comment``.

    A file-format record for reading and writing CREMI files, not an array type: compute on
    :meth:`to_array`.
    """

    data: np.ndarray
    resolution: tuple[float, float, float] = CREMI_VOXEL_SIZE
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    comment: str | None = None

    def to_array(self, name: str = "volume") -> Array:
        """The volume as an :class:`~funlib.persistence.Array` over ``data`` (not copied).

        Raises:
            SynfulError: the resolution or offset is not in whole nm.
        """
        voxel_size, offset = _whole_nm(None, name, self.resolution, self.offset)
        from .zarr_array import world_array

        return world_array(self.data, voxel_size, offset)


def _whole_nm(path, key: str, resolution, offset) -> tuple[list[int], list[int]]:
    """(voxel size, offset) of a CREMI volume as whole nm, for an :class:`Array`.

    Raises:
        SynfulError: a resolution or offset entry is not a whole number of nm.
    """
    if any(float(v) != round(float(v)) for v in (*offset, *resolution)):
        raise SynfulError(
            path,
            f"{key} resolution {list(resolution)} and offset {list(offset)} must be whole nm",
        )
    return [round(float(v)) for v in resolution], [round(float(o)) for o in offset]


@dataclass
class CremiAnnotations:
    """Point annotations and partner links, locations relative to ``offset`` (nm)."""

    ids: np.ndarray
    types: np.ndarray
    locations: np.ndarray
    partners: np.ndarray
    offset: np.ndarray = field(default_factory=lambda: np.zeros(3))
    comments: dict[int, str] = field(default_factory=dict)

    def __post_init__(self):
        self.ids = np.asarray(self.ids, dtype=np.uint64).reshape(-1)
        self.types = np.asarray([str(t) for t in self.types], dtype=object)
        self.locations = np.asarray(self.locations, dtype=np.float64).reshape(-1, 3)
        self.partners = np.asarray(self.partners, dtype=np.uint64).reshape(-1, 2)
        self.offset = np.asarray(self.offset, dtype=np.float64).reshape(3)

    def absolute_locations(self) -> np.ndarray:
        """A new array of locations in absolute world nm (offset added once per annotation)."""
        return self.locations + self.offset

    def partner_indices(self, path: str | os.PathLike | None = None) -> np.ndarray:
        """Row indices (M x 2) into ``ids`` of each (pre, post) partner row.

        Raises:
            SynfulError: a partner id is not in ``annotations/ids`` or ids are not unique.
        """
        order = np.argsort(self.ids, kind="stable")
        sorted_ids = self.ids[order]
        if len(sorted_ids) > 1 and np.any(sorted_ids[1:] == sorted_ids[:-1]):
            dup = sorted_ids[1:][sorted_ids[1:] == sorted_ids[:-1]][0]
            raise SynfulError(path, f"annotation id {int(dup)} appears twice in annotations/ids")
        flat = self.partners.reshape(-1)
        pos = np.searchsorted(sorted_ids, flat)
        pos_clipped = np.minimum(pos, max(len(sorted_ids) - 1, 0))
        found = (pos < len(sorted_ids)) & (
            sorted_ids[pos_clipped] == flat if len(sorted_ids) else np.zeros(len(flat), bool)
        )
        if not np.all(found):
            missing = int(flat[~found][0])
            raise SynfulError(
                path, f"partner id {missing} in presynaptic_site/partners is not in annotations/ids"
            )
        return order[pos_clipped].reshape(-1, 2)

    def pair_locations(self, path=None) -> tuple[np.ndarray, np.ndarray]:
        """Absolute (pre, post) locations (each M x 3, new arrays) of every partner row."""
        idx = self.partner_indices(path)
        absolute = self.absolute_locations()
        return absolute[idx[:, 0]], absolute[idx[:, 1]]

    @classmethod
    def empty(cls) -> CremiAnnotations:
        return cls(np.zeros(0), np.zeros(0, dtype=object), np.zeros((0, 3)), np.zeros((0, 2)))


@dataclass
class CremiSample:
    raw: CremiVolume | None = None
    neuron_ids: CremiVolume | None = None
    clefts: CremiVolume | None = None
    annotations: CremiAnnotations | None = None


def _as_int(values):
    return tuple(int(round(float(v))) for v in values)


def _decode(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class CremiFile:
    """A CREMI HDF5 file opened for reading; volumes are read lazily, by ROI if wanted.

    Use as a context manager. Every problem is raised as :class:`SynfulError` naming the file.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise SynfulError(self.path, "no such file")
        if self.path.is_dir():
            raise SynfulError(self.path, "is a directory, expected a CREMI HDF5 file")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as exc:
            raise SynfulError(self.path, f"not an HDF5 file ({_short(exc)})") from None

    def __enter__(self) -> CremiFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    # volumes ---------------------------------------------------------------------------
    def has_volume(self, name: str) -> bool:
        return VOLUME_PATHS[name] in self._file

    def _dataset(self, name: str) -> h5py.Dataset:
        key = VOLUME_PATHS[name]
        if key not in self._file:
            raise SynfulError(self.path, f"missing dataset {key}")
        ds = self._file[key]
        if not isinstance(ds, h5py.Dataset) or ds.ndim != 3:
            raise SynfulError(self.path, f"{key} is not a 3D dataset")
        return ds

    def volume_resolution(self, name: str) -> tuple[float, float, float]:
        ds = self._dataset(name)
        res = ds.attrs.get("resolution")
        if res is None:
            raise SynfulError(self.path, f"{VOLUME_PATHS[name]} has no resolution attribute")
        res = np.asarray(res, dtype=np.float64).reshape(-1)
        if res.shape != (3,) or np.any(res <= 0) or not np.all(np.isfinite(res)):
            raise SynfulError(
                self.path, f"{VOLUME_PATHS[name]} has an invalid resolution {res.tolist()}"
            )
        return tuple(float(r) for r in res)

    def volume_offset(self, name: str) -> tuple[float, float, float]:
        ds = self._dataset(name)
        off = ds.attrs.get("offset")
        if off is None:
            return (0.0, 0.0, 0.0)
        off = np.asarray(off, dtype=np.float64).reshape(-1)
        if off.shape != (3,) or not np.all(np.isfinite(off)):
            raise SynfulError(self.path, f"{VOLUME_PATHS[name]} has an invalid offset")
        return tuple(float(o) for o in off)

    def volume_array(self, name: str) -> Array:
        """Volume ``name`` as an :class:`~funlib.persistence.Array` over the HDF5 dataset (read
        lazily; valid while the file is open).

        Raises:
            SynfulError: no such dataset, or its resolution or offset is not in whole nm.
        """
        voxel_size, offset = _whole_nm(
            self.path, VOLUME_PATHS[name], self.volume_resolution(name), self.volume_offset(name)
        )
        from .zarr_array import world_array

        return world_array(self._dataset(name), voxel_size, offset)

    def volume_shape(self, name: str) -> tuple[int, int, int]:
        return tuple(int(s) for s in self._dataset(name).shape)

    def volume_roi(self, name: str) -> Roi:
        res = Coordinate(_as_int(self.volume_resolution(name)))
        return Roi(
            Coordinate(_as_int(self.volume_offset(name))), Coordinate(self.volume_shape(name)) * res
        )

    def read_volume(self, name: str, roi: Roi | None = None) -> CremiVolume:
        """Read a whole volume, or the part inside ``roi`` (world nm, voxel-aligned)."""
        ds = self._dataset(name)
        resolution = self.volume_resolution(name)
        offset = self.volume_offset(name)
        if roi is None:
            data = ds[...]
        else:
            roi = roi.intersect(self.volume_roi(name))
            data = ds[roi_to_slices(roi, _as_int(offset), _as_int(resolution))]
            offset = tuple(float(b) for b in roi.begin)
        comment = ds.attrs.get("comment")
        return CremiVolume(data, resolution, offset, None if comment is None else _decode(comment))

    def read_volume_slab(self, name: str, slices: tuple) -> np.ndarray:
        """Raw index access (for streaming large volumes)."""
        return self._dataset(name)[slices]

    # annotations -----------------------------------------------------------------------
    def has_annotations(self) -> bool:
        return "annotations" in self._file

    def read_annotations(self) -> CremiAnnotations:
        """Read ``annotations/``; a file without annotations yields an empty set."""
        f = self._file
        if "annotations" not in f:
            return CremiAnnotations.empty()
        group = f["annotations"]
        offset = np.asarray(group.attrs.get("offset", (0.0, 0.0, 0.0)), dtype=np.float64)
        if offset.reshape(-1).shape != (3,):
            raise SynfulError(self.path, "annotations has an invalid offset attribute")
        if "ids" not in group:
            return CremiAnnotations.empty()
        ids = np.asarray(group["ids"][...], dtype=np.uint64).reshape(-1)
        if "types" in group:
            types = [_decode(t) for t in group["types"][...].reshape(-1)]
        elif "type" in group:
            types = [_decode(t) for t in group["type"][...].reshape(-1)]
        else:
            raise SynfulError(self.path, "missing dataset annotations/types")
        if "locations" not in group:
            raise SynfulError(self.path, "missing dataset annotations/locations")
        locations = np.asarray(group["locations"][...], dtype=np.float64)
        if locations.size != 3 * len(ids) or len(types) != len(ids):
            raise SynfulError(
                self.path,
                f"annotations/ids ({len(ids)}), types ({len(types)}) and locations "
                f"({locations.shape}) do not have the same length",
            )
        if not np.all(np.isfinite(locations)):
            raise SynfulError(self.path, "annotations/locations contains NaN or infinite values")
        key = "presynaptic_site/partners"
        partners = group[key][...] if key in group else np.zeros((0, 2))
        partners = np.asarray(partners, dtype=np.uint64).reshape(-1, 2)
        comments = {}
        if "comments" in group and "target_ids" in group["comments"]:
            targets = group["comments/target_ids"][...].reshape(-1)
            texts = group["comments/comments"][...].reshape(-1)
            comments = {int(t): _decode(c) for t, c in zip(targets, texts)}
        ann = CremiAnnotations(
            ids, np.asarray(types, dtype=object), locations, partners, offset, comments
        )
        ann.partner_indices(self.path)  # validates partner ids
        return ann


def _short(exc: Exception) -> str:
    text = str(exc).split("\n")[0]
    return text if len(text) < 120 else text[:117] + "..."


def read_cremi(path: str | os.PathLike, volumes=("raw", "neuron_ids", "clefts")) -> CremiSample:
    """Read a whole CREMI file into memory (volumes that are absent stay ``None``)."""
    with CremiFile(path) as f:
        sample = CremiSample(annotations=f.read_annotations())
        for name in volumes:
            if f.has_volume(name):
                setattr(sample, name, f.read_volume(name))
        return sample


def write_cremi(
    path: str | os.PathLike, sample: CremiSample, compression: str | None = "gzip"
) -> None:
    """Write ``sample`` as a CREMI HDF5 file, atomically (a failure leaves no file)."""
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["file_format"] = "0.2"
            for name, key in VOLUME_PATHS.items():
                volume = getattr(sample, name)
                if volume is None:
                    continue
                chunks = tuple(min(s, c) for s, c in zip(volume.data.shape, (8, 256, 256)))
                ds = f.create_dataset(
                    key,
                    data=volume.data,
                    compression=compression,
                    chunks=chunks if all(chunks) else None,
                )
                ds.attrs["resolution"] = np.asarray(volume.resolution, dtype=np.float64)
                if any(float(o) != 0.0 for o in volume.offset):
                    ds.attrs["offset"] = np.asarray(volume.offset, dtype=np.float64)
                if volume.comment:
                    ds.attrs["comment"] = volume.comment
            if sample.annotations is not None:
                write_annotations(f, sample.annotations)


def write_annotations(f: h5py.File, ann: CremiAnnotations) -> None:
    """Write ``annotations/`` into an open HDF5 file."""
    group = f.require_group("annotations")
    if np.any(ann.offset != 0):
        group.attrs["offset"] = ann.offset
    group.create_dataset("ids", data=ann.ids.astype(np.uint64))
    group.create_dataset(
        "types",
        data=np.asarray([str(t) for t in ann.types], dtype=object),
        dtype=h5py.string_dtype(),
    )
    group.create_dataset("locations", data=ann.locations.astype(np.float64).reshape(-1, 3))
    group.create_dataset(
        "presynaptic_site/partners", data=ann.partners.astype(np.uint64).reshape(-1, 2)
    )
    if ann.comments:
        targets = np.asarray(list(ann.comments.keys()), dtype=np.uint64)
        texts = np.asarray(list(ann.comments.values()), dtype=object)
        group.create_dataset("comments/target_ids", data=targets)
        group.create_dataset("comments/comments", data=texts, dtype=h5py.string_dtype())
