"""Existing raw volumes as input, without conversion: zarr v2/v3, N5 and OME-Zarr.

:func:`open_raw_array` is the one place that turns a raw *spec* (a local path) into a
:class:`~funlib.persistence.Array` with a voxel size and offset in nm, axes (z, y, x):

* ``SAMPLE.zarr``: a group with a ``raw`` array (a synful sample store): its ``raw``.
* ``CONTAINER.zarr/path/to/array``: a zarr v2 or v3 array with funlib attributes
  (``voxel_size``, ``offset``, optional ``axis_names``, ``units``) or the older
  ``resolution`` / ``offset`` (z, y, x order).
* ``CONTAINER.n5/path/to/dataset``: an N5 dataset; ``resolution`` / ``offset`` (or
  ``pixelResolution``) are stored in N5's x, y, z order and reversed here. zarr-python 3
  cannot read N5, so :class:`N5Array` is a small read-only reader (compression raw, gzip,
  zlib, bzip2, xz, blosc, zstd; default block mode).
* ``IMAGE.zarr`` or ``CONTAINER.zarr/group``: an OME-Zarr multiscale image (v0.4:
  ``multiscales`` attribute, v0.5: ``ome.multiscales``); the level whose voxel size (scale,
  in the axes' units converted to nm) equals the requested voxel size is opened, its offset
  is the level's translation. An array of such an image (``IMAGE.zarr/1``) works too.

Every array must have exactly three spatial axes (z, y, x); anything else, a voxel size other
than the requested one, a missing or non-integer (nm) voxel size or offset is a
:class:`~synful.errors.SynfulError` of one line. The metadata parsers (:func:`funlib_metadata`,
:func:`n5_metadata`, :func:`ome_levels`, :func:`pick_level`) are pure functions of attribute
dicts.
"""

from __future__ import annotations

import bz2
import dataclasses
import json
import lzma
import math
import os
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import SynfulError
from .zarr_array import Array, world_array

SPATIAL = ("z", "y", "x")
RAW = "raw"

