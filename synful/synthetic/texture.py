"""Cytoplasm texture, dark membranes, and the final EM-like imaging (blur, noise, uint8)."""

from __future__ import annotations

import edt
import numpy as np
from scipy import ndimage

from .noise import smooth_noise, smooth_noise_upsampled

# intensities (uint8 grey values) of the rendered tissue
CYTOPLASM_MEAN = 165.0
CYTOPLASM_NEURON_STD = 9.0
MEMBRANE_DARKNESS = 95.0
MEMBRANE_WIDTH = 1.4  # voxels (4 nm): Gaussian falloff from the membrane centre
GRAIN_STD = 9.0
SHOT_NOISE_STD = 9.0
BLUR_SIGMA = 0.7  # voxels, in-plane point spread


def membrane_distance(index: np.ndarray) -> np.ndarray:
    """In-plane distance (voxels, float32) of every voxel to the nearest other neuron.

    Voxels next to a neuron boundary have distance 1; a section holding a single neuron gets
    a large distance everywhere.
    """
    distance = np.empty(index.shape, dtype=np.float32)
    for z, section in enumerate(index):
        distance[z] = edt.edt(section, black_border=False, parallel=1)
    np.minimum(distance, np.float32(1e4), out=distance)
    return distance


def tissue(rng: np.random.Generator, index: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """Grey values (float32) of cytoplasm with texture and dark membranes, before imaging.

    Args:
        rng: the random generator.
        index: (z, y, x) neuron index per voxel (0..K-1).
        distance: :func:`membrane_distance` of ``index``.
    """
    neuron_mean = rng.normal(CYTOPLASM_MEAN, CYTOPLASM_NEURON_STD, int(index.max()) + 1)
    image = neuron_mean.astype(np.float32)[index]
    image += smooth_noise_upsampled(rng, index.shape, ((40.0, 7.0),), 4)
    image += smooth_noise(rng, index.shape, (0.0, 1.5, 1.5)) * GRAIN_STD
    image -= MEMBRANE_DARKNESS * np.exp(-(((distance - 0.5) / MEMBRANE_WIDTH) ** 2))
    return image


def image_sections(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Blur in-plane, vary brightness per section, add shot noise, quantise to uint8."""
    image = ndimage.gaussian_filter(image, (0.0, BLUR_SIGMA, BLUR_SIGMA), truncate=3.0)
    gain = rng.normal(1.0, 0.03, image.shape[0]).astype(np.float32)[:, None, None]
    shift = rng.normal(0.0, 4.0, image.shape[0]).astype(np.float32)[:, None, None]
    image = image * gain + shift
    image += rng.standard_normal(image.shape, dtype=np.float32) * SHOT_NOISE_STD
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)
