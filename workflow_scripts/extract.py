# ruff: noqa: F821  (`snakemake` is provided by Snakemake's script directive)
from _synful import run_synful

run_synful(
    snakemake,
    "extract",
    snakemake.input.predictions,
    snakemake.output.synapses,
    "--seg",
    snakemake.input.store,
    snakemake.params.args,
)
