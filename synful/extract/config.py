"""The validated extraction settings, shared by the block function, the driver and the CLI."""

from __future__ import annotations

import dataclasses
import math

from ..errors import SynfulError
from ..geometry import Coordinate
from .components import LOCATIONS, SCORES
from .nms import BORDERS
from .split import SPLIT_LEVELS

MODES = ("cc", "nms", "split")


@dataclasses.dataclass(frozen=True)
class ExtractConfig:
    """How synapses are extracted from a prediction store.

    Args:
        mode: ``cc`` (connected components, most interior voxel), ``nms`` (local maxima) or
            ``split`` (components split where they break apart at higher levels,
            ``synful/extract/split.py``).
        threshold: probability threshold in [0, 1] (strict): the component threshold in
            ``cc`` and ``split`` mode, the minimum maximum in ``nms`` mode.
        score: ``cc``/``split`` mode score of a component: ``sum``, ``mean``, ``max`` or
            ``count`` (``nms`` always scores by the maximum probability).
        split_levels: ``split`` mode: the levels (above ``threshold``) where components are
            tested for splitting.
        min_piece_volume: ``split`` mode: the smallest piece that counts (nm^3).
        vector_radius: read the partner vector as the probability-weighted mean of the pre
            locations voted by the voxels above ``threshold`` within this radius (nm) of the
            post voxel; 0 = the vector at the post voxel alone (the original).
        nms_radius: ``nms`` radius (nm).
        score_threshold: keep synapses with score > this.
        min_distance: drop synapses whose pre-post distance is below this (nm); 0 = off.
        context: margin (nm) read around each block; components and NMS footprints that fit
            in it give block-independent results.
        drop_autapses: with segment ids, drop synapses whose pre and post ids are equal and
            non-zero.
        cc_location: ``cc`` mode: where a component is located (``synful/extract/components.py``):
            ``interior`` (default; the fanc_evaluation branch's EDT, where everything outside
            the component is outside) or ``master`` (the original master branch's EDT of the
            bounding-box crop, where only label transitions are boundaries). ``split`` mode
            always uses ``interior``.
        nms_border: ``nms`` mode: what the maximum filter sees beyond the volume's faces:
            ``constant`` (0, default) or ``reflect`` (the original's scipy default). Both give
            the same maxima on any map (``synful/extract/nms.py``); internal block borders are
            zero-padded either way.
    """

    mode: str = "cc"
    threshold: float = 0.5
    score: str = "sum"
    nms_radius: float = 40.0
    score_threshold: float = 0.0
    min_distance: float = 0.0
    context: float = 120.0
    drop_autapses: bool = False
    split_levels: tuple = SPLIT_LEVELS
    min_piece_volume: float = 32000.0
    vector_radius: float = 0.0
    cc_location: str = "interior"
    nms_border: str = "constant"

    def __post_init__(self):
        if self.mode not in MODES:
            raise SynfulError("--mode", f"unknown mode {self.mode!r}, expected one of {MODES}")
        if self.score not in SCORES:
            raise SynfulError("--score", f"unknown score {self.score!r}, expected one of {SCORES}")
        if self.cc_location not in LOCATIONS:
            raise SynfulError(
                "--cc-location", f"unknown rule {self.cc_location!r}, expected one of {LOCATIONS}"
            )
        if self.nms_border not in BORDERS:
            raise SynfulError(
                "--nms-border", f"unknown mode {self.nms_border!r}, expected one of {BORDERS}"
            )
        for name in ("threshold", "nms_radius", "score_threshold", "min_distance", "context", "min_piece_volume", "vector_radius"):
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
        if self.vector_radius < 0:
            raise SynfulError("--vector-radius", f"must be >= 0, got {self.vector_radius:g}")
        if self.min_piece_volume <= 0:
            raise SynfulError("--min-piece-volume", f"must be positive, got {self.min_piece_volume:g}")
        try:
            levels = tuple(sorted(float(level) for level in self.split_levels))
        except (TypeError, ValueError):
            raise SynfulError("--split-levels", f"not a list of numbers: {self.split_levels!r}") from None
        if not levels or not all(0.0 <= level <= 1.0 for level in levels):
            raise SynfulError("--split-levels", f"must be numbers in [0, 1], got {list(self.split_levels)}")
        object.__setattr__(self, "split_levels", levels)
        object.__setattr__(self, "drop_autapses", bool(self.drop_autapses))

    def context_for(self, voxel_size) -> Coordinate:
        """The context (nm) per axis, rounded up to whole voxels."""
        return Coordinate(math.ceil(self.context / v) * int(v) for v in voxel_size)

    def min_piece_voxels(self, voxel_size) -> int:
        """``min_piece_volume`` in voxels (rounded up, at least 1)."""
        return max(1, math.ceil(self.min_piece_volume / math.prod(float(v) for v in voxel_size) - 1e-9))

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["split_levels"] = list(self.split_levels)
        return out
