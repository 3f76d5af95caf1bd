"""The summary over evaluated runs (``evaluate_all``): one table, an F-score plot, a PR curve.

A *run* is one evaluation: a setup, a checkpoint iteration, extraction settings (the grid
point) and a sample, with the metrics JSON that ``synful evaluate`` wrote for it. Runs that
differ only in the sample are combined by summing TP/FP/FN
(:func:`synful.evaluate.combine_metrics`, as the paper did over A, B and C) into a row whose
sample is ``all``.

Held-out *test* runs (samples never trained or validated on, in named groups) are scored at
the one configuration chosen on the validation runs (:func:`summarize_test`): the model,
checkpoint, extraction setting, seg variant and score threshold of the best combined
validation row, so the test numbers say how that choice does on new data.

With the per-error tables ``synful evaluate --errors-csv --errors-at sweep`` wrote beside each
metrics JSON (:func:`synful.evaluate.errors_path`), the summary also counts the errors of the
best configuration by cause (:func:`summarize_errors`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import atomic_output
from .errors import SynfulError
from .evaluate import combine_metrics, error_counts_table, errors_path, read_errors
from .evaluate.errors import ERROR_COLUMNS, at_threshold, count_errors
from .evaluate.outputs import write_precision_recall_plot
from .outputs import FILE, claim, output

COMBINED = "all"
COUNTS = ["tp", "fp", "fn", "precision", "recall", "fscore", "n_gt", "n_pred"]
BEST = ["score_threshold", "precision", "recall", "fscore"]


def read_metrics(path: str | os.PathLike) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SynfulError(path, "no such file") from None
    except json.JSONDecodeError as exc:
        raise SynfulError(path, f"not a metrics JSON ({exc.msg})") from None


def _row(keys: dict, metrics: dict) -> dict:
    row = dict(keys)
    row.update({name: metrics.get(name) for name in COUNTS})
    best = metrics.get("best") or {}
    row.update({f"best_{name}": best.get(name) for name in BEST})
    return row


def summarize_runs(runs: Sequence[dict]) -> tuple[pd.DataFrame, dict[tuple, dict]]:
    """The summary table of evaluated runs and the combined metrics of each run group.

    Args:
        runs: dicts with the run's keys (``setup``, ``iteration``, extraction settings,
            ``sample``) and ``metrics``, the path of its metrics JSON.

    Returns:
        A table with one row per run and one combined row (``sample == "all"``) per group of
        runs that differ only in the sample; and the combined metrics by group key (the values
        of the key columns other than ``sample``, in column order).
    """
    if not runs:
        raise SynfulError(None, "no evaluated runs to summarize")
    key_columns = run_keys(runs)
    groups: dict[tuple, list[dict]] = {}
    rows = []
    for run in runs:
        metrics = read_metrics(run["metrics"])
        keys = {k: run[k] for k in key_columns}
        rows.append(_row(keys | {"sample": run["sample"]}, metrics))
        groups.setdefault(tuple(keys.values()), []).append(metrics)
    combined = {}
    for group, metrics in groups.items():
        try:
            combined[group] = combine_metrics(metrics)
        except ValueError as exc:
            raise SynfulError(None, f"cannot combine the runs {group}: {exc}") from None
        rows.append(_row(dict(zip(key_columns, group)) | {"sample": COMBINED}, combined[group]))
    table = pd.DataFrame(rows)
    return table.sort_values(key_columns + ["sample"], kind="stable").reset_index(
        drop=True
    ), combined


def run_keys(runs: Sequence[dict]) -> list[str]:
    """The keys that name a run group: every key of a run but ``sample`` and ``metrics``."""
    return [k for k in runs[0] if k not in ("sample", "metrics")]


def ranking_fscore(rows: pd.DataFrame) -> pd.Series:
    """The F-score runs are ranked by: the best of the sweep, or the plain one without sweep."""
    return rows["best_fscore"].fillna(rows["fscore"]).astype(float)


def best_group(table: pd.DataFrame) -> pd.Series:
    """The combined row with the highest F-score (best of the sweep when there is one)."""
    combined = table[table["sample"] == COMBINED]
    return combined.loc[ranking_fscore(combined).idxmax()]


def chosen_score_threshold(best: pd.Series) -> float | None:
    """The best row's score threshold (``None``: all predictions, the runs had no sweep)."""
    threshold = best.get("best_score_threshold")
    return None if threshold is None or pd.isna(threshold) else float(threshold)


