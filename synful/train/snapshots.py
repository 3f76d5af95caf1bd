"""Training snapshots: a zarr with one batch's raw, targets and predictions, plus a PNG.

``<out>/snapshots/batch_<iteration>.zarr`` holds (first sample of the batch) ``raw``,
``post_indicator`` / ``partner_vectors`` / ``vector_mask`` / ``loss_weights`` (targets),
``neuron_ids``, and ``pred_post_indicator`` (sigmoid) / ``pred_partner_vectors`` (nm), all with
world metadata (the raw at its input window, the rest at the output window); the PNG shows the
middle section of the output window.

Only the last ``keep`` snapshots (setup key ``keep_snapshots``, default 5; 0 keeps all) stay:
after a snapshot is written, those with lower iterations than the ``keep`` newest are removed.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import zarr

from ..atomic import atomic_output, remove_path
from ..io.zarr_array import write_volume

logger = logging.getLogger(__name__)

#: snapshots kept when the setup does not say (``keep_snapshots``)
KEEP_SNAPSHOTS = 5
_SNAPSHOT = re.compile(r"batch_(\d+)\.(zarr|png)")


def list_snapshots(directory: Path) -> dict[int, list[Path]]:
    """The snapshot files (zarr and PNG) in ``directory`` by iteration."""
    found: dict[int, list[Path]] = {}
    if not Path(directory).is_dir():
        return found
    for path in Path(directory).iterdir():
        match = _SNAPSHOT.fullmatch(path.name)
        if match:
            found.setdefault(int(match.group(1)), []).append(path)
    return found


def prune_snapshots(directory: Path, keep: int, current: int | None = None) -> list[int]:
    """Remove all but the ``keep`` snapshots with the highest iterations (0: keep all).

    The snapshot of ``current`` (the one just written) is never removed. Returns the removed
    iterations.
    """
    if keep <= 0:
        return []
    snapshots = list_snapshots(directory)
    kept = set(sorted(snapshots)[-keep:]) | {current}
    removed = sorted(it for it in snapshots if it not in kept)
    for iteration in removed:
        for path in snapshots[iteration]:
            remove_path(path)
    if removed:
        logger.debug("removed snapshots %s (keep_snapshots %d)", removed, keep)
    return removed


def write_snapshot(
    directory: Path,
    iteration: int,
    batch: dict[str, np.ndarray],
    predictions: dict[str, np.ndarray],
    voxel_size,
    context,
    keep: int = KEEP_SNAPSHOTS,
) -> Path:
    """Write the snapshot of one batch (numpy arrays, batch axis first); returns the zarr path.

    Args:
        directory: the snapshots directory.
        iteration: the iteration (used in the file names).
        batch: the batch as numpy arrays (``raw``, targets, ``output_begin``...).
        predictions: ``post_indicator`` (probabilities) and/or ``partner_vectors`` (nm).
        voxel_size: (z, y, x) nm.
        context: (z, y, x) voxels between the input and the output window.
        keep: then keep only the snapshots of the ``keep`` highest iterations (0: all).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vs = np.asarray(voxel_size, dtype=np.int64)
    out_begin = np.asarray(batch["output_begin"][0], dtype=np.int64)
    in_begin = out_begin - np.asarray(context, dtype=np.int64) * vs
    path = directory / f"batch_{iteration}.zarr"
    arrays = {
        "raw": (batch["raw"][0, 0], in_begin),
        "post_indicator": (batch["post_indicator"][0, 0], out_begin),
        "partner_vectors": (batch["partner_vectors"][0], out_begin),
        "vector_mask": (batch["vector_mask"][0, 0], out_begin),
        "loss_weights": (batch["loss_weights"][0, 0], out_begin),
        "neuron_ids": (batch["neuron_ids"][0].astype(np.uint64), out_begin),
    }
    for key, value in predictions.items():
        arrays[f"pred_{key}"] = (value[0, 0] if value.shape[1] == 1 else value[0], out_begin)
    with atomic_output(path) as tmp:
        group = zarr.open_group(str(tmp), mode="w")
        group.attrs["iteration"] = int(iteration)
        for name, (data, begin) in arrays.items():
            channels = data.ndim - 3
            write_volume(group, name, np.ascontiguousarray(data), vs, begin, channels=channels)
    _write_png(directory / f"batch_{iteration}.png", arrays, context, iteration)
    prune_snapshots(directory, keep, current=iteration)
    return path


def _write_png(path: Path, arrays: dict, context, iteration: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    raw = arrays["raw"][0]
    out_shape = arrays["post_indicator"][0].shape
    z = out_shape[0] // 2
    crop = tuple(slice(c, c + s) for c, s in zip(context, out_shape))
    panels = [
        ("raw", raw[crop][z], "gray", (-1, 1)),
        ("target post", arrays["post_indicator"][0][z], "magma", (0, 1)),
    ]
    if "pred_post_indicator" in arrays:
        panels.append(("predicted post", arrays["pred_post_indicator"][0][z], "magma", (0, 1)))
    magnitude = np.linalg.norm(arrays["partner_vectors"][0][:, z], axis=0)
    vmax = max(float(magnitude.max()), 1.0)
    panels.append(("target |vector| nm", magnitude, "viridis", (0, vmax)))
    if "pred_partner_vectors" in arrays:
        predicted = np.linalg.norm(arrays["pred_partner_vectors"][0][:, z], axis=0)
        panels.append(("predicted |vector| nm", predicted, "viridis", (0, vmax)))
    fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3.2))
    for ax, (title, image, cmap, (vmin, vmax_)) in zip(np.atleast_1d(axes), panels):
        ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax_, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle(f"iteration {iteration}, section {z} of the output window", fontsize=10)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
