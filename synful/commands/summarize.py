"""``synful summarize RUNS.json --summary SUMMARY.csv ...``: the summary over evaluated runs."""

from __future__ import annotations

NAME = "summarize"
HELP = "summary table, plots and errors by cause over evaluated runs (the workflow's evaluate_all)"
DESCRIPTION = (
    "Summarise evaluated runs (synful.summary). RUNS.json is a JSON list of runs, one object "
    "each: the metrics JSON that synful evaluate wrote ('metrics'), its 'sample' and the keys "
    "that name its configuration (e.g. setup, iteration, the extraction settings, seg). Runs "
    "that differ only in the sample are combined by summing TP/FP/FN into a row whose sample "
    "is 'all'. Writes the summary table (CSV), the F-score by iteration plot and the "
    "precision-recall curve of the best combined run; with --errors-csv/--error-pairs-csv the "
    "errors of the best configuration by cause (from the X.errors.csv beside each metrics "
    "JSON); with --test-runs (the same form, each with its test 'group') the held-out test "
    "samples scored at the configuration chosen on RUNS (--test-csv)."
)


def add_arguments(parser) -> None:
    parser.add_argument("runs", metavar="RUNS.json", help="the evaluated runs (a JSON list)")
    parser.add_argument("--summary", required=True, metavar="SUMMARY.csv", help="table to write")
    parser.add_argument(
        "--fscore-plot", required=True, metavar="PLOT.png", help="F-score by iteration plot"
    )
    parser.add_argument(
        "--pr-plot",
        required=True,
        metavar="PLOT.png",
        help="precision-recall curve of the best run",
    )
    parser.add_argument(
        "--errors-csv",
        default=None,
        metavar="ERRORS.csv",
        help="errors of the best configuration by cause",
    )
    parser.add_argument(
        "--error-pairs-csv", default=None, metavar="PAIRS.csv", help="those errors, one per row"
    )
    parser.add_argument(
        "--test-runs", default=None, metavar="TEST.json", help="held-out test runs (a JSON list)"
    )
    parser.add_argument(
        "--test-csv",
        default=None,
        metavar="TEST.csv",
        help="test table to write (with --test-runs)",
    )


def read_runs(path) -> list[dict]:
    """The runs of a RUNS.json file: a list of objects, each with a ``metrics`` path."""
    import json
    from pathlib import Path

    from ..errors import SynfulError

    try:
        runs = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SynfulError(path, "no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SynfulError(path, f"not a JSON list of runs ({exc})") from None
    if not isinstance(runs, list) or not all(
        isinstance(run, dict) and "metrics" in run for run in runs
    ):
        raise SynfulError(path, "expected a JSON list of runs, each an object with 'metrics'")
    return runs


def run(args) -> int:
    import logging

    from ..errors import SynfulError
    from ..summary import write_summary

    if args.test_csv is not None and args.test_runs is None:
        raise SynfulError("--test-csv", "needs --test-runs")
    table = write_summary(
        read_runs(args.runs),
        args.summary,
        args.fscore_plot,
        args.pr_plot,
        errors_csv=args.errors_csv,
        error_pairs_csv=args.error_pairs_csv,
        test_runs=read_runs(args.test_runs) if args.test_runs is not None else (),
        test_csv=args.test_csv,
    )
    logging.getLogger(__name__).info("summary (%d rows):\n%s", len(table), table.to_string())
    return 0
