# ruff: noqa: F821  (`snakemake` is provided by Snakemake's script directive)
from _synful import run_synful

run_synful(
    snakemake,
    "masks",
    snakemake.input.store,
    "--synapses",
    snakemake.input.synapses,
    "--summary",
    snakemake.output.summary,
    settings=snakemake.params.settings,
)
