"""Training (``synful train``): setup schema, sampling, augmentation, batches, losses, the loop.

Python API: ``train(setup_path, samples, out_dir, *, iterations=None, device="auto") -> Path``
(the last checkpoint), ``load_setup(path) -> TrainSetup``.

The loop (and with it torch) is imported on first use, so ``synful.train.setup`` can be read
without torch (the workflow checks its setups that way when it loads).
"""

from .setup import TrainSetup, load_setup, resolve_setup

__all__ = ["TrainSetup", "load_setup", "resolve_setup", "train", "train_setup"]


def __getattr__(name):
    if name in ("train", "train_setup"):
        from . import loop

        return getattr(loop, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