def plot_fscore_by_iteration(table: pd.DataFrame, path: str | os.PathLike) -> list[str]:
    """Plot the F-score (:func:`ranking_fscore`) of the combined runs against iteration.

    Returns:
        The line labels: one line per setup and extraction setting (``key=value ...``).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    combined = table[table["sample"] == COMBINED]
    fscore = ranking_fscore(combined)
    line_keys = [
        c
        for c in combined.columns
        if c not in ("iteration", "sample") and c not in COUNTS and not c.startswith("best_")
    ]
    figure = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    labels = []
    for values, line in combined.groupby(line_keys, sort=True):
        labels.append(" ".join(f"{k}={v}" for k, v in zip(line_keys, values)))
        line = line.sort_values("iteration")
        axes.plot(line["iteration"], fscore[line.index], "-o", markersize=4, label=labels[-1])
    axes.set_xlabel("training iteration")
    axes.set_ylabel("F-score (all evaluated samples)")
    axes.set_ylim(0, 1)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="best")
    figure.tight_layout()
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png")
    return labels


def _entry_at(metrics: dict, score_threshold: float | None) -> dict:
    """The counts of a metrics dict at a score threshold (all predictions for ``None``)."""
    if score_threshold is None:
        return metrics
    for entry in metrics.get("sweep") or []:
        if float(entry["score_threshold"]) == score_threshold:
            return entry
    raise KeyError(score_threshold)


def summarize_errors(
    runs: Sequence[dict], table: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The errors of the best configuration (:func:`best_group`) by cause, per sample.

    Each run's per-error table is read from beside its metrics JSON (:func:`errors_path`) and
    cut at the best configuration's score threshold (the best of the sweep summed over the
    samples; all predictions without a sweep), so the ``all`` row's ``fn`` and ``fp`` are the
    counts the best F-score was computed from.

    Args:
        runs: as for :func:`summarize_runs`.
        table: the summary table of ``runs``.

    Returns:
        The counts (the configuration's key columns, ``sample``, ``score_threshold`` and
        :data:`synful.evaluate.COUNT_COLUMNS`; one row per sample, then ``all``) and the
        errors themselves (``sample`` and the per-error columns; the configuration's keys
        are left out, since ``score`` there is the prediction's score).

    Raises:
        SynfulError: a missing or unreadable errors table, or one that does not hold the
            errors at that threshold (written without ``--errors-at sweep``).
    """
    best = best_group(table)
    key_columns = run_keys(runs)
    threshold = chosen_score_threshold(best)
    members = [run for run in runs if all(run[k] == best[k] for k in key_columns)]
    per_sample, listed = {}, []
    for run in members:
        path = errors_path(run["metrics"])
        errors = at_threshold(read_errors(path), threshold)
        counts = count_errors(errors)
        try:
            entry = _entry_at(read_metrics(run["metrics"]), threshold)
        except KeyError:
            raise SynfulError(
                run["metrics"], f"has no sweep entry at score >= {threshold:g}"
            ) from None
        if (counts["fn"], counts["fp"]) != (entry["fn"], entry["fp"]):
            where = "all predictions" if threshold is None else f"score >= {threshold:g}"
            raise SynfulError(
                path,
                f"holds {counts['fn']} false negatives and {counts['fp']} false positives at "
                f"{where}, the metrics {entry['fn']} and {entry['fp']} (written without "
                "--errors-at sweep?)",
            )
        per_sample[run["sample"]] = errors
        listed.append(errors.assign(sample=run["sample"]))
    counts = error_counts_table(per_sample, combined=COMBINED)
    counts["score_threshold"] = np.nan if threshold is None else threshold
    keys = {k: best[k] for k in key_columns}
    counts = pd.concat([pd.DataFrame([keys] * len(counts)), counts], axis=1)
    pairs = pd.concat(listed, ignore_index=True) if listed else pd.DataFrame(columns=ERROR_COLUMNS)
    pairs = pairs[["sample", *ERROR_COLUMNS]]
    return counts, pairs


def summarize_test(
    runs: Sequence[dict], test_runs: Sequence[dict], table: pd.DataFrame
) -> pd.DataFrame:
    """The held-out test samples at the configuration chosen on the validation runs.

    The configuration is :func:`best_group` of ``table`` (the validation summary): its key
    values and its best score threshold (all predictions without a sweep). Each test run with
    those keys is read at that threshold; each group's runs are summed into a row whose
    sample is ``all``.

    Args:
        runs: the validation runs (as for :func:`summarize_runs`).
        test_runs: test runs: the same keys, ``sample``, ``metrics`` and ``group`` (the name of
            the test set the sample belongs to).
        table: the summary table of ``runs``.

    Returns:
        One row per test sample, then one ``all`` row per group: the configuration's key
        columns, ``group``, ``sample``, ``score_threshold`` and the counts
        (:data:`COUNTS`).

    Raises:
        SynfulError: no test run has the chosen configuration, or a test run has no sweep
            entry at its score threshold.
    """
    best = best_group(table)
    key_columns = run_keys(runs)
    threshold = chosen_score_threshold(best)
    keys = {k: best[k] for k in key_columns}
    chosen = [run for run in test_runs if all(run[k] == keys[k] for k in key_columns)]
    if not chosen:
        raise SynfulError(None, f"no test run has the configuration chosen on validation ({keys})")
    rows, groups = [], {}
    for run in chosen:
        try:
            entry = _entry_at(read_metrics(run["metrics"]), threshold)
        except KeyError:
            raise SynfulError(
                run["metrics"], f"has no sweep entry at score >= {threshold:g}"
            ) from None
        rows.append(keys | {"group": run["group"], "sample": run["sample"]} | entry)
        groups.setdefault(run["group"], []).append(entry)
    for group, entries in groups.items():
        rows.append(keys | {"group": group, "sample": COMBINED} | combine_metrics(entries))
    out = pd.DataFrame(rows)
    out["score_threshold"] = np.nan if threshold is None else threshold
    return out[[*key_columns, "group", "sample", "score_threshold", *COUNTS]]


