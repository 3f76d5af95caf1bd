"""Ground-truth labels at points, with the CREMI evaluator's rounding rule.

The official CREMI evaluator (``cremi/Volume.py``) looks a location up at voxel index
``round(location / resolution)`` per axis, where ``location`` is relative to the volume's
offset and ``round`` is Python 2's: halves go away from zero (the rule ``"cremi"`` of
:mod:`synful.lookup`). A negative index or one past the end raised an error there; here such
a point gets label 0 and a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from ..lookup import values_at

log = logging.getLogger(__name__)

OUTSIDE_LABEL = 0


def labels_at_points(
    segmentation, points, offset: Sequence[float], voxel_size: Sequence[float], what: str = "points"
) -> np.ndarray:
    """Ground-truth labels (uint64) at world points by the CREMI rounding rule.

    Points outside the segmentation get label 0 and a logged warning (the reference evaluator
    raised an error instead).

    Args:
        segmentation: the ``neuron_ids`` array (numpy, h5py dataset or zarr array).
        points: N x 3 world positions (nm).
        offset: world offset (nm) of ``segmentation``.
        voxel_size: voxel size (nm) of ``segmentation``.
        what: a name for the points, used in the warning.
    """
    values, inside = values_at(
        segmentation,
        points,
        "cremi",
        offset=offset,
        voxel_size=voxel_size,
        outside="fill",
        fill=OUTSIDE_LABEL,
        return_inside=True,
    )
    outside = int((~inside).sum())
    if outside:
        log.warning(
            "%d of %d %s lie outside the ground-truth segmentation; they get label %d",
            outside,
            len(inside),
            what,
            OUTSIDE_LABEL,
        )
    return values.astype(np.uint64)
