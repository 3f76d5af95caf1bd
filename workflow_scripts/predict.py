# ruff: noqa: F821  (`snakemake` is provided by Snakemake's script directive)
import torch
from _synful import run_synful

from synful.io.sample_store import open_neuron_ids

torch.set_num_threads(snakemake.threads)
roi = []
if snakemake.params.roi == "labels":  # predict the labelled region only
    labels = open_neuron_ids(snakemake.input.store).roi
    roi = ["--roi", ",".join(f"{b}:{e}" for b, e in zip(labels.begin, labels.end))]
run_synful(
    snakemake,
    "predict",
    snakemake.input.checkpoint,
    snakemake.input.store,
    snakemake.output.predictions,
    roi,
    snakemake.params.args,
)