def write_summary(
    runs: Sequence[dict],
    table_path: str | os.PathLike,
    fscore_plot: str | os.PathLike,
    pr_plot: str | os.PathLike,
    errors_csv: str | os.PathLike | None = None,
    error_pairs_csv: str | os.PathLike | None = None,
    test_runs: Sequence[dict] = (),
    test_csv: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Write the summary table (CSV), the F-score plot and the PR curve of the best run.

    Args:
        runs: as for :func:`summarize_runs`.
        table_path: the CSV to write.
        fscore_plot: the F-score against iteration plot.
        pr_plot: the precision-recall curve of the best combined run (needs a sweep).
        errors_csv: also write the best configuration's errors by cause per sample
            (:func:`summarize_errors`); needs the per-error table beside each metrics JSON.
        error_pairs_csv: also write those errors one per row.
        test_runs: held-out test runs (see :func:`summarize_test`).
        test_csv: where to write the test table (needed with ``test_runs``).
    """
    if test_runs and test_csv is None:
        raise SynfulError(None, "test runs given without a test table to write")
    paths = [table_path, fscore_plot, pr_plot]
    inputs = [run["metrics"] for run in [*runs, *test_runs]]
    if errors_csv is not None or error_pairs_csv is not None:
        inputs += [errors_path(run["metrics"]) for run in runs]
    extra = [p for p in (errors_csv, error_pairs_csv, test_csv) if p is not None]
    with claim([output(path, FILE) for path in paths + extra], inputs=inputs):
        return _write_summary(runs, *paths, errors_csv, error_pairs_csv, test_runs, test_csv)


def _write_summary(
    runs,
    table_path,
    fscore_plot,
    pr_plot,
    errors_csv=None,
    error_pairs_csv=None,
    test_runs=(),
    test_csv=None,
) -> pd.DataFrame:
    table, combined = summarize_runs(runs)
    tables = {}
    if errors_csv is not None or error_pairs_csv is not None:
        counts, pairs = summarize_errors(runs, table)
        tables = {errors_csv: counts, error_pairs_csv: pairs}
    if test_csv is not None:
        tables[test_csv] = summarize_test(runs, test_runs, table)
    best = best_group(table)
    key_columns = run_keys(runs)
    best_metrics = combined[tuple(best[k] for k in key_columns)]
    title = ", ".join(f"{k} {best[k]}" for k in key_columns)
    plot_fscore_by_iteration(table, fscore_plot)
    if not best_metrics.get("sweep"):
        raise SynfulError(pr_plot, "the runs have no score-threshold sweep to plot")
    write_precision_recall_plot(best_metrics, pr_plot, title=title)
    for path, data in tables.items():
        if path is not None:
            with atomic_output(path) as tmp:
                data.to_csv(tmp, index=False)
    with atomic_output(table_path) as tmp:
        table.to_csv(tmp, index=False)
    return table


def format_results(results: str | os.PathLike) -> str:
    """The configuration chosen on validation and, when there is ``test.csv``, how it does on
    each held-out test group: a few lines for the end of a run (``scripts/demo.sh``)."""
    results = Path(results)
    table = pd.read_csv(results / "summary.csv")
    best = best_group(table)
    fixed = {"setup", "iteration", "sample", "seg", *COUNTS} | {f"best_{n}" for n in BEST}
    settings = " ".join(f"{k} {best[k]}" for k in table.columns if k not in fixed)
    threshold = chosen_score_threshold(best)
    cut = "" if threshold is None else f", score >= {threshold:g}"
    precision, recall, fscore = (
        best[n] if pd.isna(best[f"best_{n}"]) else best[f"best_{n}"]
        for n in ("precision", "recall", "fscore")
    )
    lines = [
        f"Chosen on the validation samples: {best['setup']} at iteration {best['iteration']}, "
        f"{settings}, seg {best.get('seg', '-')}{cut}",
        f"  validation ({int(best['n_gt'])} true pairs): precision {precision:.3f}, "
        f"recall {recall:.3f}, F {fscore:.3f}",
    ]
    if (results / "test.csv").exists():
        test = pd.read_csv(results / "test.csv")
        lines.append("Held-out test samples at that configuration:")
        for _, row in test[test["sample"] == COMBINED].iterrows():
            samples = int((test["group"] == row["group"]).sum() - 1)
            lines.append(
                f"  {row['group']} ({samples} sample{'s' * (samples != 1)}, {int(row['n_gt'])} true pairs): precision "
                f"{row['precision']:.3f}, recall {row['recall']:.3f}, F {row['fscore']:.3f}"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(format_results(sys.argv[1] if len(sys.argv) > 1 else "results"))