#: nm per unit, for the unit names funlib, OME-Zarr (UDUNITS-2) and N5 viewers use
UNIT_NM = {
    "": 1.0, "nm": 1.0, "nanometer": 1.0, "nanometers": 1.0, "nanometre": 1.0,
    "um": 1e3, "µm": 1e3, "μm": 1e3, "micrometer": 1e3, "micrometers": 1e3, "micrometre": 1e3,
    "micron": 1e3, "microns": 1e3,
    "mm": 1e6, "millimeter": 1e6,
    "a": 0.1, "å": 0.1, "angstrom": 0.1, "angstroms": 0.1,
    "pm": 1e-3, "picometer": 1e-3,
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class WorldMetadata:
    """Where an array's voxels lie: per spatial axis, in nm (floats until checked).

    Args:
        voxel_size: nm per voxel.
        offset: nm of the first voxel's corner.
        axis_names: names of all axes of the array (``None``: not given).
        source: which convention it came from (``funlib``, ``resolution``, ``n5``, ``ome``).
    """

    voxel_size: tuple[float, ...]
    offset: tuple[float, ...]
    axis_names: tuple[str, ...] | None = None
    source: str = "funlib"


@dataclasses.dataclass(frozen=True)
class OmeLevel:
    """One level of an OME-Zarr multiscale image: its array path and world metadata."""

    path: str
    metadata: WorldMetadata


# ---------------------------------------------------------------------------- pure parsing


def _nm_factor(unit, where) -> float:
    key = "" if unit is None else str(unit).strip().lower()
    if key not in UNIT_NM:
        raise SynfulError(where, f"unknown unit {unit!r}: expected nm, um or another length unit")
    return UNIT_NM[key]


def _units(units, n: int, where) -> list[float]:
    """nm factors for ``n`` spatial axes from a unit string, a list of them, or ``None``."""
    if units is None or isinstance(units, str):
        return [_nm_factor(units, where)] * n
    units = list(units)
    if len(units) != n:
        raise SynfulError(where, f"units {units} do not have {n} entries")
    return [_nm_factor(u, where) for u in units]


def _numbers(values, name: str, where) -> tuple[float, ...]:
    try:
        numbers = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise SynfulError(where, f"{name} {values!r} is not a list of numbers") from None
    if not all(math.isfinite(v) for v in numbers):
        raise SynfulError(where, f"{name} {list(values)} is not finite")
    return numbers


def funlib_metadata(attrs: Mapping, where=None) -> WorldMetadata | None:
    """World metadata from zarr attributes: funlib's ``voxel_size``/``offset``/``axis_names``/
    ``units`` or the older ``resolution``/``offset``, all in (z, y, x) order for the spatial
    axes; ``None`` when the attributes have neither ``voxel_size`` nor ``resolution``.
    ``offset`` defaults to 0."""
    key = "voxel_size" if "voxel_size" in attrs else "resolution" if "resolution" in attrs else None
    if key is None:
        return None
    voxel_size = _numbers(attrs[key], key, where)
    n = len(voxel_size)
    offset = _numbers(attrs.get("offset", [0] * n), "offset", where)
    if len(offset) != n:
        raise SynfulError(
            where, f"offset {list(offset)} and {key} {list(voxel_size)} differ in length"
        )
    names = attrs.get("axis_names")
    factors = _units(attrs.get("units"), n, where)
    return WorldMetadata(
        voxel_size=tuple(v * f for v, f in zip(voxel_size, factors)),
        offset=tuple(o * f for o, f in zip(offset, factors)),
        axis_names=None if names is None else tuple(str(a) for a in names),
        source="funlib" if key == "voxel_size" else "resolution",
    )


def n5_metadata(attrs: Mapping, where=None) -> WorldMetadata | None:
    """World metadata from N5 dataset attributes, which list axes in N5's (x, y, z) order:
    ``resolution`` (or funlib's ``voxel_size``, or the N5 viewer's ``pixelResolution:
    {dimensions, unit}``) and ``offset``, reversed to (z, y, x); ``None`` without any."""
    unit = None
    if "resolution" in attrs or "voxel_size" in attrs:
        key = "resolution" if "resolution" in attrs else "voxel_size"
        voxel_size = _numbers(attrs[key], key, where)
    elif isinstance(attrs.get("pixelResolution"), Mapping):
        pixel = attrs["pixelResolution"]
        voxel_size = _numbers(pixel.get("dimensions", ()), "pixelResolution", where)
        unit = pixel.get("unit")
    else:
        return None
    n = len(voxel_size)
    offset = _numbers(attrs.get("offset", [0] * n), "offset", where)
    if len(offset) != n:
        raise SynfulError(
            where, f"offset {list(offset)} and resolution {list(voxel_size)} differ in length"
        )
    factors = _units(attrs.get("units", unit), n, where)
    names = attrs.get("axis_names")
    return WorldMetadata(
        voxel_size=tuple(v * f for v, f in zip(voxel_size, factors))[::-1],
        offset=tuple(o * f for o, f in zip(offset, factors))[::-1],
        axis_names=None if names is None else tuple(str(a) for a in names)[::-1],
        source="n5",
    )


def ome_multiscales(attrs: Mapping) -> list | None:
    """The ``multiscales`` list of an OME-Zarr group's attributes (v0.5 ``ome.multiscales``
    or v0.4 ``multiscales``), or ``None``."""
    ome = attrs.get("ome")
    if isinstance(ome, Mapping) and "multiscales" in ome:
        return ome["multiscales"]
    return attrs.get("multiscales")


def _transform(transforms, n: int, where) -> tuple[list[float], list[float]]:
    """scale and translation of an OME ``coordinateTransformations`` list."""
    scale, translation = [1.0] * n, [0.0] * n
    for t in transforms or ():
        kind = t.get("type") if isinstance(t, Mapping) else None
        if kind == "identity":
            continue
        if kind not in ("scale", "translation"):
            raise SynfulError(where, f"unsupported OME-Zarr coordinate transformation {t!r}")
        if kind not in t:
            raise SynfulError(where, f"OME-Zarr {kind} transformation without inline values (path)")
        values = list(_numbers(t[kind], kind, where))
        if len(values) != n:
            raise SynfulError(where, f"OME-Zarr {kind} {values} does not have {n} entries")
        if kind == "scale":
            scale = [s * v for s, v in zip(scale, values)]
            translation = [o * v for o, v in zip(translation, values)]
        else:
            translation = [o + v for o, v in zip(translation, values)]
    return scale, translation


def ome_levels(attrs: Mapping, where=None) -> list[OmeLevel] | None:
    """The levels of the first multiscale image in OME-Zarr group attributes, each with its
    world metadata for all axes (nm on space axes, the axes' own units elsewhere); ``None``
    when the attributes hold no multiscales."""
    multiscales = ome_multiscales(attrs)
    if multiscales is None:
        return None
    if (
        not isinstance(multiscales, list)
        or not multiscales
        or not isinstance(multiscales[0], Mapping)
    ):
        raise SynfulError(where, "OME-Zarr multiscales is empty or malformed")
    image = multiscales[0]
    axes = image.get("axes")
    if not axes:
        raise SynfulError(
            where, "OME-Zarr multiscales without axes (version < 0.4 is not supported)"
        )
    names = tuple(str(a["name"] if isinstance(a, Mapping) else a) for a in axes)
    factors = [
        _nm_factor(a.get("unit"), where)
        if isinstance(a, Mapping) and a.get("type") == "space"
        else 1.0
        for a in axes
    ]
    n = len(axes)
    outer_scale, outer_translation = _transform(image.get("coordinateTransformations"), n, where)
    levels = []
    for dataset in image.get("datasets") or ():
        scale, translation = _transform(dataset.get("coordinateTransformations"), n, where)
        scale = [s * o for s, o in zip(scale, outer_scale)]
        translation = [t * o + u for t, o, u in zip(translation, outer_scale, outer_translation)]
        metadata = WorldMetadata(
            voxel_size=tuple(s * f for s, f in zip(scale, factors)),
            offset=tuple(t * f for t, f in zip(translation, factors)),
            axis_names=names,
            source="ome",
        )
        levels.append(OmeLevel(str(dataset["path"]), metadata))
    if not levels:
        raise SynfulError(where, "OME-Zarr multiscales has no datasets")
    return levels


def _close(a: Sequence[float], b: Sequence[float]) -> bool:
    return len(a) == len(b) and all(
        math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9) for x, y in zip(a, b)
    )


