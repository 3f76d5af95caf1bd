"""Smooth random fields (Gaussian-filtered white noise) used for shapes and textures."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

TRUNCATE = 3.0


def smooth_noise(
    rng: np.random.Generator, shape: tuple[int, ...], sigma: float | tuple[float, ...]
) -> np.ndarray:
    """White noise smoothed by a Gaussian of ``sigma`` voxels, scaled to unit std (float32).

    The scale comes from the filter (not from the sample), so that small or thin volumes are
    not blown up when they cannot hold a full period of the noise.

    Args:
        rng: the random generator to draw from.
        shape: the shape of the field.
        sigma: the Gaussian's standard deviation in voxels, one value or one per axis.
    """
    sigmas = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (len(shape),))
    # along an axis shorter than the kernel, mirroring would repeat the same few samples many
    # times: draw the noise on a longer axis and keep the middle
    radii = [int(TRUNCATE * s + 0.5) if s > 0 else 0 for s in sigmas]
    pads = [r if n < 2 * r + 1 else 0 for n, r in zip(shape, radii)]
    drawn = tuple(n + 2 * p for n, p in zip(shape, pads))
    field = rng.standard_normal(drawn, dtype=np.float32)
    field = ndimage.gaussian_filter(field, tuple(sigmas), mode="reflect", truncate=TRUNCATE)
    field = np.ascontiguousarray(field[tuple(slice(p, p + n) for n, p in zip(shape, pads))])
    field /= np.float32(np.prod([_kernel_norm(s) for s in sigmas]))
    return field


def _kernel_norm(sigma: float) -> float:
    """Standard deviation of unit white noise after scipy's 1D Gaussian filter of ``sigma``."""
    if sigma <= 0:
        return 1.0
    radius = int(TRUNCATE * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    kernel /= kernel.sum()
    return float(np.sqrt((kernel**2).sum()))


def smooth_noise_upsampled(
    rng: np.random.Generator,
    shape: tuple[int, int, int],
    scales: Sequence[tuple[float, float]],
    factor: int,
) -> np.ndarray:
    """A smooth field that sums in-plane noise ``scales``, drawn on a grid ``factor`` times
    coarser in y and x and linearly upsampled to ``shape`` (much cheaper than filtering at
    full resolution). Each scale has unit standard deviation times its amplitude.

    Args:
        rng: the random generator to draw from.
        shape: (z, y, x) shape of the result.
        scales: (sigma, amplitude) pairs; sigma in full-resolution in-plane voxels, and
            ``sigma / factor`` sections along z (z is not downsampled).
        factor: in-plane downsampling factor of the coarse grid.
    """
    z, y, x = shape
    coarse_shape = (z, -(-y // factor) + 1, -(-x // factor) + 1)
    coarse = np.zeros(coarse_shape, dtype=np.float32)
    for sigma, amplitude in scales:
        s = sigma / factor
        coarse += smooth_noise(rng, coarse_shape, (max(s, 0.5), s, s)) * np.float32(amplitude)
    # along x: one matrix product; along y: a blend of the two nearest coarse rows
    along_x = coarse.reshape(-1, coarse_shape[2]) @ _interpolation_matrix(x, coarse_shape[2], factor).T
    along_x = along_x.reshape(z, coarse_shape[1], x)
    position = np.arange(y, dtype=np.float32) / factor
    lower = np.floor(position).astype(np.int64)
    weight = (position - lower)[None, :, None]
    result = along_x[:, lower, :]
    result += (along_x[:, np.minimum(lower + 1, coarse_shape[1] - 1), :] - result) * weight
    return result


def _interpolation_matrix(fine: int, coarse: int, factor: int) -> np.ndarray:
    """(fine x coarse) matrix of linear interpolation weights from a grid of step ``factor``."""
    position = np.arange(fine, dtype=np.float64) / factor
    lower = np.floor(position).astype(np.int64)
    weight = position - lower
    matrix = np.zeros((fine, coarse), dtype=np.float32)
    rows = np.arange(fine)
    matrix[rows, lower] = 1.0 - weight
    matrix[rows, np.minimum(lower + 1, coarse - 1)] += weight
    return matrix
