"""Ground-truth labels at points, with the CREMI evaluator's rounding rule.

The official CREMI evaluator (``cremi/Volume.py``) looks a location up at voxel index
``round(location / resolution)`` per axis, where ``location`` is relative to the volume's
offset and ``round`` is Python 2's: halves go away from zero (the rule ``"cremi"`` of
:mod:`synful.lookup`). A negative index or one past the end raised an error there; here such
a point gets label 0 and a warning.
"""

from __future__ import annotations

import logging

import numpy as np

from ..io.zarr_array import Array
from ..lookup import values_at

log = logging.getLogger(__name__)

OUTSIDE_LABEL = 0


def labels_at_points(segmentation: Array, points, what: str = "points") -> np.ndarray:
    """Ground-truth labels (uint64) at world points by the CREMI rounding rule.

    Points outside the segmentation get label 0 and a logged warning (the reference evaluator
    raised an error instead).

    Args:
        segmentation: the ``neuron_ids`` :class:`~funlib.persistence.Array` (over numpy, an
            h5py dataset or a zarr array; wrap numpy with
            :func:`synful.io.zarr_array.world_array`).
        points: N x 3 world positions (nm).
        what: a name for the points, used in the warning.
    """
    values, inside = values_at(
        segmentation,
        points,
        "cremi",
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