def _fmt(values) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"


def pick_level(
    levels: Sequence[OmeLevel], voxel_size: Sequence[float] | None, where=None
) -> OmeLevel:
    """The level whose spatial voxel size (the last three axes, nm) equals ``voxel_size``;
    the first level when ``voxel_size`` is ``None``."""
    if voxel_size is None:
        return levels[0]
    for level in levels:
        if _close(level.metadata.voxel_size[-3:], [float(v) for v in voxel_size]):
            return level
    listed = ", ".join(f"{lv.path} {_fmt(lv.metadata.voxel_size[-3:])}" for lv in levels)
    raise SynfulError(
        where,
        f"no OME-Zarr level has the network's voxel size {_fmt(voxel_size)} nm (levels: {listed})",
    )


def _whole_nm(values: Sequence[float], name: str, where) -> tuple[int, ...]:
    rounded = tuple(round(v) for v in values)
    if not _close(values, rounded):
        raise SynfulError(where, f"{name} {_fmt(values)} nm is not a whole number of nm")
    return rounded


def check_metadata(
    metadata: WorldMetadata | None,
    shape: Sequence[int],
    where,
    voxel_size: Sequence[float] | None = None,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(voxel_size, offset) in whole nm of a raw array of ``shape``, checked: three spatial
    axes (z, y, x), a positive voxel size equal to ``voxel_size`` when given."""
    if metadata is None:
        raise SynfulError(
            where,
            "array has no voxel size (attributes voxel_size/offset, "
            "resolution/offset or OME-Zarr multiscales)",
        )
    names = metadata.axis_names
    described = f" ({', '.join(names)})" if names and len(names) == len(shape) else ""
    if len(shape) != 3:
        raise SynfulError(where, f"raw must be a 3D (z, y, x) array, not {len(shape)}D{described}")
    if len(metadata.voxel_size) != 3:
        raise SynfulError(
            where,
            f"raw must have 3 spatial axes (z, y, x), not {len(metadata.voxel_size)}{described}",
        )
    if names is not None:
        letters = [n.lower() for n in names]
        if sorted(letters) == sorted(SPATIAL) and tuple(letters) != SPATIAL:
            raise SynfulError(where, f"axes {list(names)} are not in (z, y, x) order")
    if voxel_size is not None and not _close(metadata.voxel_size, [float(v) for v in voxel_size]):
        raise SynfulError(
            where,
            f"raw voxel size {_fmt(metadata.voxel_size)} nm differs from the network's "
            f"{_fmt(voxel_size)} nm",
        )
    size = _whole_nm(metadata.voxel_size, "voxel size", where)
    if any(v <= 0 for v in size):
        raise SynfulError(where, f"invalid voxel size {list(size)}")
    return size, _whole_nm(metadata.offset, "offset", where)


# ---------------------------------------------------------------------------- N5


N5_DTYPES = {
    "uint8": ">u1", "uint16": ">u2", "uint32": ">u4", "uint64": ">u8",
    "int8": ">i1", "int16": ">i2", "int32": ">i4", "int64": ">i8",
    "float32": ">f4", "float64": ">f8",
}  # fmt: skip


def _n5_decompressor(compression, where):
    """A function bytes -> bytes for an N5 ``compression`` attribute."""
    kind = compression.get("type") if isinstance(compression, Mapping) else compression
    kind = "raw" if kind is None else str(kind)
    if kind == "raw":
        return lambda data: data
    if kind == "gzip":  # gzip or zlib stream (useZlib); wbits 47 accepts both
        return lambda data: zlib.decompress(data, 47)
    if kind == "bzip2":
        return bz2.decompress
    if kind == "xz":
        return lzma.decompress
    if kind in ("blosc", "zstd"):
        import numcodecs

        codec = numcodecs.Blosc() if kind == "blosc" else numcodecs.Zstd()
        return lambda data: bytes(codec.decode(data))
    raise SynfulError(
        where, f"unsupported N5 compression {kind!r} (raw, gzip, bzip2, xz, blosc, zstd)"
    )


class N5Array:
    """A read-only N5 dataset seen in (z, y, x) order (N5 lists dimensions x first).

    Blocks live at ``<dataset>/<ix>/<iy>/<iz>``: a big-endian header (mode, number of
    dimensions, the block's own size, x first) and the compressed data, x varying fastest.
    Missing blocks read as zeros. Only default-mode (0) and varlength (1) blocks are read.
    """

    def __init__(self, path: str | os.PathLike, attrs: Mapping):
        self.path = Path(path)
        where = str(self.path)
        try:
            self.shape = tuple(int(d) for d in attrs["dimensions"])[::-1]
            self.chunks = tuple(int(b) for b in attrs["blockSize"])[::-1]
            kind = str(attrs["dataType"])
        except (KeyError, TypeError, ValueError):
            raise SynfulError(
                where, "not an N5 dataset (dimensions, blockSize, dataType)"
            ) from None
        if kind not in N5_DTYPES:
            raise SynfulError(where, f"unsupported N5 data type {kind!r}")
        self._stored = np.dtype(N5_DTYPES[kind])
        self.dtype = self._stored.newbyteorder("=")
        compression = attrs.get("compression", attrs.get("compressionType"))
        self._decompress = _n5_decompressor(compression, where)
        self.attrs = dict(attrs)
        self.store_path = where

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def _block(self, index: tuple[int, ...]) -> np.ndarray | None:
        file = self.path.joinpath(*(str(i) for i in index[::-1]))
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            return None
        mode, ndim = np.frombuffer(data[:4], ">u2")
        if mode not in (0, 1) or ndim != self.ndim:
            raise SynfulError(file, f"unsupported N5 block (mode {mode}, {ndim} dimensions)")
        header = 4 + 4 * ndim + (4 if mode == 1 else 0)
        size = tuple(int(s) for s in np.frombuffer(data[4 : 4 + 4 * ndim], ">u4"))[::-1]
        values = np.frombuffer(self._decompress(data[header:]), self._stored)
        count = int(np.prod(size))
        if values.size < count:
            raise SynfulError(file, f"N5 block has {values.size} values, expected {count}")
        return values[:count].reshape(size)

    def __getitem__(self, key) -> np.ndarray:
        if key is Ellipsis:
            key = ()
        if not isinstance(key, tuple):
            key = (key,)
        if Ellipsis in key:
            at = key.index(Ellipsis)
            key = key[:at] + (slice(None),) * (self.ndim - len(key) + 1) + key[at + 1 :]
        key = key + (slice(None),) * (self.ndim - len(key))
        bounds = []
        for k, n in zip(key, self.shape):
            if not isinstance(k, slice):
                raise TypeError("N5Array supports slices only")
            start, stop, step = k.indices(n)
            if step != 1:
                raise TypeError("N5Array supports step 1 only")
            bounds.append((start, max(start, stop)))
        out = np.zeros(tuple(e - b for b, e in bounds), dtype=self.dtype)
        if out.size == 0:
            return out
        ranges = [range(b // c, (e - 1) // c + 1) for (b, e), c in zip(bounds, self.chunks)]
        for index in np.ndindex(*(len(r) for r in ranges)):
            index = tuple(r[i] for r, i in zip(ranges, index))
            block = self._block(index)
            if block is None:
                continue
            starts = [i * c for i, c in zip(index, self.chunks)]
            src, dst = [], []
            for (b, e), s, n in zip(bounds, starts, block.shape):
                lo, hi = max(b, s), min(e, s + n)
                if hi <= lo:
                    break
                src.append(slice(lo - s, hi - s))
                dst.append(slice(lo - b, hi - b))
            else:
                out[tuple(dst)] = block[tuple(src)]
        return out


# ---------------------------------------------------------------------------- opening


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def node_info(path: str | os.PathLike) -> tuple[str, str, dict] | None:
    """``(format, kind, attributes)`` of a zarr v3, zarr v2 or N5 node at ``path``: format
    ``zarr3``/``zarr2``/``n5``, kind ``array``/``group``; ``None`` if ``path`` is none."""
    path = Path(path)
    meta = _read_json(path / "zarr.json")
    if isinstance(meta, dict) and meta.get("node_type") in ("array", "group"):
        return "zarr3", meta["node_type"], dict(meta.get("attributes") or {})
    if (path / ".zarray").is_file() or (path / ".zgroup").is_file():
        kind = "array" if (path / ".zarray").is_file() else "group"
        return "zarr2", kind, dict(_read_json(path / ".zattrs") or {})
    attrs = _read_json(path / "attributes.json")
    if isinstance(attrs, dict):
        return "n5", "array" if "dimensions" in attrs and "dataType" in attrs else "group", attrs
    if path.suffix.lower() == ".n5" and path.is_dir():
        return "n5", "group", {}  # an N5 root without attributes
    return None


def _ome_metadata_of_array(path: Path) -> WorldMetadata | None:
    """The metadata an enclosing OME-Zarr multiscale group gives the array at ``path``."""
    for parent in list(path.parents)[:3]:
        info = node_info(parent)
        if info is None or info[1] != "group":
            return None
        levels = ome_levels(info[2], parent)
        if levels:
            for level in levels:
                if (parent / level.path).resolve() == path.resolve():
                    return level.metadata
    return None


def _open_array(
    path: Path, fmt: str, attrs: dict, spec, metadata: WorldMetadata | None, voxel_size
) -> Array:
    if fmt == "n5":
        array = N5Array(path, attrs)
        metadata = metadata or n5_metadata(attrs, spec)
    else:
        import zarr

        try:
            array = zarr.open_array(str(path), mode="r")
        except Exception as exc:  # zarr raises many types for unreadable metadata
            raise SynfulError(path, f"not a readable zarr array ({type(exc).__name__})") from None
        metadata = metadata or funlib_metadata(attrs, spec) or _ome_metadata_of_array(path)
    size, offset = check_metadata(metadata, array.shape, spec, voxel_size)
    names = (
        metadata.axis_names if metadata.axis_names and len(metadata.axis_names) == 3 else SPATIAL
    )
    return world_array(array, size, offset, axis_names=names)


def _is_container(path: Path) -> bool:
    return path.suffix.lower() in (".zarr", ".n5") or node_info(path) is not None


def _missing(spec: Path) -> SynfulError:
    """The error for a spec that is no node: name the container and the missing path in it."""
    containers = [p for p in (spec, *spec.parents) if p.exists() and _is_container(p)]
    if containers:
        root = containers[-1]
        if root != spec:
            return SynfulError(root, f"missing array {spec.relative_to(root)}")
        return SynfulError(spec, "not a zarr array, N5 dataset, OME-Zarr image or sample store")
    if spec.suffix.lower() == ".n5":
        return SynfulError(spec, "no such N5 container")
    if spec.exists():
        return SynfulError(spec, "not a zarr array, N5 dataset, OME-Zarr image or sample store")
    return SynfulError(spec, "no such zarr store")


def open_raw_array(spec: str | os.PathLike, voxel_size: Sequence[int] | None = None) -> Array:
    """Open a raw volume given as a path (see the module docstring for the forms).

    Args:
        spec: ``SAMPLE.zarr``, ``CONTAINER.zarr/path/to/array``, ``CONTAINER.n5/path/to/dataset``,
            an OME-Zarr image ``IMAGE.zarr`` (or a group inside a container), or one of its
            level arrays.
        voxel_size: the voxel size (z, y, x nm) the caller needs, e.g. the network's: picks
            the OME-Zarr level, and any other voxel size is an error naming both.

    Returns:
        An :class:`~funlib.persistence.Array` (3 axes, whole-nm voxel size and offset, opened
        read-only) whose :func:`~synful.io.zarr_array.array_path` is the opened array's path:
        ``open_raw_array(array_path(array))`` opens the same array with the same metadata
        (workers reopen it this way).

    Raises:
        SynfulError: a missing or unsupported node, not 3 spatial axes, no or non-integer
            metadata, a voxel size other than ``voxel_size``.
    """
    path = Path(spec)
    info = node_info(path)
    if info is None:
        raise _missing(path)
    fmt, kind, attrs = info
    if kind == "array":
        return _open_array(path, fmt, attrs, spec, None, voxel_size)
    levels = ome_levels(attrs, spec) if fmt != "n5" else None
    if levels:
        level = pick_level(levels, voxel_size, spec)
        level_path = path / level.path
        level_info = node_info(level_path)
        if level_info is None or level_info[1] != "array":
            raise SynfulError(spec, f"OME-Zarr level {level.path} is not an array")
        return _open_array(
            level_path, level_info[0], level_info[2], spec, level.metadata, voxel_size
        )
    raw = node_info(path / RAW)
    if raw is None or raw[1] != "array":
        raise SynfulError(spec, f"missing array {RAW}")
    return _open_array(path / RAW, raw[0], raw[2], spec, None, voxel_size)
