"""Missing sections of serial-section EM: find them in a block of raw and fill them in.

A missing section is one whose raw is black (every voxel 0), the convention of the imaging
pipelines and of the training augmentation (``defect.prob_missing``). A network that never
saw one reads it as a slab of membrane and predicts synapses along it; filled with the
interpolation of its nearest present neighbours it reads as ordinary tissue, and the 3D
context of the sections around it stays usable.
"""

from __future__ import annotations

import numpy as np


def missing_sections(raw: np.ndarray, present: slice = slice(None)) -> np.ndarray:
    """Which sections (z) of a (z, y, x) block are missing: black, and inside ``present``.

    Args:
        raw: the block, z first.
        present: the sections that hold raw data (the rest lies outside the volume and is not
            a missing section, only padding).

    Returns:
        A boolean array with one entry per section.
    """
    black = ~raw.reshape(raw.shape[0], -1).any(axis=1)
    inside = np.zeros(raw.shape[0], bool)
    inside[present] = True
    return black & inside


def fill_missing_sections(raw: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """``raw`` with each missing section replaced by the linear interpolation (in z) of the
    nearest sections before and after it that are not missing; a copy of the one neighbour
    where the other side has none. Sections outside the volume count as absent neighbours
    only when they are themselves black, so pass ``missing`` from :func:`missing_sections`.

    Returns ``raw`` itself when nothing is missing or no section is left to fill from.
    """
    missing = np.asarray(missing, bool)
    kept = np.flatnonzero(~missing & raw.reshape(raw.shape[0], -1).any(axis=1))
    if not missing.any() or kept.size == 0:
        return raw
    filled = raw.copy()
    for z in np.flatnonzero(missing):
        after = np.searchsorted(kept, z)
        below = kept[after - 1] if after > 0 else None
        above = kept[after] if after < kept.size else None
        if below is None or above is None:
            filled[z] = raw[above if below is None else below]
            continue
        weight = (z - below) / (above - below)
        mix = (1 - weight) * raw[below].astype(np.float32) + weight * raw[above]
        filled[z] = np.rint(mix).astype(raw.dtype)
    return filled
