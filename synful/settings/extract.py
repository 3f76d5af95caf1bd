"""The extraction settings, defined once: :class:`ExtractConfig` (what is extracted; part of the
work's identity) and :class:`ExtractRun` (how the blocks run). ``synful extract``'s options,
:func:`synful.extract.extract_synapses`' keywords and the defaults of the workflow's ``extract:``
section (``config/schema.yaml``, checked by ``tests/test_settings_defaults.py``) come from here.

Imports no stage (no numpy, scipy): the command line builds its options from this module.
"""

# no ``from __future__ import annotations``: the fields' types are read at run time
import dataclasses
import math

from ..geometry import Coordinate
from .fields import check_fields, setting

MODES = ("cc", "nms", "split")
#: component scores of :func:`synful.extract.components.cc_candidates`
SCORES = ("sum", "mean", "max", "count")
#: component location rules of :mod:`synful.extract.components`
LOCATIONS = ("interior", "master")
#: the NMS map beyond the volume's faces (:mod:`synful.extract.nms`)
BORDERS = ("constant", "reflect")
#: split mode's levels (:mod:`synful.extract.split`)
SPLIT_LEVELS = (0.6, 0.7, 0.8, 0.9, 0.95)


@dataclasses.dataclass(frozen=True)
class ExtractConfig:
    """How synapses are extracted from a prediction store (validated; one line per field).

    Postsynaptic points come from connected components of probability > ``threshold``
    (``cc``), the same split where components break apart at higher ``split_levels``
    (``split``, :mod:`synful.extract.split`) or local maxima within ``nms_radius`` (``nms``);
    the presynaptic partner is the post point plus the predicted vector there. Components and
    NMS footprints that fit in ``context`` give block-independent results.
    """

    mode: str = setting("cc", "candidate detection", choices=MODES)
    threshold: float = setting(
        0.5,
        "probability threshold in [0, 1] (strict): the component threshold in cc and split "
        "mode, the minimum maximum in nms mode",
        minimum=0.0, maximum=1.0, metavar="T",
    )  # fmt: skip
    score: str = setting(
        "sum", "cc/split mode: score of a component (nms scores by the maximum)", choices=SCORES
    )
    cc_location: str = setting(
        "interior",
        "cc mode: where a component is located. interior (default): the voxel farthest from the "
        "component's outside, everything outside it counting as outside (the original's "
        "fanc_evaluation branch); master: the original master branch's rule (the paper's CREMI "
        "grid search), an EDT of the component's bounding box where only label transitions are "
        "boundaries and the box faces are not. split mode always uses interior. See "
        "docs/extraction.md",
        choices=LOCATIONS,
    )
    split_levels: tuple[float, ...] = setting(
        SPLIT_LEVELS,
        "split mode: levels above --threshold where components are tested for splitting",
        minimum=0.0, maximum=1.0, metavar="P",
    )  # fmt: skip
    min_piece_volume: float = setting(
        32000.0,
        "split mode: the smallest piece that counts (nm^3; 32000 = 50 voxels of 40x4x4)",
        above=0.0, metavar="NM3",
    )  # fmt: skip
    nms_radius: float = setting(40.0, "nms radius (nm)", above=0.0, metavar="NM")
    nms_border: str = setting(
        "constant",
        "nms mode: the map beyond the volume's faces: 0 (constant, default) or its reflection "
        "(reflect, scipy's default in the original); both give the same maxima, internal block "
        "borders are zero-padded either way (docs/extraction.md)",
        choices=BORDERS,
    )
    vector_radius: float = setting(
        0.0,
        "average the partner vector over the voxels above --threshold within this radius of "
        "the post voxel, weighted by probability (0: the post voxel alone, the original)",
        minimum=0.0, metavar="NM",
    )  # fmt: skip
    score_threshold: float = setting(0.0, "keep synapses with score > S", metavar="S")
    min_distance: float = setting(
        0.0, "drop synapses whose pre-post distance is below this (nm); 0 = off",
        minimum=0.0, metavar="NM",
    )  # fmt: skip
    context: float = setting(120.0, "margin read around each block (nm)", minimum=0.0, metavar="NM")
    drop_autapses: bool = setting(
        False, "with --seg: drop synapses whose pre and post segment ids are equal (non-zero)"
    )

    def __post_init__(self):
        check_fields(self)
        object.__setattr__(self, "split_levels", tuple(sorted(self.split_levels)))

    def context_for(self, voxel_size) -> Coordinate:
        """The context (nm) per axis, rounded up to whole voxels."""
        return Coordinate(math.ceil(self.context / v) * int(v) for v in voxel_size)

    def min_piece_voxels(self, voxel_size) -> int:
        """``min_piece_volume`` in voxels (rounded up, at least 1)."""
        return max(
            1, math.ceil(self.min_piece_volume / math.prod(float(v) for v in voxel_size) - 1e-9)
        )

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["split_levels"] = list(self.split_levels)
        return out


@dataclasses.dataclass(frozen=True)
class ExtractRun:
    """How an extraction's blocks are run (not part of its result, nor of its identity)."""

    block_shape: tuple[int, int, int] | None = setting(
        None, "block shape in voxels (default: the whole volume)", minimum=1,
        metavar=("Z", "Y", "X"),
    )  # fmt: skip
    workers: int = setting(1, "number of dask workers", minimum=1, metavar="N")
    scheduler: str | None = setting(
        None,
        "dask scheduler address (tcp://host:8786), or threads/processes/serial",
        metavar="ADDRESS",
    )

    def __post_init__(self):
        check_fields(self)
