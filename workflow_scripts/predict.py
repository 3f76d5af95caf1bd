# ruff: noqa: F821  (`snakemake` is provided by Snakemake's script directive)
from _synful import run_synful

# dask's local worker processes (--workers) re-run this script as __mp_main__
# (multiprocessing "spawn"): only the job's own process runs the command
if __name__ == "__main__":
    run_synful(
        snakemake,
        "predict",
        snakemake.input.checkpoint,
        snakemake.input.store,
        snakemake.output.predictions,
        # a rerun resumes a killed job's blocks, but starts fresh when the checkpoint, the
        # sample or a setting changed (the unfinished work then has another identity)
        "--restart-stale",
        "--threads",
        snakemake.threads,
        settings=snakemake.params.settings,
    )
