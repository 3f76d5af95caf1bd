"""A PNG preview of a CREMI-layout sample: raw sections, neuron boundaries and synapses."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ..atomic import atomic_output
from ..errors import SynfulError
from ..geometry import Coordinate, Roi
from ..io.cremi import CremiSample
from ..io.zarr_array import read, spatial_shape
from ..lookup import voxel_indices


def _boundaries(labels: np.ndarray) -> np.ndarray:
    """Pixels of a 2D label image whose upper or left neighbour has a different label."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[1:] |= labels[1:] != labels[:-1]
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    return edge


def busiest_sections(sample: CremiSample, count: int = 3) -> list[int]:
    """Up to ``count`` sections of the labelled cube (indices into ``neuron_ids``) holding the
    most pre points, in increasing order; evenly spaced sections when there are no synapses."""
    labels = sample.neuron_ids.to_array("neuron_ids")
    depth = spatial_shape(labels)[0]
    ann = sample.annotations
    if ann is not None and len(ann.partners):
        pre, _ = ann.pair_locations()
        z = voxel_indices(pre, labels.offset, labels.voxel_size, "floor")[:, 0]
        z = z[(z >= 0) & (z < depth)]
        hits = np.bincount(z, minlength=depth)
        # each section also gets credit for synapses one section away, so the views are rich
        hits = hits + 0.5 * (np.roll(hits, 1) + np.roll(hits, -1))
        chosen: list[int] = []
        for candidate in np.argsort(-hits, kind="stable"):
            if all(abs(int(candidate) - c) >= 3 for c in chosen):
                chosen.append(int(candidate))
            if len(chosen) == count:
                break
        return sorted(chosen)
    return sorted({int(round(v)) for v in np.linspace(0, depth - 1, count + 2)[1:-1]})


def write_preview(
    sample: CremiSample,
    png_path: str | os.PathLike,
    sections: Sequence[int] | None = None,
    dpi: int = 100,
) -> None:
    """Draw raw sections of the labelled cube side by side with neuron boundaries (light),
    pre points (red), post points (cyan) and arrows pre -> post, and save them as a PNG.

    Synapses with a point within one section of a shown section are drawn; points in the
    shown section are filled, points in other sections hollow.

    Args:
        sample: a sample with ``raw``, ``neuron_ids`` and ``annotations``.
        png_path: the PNG to write (atomically; parent directories are created).
        sections: section indices into ``neuron_ids`` (default: the busiest three).
        dpi: resolution of the figure.

    Raises:
        SynfulError: the sample lacks raw or labels, or a section is outside the cube.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    if sample.raw is None or sample.neuron_ids is None:
        raise SynfulError(png_path, "a preview needs both raw and neuron_ids")
    raw, labels = sample.raw.to_array("raw"), sample.neuron_ids.to_array("neuron_ids")
    depth, height, width = spatial_shape(labels)
    sections = busiest_sections(sample) if sections is None else [int(s) for s in sections]
    if not sections or any(not 0 <= s < depth for s in sections):
        raise SynfulError(png_path, f"preview sections must lie in 0..{depth - 1}, got {sections}")
    resolution = np.asarray(labels.voxel_size, dtype=np.float64)
    origin = np.asarray(labels.offset, dtype=np.float64)
    if sample.annotations is not None and len(sample.annotations.partners):
        pre, post = sample.annotations.pair_locations()
        pre_z = voxel_indices(pre, labels.offset, labels.voxel_size, "floor")[:, 0]
        post_z = voxel_indices(post, labels.offset, labels.voxel_size, "floor")[:, 0]
        pre = (pre - origin) / resolution
        post = (post - origin) / resolution
    else:
        pre = post = np.zeros((0, 3))
        pre_z = post_z = np.zeros(0, np.int64)
    overlay = ListedColormap([(0, 0, 0, 0), (1.0, 0.8, 0.1, 0.3)])

    label_data = read(labels)
    fig, axes = plt.subplots(
        1, len(sections), figsize=(3.4 * len(sections), 3.4 * height / width + 0.3), squeeze=False
    )
    for ax, z in zip(axes[0], sections):
        # the raw section over the labelled cube's section z (0 where raw does not reach)
        section = Roi(
            labels.offset + Coordinate(z * labels.voxel_size[0], 0, 0),
            labels.voxel_size * Coordinate(1, height, width),
        )
        ax.imshow(read(raw, section)[0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.imshow(_boundaries(label_data[z]), cmap=overlay, vmin=0, vmax=1, interpolation="nearest")
        shown = (np.abs(pre_z - z) <= 1) | (np.abs(post_z - z) <= 1)
        for p, q in zip(pre[shown], post[shown]):
            ax.annotate(
                "",
                xy=(q[2], q[1]),
                xytext=(p[2], p[1]),
                arrowprops={
                    "arrowstyle": "->",
                    "color": "yellow",
                    "lw": 0.8,
                    "shrinkA": 0,
                    "shrinkB": 2,
                },
            )
        for points, z_of, colour, name in (
            (pre, pre_z, "red", "pre"),
            (post, post_z, "cyan", "post"),
        ):
            here = np.unique(points[shown & (z_of == z)], axis=0)
            elsewhere = np.unique(points[shown & (z_of != z)], axis=0)
            ax.scatter(here[:, 2], here[:, 1], s=14, c=colour, label=name, linewidths=0)
            ax.scatter(
                elsewhere[:, 2],
                elsewhere[:, 1],
                s=14,
                facecolors="none",
                edgecolors=colour,
                linewidths=0.8,
            )
        ax.set_title(f"section {z} of the labelled cube", fontsize=8)
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_ylim(height - 0.5, -0.5)
        ax.set_axis_off()
    axes[0][0].legend(loc="lower left", fontsize=6, framealpha=0.6)
    fig.tight_layout(pad=0.3)
    with atomic_output(png_path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", pil_kwargs={"optimize": True})
    plt.close(fig)
