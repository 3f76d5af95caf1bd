# ruff: noqa: F821  (`snakemake` is provided by Snakemake's script directive)
import logging

from _synful import log_to

from synful.summary import write_summary

with log_to(snakemake.log[0]):
    table = write_summary(
        snakemake.params.runs,
        snakemake.output.summary,
        snakemake.output.fscore_plot,
        snakemake.output.pr_plot,
        errors_csv=snakemake.output.errors,
        error_pairs_csv=snakemake.output.error_pairs,
        test_runs=snakemake.params.test_runs,
        test_csv=snakemake.output.get("test"),
    )
    logging.getLogger("evaluate_all").info("summary (%d rows):\n%s", len(table), table.to_string())
