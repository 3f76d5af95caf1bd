# ruff: noqa: F821  (`snakemake` is provided by Snakemake's script directive)
from _synful import run_synful

run_synful(snakemake, "synthesize", snakemake.output.hdf, settings=snakemake.params.settings)
