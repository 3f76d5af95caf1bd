"""Shared helpers for the predict tests: a tiny real checkpoint and a sample store."""

import numpy as np
import torch
import zarr

from synful.checkpoint import save_checkpoint
from synful.io.zarr_array import write_volume
from synful.models import build_model

VOXEL = (4, 2, 2)
RAW_OFFSET = (8, 4, 6)


def tiny_setup(**overrides) -> dict:
    """A small real setup: output grid (2, 4, 4), input (30, 60, 60) -> output (6, 20, 20)."""
    setup = {
        "voxel_size": list(VOXEL),
        "downsample_factors": [[1, 2, 2], [2, 2, 2]],
        "fmap_num": 3,
        "fmap_inc_factor": 2,
    }
    setup.update(overrides)
    model = build_model(setup)
    setup.setdefault("input_shape", list(model.valid_input_shape((30, 60, 60))))
    return setup


def make_checkpoint(path, seed=0, **overrides):
    """Save a randomly initialised (real) network as a checkpoint; returns (path, model)."""
    setup = tiny_setup(**overrides)
    torch.manual_seed(seed)
    model = build_model(setup)
    # random init gives near-constant outputs: widen the heads so quantisation is exercised
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)
        if model.mask_head is not None:
            model.mask_head.weight.mul_(10)
        if model.vector_head is not None:
            model.vector_head.weight.mul_(16)
    save_checkpoint(path, model=model, setup=setup, iteration=7)
    return path, model.eval()


def make_sample(path, shape=(13, 30, 34), voxel_size=VOXEL, seed=1, dtype=np.uint8):
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, size=shape).astype(dtype)
    write_volume(zarr.open_group(str(path), mode="w"), "raw", raw, voxel_size, RAW_OFFSET)
    return path, raw


def finished_blocks(out) -> set[int]:
    """The blocks an unfinished ``synful predict`` into ``out`` has marked done."""
    from synful.blockwise import DoneMarkers
    from synful.predict import partial_path

    markers = DoneMarkers(partial_path(out) / ".blocks_done")
    try:
        return markers.done_ids()
    finally:
        markers.close()
