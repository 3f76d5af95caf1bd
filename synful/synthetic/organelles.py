"""Distractors: structures that look partly like synapses but are not.

- mitochondria: large dark ellipses with a double outline and cristae stripes;
- dense bodies: small dark blobs, some right by a membrane (T-bars without vesicles or PSD);
- vesicle clusters without a T-bar or a postsynaptic density;
- dark membrane patches (PSD-like thickenings without a T-bar across).
"""

from __future__ import annotations

import numpy as np

from .drawing import add_stamp, draw_ellipse, ring_stamp, section_profile, spread_points, window
from .synapses import draw_psd

MITOCHONDRION_DARKNESS = 38.0
MITOCHONDRION_OUTLINE = 45.0
CRISTAE_DARKNESS = 28.0
DENSE_BODY_DARKNESS = 100.0
VESICLE_DARKNESS = 60.0
MEMBRANE_PATCH_DARKNESS = 45.0


def _random_voxels(rng: np.random.Generator, accept, count: int, shape) -> np.ndarray:
    """``count`` random voxels (count x 3, fewer if rare) whose flat index passes ``accept``.

    Args:
        rng: the random generator.
        accept: function of an array of flat indices, returning a boolean array.
        count: how many voxels to return.
        shape: the volume's shape.
    """
    if count <= 0:
        return np.zeros((0, 3), dtype=np.int64)
    size = int(np.prod(shape))
    found = np.zeros(0, dtype=np.int64)
    for _ in range(8):
        draws = rng.integers(0, size, 50 * count)
        found = np.concatenate([found, draws[accept(draws)]])
        if len(found) >= count:
            break
    return np.stack(np.unravel_index(found[:count], shape), axis=1)


def _unit(rng: np.random.Generator) -> np.ndarray:
    angle = rng.uniform(0, 2 * np.pi)
    return np.array([np.sin(angle), np.cos(angle)])


def draw_mitochondrion(rng, darkness, index, centre) -> None:
    """A mitochondrion in the neuron at ``centre`` (z, y, x), spanning 3-7 sections."""
    z, y, x = (int(v) for v in centre)
    neuron = int(index[z, y, x])
    direction = _unit(rng)
    long_axis, short_axis = rng.uniform(18, 40), rng.uniform(9, 15)
    half = int(rng.integers(1, 4))
    radius = int(long_axis) + 4
    sy, sx, ys, xs = window(darkness.shape, (y, x), radius)
    along = (ys - y) * direction[0] + (xs - x) * direction[1]
    cristae = (np.cos(2 * np.pi * along / rng.uniform(6, 9)) > 0.55).astype(np.float32)
    for dz in range(-half, half + 1):
        zz = z + dz
        if not 0 <= zz < darkness.shape[0]:
            continue
        scale = np.sqrt(max(1.0 - (dz / (half + 1)) ** 2, 0.2))
        a, b = long_axis * scale, short_axis * scale
        across = -(ys - y) * direction[1] + (xs - x) * direction[0]
        r = np.sqrt((along / a) ** 2 + (across / b) ** 2)
        # distance (voxels) inside the outline, approximately
        depth = (1.0 - r) * b
        body = np.clip(depth / 1.5 + 0.5, 0.0, 1.0)
        outline = np.exp(-0.5 * ((depth - 1.0) / 1.0) ** 2) + np.exp(
            -0.5 * ((depth - 3.5) / 1.0) ** 2
        )
        values = MITOCHONDRION_DARKNESS * body + MITOCHONDRION_OUTLINE * outline * (depth > -2)
        values += CRISTAE_DARKNESS * cristae * (depth > 4.5)
        darkness[zz, sy, sx] += values * (index[zz, sy, sx] == neuron)


def draw_dense_body(rng, darkness, index, centre) -> None:
    """A small dark blob (1-3 sections) in the neuron at ``centre``."""
    z, y, x = (int(v) for v in centre)
    neuron = int(index[z, y, x])
    axes = (rng.uniform(3.0, 7.0), rng.uniform(2.5, 6.0))
    profile = section_profile(rng, int(rng.integers(1, 4)), falloff=0.7)
    draw_ellipse(
        darkness,
        z,
        (y, x),
        axes,
        _unit(rng),
        DENSE_BODY_DARKNESS * rng.uniform(0.8, 1.1),
        profile,
        index,
        neuron,
    )


def draw_vesicle_cluster(rng, darkness, index, centre) -> None:
    """A cluster of vesicles (2-4 sections) without a T-bar, in the neuron at ``centre``."""
    z, y, x = (int(v) for v in centre)
    neuron = int(index[z, y, x])
    profile = section_profile(rng, int(rng.integers(2, 5)), falloff=0.85)
    radius = rng.uniform(18, 28)
    for dz in profile:
        for point in spread_points(rng, (y, x), radius, int(rng.integers(8, 18)), 8.5):
            stamp = ring_stamp(float(rng.uniform(3.2, 4.3)))
            add_stamp(darkness, z + dz, np.rint(point), stamp, VESICLE_DARKNESS, index, neuron)


def render_distractors(
    rng: np.random.Generator,
    darkness: np.ndarray,
    index: np.ndarray,
    distance: np.ndarray,
    voxel_size,
    density_per_um3: dict[str, float],
) -> dict[str, int]:
    """Draw all distractors into ``darkness``; returns how many of each kind were drawn.

    Args:
        rng: the random generator.
        darkness: (z, y, x) float32 field, modified in place.
        index: (z, y, x) neuron index per voxel.
        distance: in-plane distance to the nearest other neuron per voxel.
        voxel_size: (z, y, x) nm.
        density_per_um3: count per cubic micrometre of ``mitochondria``, ``dense_bodies``,
            ``vesicle_clusters`` and ``membrane_patches``.
    """
    um3 = index.size * float(np.prod(voxel_size)) * 1e-9
    counts = {k: int(round(v * um3)) for k, v in density_per_um3.items()}
    flat_distance = distance.ravel()

    def deep(flat):
        return flat_distance[flat] >= 16

    for centre in _random_voxels(rng, deep, counts.get("mitochondria", 0), index.shape):
        draw_mitochondrion(rng, darkness, index, centre)
    # half of the dense bodies sit right by a membrane, where T-bars stand

    def near_membrane(flat):
        return (flat_distance[flat] >= 4) & (flat_distance[flat] <= 8)

    def interior(flat):
        return flat_distance[flat] >= 9

    bodies = counts.get("dense_bodies", 0)
    for pool, count in ((near_membrane, bodies - bodies // 2), (interior, bodies // 2)):
        for centre in _random_voxels(rng, pool, count, index.shape):
            draw_dense_body(rng, darkness, index, centre)
    for centre in _random_voxels(rng, deep, counts.get("vesicle_clusters", 0), index.shape):
        draw_vesicle_cluster(rng, darkness, index, centre)

    def membrane(flat):
        return flat_distance[flat] <= 1.0

    for centre in _random_voxels(rng, membrane, counts.get("membrane_patches", 0), index.shape):
        z, y, x = (int(v) for v in centre)
        neuron = int(index[z, y, x])
        ys, xs = slice(max(y - 2, 0), y + 3), slice(max(x - 2, 0), x + 3)
        others = index[z, ys, xs][index[z, ys, xs] != neuron]
        if len(others):
            draw_psd(darkness, index, centre, neuron, int(others[0]), MEMBRANE_PATCH_DARKNESS, 18)
    return counts
