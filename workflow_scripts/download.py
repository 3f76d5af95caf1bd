# ruff: noqa: F821  (`snakemake` is provided by Snakemake's script directive)
from _synful import run_synful

url, *options = snakemake.params.args
run_synful(snakemake, "download", url, snakemake.output[0], options)
