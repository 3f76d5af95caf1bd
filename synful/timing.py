"""Where a workflow run's time went: Snakemake's per-job benchmark files, summed by stage.

Every rule of the workflow writes ``benchmarks_out/<rule>/....tsv`` (Snakemake ``benchmark:``:
wall seconds ``s``, peak memory ``max_rss`` in MiB, ``cpu_time``). :func:`time_by_stage` sums
them per rule; ``python -m synful.timing [benchmarks_out] [--wall SECONDS]`` prints the table
(``scripts/demo.sh`` does at the end of the demo). Jobs run in parallel, so the stages' job
seconds add up to more than the wall time when several cores are busy.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd

#: the pipeline's order; rules not listed come after, alphabetically
STAGES = [
    "synthesize",
    "download",
    "download_archive",
    "unpack",
    "convert",
    "masks",
    "train",
    "predict",
    "extract",
    "evaluate",
    "evaluate_all",
]


def time_by_stage(benchmarks: str | os.PathLike) -> pd.DataFrame:
    """Jobs, summed wall and CPU seconds and the largest peak memory per rule, in pipeline
    order, with each rule's share of the summed job seconds."""
    rows = []
    root = Path(benchmarks)
    for path in sorted(root.rglob("*.tsv")):
        table = pd.read_csv(path, sep="\t")
        if table.empty or "s" not in table:
            continue
        # a rule with wildcards writes benchmarks_out/<rule>/..., one without benchmarks_out/<rule>.tsv
        rule = path.relative_to(root).parts[0].removesuffix(".tsv")
        last = table.iloc[-1]  # one row per repeat; the workflow runs each job once
        rows.append(
            {
                "stage": rule,
                "s": float(last["s"]),
                "cpu_s": float(last.get("cpu_time", 0.0)),
                "max_rss_mib": float(last.get("max_rss", 0.0)),
            }
        )
    columns = ["stage", "jobs", "job_seconds", "cpu_seconds", "max_rss_mib", "share"]
    if not rows:
        return pd.DataFrame(columns=columns)
    jobs = pd.DataFrame(rows)
    table = (
        jobs.groupby("stage")
        .agg(
            jobs=("s", "size"),
            job_seconds=("s", "sum"),
            cpu_seconds=("cpu_s", "sum"),
            max_rss_mib=("max_rss_mib", "max"),
        )
        .reset_index()
    )
    table["share"] = table["job_seconds"] / table["job_seconds"].sum()
    order = {stage: i for i, stage in enumerate(STAGES)}
    table["order"] = [order.get(stage, len(STAGES)) for stage in table["stage"]]
    return (
        table.sort_values(["order", "stage"]).drop(columns="order").reset_index(drop=True)[columns]
    )


def format_table(table: pd.DataFrame, wall: float | None = None) -> str:
    """The table as text: seconds as m:ss, shares in percent, and the wall time if known."""

    def clock(seconds):
        return f"{int(seconds // 60)}:{seconds % 60:04.1f}"

    lines = [
        f"{'stage':<14}{'jobs':>5}{'job time':>11}{'cpu time':>11}{'share':>7}{'peak MiB':>10}"
    ]
    for row in table.itertuples():
        lines.append(
            f"{row.stage:<14}{row.jobs:>5}{clock(row.job_seconds):>11}"
            f"{clock(row.cpu_seconds):>11}{row.share:>7.0%}{row.max_rss_mib:>10.0f}"
        )
    lines.append(
        f"{'all jobs':<14}{int(table['jobs'].sum()):>5}{clock(table['job_seconds'].sum()):>11}"
    )
    if wall is not None:
        lines.append(f"{'wall time':<14}{'':>5}{clock(wall):>11}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m synful.timing", description=__doc__.splitlines()[0]
    )
    parser.add_argument("benchmarks", nargs="?", default="benchmarks_out")
    parser.add_argument("--wall", type=float, help="the run's wall time in seconds")
    args = parser.parse_args(argv)
    print(format_table(time_by_stage(args.benchmarks), args.wall))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
