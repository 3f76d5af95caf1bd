"""Training (``synful train``): setup schema, sampling, augmentation, batches, losses, the loop.

Python API: ``train(setup_path, samples, out_dir, *, iterations=None, device="auto") -> Path``
(the last checkpoint), ``load_setup(path) -> TrainSetup``.
"""

from .loop import train, train_setup
from .setup import TrainSetup, load_setup, resolve_setup

__all__ = ["TrainSetup", "load_setup", "resolve_setup", "train", "train_setup"]
