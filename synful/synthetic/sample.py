"""Assemble a synthetic sample in the padded CREMI layout."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import SynfulError
from ..io.cremi import (
    CREMI_VOXEL_SIZE,
    POSTSYNAPTIC,
    PRESYNAPTIC,
    CremiAnnotations,
    CremiSample,
    CremiVolume,
)
from . import defects, neurons, organelles, synapses, texture

logger = logging.getLogger(__name__)

DEFAULT_SHAPE = (32, 320, 320)
DEFAULT_PADDING = (8, 96, 96)
#: presynaptic sites per cubic micrometre (each with 1-4 partners, about 2.2 on average)
SYNAPSE_DENSITY = 15.0
#: distractors per cubic micrometre
DISTRACTOR_DENSITY = {
    "mitochondria": 4.0,
    "dense_bodies": 14.0,
    "vesicle_clusters": 5.0,
    "membrane_patches": 6.0,
}
MEAN_NEURITE_DIAMETER = 60.0  # voxels (240 nm)
#: peak memory budgeted per raw voxel of the generator (docs/performance.md, "Memory of
#: `synful synthesize`")
BYTES_PER_VOXEL = 40
#: the limit when the machine's memory cannot be read
FALLBACK_MEMORY = 64 << 30


@dataclass
class SyntheticParameters:
    """Knobs of the generator (the defaults make the demo data)."""

    synapse_density: float = SYNAPSE_DENSITY
    distractor_density: dict[str, float] = field(default_factory=lambda: dict(DISTRACTOR_DENSITY))
    mean_neurite_diameter: float = MEAN_NEURITE_DIAMETER


def _check_zyx(name: str, values, minimum: int) -> tuple[int, int, int]:
    values = tuple(int(v) for v in values)
    if len(values) != 3 or any(v < minimum for v in values):
        raise SynfulError(None, f"{name} must be three integers >= {minimum}, got {list(values)}")
    return values


def memory_limit() -> int:
    """Bytes of memory this process may use: physical memory, or a lower cgroup limit."""
    limits = []
    try:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            limits.append(int(text))
    limits = [limit for limit in limits if limit > 0]
    return min(limits) if limits else FALLBACK_MEMORY


def estimated_bytes(shape, padding) -> int:
    """About the peak memory (bytes) of :func:`synthesize_sample` for ``shape`` and ``padding``."""
    voxels = 1
    for s, p in zip(shape, padding):
        voxels *= int(s) + 2 * int(p)
    return voxels * BYTES_PER_VOXEL


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB"


def synthesize_sample(
    seed: int = 0,
    shape=DEFAULT_SHAPE,
    padding=DEFAULT_PADDING,
    missing_sections: float = 0.0,
    misaligned_sections: float = 0.0,
    parameters: SyntheticParameters | None = None,
    max_bytes: int | None = None,
) -> CremiSample:
    """A synthetic CREMI-like sample: raw, neuron ids and polyadic synaptic partner annotations.

    The layout is that of the padded CREMI files: ``raw`` (offset 0) covers the labelled cube
    grown by ``padding`` voxels on every side, ``neuron_ids`` covers the cube with offset
    ``padding * voxel_size``, and the annotation locations are relative to the annotations'
    ``offset``, which equals the ``neuron_ids`` offset. The same seed gives identical arrays.

    Args:
        seed: random seed (non-negative integer).
        shape: (z, y, x) voxels of the labelled cube.
        padding: (z, y, x) voxels of raw context on every side of the cube.
        missing_sections: fraction of raw sections (0..1) that are black.
        misaligned_sections: fraction of raw sections (0..1) shifted in-plane.
        parameters: densities and sizes; defaults if ``None``.
        max_bytes: refuse a sample whose estimated peak memory (:func:`estimated_bytes`)
            exceeds this (default: :func:`memory_limit`, the memory of this machine or job).

    Raises:
        SynfulError: a shape or padding is not positive or needs more memory than
            ``max_bytes``, or a fraction is outside 0..1.
    """
    shape = _check_zyx("shape", shape, 1)
    padding = _check_zyx("padding", padding, 0)
    needed = estimated_bytes(shape, padding)
    limit = memory_limit() if max_bytes is None else int(max_bytes)
    if needed > limit:
        full = "x".join(str(s + 2 * p) for s, p in zip(shape, padding))
        raise SynfulError(
            None,
            f"a synthetic sample of {full} voxels (shape plus padding) needs about "
            f"{_gib(needed)} of memory, more than the {_gib(limit)} available: use a smaller "
            "shape or padding",
        )
    for name, value in (
        ("missing_sections", missing_sections),
        ("misaligned_sections", misaligned_sections),
    ):
        if not 0.0 <= float(value) <= 1.0:
            raise SynfulError(None, f"{name} must be a fraction between 0 and 1, got {value}")
    if int(seed) < 0:
        raise SynfulError(None, f"seed must be a non-negative integer, got {seed}")
    parameters = parameters or SyntheticParameters()
    voxel_size = np.asarray(CREMI_VOXEL_SIZE, dtype=np.float64)
    streams = np.random.SeedSequence(int(seed)).spawn(7)
    (
        rng_neurons,
        rng_tissue,
        rng_organelles,
        rng_synapses,
        rng_imaging,
        rng_missing,
        rng_misaligned,
    ) = (np.random.default_rng(s) for s in streams)

    full_shape = tuple(s + 2 * p for s, p in zip(shape, padding))
    cube = tuple(slice(p, p + s) for s, p in zip(shape, padding))
    index = neurons.neuron_index(rng_neurons, full_shape, parameters.mean_neurite_diameter)
    distance = texture.membrane_distance(index)
    image = texture.tissue(rng_tissue, index, distance)

    darkness = np.zeros(full_shape, dtype=np.float32)
    counts = organelles.render_distractors(
        rng_organelles, darkness, index, distance, voxel_size, parameters.distractor_density
    )
    annotated, padding_sites = synapses.place_sites(
        rng_synapses, index, distance, cube, voxel_size, parameters.synapse_density
    )
    for site in annotated + padding_sites:
        synapses.render_site(rng_synapses, darkness, index, site)
    image -= darkness
    raw = texture.image_sections(rng_imaging, image)
    if misaligned_sections > 0:
        defects.misalign_sections(rng_misaligned, raw, misaligned_sections)
    if missing_sections > 0:
        defects.blank_sections(rng_missing, raw, missing_sections)

    labels = neurons.neuron_ids(rng_neurons, int(index.max()) + 1)[index[cube]]
    offset = tuple(float(p * v) for p, v in zip(padding, voxel_size))
    logger.info(
        "synthesized %d annotated sites (%d partner pairs), %d padding sites, distractors %s",
        len(annotated),
        sum(len(s.posts) for s in annotated),
        len(padding_sites),
        counts,
    )
    return CremiSample(
        raw=CremiVolume(raw, tuple(CREMI_VOXEL_SIZE), (0.0, 0.0, 0.0)),
        neuron_ids=CremiVolume(labels, tuple(CREMI_VOXEL_SIZE), offset),
        annotations=annotations_of(annotated, padding, voxel_size),
    )


def annotations_of(sites, padding, voxel_size) -> CremiAnnotations:
    """CREMI annotations of ``sites`` with locations relative to the labelled cube.

    Locations are voxel corners (index * voxel size), so that the CREMI evaluator's rounding
    and the floor rule pick the same voxel. Ids count up from 1: a pre site, then its posts.
    """
    ids, types, locations, partners = [], [], [], []
    next_id = 1
    begin = np.asarray(padding, dtype=np.float64)
    for site in sites:
        pre_id = next_id
        ids.append(pre_id)
        types.append(PRESYNAPTIC)
        locations.append((site.pre - begin) * voxel_size)
        next_id += 1
        for post in site.posts:
            ids.append(next_id)
            types.append(POSTSYNAPTIC)
            locations.append((post - begin) * voxel_size)
            partners.append((pre_id, next_id))
            next_id += 1
    return CremiAnnotations(
        np.asarray(ids, dtype=np.uint64),
        np.asarray(types, dtype=object),
        np.asarray(locations, dtype=np.float64).reshape(-1, 3),
        np.asarray(partners, dtype=np.uint64).reshape(-1, 2),
        begin * voxel_size,
    )
