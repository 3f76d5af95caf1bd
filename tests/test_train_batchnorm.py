"""BatchNorm statistics in checkpoints: recomputed with the checkpoint's weights."""

import numpy as np
import pytest
import torch
import yaml
from _train_stores import TINY_SETUP, write_store
from torch import nn

from synful.checkpoint import load_checkpoint
from synful.train import train
from synful.train.batchnorm import batch_norms, recompute_statistics
from synful.train.dataset import TrainingBatches


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv3d(1, 3, 1), nn.BatchNorm3d(3), nn.ReLU(), nn.Conv3d(3, 2, 1), nn.BatchNorm3d(2)
    )


def test_recompute_gives_the_plain_average_of_the_batch_statistics():
    net = small_net().eval()
    inputs = [torch.randn(1, 1, 2, 5, 5) * (i + 1) + i for i in range(5)]
    net[1].momentum = 0.3
    used = recompute_statistics(net, iter(inputs + [torch.full((1, 1, 2, 5, 5), 1e6)]), count=5)
    assert used == 5
    assert not net.training and net[1].momentum == 0.3  # mode and momentum restored
    with torch.no_grad():
        features = [net[0](x) for x in inputs]
    means = torch.stack([f.mean(dim=(0, 2, 3, 4)) for f in features])
    variances = torch.stack([f.var(dim=(0, 2, 3, 4), unbiased=True) for f in features])
    torch.testing.assert_close(net[1].running_mean, means.mean(0))
    torch.testing.assert_close(net[1].running_var, variances.mean(0))


def test_recompute_without_batchnorm_does_nothing():
    net = nn.Sequential(nn.Conv3d(1, 1, 1))
    assert recompute_statistics(net, iter([torch.ones(1, 1, 1, 1, 1)]), count=3) == 0
    assert batch_norms(net) == []


def test_separate_stream_differs_from_training_batches(tmp_path):
    path = tmp_path / "s.zarr"
    write_store(path)
    setup = {**TINY_SETUP, "reject_probability": 0.0}
    train_batches = TrainingBatches([path], setup, (10, 40, 40), (2, 4, 4), start=3)
    other = TrainingBatches([path], setup, (10, 40, 40), (2, 4, 4), start=3, stream=1)
    again = TrainingBatches([path], setup, (10, 40, 40), (2, 4, 4), start=3, stream=1)
    a, b, c = (next(iter(d))["raw"] for d in (train_batches, other, again))
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(b, c)


@pytest.fixture()
def stores(tmp_path):
    paths = []
    for seed in (0, 1):
        paths.append(tmp_path / f"s{seed}.zarr")
        write_store(paths[-1], seed=seed)
    return paths


def write_setup(tmp_path, **extra):
    path = tmp_path / "setup.yaml"
    path.write_text(yaml.safe_dump({**TINY_SETUP, "normalization": "batch", **extra}))
    return path


def bn_buffers(path):
    state = load_checkpoint(path).model.state_dict()
    return {k: v for k, v in state.items() if "running" in k}


def test_checkpoint_statistics_are_recomputed_and_survive_resume(tmp_path, stores):
    setup = write_setup(tmp_path, batch_norm_batches=3)
    train(setup, stores, tmp_path / "a", iterations=4, device="cpu", progress=False)
    train(setup, stores, tmp_path / "b", iterations=2, device="cpu", progress=False)
    train(setup, stores, tmp_path / "b", iterations=4, device="cpu", progress=False)
    a, b = (
        bn_buffers(tmp_path / "a" / "checkpoint_4.pt"),
        bn_buffers(tmp_path / "b" / "checkpoint_4.pt"),
    )
    assert a.keys() == b.keys() and a
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    # PyTorch's own running averages (batch_norm_batches 0) are something else
    plain = write_setup(tmp_path, batch_norm_batches=0)
    train(plain, stores, tmp_path / "c", iterations=4, device="cpu", progress=False)
    c = bn_buffers(tmp_path / "c" / "checkpoint_4.pt")
    assert any(not torch.equal(a[k], c[k]) for k in a if k.endswith("running_mean"))
