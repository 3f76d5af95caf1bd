"""Drawing soft shapes into a (z, y, x) float "darkness" field, each clipped to the volume.

All shapes are drawn section by section: EM sections are 40 nm thick, so every structure is a
stack of in-plane shapes whose strength follows a per-section profile.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np


def window(
    shape: tuple[int, ...], centre, radius: int
) -> tuple[slice, slice, np.ndarray, np.ndarray]:
    """In-plane slices of a square window of ``radius`` around ``centre`` (y, x), clipped to
    ``shape`` (z, y, x), and the window's y and x coordinates (as column and row vectors)."""
    cy, cx = int(round(centre[0])), int(round(centre[1]))
    y0, y1 = max(cy - radius, 0), min(cy + radius + 1, shape[1])
    x0, x1 = max(cx - radius, 0), min(cx + radius + 1, shape[2])
    ys = np.arange(y0, y1, dtype=np.float32)[:, None]
    xs = np.arange(x0, x1, dtype=np.float32)[None, :]
    return slice(y0, y1), slice(x0, x1), ys, xs


def ellipse_radius(ys, xs, centre, semi_axes, direction) -> np.ndarray:
    """Normalised elliptic radius (1 on the outline) of in-plane positions.

    Args:
        ys, xs: broadcastable y and x coordinates.
        centre: (y, x) centre.
        semi_axes: (along ``direction``, across it) in voxels.
        direction: (y, x) unit vector of the first axis.
    """
    dy, dx = ys - centre[0], xs - centre[1]
    along = dy * direction[0] + dx * direction[1]
    across = -dy * direction[1] + dx * direction[0]
    return np.sqrt((along / semi_axes[0]) ** 2 + (across / semi_axes[1]) ** 2)


def draw_ellipse(
    field: np.ndarray,
    z: int,
    centre,
    semi_axes,
    direction,
    amplitude: float,
    z_profile: Mapping[int, float],
    owner: np.ndarray | None = None,
    owner_label: int | None = None,
    softness: float = 0.15,
) -> None:
    """Add a filled, soft-edged ellipse to ``field`` in the sections ``z + dz``.

    Args:
        field: (z, y, x) float32 field to add to, in place.
        z: the central section.
        centre: (y, x) centre in voxels.
        semi_axes: (along ``direction``, across) semi-axes in voxels.
        direction: (y, x) unit vector.
        amplitude: value added at the centre.
        z_profile: ``{dz: weight}`` strength per section offset.
        owner, owner_label: if given, draw only where ``owner == owner_label`` (a neuron).
        softness: width of the edge ramp, as a fraction of the radius.
    """
    radius = int(np.ceil(max(semi_axes) * (1 + 2 * softness))) + 1
    sy, sx, ys, xs = window(field.shape, centre, radius)
    r = ellipse_radius(ys, xs, centre, semi_axes, direction)
    shape = np.clip((1.0 + softness - r) / (2 * softness), 0.0, 1.0)
    for dz, weight in z_profile.items():
        zz = z + dz
        if 0 <= zz < field.shape[0] and weight > 0:
            values = amplitude * weight * shape
            if owner is not None:
                values = values * (owner[zz, sy, sx] == owner_label)
            field[zz, sy, sx] += values


@functools.lru_cache(maxsize=64)
def _ring(radius: float, width: float, inner: float) -> np.ndarray:
    half = int(np.ceil(radius + 3 * width))
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float32)
    r = np.sqrt(yy**2 + xx**2)
    ring = np.exp(-0.5 * ((r - radius) / width) ** 2)
    core = inner * (r < radius - width)
    stamp = (ring + core).astype(np.float32)
    stamp.flags.writeable = False
    return stamp


def ring_stamp(radius: float, width: float = 0.9, inner: float = -0.2) -> np.ndarray:
    """A vesicle: a dark ring of ``radius`` voxels (peak 1) with a lighter core (``inner``).

    Radii are rounded to 0.1 voxel, so that stamps can be reused (read-only arrays).
    """
    return _ring(round(float(radius), 1), float(width), float(inner))


def add_stamp(
    field: np.ndarray,
    z: int,
    centre,
    stamp: np.ndarray,
    amplitude: float,
    owner: np.ndarray | None = None,
    owner_label: int | None = None,
) -> None:
    """Add ``amplitude * stamp`` centred at ``centre`` (y, x) in section ``z``, clipped.

    Args:
        field: (z, y, x) float32 field, modified in place.
        z: the section.
        centre: integer (y, x) centre.
        stamp: odd-sized 2D array.
        amplitude: scale of the stamp.
        owner, owner_label: if given, draw only where ``owner == owner_label``.
    """
    if not 0 <= z < field.shape[0]:
        return
    half = stamp.shape[0] // 2
    cy, cx = int(centre[0]), int(centre[1])
    y0, y1 = max(cy - half, 0), min(cy + half + 1, field.shape[1])
    x0, x1 = max(cx - half, 0), min(cx + half + 1, field.shape[2])
    if y0 >= y1 or x0 >= x1:
        return
    part = stamp[y0 - (cy - half) : y1 - (cy - half), x0 - (cx - half) : x1 - (cx - half)]
    values = amplitude * part
    if owner is not None:
        values = values * (owner[z, y0:y1, x0:x1] == owner_label)
    field[z, y0:y1, x0:x1] += values


def spread_points(
    rng: np.random.Generator, centre, radius: float, count: int, min_distance: float
) -> np.ndarray:
    """Up to ``count`` random in-plane points (n x 2) in a disk, at least ``min_distance`` apart."""
    candidates = count * 3
    angle = rng.uniform(0, 2 * np.pi, candidates)
    dist = radius * np.sqrt(rng.uniform(0, 1, candidates))
    points = np.stack([centre[0] + dist * np.sin(angle), centre[1] + dist * np.cos(angle)], 1)
    too_close = (
        np.hypot(*(points[:, None, :] - points[None, :, :]).transpose(2, 0, 1)) < min_distance
    )
    keep = np.zeros(candidates, dtype=bool)
    for i in range(candidates):
        if not np.any(too_close[i] & keep):
            keep[i] = True
            if keep.sum() == count:
                break
    kept = points[keep]
    return np.asarray(kept, dtype=np.float64).reshape(-1, 2)


def section_profile(
    rng: np.random.Generator, sections: int, falloff: float = 0.6
) -> dict[int, float]:
    """Weights of a structure spanning ``sections`` consecutive sections around offset 0.

    The central section has weight 1, and each further section ``falloff`` times less.
    """
    first = -int(rng.integers(0, sections))
    offsets = range(first, first + sections)
    return {dz: float(falloff ** abs(dz)) for dz in offsets}
