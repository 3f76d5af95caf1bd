# ruff: noqa: F821  (`snakemake` is provided by Snakemake's script directive)
from _synful import run_synful

run_synful(
    snakemake,
    "evaluate",
    "--pred",
    snakemake.input.synapses,
    "--gt",
    snakemake.input.store,
    "--mask",
    f"{snakemake.input.store}/masks/validation",
    "--out",
    snakemake.output.metrics,
    "--sweep-csv",
    snakemake.output.sweep,
    "--plot",
    snakemake.output.plot,
    snakemake.params.args,
)
