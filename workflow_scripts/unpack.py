# ruff: noqa: F821  (`snakemake` is provided by Snakemake's script directive)
from _synful import run_synful

run_synful(
    snakemake,
    "unpack",
    snakemake.input.archive,
    snakemake.wildcards.member,
    snakemake.output.member,
)
