"""Writing evaluation results: the metrics JSON, the sweep CSV, the precision-recall plot and
the per-error table.

Every file is written through :func:`synful.atomic.atomic_output`, and :func:`write_results`
renames them only after all were written, so a failure leaves none that looks complete.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pandas as pd

from ..atomic import atomic_output
from .plots import plot_precision_recall
from .score import METRIC_KEYS

SWEEP_COLUMNS = ("score_threshold",) + METRIC_KEYS


def metrics_json_text(metrics: dict) -> str:
    return json.dumps(metrics, indent=2) + "\n"


def sweep_table(metrics: dict) -> pd.DataFrame:
    """The sweep as a table, one row per score threshold (columns ``SWEEP_COLUMNS``)."""
    sweep = metrics.get("sweep")
    if sweep is None:
        raise ValueError("the metrics have no score-threshold sweep")
    return pd.DataFrame(
        [[entry[c] for c in SWEEP_COLUMNS] for entry in sweep], columns=SWEEP_COLUMNS
    )


def write_metrics_json(metrics: dict, path: str | os.PathLike) -> None:
    """Write the metrics dict as JSON, atomically."""
    with atomic_output(path) as tmp:
        Path(tmp).write_text(metrics_json_text(metrics))


def write_sweep_csv(metrics: dict, path: str | os.PathLike) -> None:
    """Write the sweep as CSV (one row per threshold), atomically."""
    table = sweep_table(metrics)
    with atomic_output(path) as tmp:
        table.to_csv(tmp, index=False)


def write_precision_recall_plot(
    metrics: dict, path: str | os.PathLike, title: str | None = None
) -> None:
    """Write the precision-recall plot (PNG, or any format matplotlib knows by suffix), atomically."""
    with atomic_output(path) as tmp:
        plot_precision_recall(
            metrics, tmp, title=title, format=Path(path).suffix.lstrip(".") or "png"
        )


def write_results(
    metrics: dict,
    out: str | os.PathLike,
    sweep_csv: str | os.PathLike | None = None,
    plot: str | os.PathLike | None = None,
    title: str | None = None,
    errors: pd.DataFrame | None = None,
    errors_csv: str | os.PathLike | None = None,
) -> None:
    """Write the JSON (and the CSV, plot and per-error table when asked); all appear together
    or none does."""
    if (errors is None) != (errors_csv is None):
        raise ValueError("errors and errors_csv go together")
    with contextlib.ExitStack() as stack:
        if errors_csv is not None:
            tmp = stack.enter_context(atomic_output(errors_csv))
            errors.to_csv(tmp, index=False)
        if sweep_csv is not None:
            table = sweep_table(metrics)
            tmp = stack.enter_context(atomic_output(sweep_csv))
            table.to_csv(tmp, index=False)
        if plot is not None:
            tmp = stack.enter_context(atomic_output(plot))
            plot_precision_recall(
                metrics, tmp, title=title, format=Path(plot).suffix.lstrip(".") or "png"
            )
        tmp = stack.enter_context(atomic_output(out))
        Path(tmp).write_text(metrics_json_text(metrics))
