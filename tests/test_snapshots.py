"""Training snapshots are pruned to the last ``keep_snapshots`` iterations."""

import numpy as np
import pytest
import yaml
from _train_stores import TINY_SETUP, write_store

from synful.errors import SynfulError
from synful.train import train
from synful.train.setup import load_setup
from synful.train.snapshots import KEEP_SNAPSHOTS, list_snapshots, prune_snapshots, write_snapshot


def tiny_batch(seed):
    rng = np.random.default_rng(seed)
    out = (2, 8, 8)
    return {
        "raw": rng.uniform(-1, 1, (1, 1, 6, 20, 20)).astype(np.float32),
        "post_indicator": rng.uniform(0, 1, (1, 1, *out)).astype(np.float32),
        "partner_vectors": rng.normal(0, 50, (1, 3, *out)).astype(np.float32),
        "vector_mask": np.ones((1, 1, *out), np.float32),
        "loss_weights": np.ones((1, 1, *out), np.float32),
        "neuron_ids": np.ones((1, *out), np.int64),
        "output_begin": np.array([[80, 24, 24]]),
    }


def write(directory, iteration, keep):
    batch = tiny_batch(iteration)
    predictions = {"post_indicator": batch["post_indicator"]}
    return write_snapshot(
        directory, iteration, batch, predictions, (40, 4, 4), (2, 6, 6), keep=keep
    )


def names(directory):
    return sorted(p.name for p in directory.iterdir())


def test_write_snapshot_keeps_the_last_n(tmp_path):
    directory = tmp_path / "snapshots"
    for iteration in (10, 20, 30, 40):
        write(directory, iteration, keep=2)
    assert names(directory) == ["batch_30.png", "batch_30.zarr", "batch_40.png", "batch_40.zarr"]
    write(directory, 50, keep=0)  # 0 keeps all
    assert sorted(list_snapshots(directory)) == [30, 40, 50]


def test_prune_keeps_the_newest_and_the_current_and_nothing_else_is_touched(tmp_path):
    directory = tmp_path / "snapshots"
    for iteration in (5, 100, 2000, 30000):
        (directory / f"batch_{iteration}.zarr").mkdir(parents=True)
        (directory / f"batch_{iteration}.zarr" / "zarr.json").write_text("{}")
        (directory / f"batch_{iteration}.png").write_bytes(b"png")
    for other in ("notes.txt", "batch_x.zarr", "batch_7.zarr.tmp"):
        (directory / other).write_text("keep me")
    # numeric order, not the order of the names (batch_100 < batch_2000 < batch_30000)
    assert prune_snapshots(directory, 2) == [5, 100]
    assert sorted(list_snapshots(directory)) == [2000, 30000]
    # a resumed run writes an iteration below an existing one: it stays, the oldest goes
    (directory / "batch_1000.png").write_bytes(b"png")
    assert prune_snapshots(directory, 1, current=1000) == [2000]
    assert sorted(list_snapshots(directory)) == [1000, 30000]
    assert {"notes.txt", "batch_x.zarr", "batch_7.zarr.tmp"} <= set(names(directory))
    assert prune_snapshots(directory, 0) == [] and prune_snapshots(tmp_path / "none", 3) == []


def test_setup_key(tmp_path):
    path = tmp_path / "setup.yaml"
    path.write_text(yaml.safe_dump(TINY_SETUP))
    assert load_setup(path).keep_snapshots == KEEP_SNAPSHOTS == 5
    path.write_text(yaml.safe_dump({**TINY_SETUP, "keep_snapshots": 0}))
    assert load_setup(path).keep_snapshots == 0
    path.write_text(yaml.safe_dump({**TINY_SETUP, "keep_snapshots": -1}))
    with pytest.raises(SynfulError, match="keep_snapshots must be >= 0"):
        load_setup(path)


def test_training_keeps_the_last_snapshots(tmp_path):
    store = tmp_path / "s.zarr"
    write_store(store)
    setup = tmp_path / "setup.yaml"
    setup.write_text(yaml.safe_dump({**TINY_SETUP, "snapshot_every": 1, "checkpoint_every": 100}))
    out = tmp_path / "run"
    train(setup, [store], out, iterations=7, device="cpu", progress=False)
    assert sorted(list_snapshots(out / "snapshots")) == [3, 4, 5, 6, 7]
