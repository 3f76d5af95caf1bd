# ruff: noqa: F821  (`snakemake` is provided by Snakemake's script directive)
from _synful import run_synful

run_synful(
    snakemake,
    "convert",
    snakemake.input.hdf,
    snakemake.output.store,
    "--synapses",
    snakemake.output.synapses,
    settings=snakemake.params.settings,
)
