"""Test-time flips: the network run on mirrored and transposed copies of a block, averaged.

The training augmentation mirrors windows in y and x and swaps y and x
(:mod:`synful.train.augment`), so a network learns the eight in-plane symmetries of the
square only approximately: how it reads a faint or ambiguous synapse depends a little on its
orientation. Running it on ``flips`` of these variants of the same raw, mapping each output
back and averaging (the indicator's probabilities and the partner vectors in nm) evens that
out, at ``flips`` times the network's time. z is never mirrored (sections are not symmetric
under it in the training either).

Mirrors act on voxel samples as the training augmentation's do (sample ``i`` -> ``n - 1 -
i``), under which a partner vector changes sign along the mirrored axis; the transposition
swaps its y and x components. For a network whose output window is centred in its input
(every synful U-Net), each variant's output covers the same voxels as the plain one's.

Pure torch functions on (batch, channels, z, y, x) tensors; :func:`synful.predict.predict_raw`
uses them.
"""

from __future__ import annotations

from ..settings.predict import FLIP_COUNTS

#: (transpose y <-> x, mirror y, mirror x), in the order they are used: the first two are the
#: identity and the half turn; four add both diagonal mirrors; eight add the quarter turns and
#: the single-axis mirrors
VARIANTS = (
    (False, False, False),
    (False, True, True),
    (True, False, False),
    (True, True, True),
    (True, True, False),
    (True, False, True),
    (False, True, False),
    (False, False, True),
)


def variants(flips: int) -> tuple[tuple[bool, bool, bool], ...]:
    """The first ``flips`` (1, 2, 4 or 8) variants of :data:`VARIANTS`."""
    if flips not in FLIP_COUNTS:
        raise ValueError(f"flips must be one of {FLIP_COUNTS}, got {flips!r}")
    return VARIANTS[:flips]


def needs_square_voxels(flips: int) -> bool:
    """Whether ``flips`` variants swap y and x (only a symmetry where their voxel sizes match)."""
    return any(transpose for transpose, _, _ in variants(flips))


def _mirrored_dims(variant) -> list[int]:
    """The tensor dimensions (-2: y, -1: x) that ``variant`` mirrors."""
    _, mirror_y, mirror_x = variant
    return [dim for dim, mirrored in ((-2, mirror_y), (-1, mirror_x)) if mirrored]


def apply(tensor, variant):
    """``tensor`` (..., z, y, x) in the frame of ``variant``: transposed, then mirrored."""
    if variant[0]:
        tensor = tensor.transpose(-1, -2)
    dims = _mirrored_dims(variant)
    return tensor.flip(dims) if dims else tensor


def undo(tensor, variant):
    """An output ``tensor`` (..., z, y, x) of the frame of ``variant`` back in the raw's frame."""
    dims = _mirrored_dims(variant)
    if dims:
        tensor = tensor.flip(dims)
    return tensor.transpose(-1, -2) if variant[0] else tensor


def undo_vectors(vectors, variant):
    """Partner vectors (batch, 3, z, y, x; nm) of the frame of ``variant`` back in the raw's
    frame: the array as :func:`undo`, mirrored components negated, y and x swapped back."""
    transpose, mirror_y, mirror_x = variant
    signs = vectors.new_tensor([1.0, -1.0 if mirror_y else 1.0, -1.0 if mirror_x else 1.0])
    vectors = undo(vectors, variant) * signs.view(1, 3, 1, 1, 1)
    return vectors[:, [0, 2, 1]] if transpose else vectors
