# ruff: noqa: F821  (`snakemake` is provided by Snakemake's script directive)
import torch
from _synful import run_synful

# config predict.roi -> synful predict --roi (resolved against the sample store by synful)
ROI = {"labels": ["--roi", "labels"], "validation": ["--roi", "masks/validation"], "raw": []}

# dask's local worker processes (--workers) re-run this script as __mp_main__
# (multiprocessing "spawn"): only the job's own process runs the command
if __name__ == "__main__":
    torch.set_num_threads(snakemake.threads)
    run_synful(
        snakemake,
        "predict",
        snakemake.input.checkpoint,
        snakemake.input.store,
        snakemake.output.predictions,
        ROI[snakemake.params.roi],
        snakemake.params.args,
    )
