# ruff: noqa: F821  (`snakemake` is provided by Snakemake's script directive)
from _synful import run_synful

# a (mask, vectors) pair of networks: the partner vectors come from the vector network's store
vectors = ["--vectors", snakemake.input.vectors] if "vectors" in snakemake.input.keys() else []
run_synful(
    snakemake,
    "evaluate",
    "--pred",
    snakemake.input.synapses,
    "--gt",
    snakemake.input.store,
    "--mask",
    "masks/validation",
    "--out",
    snakemake.output.metrics,
    "--sweep-csv",
    snakemake.output.sweep,
    "--plot",
    snakemake.output.plot,
    "--errors-csv",
    snakemake.output.errors,
    "--errors-at",
    "sweep",
    "--predictions",
    snakemake.input.predictions,
    vectors,
    settings=snakemake.params.settings,
)
