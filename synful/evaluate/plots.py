"""The precision-recall plot of a score-threshold sweep, best point marked (matplotlib Agg)."""

from __future__ import annotations

import os
import textwrap


def plot_precision_recall(
    metrics: dict, path: str | os.PathLike, title: str | None = None, format: str = "png"
) -> None:
    """Draw recall (x) against precision (y) over the sweep and mark the best F-score.

    Uses an Agg canvas directly, so no global matplotlib backend is changed.

    Args:
        metrics: a metrics dict with a ``sweep`` (and ``best``).
        path: the image file to write.
        title: an optional title.
        format: the image format (``png``, ``pdf``, ``svg``).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    sweep = metrics.get("sweep")
    if sweep is None:
        raise ValueError("the metrics have no score-threshold sweep to plot")
    recall = [entry["recall"] for entry in sweep]
    precision = [entry["precision"] for entry in sweep]
    figure = Figure(figsize=(5, 5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot(recall, precision, "-o", markersize=3, label="score thresholds")
    best = metrics.get("best")
    if best is not None:
        axes.plot(
            [best["recall"]],
            [best["precision"]],
            "*",
            markersize=14,
            color="tab:red",
            label=f"best F={best['fscore']:.3f} at score >= {best['score_threshold']:g}",
        )
    if not sweep:
        axes.text(0.5, 0.5, "no predictions to sweep", ha="center", va="center")
    axes.set_xlim(0, 1.02)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    title = (
        title or f"synaptic partners, matching threshold {metrics['matching_threshold_nm']:g} nm"
    )
    axes.set_title(textwrap.fill(title, width=60), fontsize="medium")
    axes.grid(True, alpha=0.3)
    if sweep:
        axes.legend(loc="lower left")
    figure.savefig(path, format=format)
