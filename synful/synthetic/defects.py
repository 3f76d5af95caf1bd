"""Imaging defects of serial-section EM, applied to the raw only (labels stay clean)."""

from __future__ import annotations

import numpy as np


def _pick_sections(rng: np.random.Generator, sections: int, fraction: float) -> np.ndarray:
    count = int(round(fraction * sections))
    return np.sort(rng.choice(sections, size=min(count, sections), replace=False))


def misalign_sections(
    rng: np.random.Generator, raw: np.ndarray, fraction: float, max_shift: int = 16
) -> np.ndarray:
    """Shift a ``fraction`` of the sections in-plane by a random 4..``max_shift`` voxels.

    The strip uncovered by the shift repeats the section's edge. Returns the chosen sections.

    Args:
        rng: the random generator.
        raw: (z, y, x) raw, modified in place.
        fraction: fraction of sections to shift, 0..1.
        max_shift: largest shift per axis in voxels.
    """
    chosen = _pick_sections(rng, raw.shape[0], fraction)
    for z in chosen:
        raw[z] = shift_section(raw[z], rng.integers(4, max_shift + 1, 2) * rng.choice([-1, 1], 2))
    return chosen


def shift_section(section: np.ndarray, shift) -> np.ndarray:
    """A (y, x) section moved by ``shift`` whole voxels (y, x); the uncovered strip repeats the
    section's edge. Also the training augmentation's raw-only misalignment."""
    pad = [(max(int(s), 0), max(-int(s), 0)) for s in shift]
    padded = np.pad(section, pad, mode="edge")
    begin = [p[1] for p in pad]
    return padded[begin[0] : begin[0] + section.shape[0], begin[1] : begin[1] + section.shape[1]]


def blank_sections(rng: np.random.Generator, raw: np.ndarray, fraction: float) -> np.ndarray:
    """Set a ``fraction`` of the sections to black (missing sections). Returns them.

    Args:
        rng: the random generator.
        raw: (z, y, x) raw, modified in place.
        fraction: fraction of sections to blank, 0..1.
    """
    chosen = _pick_sections(rng, raw.shape[0], fraction)
    raw[chosen] = 0
    return chosen
