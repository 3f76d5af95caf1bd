"""The validated extraction settings, shared by the block function, the driver and the CLI."""

from __future__ import annotations

import dataclasses
import math

from ..errors import SynfulError
from ..geometry import Coordinate
from .components import SCORES

MODES = ("cc", "nms")


@dataclasses.dataclass(frozen=True)
class ExtractConfig:
    """How synapses are extracted from a prediction store.

    Args:
        mode: ``cc`` (connected components, most interior voxel) or ``nms`` (local maxima).
        threshold: probability threshold in [0, 1] (strict): the component threshold in
            ``cc`` mode, the minimum maximum in ``nms`` mode.
        score: ``cc`` mode score of a component: ``sum``, ``mean``, ``max`` or ``count``
            (``nms`` always scores by the maximum probability).
        nms_radius: ``nms`` radius (nm).
        score_threshold: keep synapses with score > this.
        min_distance: drop synapses whose pre-post distance is below this (nm); 0 = off.
        context: margin (nm) read around each block; components and NMS footprints that fit
            in it give block-independent results.
        drop_autapses: with segment ids, drop synapses whose pre and post ids are equal and
            non-zero.
    """

    mode: str = "cc"
    threshold: float = 0.5
    score: str = "sum"
    nms_radius: float = 40.0
    score_threshold: float = 0.0
    min_distance: float = 0.0
    context: float = 120.0
    drop_autapses: bool = False

    def __post_init__(self):
        if self.mode not in MODES:
            raise SynfulError("--mode", f"unknown mode {self.mode!r}, expected one of {MODES}")
        if self.score not in SCORES:
            raise SynfulError("--score", f"unknown score {self.score!r}, expected one of {SCORES}")
        for name in ("threshold", "nms_radius", "score_threshold", "min_distance", "context"):
            value = getattr(self, name)
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise SynfulError(
                    f"--{name.replace('_', '-')}", f"not a number: {value!r}"
                ) from None
            if not math.isfinite(value):
                raise SynfulError(f"--{name.replace('_', '-')}", f"must be finite, got {value}")
            object.__setattr__(self, name, value)
        if not 0.0 <= self.threshold <= 1.0:
            raise SynfulError("--threshold", f"must lie in [0, 1], got {self.threshold:g}")
        if self.nms_radius <= 0:
            raise SynfulError("--nms-radius", f"must be positive, got {self.nms_radius:g}")
        if self.min_distance < 0:
            raise SynfulError("--min-distance", f"must be >= 0, got {self.min_distance:g}")
        if self.context < 0:
            raise SynfulError("--context", f"must be >= 0, got {self.context:g}")
        object.__setattr__(self, "drop_autapses", bool(self.drop_autapses))

    def context_for(self, voxel_size) -> Coordinate:
        """The context (nm) per axis, rounded up to whole voxels."""
        return Coordinate(math.ceil(self.context / v) * int(v) for v in voxel_size)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
