"""Ground-truth labels at points, with the CREMI evaluator's rounding rule.

The official CREMI evaluator (``cremi/Volume.py``) looks a location up at voxel index
``round(location / resolution)`` per axis, where ``location`` is relative to the volume's
offset and ``round`` is Python 2's: halves go away from zero (the rule ``"cremi"`` of
:mod:`synful.lookup`). A negative index or one past the end raised an error there, so a
submission had to keep its points inside the labelled volume; here such a point gets the
label of the volume's voxel nearest to it (the index clipped into the volume) and a warning.
That matters for partner vectors near the labelled cube's faces: CREMI-style samples have raw
beyond the labels, a predicted presynaptic point can land a voxel past the face next to a true
one inside, and label 0 there would count a found synapse as an error. The matching distance
still applies to such a point as to any other.
"""

from __future__ import annotations

import logging

import numpy as np

from ..io.zarr_array import Array
from ..lookup import values_at

log = logging.getLogger(__name__)

#: the ground truth's "no neuron" label
BACKGROUND_LABEL = 0


def labels_at_points(segmentation: Array, points, what: str = "points") -> np.ndarray:
    """Ground-truth labels (uint64) at world points by the CREMI rounding rule.

    Points outside the segmentation get the label of its nearest voxel and a logged warning
    (the reference evaluator raised an error instead).

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
        outside="nearest",
        return_inside=True,
    )
    outside = int((~inside).sum())
    if outside:
        log.warning(
            "%d of %d %s lie outside the ground-truth segmentation; they get the label of its "
            "nearest voxel",
            outside,
            len(inside),
            what,
        )
    return values.astype(np.uint64)
