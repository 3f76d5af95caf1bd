# ruff: noqa: F821  (`snakemake` is provided by Snakemake's script directive)
from _synful import run_synful

# dask's local worker processes re-run this script as __mp_main__ (multiprocessing "spawn"):
# only the job's own process runs the command
if __name__ == "__main__":
    # a (mask, vectors) pair of networks: the partner vectors come from the vector network's store
    vectors = ["--vectors", snakemake.input.vectors] if "vectors" in snakemake.input.keys() else []
    # segment ids from the sample store (none for an existing raw array)
    seg = ["--seg", snakemake.input.store] if snakemake.input.store else []
    run_synful(
        snakemake,
        "extract",
        snakemake.input.predictions,
        snakemake.output.synapses,
        seg,
        vectors,
        # resume a killed job; start fresh when inputs or settings changed
        "--restart-stale",
        "--threads",
        snakemake.threads,
        settings=snakemake.params.settings,
    )
