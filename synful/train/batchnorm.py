"""BatchNorm running statistics that a checkpoint can rely on ("precise BatchNorm").

With one sample per batch, PyTorch's running averages (momentum 0.1) follow the last ~10
training batches, computed with weights that have changed since; the statistics stored in a
checkpoint, and with them the calibration of the predicted indicator, jump from one checkpoint
to the next. Averaging the training batches' statistics over recent iterations does not help:
the weights move too much in that time (measured on the demo: docs/training.md, "BatchNorm
statistics in checkpoints").

So before a checkpoint is written, the statistics are recomputed with its final weights: the
plain average (PyTorch's ``momentum=None``) over ``count`` batches of a separate, deterministic
stream of training batches, in training mode without gradients. The statistics depend only on
the weights and the checkpoint's iteration, so a resumed run stores the same ones as an
uninterrupted run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers of ``model``."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recompute_statistics(
    model: nn.Module,
    inputs: Iterable[torch.Tensor],
    count: int,
    forward: Callable[[torch.Tensor], object] | None = None,
) -> int:
    """Replace the running statistics of every BatchNorm layer of ``model`` by their plain
    average over the first ``count`` of ``inputs`` (raw batches, already on the device).

    Args:
        model: the network; left in the training/eval mode it was in.
        inputs: input batches.
        count: how many batches to use.
        forward: how to run the model on a batch (e.g. under autocast); default ``model(x)``.

    Returns:
        the number of batches used.
    """
    layers = batch_norms(model)
    if not layers or count < 1:
        return 0
    momenta = [layer.momentum for layer in layers]
    was_training = model.training
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # cumulative average
    model.train()
    used = 0
    try:
        for x in inputs:
            if used == count:
                break
            (forward or model)(x)
            used += 1
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        model.train(was_training)
    return used
