"""The prediction store, one owner: head names, dtypes, scales, create, open, encode, decode.

A prediction store is a zarr v3 group holding ``post_indicator`` (z, y, x), a probability,
and ``partner_vectors`` (3, z, y, x), nm from a postsynaptic voxel to its partner; either
may be missing in a store written by a one-head network. Every array carries the world
metadata of :mod:`synful.io.zarr_array` (``voxel_size``, ``offset``, axis names, units).

Values are stored as ``stored = value * scale`` with a ``scale`` attribute; readers divide
(:func:`decode`):

* output dtype ``uint8`` (the default, as the original): ``post_indicator`` as ``uint8``,
  probability * 255, rounded; ``partner_vectors`` as ``int8``, nm * 0.25, rounded and
  clipped to [-128, 127]: 4 nm steps, +-512 nm range. The original cast without rounding
  ([UNVERIFIED] in the reference); rounding halves the error.
* ``float16`` / ``float32``: probability and nm as they are, ``scale`` = 1. Float arrays
  without a ``scale`` attribute (stores written by hand) are read as they are.

The group of a store that ``synful predict`` writes carries the ``synful`` mark
(:func:`synful.outputs.mark`, kind ``predictions``) with a new creation id and the digest
of the work that wrote it (``recipe``).

Arrays are funlib.persistence :class:`~funlib.persistence.Array` s; :func:`scale` reads an
array's ``scale`` and :func:`read_values` reads a region decoded.

Torch-free: the network (:mod:`synful.models`) takes the head names from here.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import zarr

from ..errors import SynfulError
from ..geometry import Roi
from ..identity import CREATION_ID, new_creation_id
from ..outputs import MARK_KEY, PREDICTIONS, mark
from ..settings.predict import DTYPES  # the output dtype options, a setting of synful predict
from .sample_store import has_array, open_volume
from .zarr_array import Array, array_path, create_volume, read

POST_INDICATOR = "post_indicator"
PARTNER_VECTORS = "partner_vectors"
HEADS = (POST_INDICATOR, PARTNER_VECTORS)
POST_INDICATOR_SCALE = 255.0
PARTNER_VECTORS_SCALE = 0.25
#: the key in the store's ``synful`` mark holding the digest of the work that wrote it
RECIPE_KEY = "recipe"


def stored_dtype(head: str, dtype: str) -> np.dtype:
    """On-disk dtype of a head for an output ``dtype`` option."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if dtype == "uint8":
        return np.dtype(np.uint8 if head == POST_INDICATOR else np.int8)
    return np.dtype(dtype)


def head_scale(head: str, dtype: str) -> float:
    """The ``scale`` attribute of a head for an output ``dtype`` option."""
    if dtype != "uint8":
        return 1.0
    return POST_INDICATOR_SCALE if head == POST_INDICATOR else PARTNER_VECTORS_SCALE


def encode(head: str, values: np.ndarray, dtype: str) -> np.ndarray:
    """Probabilities (post_indicator) or vectors in nm (partner_vectors) -> stored values.

    Integers: ``rint(float32(values) * float32(scale))`` (ties to even) clipped to the
    dtype's range; floats: cast.
    """
    target = stored_dtype(head, dtype)
    if target.kind == "f":
        return values.astype(target)
    info = np.iinfo(target)
    scaled = np.rint(values.astype(np.float32) * np.float32(head_scale(head, dtype)))
    return np.clip(scaled, info.min, info.max).astype(target)


def decode(stored: np.ndarray, scale: float | None) -> np.ndarray:
    """Stored data -> values: ``float32(stored) / float32(scale)``.

    Args:
        stored: the array as stored (any numeric dtype).
        scale: the array's ``scale`` attribute, or ``None``: floats are returned as they
            are, integers as float32.
    """
    stored = np.asarray(stored)
    if scale is None:
        return stored if stored.dtype.kind == "f" else stored.astype(np.float32)
    return stored.astype(np.float32) / np.float32(scale)


