# ruff: noqa: F821  (`snakemake` is provided by Snakemake's script directive)
from _synful import run_synful

run_synful(
    snakemake,
    "train",
    snakemake.input.setup,
    "--samples",
    list(snakemake.input.stores),
    "--checkpoint",
    snakemake.output.checkpoint,
    # continue the declared previous checkpoint (none for the first one: from scratch)
    "--from",
    snakemake.input.previous or "scratch",
    "--device",
    snakemake.params.device,
    "--threads",
    snakemake.threads,
)
