# ruff: noqa: F821  (`snakemake` is provided by Snakemake's script directive)
import json
import tempfile
from pathlib import Path

from _synful import run_synful

# the runs (lists of dicts from rules/common.smk) go to synful summarize as JSON files
with tempfile.TemporaryDirectory() as tmp:
    runs, test_runs = Path(tmp) / "runs.json", Path(tmp) / "test_runs.json"
    runs.write_text(json.dumps(snakemake.params.runs))
    test_runs.write_text(json.dumps(snakemake.params.test_runs))
    test_csv = snakemake.output.get("test")  # only when the config names test samples
    run_synful(
        snakemake,
        "summarize",
        runs,
        "--summary",
        snakemake.output.summary,
        "--fscore-plot",
        snakemake.output.fscore_plot,
        "--pr-plot",
        snakemake.output.pr_plot,
        "--errors-csv",
        snakemake.output.errors,
        "--error-pairs-csv",
        snakemake.output.error_pairs,
        "--test-runs",
        test_runs,
        [] if test_csv is None else ["--test-csv", test_csv],
    )
