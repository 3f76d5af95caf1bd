# ruff: noqa: F821  (`snakemake` is provided by Snakemake's script directive)
from _synful import run_synful

from synful.geometry import RAW_REGION, WORKFLOW_REGIONS

# dask's local worker processes (--workers) re-run this script as __mp_main__
# (multiprocessing "spawn"): only the job's own process runs the command
if __name__ == "__main__":
    # config predict.roi -> the region synful predict resolves in the sample store (none: all of raw)
    region = WORKFLOW_REGIONS[snakemake.params.roi]
    run_synful(
        snakemake,
        "predict",
        snakemake.input.checkpoint,
        snakemake.input.store,
        snakemake.output.predictions,
        [] if region == RAW_REGION else ["--roi", region],
        "--threads",
        snakemake.threads,
        snakemake.params.args,
    )
