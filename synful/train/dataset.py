"""Training batches as a torch ``IterableDataset``, prepared by DataLoader worker processes.

Batch ``i`` (the batch trained in iteration ``i``) is drawn from a random generator seeded
with ``(seed, i)``, and with ``W`` workers worker ``w`` makes batches ``start + w``,
``start + w + W``, ... which the DataLoader returns in order; so the batches do not depend on
the number of workers, and a resumed run sees the same batches as an uninterrupted one.
Other streams (``stream > 0``, seeded with ``(seed, i, stream)``) give batches that training
never sees, e.g. for recomputing BatchNorm statistics.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from .batch import make_batch
from .sampling import load_small_arrays, open_training_sample
from .setup import TrainSetup, resolve_setup


class TrainingBatches(IterableDataset):
    """An endless stream of training batches (dicts of numpy arrays) from iteration ``start``.

    Args:
        sample_paths: the sample stores.
        setup: the resolved setup as a dict (plain data, cheap to send to workers).
        input_shape, output_shape: network shapes in voxels.
        start: the iteration of the first batch.
        stream: 0 for the training batches, another number for a separate stream.
    """

    def __init__(
        self,
        sample_paths: Sequence,
        setup: dict,
        input_shape,
        output_shape,
        start: int = 1,
        stream: int = 0,
    ):
        super().__init__()
        self.sample_paths = [str(p) for p in sample_paths]
        self.setup_dict = setup
        self.input_shape = tuple(int(s) for s in input_shape)
        self.output_shape = tuple(int(s) for s in output_shape)
        self.start = int(start)
        self.stream = int(stream)

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        setup: TrainSetup = resolve_setup(self.setup_dict)
        max_bytes = setup.in_memory_mib << 20
        samples = [
            load_small_arrays(open_training_sample(p, setup.voxel_size), max_bytes)
            for p in self.sample_paths
        ]
        iteration = self.start + worker
        while True:
            key = (
                [setup.seed, iteration]
                if self.stream == 0
                else [setup.seed, iteration, self.stream]
            )
            rng = np.random.default_rng(key)
            yield make_batch(rng, samples, setup, self.input_shape, self.output_shape, iteration)
            iteration += workers


def _worker_init(_):
    torch.set_num_threads(1)  # workers run numpy/scipy; leave the cores to the training process


def batch_loader(
    dataset: TrainingBatches, num_workers: int, pin_memory: bool = False
) -> DataLoader:
    """A DataLoader over whole batches with ``num_workers`` background processes (0: inline)."""
    kwargs = {}
    if num_workers > 0:
        kwargs = {"prefetch_factor": 2, "persistent_workers": False, "worker_init_fn": _worker_init}
    return DataLoader(
        dataset, batch_size=None, num_workers=num_workers, pin_memory=pin_memory, **kwargs
    )
