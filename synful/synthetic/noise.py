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
    """A smooth field that sums in-plane noise ``scales``, each drawn on a grid coarser in y
    and x (``factor``, or a power-of-two multiple of it for wide scales) and linearly
    upsampled to ``shape`` (much cheaper than filtering at full resolution). Each scale has
    unit standard deviation times its amplitude.

    Args:
        rng: the random generator to draw from.
        shape: (z, y, x) shape of the result.
        scales: (sigma, amplitude) pairs; sigma in full-resolution in-plane voxels, and
            ``sigma / 4`` sections along z (z is not downsampled).
        factor: in-plane downsampling factor of the finest coarse grid.
    """
    z, y, x = shape
    coarse_shape = (z, -(-y // factor) + 1, -(-x // factor) + 1)
    coarse = np.zeros(coarse_shape, dtype=np.float32)
    for sigma, amplitude in scales:
        # a grid with at least 4 steps per sigma interpolates the field smoothly
        step = 1
        while sigma / (factor * step * 2) >= 4:
            step *= 2
        grid = (z, -(-(coarse_shape[1] - 1) // step) + 1, -(-(coarse_shape[2] - 1) // step) + 1)
        s = sigma / (factor * step)
        field = smooth_noise(rng, grid, (max(sigma / 4, 0.5), s, s)) * np.float32(amplitude)
        if step > 1:
            field = _upsample_axis(
                _upsample_axis(field, 2, coarse_shape[2], step), 1, coarse_shape[1], step
            )
        coarse += field
    # linear interpolation, one axis at a time, with plain element-wise arithmetic (no BLAS,
    # whose summation order can depend on the thread count and the CPU)
    return _upsample_axis(_upsample_axis(coarse, 2, x, factor), 1, y, factor)


def _upsample_axis(array: np.ndarray, axis: int, size: int, factor: int) -> np.ndarray:
    """Linear interpolation of ``array`` along ``axis`` from a grid of step ``factor`` onto
    ``size`` unit-spaced positions (the coarse grid needs ``size / factor + 1`` entries)."""
    position = np.arange(size, dtype=np.float32) / np.float32(factor)
    lower = np.floor(position).astype(np.int64)
    upper = np.minimum(lower + 1, array.shape[axis] - 1)
    shape = [1] * array.ndim
    shape[axis] = size
    weight = (position - lower).reshape(shape)
    result = np.take(array, lower, axis=axis)
    result += (np.take(array, upper, axis=axis) - result) * weight
    return result
