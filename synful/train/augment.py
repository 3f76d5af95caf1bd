"""Augmentation: one random spatial transform per sample, applied to arrays and points alike.

Coordinates are voxel indices of the input window (sample ``i`` at coordinate ``i``). A
:class:`SpatialTransform` maps every *target* index ``t`` (the augmented window) to a *source*
index (where to read the original data):

    u = M(t)                                      mirror in y/x, transpose y <-> x
    s = c + R(u + D(u) - c) + S(round(u_z))       R: in-plane rotation about the window centre c,
                                                  D: elastic displacement from jittered control
                                                  points, S: per-section slips and shifts

``source_coordinates`` evaluates it on the whole window (vectorised: the elastic field is
computed on a subsampled grid and interpolated), ``to_target`` inverts it for points (the
inverse of D by fixed-point iteration), so points and their vectors follow the arrays exactly.
Intensity and defect augmentations act on the raw only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..synthetic.defects import shift_section
from .setup import DefectSettings, ElasticSettings, IntensitySettings, SimpleSettings


@dataclass
class SpatialTransform:
    """A sampled spatial transform of a window of ``shape`` voxels.

    Attributes:
        shape: (z, y, x) window shape in voxels.
        voxel_size: (z, y, x) nm (the rotation is done in nm).
        mirror: (y, x) flags.
        transpose: swap y and x.
        angle: in-plane rotation in radians.
        control_spacing: elastic control-point spacing (voxels, z y x).
        control_displacements: (3, nz, ny, nx) displacements (voxels) at the control points,
            or ``None`` for no elastic jitter.
        section_shifts: (z, 2) in-plane shift (voxels) of every section.
        subsample: the step of the grid on which the elastic field is evaluated.
    """

    shape: tuple[int, int, int]
    voxel_size: tuple[float, float, float]
    mirror: tuple[bool, bool] = (False, False)
    transpose: bool = False
    angle: float = 0.0
    control_spacing: tuple[int, int, int] = (1, 1, 1)
    control_displacements: np.ndarray | None = None
    section_shifts: np.ndarray | None = None
    subsample: int = 1

    # -- the pieces -------------------------------------------------------------------------

    def _mirror_transpose(self, points: np.ndarray, inverse: bool = False) -> np.ndarray:
        """M (or its inverse) on (..., 3) coordinates."""
        out = np.array(points, dtype=np.float64, copy=True)
        size_y, size_x = self.shape[1] - 1, self.shape[2] - 1
        if not inverse:
            if self.transpose:
                out[..., [1, 2]] = out[..., [2, 1]]
            if self.mirror[0]:
                out[..., 1] = size_y - out[..., 1]
            if self.mirror[1]:
                out[..., 2] = size_x - out[..., 2]
        else:
            if self.mirror[1]:
                out[..., 2] = size_x - out[..., 2]
            if self.mirror[0]:
                out[..., 1] = size_y - out[..., 1]
            if self.transpose:
                out[..., [1, 2]] = out[..., [2, 1]]
        return out

    def _centre(self) -> np.ndarray:
        return (np.asarray(self.shape, dtype=np.float64) - 1) / 2

    def _rotate(self, points: np.ndarray, angle: float, axis: int = -1) -> np.ndarray:
        """In-plane rotation about the window centre, in nm (anisotropy-safe), of the (z, y, x)
        coordinates stored along ``axis`` of ``points``; z is copied unchanged."""
        if angle == 0.0:
            return points
        t = points.dtype.type
        _, cy, cx = (t(c) for c in self._centre())
        _, vy, vx = (t(v) for v in self.voxel_size)
        cos, sin = t(np.cos(angle)), t(np.sin(angle))
        coords = np.moveaxis(points, axis, 0)
        dy, dx = (coords[1] - cy) * vy, (coords[2] - cx) * vx
        rotated = np.empty_like(points)
        out = np.moveaxis(rotated, axis, 0)
        out[0] = coords[0]
        out[1] = (cos * dy - sin * dx) / vy + cy
        out[2] = (sin * dy + cos * dx) / vx + cx
        return rotated

    def _steps(self) -> list[int]:
        return [max(1, min(self.subsample, int(s))) for s in self.control_spacing]

    def _coarse_field(self) -> np.ndarray:
        """D on a grid subsampled by ``subsample`` (cubic interpolation of the control points)."""
        if getattr(self, "_coarse", None) is None:
            axes = [
                np.arange(int(np.ceil((n - 1) / step)) + 2, dtype=np.float64) * step
                for n, step in zip(self.shape, self._steps())
            ]
            grid = [a / s for a, s in zip(np.meshgrid(*axes, indexing="ij"), self.control_spacing)]
            self._coarse = np.stack(
                [
                    ndimage.map_coordinates(d, grid, order=3, mode="nearest")
                    for d in self.control_displacements
                ]
            )
        return self._coarse

    def _displacement(self, points: np.ndarray) -> np.ndarray:
        """D at arbitrary (N, 3) positions: linear interpolation of the subsampled field.

        The window's field (``_elastic_field``) is interpolated the same way, so points and
        arrays move together exactly.
        """
        if self.control_displacements is None:
            return np.zeros_like(points)
        coarse = self._coarse_field()
        grid = (points / np.asarray(self._steps(), dtype=np.float64)).T
        return np.stack(
            [ndimage.map_coordinates(c, grid, order=1, mode="nearest") for c in coarse], axis=-1
        )

    def _shift(self, z: np.ndarray) -> np.ndarray:
        """S: the (N, 3) in-plane shift of the sections ``round(z)`` (clamped to the window)."""
        out = np.zeros((len(z), 3))
        if self.section_shifts is not None:
            index = np.clip(np.rint(z).astype(np.int64), 0, self.shape[0] - 1)
            out[:, 1:] = self.section_shifts[index]
        return out

    # -- the whole transform ----------------------------------------------------------------

    @property
    def is_identity(self) -> bool:
        return (
            not any(self.mirror)
            and not self.transpose
            and self.angle == 0.0
            and self.control_displacements is None
            and (self.section_shifts is None or not np.any(self.section_shifts))
        )

    def _elastic_field(self) -> np.ndarray:
        """D on every window voxel, float32 (3, z, y, x): the subsampled field, linearly
        interpolated axis by axis (the same values as ``_displacement`` gives for single
        points). Components without jitter (e.g. z with ``jitter_sigma`` 0) stay zero."""
        coarse = self._coarse_field()
        field = np.zeros((3, *self.shape), dtype=np.float32)
        for c in range(3):
            if not np.any(self.control_displacements[c]):
                continue
            values = coarse[c].astype(np.float32)
            for axis, (n, step) in enumerate(zip(self.shape, self._steps())):
                values = _interpolate_axis(values, axis, n, step)
            field[c] = values
        return field

    def source_coordinates(self) -> np.ndarray:
        """Source index of every target voxel: float32 (3, z, y, x)."""
        field = np.empty((3, *self.shape), dtype=np.float32)
        for axis, n in enumerate(self.shape):
            shape = [1, 1, 1]
            shape[axis] = n
            field[axis] = np.arange(n, dtype=np.float32).reshape(shape)
        if self.control_displacements is not None:
            field += self._elastic_field()
        field = self._rotate(field, self.angle, axis=0)
        if self.section_shifts is not None:
            field[1:] += self.section_shifts.T.astype(np.float32)[:, :, None, None]
        # M acts on the target grid: reorder the field instead of transforming coordinates
        # field[t] = field_u[M(t)]; M applies transpose, mirror y, mirror x in this order, so
        # the array reorderings come in the reverse order
        if self.mirror[1]:
            field = field[:, :, :, ::-1]
        if self.mirror[0]:
            field = field[:, :, ::-1, :]
        if self.transpose:
            field = field.transpose(0, 1, 3, 2)
        return np.ascontiguousarray(field, dtype=np.float32)

    def to_source(self, targets) -> np.ndarray:
        """The transform on (N, 3) target indices (the same map as ``source_coordinates``)."""
        u = self._mirror_transpose(np.asarray(targets, dtype=np.float64).reshape(-1, 3))
        return self._rotate(u + self._displacement(u), self.angle) + self._shift(u[:, 0])

    def to_target(self, sources, iterations: int = 30) -> np.ndarray:
        """The inverse on (N, 3) source indices: where the points end up in the target window."""
        sources = np.asarray(sources, dtype=np.float64).reshape(-1, 3)
        if len(sources) == 0:
            return sources.copy()
        u = self._rotate(sources, -self.angle)
        for _ in range(
            iterations
            if self.control_displacements is not None or self.section_shifts is not None
            else 1
        ):
            shifted = self._rotate(sources - self._shift(u[:, 0]), -self.angle)
            u_next = shifted - self._displacement(u)
            converged = np.max(np.abs(u_next - u)) < 1e-6
            u = u_next
            if converged:
                break
        return self._mirror_transpose(u, inverse=True)


def _interpolate_axis(values: np.ndarray, axis: int, n: int, step: int) -> np.ndarray:
    """Linear interpolation of ``values`` along ``axis`` at the ``n`` fine positions
    ``i / step`` (clamped to the last coarse sample, as ``map_coordinates`` mode "nearest")."""
    coarse = values.shape[axis]
    position = np.arange(n, dtype=np.float64) / step
    lower = np.minimum(np.floor(position).astype(np.int64), coarse - 1)
    upper = np.minimum(lower + 1, coarse - 1)
    shape = [1] * values.ndim
    shape[axis] = n
    frac = (position - lower).astype(values.dtype).reshape(shape)
    low = np.take(values, lower, axis=axis)
    return low + (np.take(values, upper, axis=axis) - low) * frac


def sample_transform(
    rng: np.random.Generator,
    shape: Sequence[int],
    voxel_size: Sequence[float],
    elastic: ElasticSettings,
    simple: SimpleSettings,
) -> SpatialTransform:
    """Draw a random :class:`SpatialTransform` for a window of ``shape`` voxels."""
    shape = tuple(int(s) for s in shape)
    mirror = (
        bool(simple.mirror and rng.random() < 0.5),
        bool(simple.mirror and rng.random() < 0.5),
    )
    transpose = bool(
        simple.transpose
        and shape[1] == shape[2]
        and voxel_size[1] == voxel_size[2]
        and rng.random() < 0.5
    )
    transform = SpatialTransform(
        shape=shape,
        voxel_size=tuple(float(v) for v in voxel_size),
        mirror=mirror,
        transpose=transpose,
    )
    if not elastic.enabled:
        return transform
    low, high = elastic.rotation_interval
    transform.angle = float(rng.uniform(low, high)) if high > low else float(low)
    spacing = tuple(int(s) for s in elastic.control_point_spacing)
    sigma = np.asarray(elastic.jitter_sigma, dtype=np.float64)
    if np.any(sigma > 0):
        counts = [int(np.ceil((n - 1) / s)) + 2 for n, s in zip(shape, spacing)]
        transform.control_spacing = spacing
        transform.control_displacements = rng.normal(size=(3, *counts)) * sigma[:, None, None, None]
        transform.subsample = int(elastic.subsample)
    # as gunpowder's ElasticAugment: whole-voxel offsets in [-max_misalign, max_misalign]; a
    # shift moves its section and all after it, a slip sets its one section's shift to its own
    # offset (replacing the shifts of the sections before it)
    shifts = np.zeros((shape[0], 2))
    running = np.zeros(2)
    limit = int(elastic.max_misalign)
    for z in range(shape[0]):
        r = rng.random()
        if r < elastic.prob_slip:
            shifts[z] = rng.integers(-limit, limit + 1, 2)
            continue
        if r < elastic.prob_slip + elastic.prob_shift:
            running = running + rng.integers(-limit, limit + 1, 2)
        shifts[z] = running
    if np.any(shifts):
        transform.section_shifts = shifts
    return transform


def augment_intensity(
    rng: np.random.Generator, raw: np.ndarray, settings: IntensitySettings
) -> np.ndarray:
    """Per section: a' = mean + (a - mean) * scale + shift, clipped to [0, 1] (raw in [0, 1])."""
    if not settings.enabled:
        return raw
    n = raw.shape[0]
    scale = rng.uniform(*settings.scale, size=n).astype(np.float32)[:, None, None]
    shift = rng.uniform(*settings.shift, size=n).astype(np.float32)[:, None, None]
    mean = raw.mean(axis=(1, 2), keepdims=True)
    return np.clip(mean + (raw - mean) * scale + shift, 0.0, 1.0).astype(np.float32)


def augment_defects(
    rng: np.random.Generator, raw: np.ndarray, settings: DefectSettings
) -> np.ndarray:
    """Section defects of the raw only (the labels and synapses stay where they are), each with
    its probability per section: missing (black), low contrast, misaligned (moved in-plane by
    whole voxels, up to ``max_misaligned`` per axis, as ``synful synthesize
    --misaligned-sections`` makes them)."""
    probabilities = np.cumsum(
        [settings.prob_missing, settings.prob_low_contrast, settings.prob_misaligned]
    )
    if probabilities[-1] <= 0:
        return raw
    raw = raw.copy()
    limit = int(settings.max_misaligned)
    for z in range(raw.shape[0]):
        r = rng.random()
        if r < probabilities[0]:
            raw[z] = 0.0
        elif r < probabilities[1]:
            mean = raw[z].mean()
            raw[z] = mean + (raw[z] - mean) * settings.contrast_scale
        elif r < probabilities[2]:
            raw[z] = shift_section(raw[z], rng.integers(-limit, limit + 1, 2))
    return raw
