# ruff: noqa: F821  (`snakemake` is provided by Snakemake's script directive)
from _synful import run_synful

run_synful(
    snakemake,
    "download",
    snakemake.params.url,
    snakemake.output[0],
    settings=snakemake.params.settings,
)