def scale(array: Array) -> float | None:
    """An array's ``scale`` attribute (``None`` when it has none: values as stored)."""
    value = array.attrs.get("scale")
    return None if value is None else float(value)


def read_values(array: Array, roi: Roi | None = None, fill_value=0) -> np.ndarray:
    """Read ``roi`` of a prediction array (zero-filled outside) and :func:`decode` it."""
    return decode(read(array, roi, fill_value), scale(array))


def create(
    path: str | os.PathLike,
    *,
    shape: Sequence[int],
    voxel_size: Sequence[int],
    offset: Sequence[int],
    heads: Sequence[str] = HEADS,
    dtype: str = "uint8",
    chunks: Sequence[int] | None = None,
    shards: Sequence[int] | None = None,
    recipe: str | None = None,
    attrs: dict | None = None,
    scaled: bool = True,
) -> dict[str, Array]:
    """Create a new (empty) prediction store at ``path`` (anything there is replaced).

    Args:
        path: the zarr store.
        shape: spatial shape (z, y, x) in voxels; ``partner_vectors`` gets 3 channels first.
        voxel_size, offset: nm.
        heads: the arrays to create.
        dtype: an output dtype option (:data:`DTYPES`).
        chunks, shards: spatial chunk (and shard) shape; ``None``: zarr_array's default
            chunks, no shards.
        recipe: the digest of the work writing the store: given, the group gets the
            ``synful`` mark with a new creation id and ``recipe``; ``None``: no mark.
        attrs: more group attributes (set after the mark; a ``synful`` key replaces it).
        scaled: ``False``: no ``scale`` attributes (float dtypes only; values as they are,
            like a store written by another tool).

    Returns:
        The created arrays by head name.
    """
    if not scaled and dtype not in ("float16", "float32"):
        raise ValueError(f"an unscaled prediction store needs a float dtype, got {dtype!r}")
    group = zarr.open_group(str(path), mode="w")
    group_attrs = {}
    if recipe is not None:
        identity = {CREATION_ID: new_creation_id(), RECIPE_KEY: recipe}
        group_attrs[MARK_KEY] = mark(PREDICTIONS, **identity)
    group_attrs.update(attrs or {})
    if group_attrs:
        group.attrs.update(group_attrs)
    shape = tuple(int(s) for s in shape)
    volumes = {}
    for head in heads:
        channels = 1 if head == PARTNER_VECTORS else 0
        lead = (3,) if channels else ()
        volumes[head] = create_volume(
            group,
            head,
            shape=lead + shape,
            dtype=stored_dtype(head, dtype),
            voxel_size=voxel_size,
            offset=offset,
            chunks=None if chunks is None else lead + tuple(chunks),
            shards=None if shards is None else lead + tuple(shards),
            channels=channels,
            attrs={"scale": head_scale(head, dtype)} if scaled else None,
        )
    return volumes


# --- opening ----------------------------------------------------------------------------


def recorded_recipe(store: str | os.PathLike) -> str | None:
    """The digest of the work that wrote ``store`` (its ``synful`` mark's ``recipe``), if any;
    read from the group's ``zarr.json`` without opening the store."""
    try:
        attributes = json.loads((Path(store) / "zarr.json").read_text()).get("attributes", {})
    except (OSError, ValueError):
        return None
    recorded = attributes.get(MARK_KEY)
    return recorded.get(RECIPE_KEY) if isinstance(recorded, dict) else None


@dataclasses.dataclass
class Predictions:
    """The two arrays of a prediction store.

    Args:
        post_indicator: postsynaptic probability (z, y, x); ``stored / scale`` when scaled.
        partner_vectors: vectors (3, z, y, x), nm, from the post voxel to its partner.
    """

    post_indicator: Array
    partner_vectors: Array


def _check_scale(array: Array) -> None:
    value = array.attrs.get("scale")
    if value is None:
        if array.dtype.kind != "f":
            raise SynfulError(array_path(array), f"{array.dtype} array without a scale attribute")
        return
    try:
        ok = float(value) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise SynfulError(
            array_path(array), f"scale attribute must be a positive number, got {value!r}"
        )


