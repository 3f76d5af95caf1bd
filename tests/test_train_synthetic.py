"""End to end on the synthetic generator: synthesize -> convert -> train -> the checkpoint predicts."""

import numpy as np
import torch
import yaml
from _train_stores import TINY_SETUP

from synful.checkpoint import load_checkpoint
from synful.convert import convert_cremi
from synful.io.cremi import write_cremi
from synful.io.sample_store import open_raw
from synful.io.zarr_array import read
from synful.models import PARTNER_VECTORS, POST_INDICATOR, normalize_raw
from synful.synthetic import synthesize_sample
from synful.train import train
from synful.train.sampling import open_training_sample


def test_train_on_a_synthetic_sample(tmp_path):
    hdf = tmp_path / "syn.hdf"
    write_cremi(hdf, synthesize_sample(seed=4, shape=(12, 96, 96), padding=(6, 24, 24)))
    store, table = tmp_path / "syn.zarr", tmp_path / "syn.parquet"
    convert_cremi(hdf, store, table)
    sample = open_training_sample(store, (40, 4, 4))
    assert len(sample.candidates) > 0  # synapses inside the labelled cube
    setup = tmp_path / "setup.yaml"
    setup.write_text(
        yaml.safe_dump({**TINY_SETUP, "reject_probability": 1.0, "snapshot_every": 100})
    )
    last = train(setup, [store], tmp_path / "run", iterations=2, device="cpu", progress=False)
    checkpoint = load_checkpoint(last)
    assert checkpoint.iteration == 2
    shape = tuple(checkpoint.setup["input_shape"])
    raw = read(open_raw(store))[: shape[0], : shape[1], : shape[2]]
    with torch.no_grad():
        out = checkpoint.model(torch.from_numpy(normalize_raw(raw))[None, None])
    output_shape = checkpoint.model.output_shape(shape)
    assert out[POST_INDICATOR].shape == (1, 1, *output_shape)
    assert out[PARTNER_VECTORS].shape == (1, 3, *output_shape)
    assert np.isfinite(out[PARTNER_VECTORS].numpy()).all()
