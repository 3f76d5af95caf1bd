"""Training and validation masks of a sample store, and which synapses belong to a split.

``masks/training`` and ``masks/validation`` are uint8 (0/1) arrays on the grid of
``neuron_ids`` (same voxel size and ROI). They come either from a split rule (a fraction of the
labelled cube, or a world-nm range, along one axis: training inside, validation the rest) or from
given mask volumes (e.g. the non-cuboid masks of the realigned CREMI data), which are aligned
onto the labels' grid by world coordinates: each label voxel takes the value of the mask voxel
that holds its centre (0 outside the mask). A synapse belongs to the split whose mask is 1 at its
postsynaptic point.

The mask arrays are claimed before writing (:func:`synful.outputs.claim`): an existing
``masks/<split>`` must be a mask synful wrote, no given mask volume may be the array it would
replace, and the store is locked while its masks are written. A mask volume whose voxels are
so much finer than the labels' that one slab would read more than :data:`MAX_READ_BYTES` is
refused before anything is read.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import zarr

from .atomic import atomic_output
from .errors import SynfulError
from .geometry import Coordinate, Roi
from .io.sample_store import SPLITS, has_array, mask_name, open_mask, open_neuron_ids
from .io.synapse_table import HDF5_SUFFIXES, POST, read_synapses
from .io.zarr_array import Array, array_path, create_volume, storage, world_array
from .lookup import values_at, voxel_indices
from .outputs import MASK, claim, mark, output, output_lock
from .settings.fields import defaults
from .settings.samples import SPLIT_AXES, MaskSettings

logger = logging.getLogger(__name__)

_RULE_DEFAULTS = defaults(MaskSettings)
ZARR_SUFFIXES = (".zarr", ".n5")
SLAB = 16  # z-sections per write
#: the most mask data one slab may read (a mask much finer than the labels reads large boxes)
MAX_READ_BYTES = 1 << 30

# A mask source yields the uint8 0/1 values of a z-range [z0, z1) of the target grid.
SlabSource = Callable[[int, int], np.ndarray]


@dataclass(frozen=True)
class SplitRule:
    """Split the labelled cube along ``axis``: training inside an interval, validation the rest.

    Args:
        axis: ``z``, ``y`` or ``x``.
        training_fraction: training = the first ``fraction`` of the cube along ``axis``
            (rounded to whole voxels; 0 makes the whole cube validation, 1 the whole cube training).
        training_range: training = the voxels whose centres lie in [start, end) nm (world
            coordinates along ``axis``); used instead of the fraction when given.
    """

    axis: str = _RULE_DEFAULTS["split_axis"]
    training_fraction: float = _RULE_DEFAULTS["training_fraction"]
    training_range: tuple[float, float] | None = None

    def __post_init__(self):
        if self.axis not in SPLIT_AXES:
            raise SynfulError(None, f"split axis must be one of z, y, x, not {self.axis!r}")
        if not 0.0 <= float(self.training_fraction) <= 1.0:
            raise SynfulError(None, f"training fraction {self.training_fraction} is not in [0, 1]")
        if self.training_range is not None and not self.training_range[0] < self.training_range[1]:
            raise SynfulError(None, f"training range {list(self.training_range)} is empty")

    def training_interval(self, roi: Roi, voxel_size) -> tuple[int, int]:
        """The training voxels [begin, end) along ``axis``, counted from ``roi.begin``."""
        a = SPLIT_AXES.index(self.axis)
        n = roi.shape[a] // voxel_size[a]
        if self.training_range is None:
            return 0, int(round(self.training_fraction * n))

        def index(position: float) -> int:  # first voxel whose centre is >= position
            return min(max(math.ceil((position - roi.begin[a]) / voxel_size[a] - 0.5), 0), n)

        return index(self.training_range[0]), index(self.training_range[1])


def rule_slabs(rule: SplitRule, roi: Roi, voxel_size) -> dict[str, SlabSource]:
    """Slab sources of the training and validation masks that ``rule`` defines on ``roi``."""
    shape = tuple(roi.shape / Coordinate(voxel_size))
    a = SPLIT_AXES.index(rule.axis)
    begin, end = rule.training_interval(roi, voxel_size)

    def training(z0: int, z1: int) -> np.ndarray:
        slab = np.zeros((z1 - z0,) + shape[1:], np.uint8)
        index = [slice(None)] * 3
        index[a] = slice(max(begin - z0, 0), max(end - z0, 0)) if a == 0 else slice(begin, end)
        slab[tuple(index)] = 1
        return slab

    return {"training": training, "validation": lambda z0, z1: 1 - training(z0, z1)}


def resampled(mask: Array, roi: Roi, voxel_size, name: str | None = None) -> SlabSource:
    """Slab source of the 3D ``mask`` on the grid of ``roi`` (nearest voxel by voxel centre).

    ``name``: the mask in error messages (default: where the array lives).
    """
    source = storage(mask)
    name = array_path(mask) if name is None else name
    voxel_size = Coordinate(voxel_size)
    target_shape = tuple(roi.shape / voxel_size)
    source_shape = tuple(int(s) for s in mask.shape)
    indices = []
    for a in range(3):
        # the grid is separable: the voxel centres along axis ``a``, looked up on that axis
        centres = np.zeros((target_shape[a], 3))
        centres[:, a] = roi.begin[a] + (np.arange(target_shape[a]) + 0.5) * voxel_size[a]
        indices.append(voxel_indices(centres, mask.offset, mask.voxel_size, "floor")[:, a])
    valid = [(i >= 0) & (i < n) for i, n in zip(indices, source_shape)]
    _check_read_size(mask, name, indices, valid, target_shape, voxel_size)

    def slab(z0: int, z1: int) -> np.ndarray:
        out = np.zeros((z1 - z0,) + target_shape[1:], np.uint8)
        idx = [indices[0][z0:z1], indices[1], indices[2]]
        ok = [valid[0][z0:z1], valid[1], valid[2]]
        if not all(o.any() for o in ok):
            return out
        lo = [int(i[o].min()) for i, o in zip(idx, ok)]
        hi = [int(i[o].max()) + 1 for i, o in zip(idx, ok)]
        block = np.asarray(source[tuple(slice(b, e) for b, e in zip(lo, hi))])
        local = [i[o] - b for i, o, b in zip(idx, ok, lo)]
        target = np.ix_(*[np.flatnonzero(o) for o in ok])
        out[target] = block[np.ix_(*local)] != 0
        return out

    return slab


def _check_read_size(mask: Array, name, indices, valid, target_shape, voxel_size) -> None:
    """Raise before reading when one slab (:data:`SLAB` sections) would read a box of the
    mask larger than :data:`MAX_READ_BYTES`."""

    def span(values) -> int:
        return int(values.max() - values.min() + 1) if len(values) else 0

    spans = [span(i[v]) for i, v in zip(indices[1:], valid[1:])]
    z_span = 0
    for z0 in range(0, max(int(target_shape[0]), 1), SLAB):
        z = indices[0][z0 : z0 + SLAB]
        z_span = max(z_span, span(z[valid[0][z0 : z0 + SLAB]]))
    itemsize = np.dtype(mask.dtype).itemsize
    size = z_span * spans[0] * spans[1] * itemsize
    if size > MAX_READ_BYTES:
        raise SynfulError(
            name,
            f"voxel size {list(mask.voxel_size)} nm is much finer than the labels' "
            f"{list(voxel_size)} nm: a slab of {SLAB} sections would read "
            f"{size / 2**30:.1f} GiB of the mask (limit {MAX_READ_BYTES / 2**30:g} GiB); "
            "downsample the mask first",
        )


def split_container_path(text: str | os.PathLike) -> tuple[Path, str]:
    """``file.hdf/group/dataset`` or ``store.zarr/array`` -> (container, path inside)."""
    parts = Path(text).parts
    for i, part in enumerate(parts):
        if part.lower().endswith(HDF5_SUFFIXES + ZARR_SUFFIXES):
            inner = "/".join(parts[i + 1 :])
            if not inner:
                break
            return Path(*parts[: i + 1]), inner
    raise SynfulError(
        text, "expected a mask as file.hdf/path/to/dataset or store.zarr/path/to/array"
    )


def _attribute(attrs, names, path, default=None):
    for name in names:
        if name in attrs:
            values = np.asarray(attrs[name], dtype=np.float64).reshape(-1)
            if values.shape != (3,) or not np.all(np.isfinite(values)):
                raise SynfulError(path, f"invalid {name} attribute {values.tolist()}")
            if np.any(values != np.round(values)):
                raise SynfulError(path, f"{name} {values.tolist()} is not in whole nm")
            return Coordinate(int(v) for v in values)
    if default is None:
        raise SynfulError(path, f"has no {' or '.join(names)} attribute")
    return default


@contextmanager
def open_mask_volume(text: str | os.PathLike, default_voxel_size=None) -> Iterator[Array]:
    """Open a mask given as ``file.hdf/dataset`` or ``store.zarr/array`` as an
    :class:`~funlib.persistence.Array` (valid inside the ``with`` block).

    The voxel size comes from a ``resolution`` or ``voxel_size`` attribute (or
    ``default_voxel_size``), the offset from ``offset`` (default 0), both in nm.
    """
    container, inner = split_container_path(text)
    if not container.exists():
        raise SynfulError(container, "no such file")
    if container.suffix.lower() in HDF5_SUFFIXES:
        try:
            f = h5py.File(container, "r")
        except OSError:
            raise SynfulError(container, "not an HDF5 file") from None
        try:
            if inner not in f or not isinstance(f[inner], h5py.Dataset):
                raise SynfulError(container, f"missing dataset {inner}")
            yield _mask_volume(f[inner], f[inner].attrs, text, default_voxel_size)
        finally:
            f.close()
    else:
        try:
            array = zarr.open_array(str(container / inner), mode="r")
        except Exception:
            raise SynfulError(container, f"missing array {inner}") from None
        yield _mask_volume(array, dict(array.attrs), text, default_voxel_size)


def _mask_volume(array, attrs, path, default_voxel_size) -> Array:
    if array.ndim != 3:
        raise SynfulError(path, f"mask must be 3D, not {array.ndim}D")
    voxel_size = _attribute(attrs, ("resolution", "voxel_size"), path, default_voxel_size)
    if any(v <= 0 for v in voxel_size):
        raise SynfulError(path, f"invalid voxel size {list(voxel_size)}")
    offset = _attribute(attrs, ("offset",), path, Coordinate((0, 0, 0)))
    return world_array(array, voxel_size, offset)


def write_mask(
    store: str | os.PathLike, split: str, roi: Roi, voxel_size, source: SlabSource
) -> int:
    """Write ``masks/<split>`` from a slab source, atomically; returns the number of 1 voxels."""
    store = Path(store)
    masks = zarr.open_group(str(store), mode="r+").require_group("masks")
    shape = tuple(roi.shape / Coordinate(voxel_size))
    chunks = (min(SLAB, shape[0]),) + tuple(min(256, s) for s in shape[1:])
    total = 0
    with atomic_output(store / mask_name(split), kind=MASK) as tmp:
        array = create_volume(
            masks,
            tmp.name,
            shape=shape,
            dtype=np.uint8,
            voxel_size=voxel_size,
            offset=roi.begin,
            chunks=chunks,
            attrs={"synful": mark(MASK)},
        )
        for z0 in range(0, shape[0], chunks[0]):
            z1 = min(z0 + chunks[0], shape[0])
            slab = source(z0, z1)
            array[z0:z1] = slab
            total += int(slab.sum(dtype=np.int64))
    return total


def make_masks(
    store: str | os.PathLike,
    rule: SplitRule | None = None,
    training_mask: str | os.PathLike | None = None,
    validation_mask: str | os.PathLike | None = None,
) -> dict[str, int]:
    """Write ``masks/training`` and ``masks/validation`` of a sample store.

    Args:
        store: the sample store; its ``neuron_ids`` define the grid and ROI of the masks.
        rule: the split rule, used when no mask volume is given (default: first 75% of z).
        training_mask, validation_mask: mask volumes (``file.hdf/dataset`` or
            ``store.zarr/array``); when only one is given, the other split is its complement
            inside the labelled region.

    Returns:
        The number of voxels in each split.

    Raises:
        SynfulError: no ``neuron_ids``; a bad mask volume; an existing ``masks/<split>`` that
            synful did not write as a mask, or that is one of the given mask volumes;
            another run writing masks into the store.
    """
    store = Path(store)
    inputs = [mask_input_path(p) for p in (training_mask, validation_mask) if p]
    outputs = [output(store / mask_name(split), MASK, lock=False) for split in SPLITS]
    with output_lock(store), claim(outputs, inputs):
        return _make_masks(store, rule, training_mask, validation_mask)


def mask_input_path(text: str | os.PathLike) -> Path:
    """The file or array a mask given as ``file.hdf/dataset`` or ``store.zarr/array`` reads."""
    container, inner = split_container_path(text)
    return container if container.suffix.lower() in HDF5_SUFFIXES else container / inner


def _make_masks(store: Path, rule, training_mask, validation_mask) -> dict[str, int]:
    labels = open_neuron_ids(store)
    roi, voxel_size = labels.roi, labels.voxel_size
    given = {"training": training_mask, "validation": validation_mask}
    if not any(given.values()):
        sources = rule_slabs(rule or SplitRule(), roi, voxel_size)
        return {
            split: write_mask(store, split, roi, voxel_size, sources[split]) for split in SPLITS
        }
    counts = {}
    with _given_sources(given, roi, voxel_size) as sources:
        for split in SPLITS:
            counts[split] = write_mask(store, split, roi, voxel_size, sources[split])
    if given["training"] and given["validation"]:
        overlap = _overlap(store)
        if overlap:
            logger.warning("%s: training and validation masks overlap in %d voxels", store, overlap)
    return counts


@contextmanager
def _given_sources(given, roi, voxel_size) -> Iterator[dict[str, SlabSource]]:
    with ExitStack() as stack:
        sources = {}
        for split, path in given.items():
            if path:
                mask = stack.enter_context(open_mask_volume(path, default_voxel_size=voxel_size))
                sources[split] = resampled(mask, roi, voxel_size, name=str(path))
        for split, other in (("training", "validation"), ("validation", "training")):
            if split not in sources:
                complement = sources[other]
                sources[split] = lambda z0, z1, complement=complement: 1 - complement(z0, z1)
        yield sources


def _overlap(store) -> int:
    training, validation = (storage(open_mask(store, split)) for split in SPLITS)
    total = 0
    for z0 in range(0, training.shape[0], SLAB):
        total += int(np.count_nonzero(training[z0 : z0 + SLAB] & validation[z0 : z0 + SLAB]))
    return total


def synapses_in_split(
    table: pd.DataFrame | str | os.PathLike, store: str | os.PathLike, split: str
) -> pd.DataFrame:
    """The rows of a synapse table whose postsynaptic point lies in ``masks/<split>`` of ``store``.

    A point lies in voxel floor((p - offset) / voxel_size); points outside the mask's ROI
    belong to no split.

    Args:
        table: a synapse table (DataFrame) or its path (Parquet, CSV or CREMI HDF5).
        store: the sample store holding ``masks/<split>``.
        split: ``training`` or ``validation``.

    Raises:
        SynfulError: the store has no such mask.
    """
    if not isinstance(table, pd.DataFrame):
        table = read_synapses(table)
    name = mask_name(split)
    if not has_array(store, name):
        raise SynfulError(store, f"has no {name} (run synful masks first)")
    mask = open_mask(store, split)
    keep = values_at(mask, table[POST].to_numpy(), "floor", outside="fill", fill=0) != 0
    return table[keep].reset_index(drop=True)