def _open_post_indicator(store: Path) -> Array:
    mask = open_volume(store, POST_INDICATOR)
    if mask.channel_dims != 0:
        raise SynfulError(array_path(mask), f"expected 3 axes (z, y, x), got shape {mask.shape}")
    return mask


def _open_partner_vectors(store: Path) -> Array:
    vectors = open_volume(store, PARTNER_VECTORS)
    if vectors.channel_dims != 1 or vectors.shape[0] != 3:
        raise SynfulError(array_path(vectors), f"expected shape (3, z, y, x), got {vectors.shape}")
    return vectors


def _check_vector_store(vectors_store: Path, vectors: Array, mask: Array, store: Path) -> None:
    """A separate vector store: same voxel size, same grid, covering the post_indicator ROI."""
    if vectors.voxel_size != mask.voxel_size:
        raise SynfulError(
            vectors_store,
            f"{PARTNER_VECTORS} voxel size {list(vectors.voxel_size)} differs from the "
            f"{POST_INDICATOR} voxel size {list(mask.voxel_size)} of {store}",
        )
    shift = vectors.roi.begin - mask.roi.begin
    if any(int(s) % int(v) for s, v in zip(shift, mask.voxel_size)):
        raise SynfulError(
            vectors_store,
            f"{PARTNER_VECTORS} offset {list(vectors.roi.begin)} is not on the voxel grid of "
            f"{store}'s {POST_INDICATOR} (offset {list(mask.roi.begin)}, voxel size "
            f"{list(mask.voxel_size)})",
        )
    if not vectors.roi.contains(mask.roi):
        raise SynfulError(
            vectors_store,
            f"{PARTNER_VECTORS} ROI {_roi_text(vectors.roi)} does not cover the "
            f"{POST_INDICATOR} ROI {_roi_text(mask.roi)} of {store}",
        )


def _roi_text(roi) -> str:
    return f"[{list(roi.begin)}, {list(roi.end)}) nm"


def open_predictions(
    store: str | os.PathLike, vectors_store: str | os.PathLike | None = None
) -> Predictions:
    """Open a prediction store and check its arrays agree.

    Args:
        store: the prediction store; it holds ``post_indicator`` and, unless
            ``vectors_store`` is given, ``partner_vectors``.
        vectors_store: another prediction store to take ``partner_vectors`` from (e.g.
            written by a vector-only network); it must have the same voxel size and grid
            and cover ``post_indicator``'s ROI. Any other array in either store is ignored.

    Raises:
        SynfulError: no such store, a missing array, wrong shapes, different voxel sizes or
            grids, a vector store not covering the post_indicator ROI, or an invalid
            ``scale``.
    """
    store = Path(store)
    if not store.exists():
        raise SynfulError(store, "no such prediction store")
    if vectors_store is None:
        missing = [n for n in HEADS if not has_array(store, n)]
        if missing:
            raise SynfulError(
                store, f"not a prediction store: missing array {' and '.join(missing)}"
            )
        mask = _open_post_indicator(store)
        vectors = _open_partner_vectors(store)
        if vectors.voxel_size != mask.voxel_size:
            raise SynfulError(
                array_path(vectors),
                f"voxel size {list(vectors.voxel_size)} differs from {POST_INDICATOR}'s "
                f"{list(mask.voxel_size)}",
            )
    else:
        vectors_store = Path(vectors_store)
        if not has_array(store, POST_INDICATOR):
            raise SynfulError(store, f"not a prediction store: missing array {POST_INDICATOR}")
        if not vectors_store.exists():
            raise SynfulError(vectors_store, "no such vector prediction store")
        if not has_array(vectors_store, PARTNER_VECTORS):
            raise SynfulError(
                vectors_store, f"not a vector prediction store: missing array {PARTNER_VECTORS}"
            )
        mask = _open_post_indicator(store)
        vectors = _open_partner_vectors(vectors_store)
        _check_vector_store(vectors_store, vectors, mask, store)
    _check_scale(mask)
    _check_scale(vectors)
    return Predictions(mask, vectors)
