"""Open and check a prediction store: ``post_indicator`` (z, y, x), ``partner_vectors`` (3, z, y, x)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from ..errors import SynfulError
from ..io.sample_store import has_array, open_neuron_ids, open_volume
from ..io.zarr_array import Volume

POST_INDICATOR = "post_indicator"
PARTNER_VECTORS = "partner_vectors"


@dataclasses.dataclass
class Predictions:
    """The two arrays of a prediction store.

    Args:
        post_indicator: postsynaptic probability (z, y, x); ``stored / scale`` when scaled.
        partner_vectors: vectors (3, z, y, x), nm, from the post voxel to its partner.
    """

    post_indicator: Volume
    partner_vectors: Volume


def _check_scale(volume: Volume) -> None:
    scale = volume.attrs.get("scale")
    if scale is None:
        if volume.dtype.kind != "f":
            raise SynfulError(volume.name, f"{volume.dtype} array without a scale attribute")
        return
    try:
        ok = float(scale) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise SynfulError(volume.name, f"scale attribute must be a positive number, got {scale!r}")


def _open_post_indicator(store: Path) -> Volume:
    mask = open_volume(store, POST_INDICATOR)
    if mask.channels != 0:
        raise SynfulError(mask.name, f"expected 3 axes (z, y, x), got shape {mask.array.shape}")
    return mask


def _open_partner_vectors(store: Path) -> Volume:
    vectors = open_volume(store, PARTNER_VECTORS)
    if vectors.channels != 1 or vectors.array.shape[0] != 3:
        raise SynfulError(vectors.name, f"expected shape (3, z, y, x), got {vectors.array.shape}")
    return vectors


def _check_vector_store(vectors_store: Path, vectors: Volume, mask: Volume, store: Path) -> None:
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
        missing = [n for n in (POST_INDICATOR, PARTNER_VECTORS) if not has_array(store, n)]
        if missing:
            raise SynfulError(
                store, f"not a prediction store: missing array {' and '.join(missing)}"
            )
        mask = _open_post_indicator(store)
        vectors = _open_partner_vectors(store)
        if vectors.voxel_size != mask.voxel_size:
            raise SynfulError(
                vectors.name,
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


def open_segmentation(store: str | os.PathLike, voxel_size) -> Volume:
    """The ``neuron_ids`` of a sample store, checked to have the predictions' voxel size."""
    seg = open_neuron_ids(store)
    if seg.channels != 0:
        raise SynfulError(seg.name, f"expected 3 axes (z, y, x), got shape {seg.array.shape}")
    if tuple(seg.voxel_size) != tuple(voxel_size):
        raise SynfulError(
            store,
            f"neuron_ids voxel size {list(seg.voxel_size)} differs from the predictions' "
            f"{list(voxel_size)}",
        )
    return seg
