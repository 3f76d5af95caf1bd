"""One block of a prediction: read raw with context, run the network, write the outputs.

:func:`predict_raw` is the pure part (uint8 raw in, float32 probabilities and nm out);
:class:`PredictBlock` is the block processor for :func:`synful.blockwise.run_blockwise`: a
small picklable configuration whose ``setup()`` loads the checkpoint once per worker and
whose ``process_block(block)`` predicts and writes one block.

Raw outside its ROI is zero-filled, then normalised like every other voxel, so padding is
-1 in the network input (the original padded raw with zeros before ``x / 255 * 2 - 1``).
"""

from __future__ import annotations

import dataclasses
import os
import sys

import numpy as np

from ..geometry import roi_to_slices
from ..io.prediction_store import POST_INDICATOR, encode
from ..io.volumes import open_raw_array
from ..io.zarr_array import open_array, read
from ..models import mask_probability, normalize_raw
from . import flips as symmetries
from .sections import fill_missing_sections, missing_sections


def resolve_device(device: str, worker_index: int | None = None) -> str:
    """``auto`` -> ``cuda`` when available else ``cpu``; plain ``cuda`` -> one GPU per worker.

    Args:
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        worker_index: the local worker number; with several GPUs, worker ``i`` uses GPU
            ``i % count``.
    """
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise RuntimeError("--device cuda: no CUDA device is available")
        device = f"cuda:{(worker_index or 0) % count}"
    return device


def prepare_model(model, device: str):
    """Move ``model`` to ``device``; on CPU, use the channels-last layout.

    Channels-last lets oneDNN run the network's thin (1- and 4-channel) convolutions faster on
    CPU than the default layout (docs/performance.md); the values are the same up to float32
    rounding.
    """
    import torch

    model = model.to(device)
    if torch.device(device).type == "cpu":
        model = model.to(memory_format=torch.channels_last_3d)
    return model.eval()


def predict_raw(
    model, raw: np.ndarray, device: str = "cpu", bf16: bool = False, flips: int = 1
) -> dict:
    """Run ``model`` on uint8 ``raw`` (z, y, x); float32 outputs (probability, nm).

    Use a model from :func:`prepare_model` for speed (any model on ``device`` works).

    Args:
        flips: average the outputs over this many in-plane mirrored and transposed copies of
            ``raw`` (1, 2, 4 or 8; :mod:`.flips`), each mapped back to ``raw``'s frame.

    Returns:
        ``{"post_indicator": (z, y, x) in [0, 1], "partner_vectors": (3, z, y, x) nm}`` for
        the heads the model has. The indicator is the sigmoid of the head's output for a
        ``ce`` model and the linear output clipped to [0, 1] for an ``mse`` model (the
        model's ``mask_activation``; a model without one is read as ``ce``).
    """
    import torch

    from ..train.precision import bf16_autocast

    activation = getattr(model, "mask_activation", "sigmoid")
    x = torch.from_numpy(normalize_raw(raw)[None, None]).to(device)
    device_type = torch.device(device).type
    sums = {}
    # bfloat16 where the device computes it natively; emulated it would be slower than float32
    with torch.inference_mode(), bf16_autocast(x.device, bf16):
        for variant in symmetries.variants(flips):
            x_variant = symmetries.apply(x, variant)
            if device_type == "cpu":
                x_variant = x_variant.contiguous(memory_format=torch.channels_last_3d)
            for head, tensor in model(x_variant).items():
                tensor = tensor.float()
                if head == POST_INDICATOR:
                    tensor = symmetries.undo(mask_probability(tensor, activation), variant)
                else:
                    tensor = symmetries.undo_vectors(tensor, variant)
                sums[head] = tensor if head not in sums else sums[head] + tensor
    result = {}
    for head, tensor in sums.items():
        if flips > 1:
            tensor = tensor / flips
        if head == POST_INDICATOR:
            tensor = tensor[:, 0]
        result[head] = np.ascontiguousarray(tensor[0].cpu().numpy())
    return result


def _worker_index() -> int | None:
    """The local dask worker's number (LocalCluster names workers 0, 1, ...), or None."""
    if "distributed" not in sys.modules:  # not on a dask worker
        return None
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return None
    try:
        return int(name)
    except (TypeError, ValueError):
        return None


@dataclasses.dataclass
class PredictBlock:
    """Block processor of a prediction.

    Args:
        checkpoint: the checkpoint file (absolute path: workers may run elsewhere).
        sample: the raw to read: a sample store or an array (:func:`~synful.io.volumes.open_raw_array`).
        out_store: the (temporary) prediction store, already created.
        heads: the output arrays to write.
        dtype: output dtype option (``uint8``, ``float16``, ``float32``).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (resolved per worker).
        bf16: run the network under bfloat16 autocast where the device computes it natively.
        threads: torch CPU threads per worker (``None``: torch's default).
        fill_missing_sections: fill black sections of the raw from their neighbours before
            the network sees them (:mod:`~synful.predict.sections`).
        flips: average the network's outputs over this many in-plane mirrored and
            transposed copies of each block (:mod:`~synful.predict.flips`).
    """

    checkpoint: str
    sample: str
    out_store: str
    heads: tuple[str, ...]
    dtype: str = "uint8"
    device: str = "auto"
    bf16: bool = False
    threads: int | None = None
    fill_missing_sections: bool = False
    flips: int = 1

    def __post_init__(self):
        self._model = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_model"] = None  # never ship a loaded model; each worker loads its own
        state.pop("_raw", None)
        state.pop("_outputs", None)
        return state

    def setup(self) -> None:
        """Load the checkpoint onto this worker's device and open the arrays (once per worker)."""
        import torch

        from ..checkpoint import load_checkpoint

        if self.threads:
            torch.set_num_threads(int(self.threads))
        self._device = resolve_device(self.device, _worker_index())
        if self._device.startswith("cuda"):
            torch.cuda.set_device(self._device)
            torch.backends.cudnn.benchmark = True  # every block has the same input shape
        self._model = prepare_model(load_checkpoint(self.checkpoint).model, self._device)
        self._raw = open_raw_array(self.sample)
        self._outputs = {head: open_array(self.out_store, head, mode="r+") for head in self.heads}

    def process_block(self, block) -> None:
        """Predict ``block.read_roi`` and write its write ROI (cropped to the output arrays)."""
        if self._model is None:
            self.setup()
        raw = read(self._raw, block.read_roi, fill_value=0)
        if self.fill_missing_sections:
            raw = fill_missing_sections(raw, missing_sections(raw, self._sections_in_raw(block)))
        predictions = predict_raw(self._model, raw, self._device, self.bf16, self.flips)
        for head in self.heads:
            output = self._outputs[head]
            target = block.write_roi.intersect(output.roi)
            if target.empty:
                continue
            values = predictions[head]
            crop = roi_to_slices(target, block.write_roi.begin, output.voxel_size)
            values = values[(slice(None),) * (values.ndim - 3) + crop]
            output[target] = encode(head, values, self.dtype)

    def _sections_in_raw(self, block) -> slice:
        """The sections of ``block.read_roi`` (voxels from its begin) that lie inside the raw."""
        inside = block.read_roi.intersect(self._raw.roi)
        if inside.empty:
            return slice(0, 0)
        size = self._raw.voxel_size[0]
        begin = (inside.begin[0] - block.read_roi.begin[0]) // size
        return slice(begin, begin + inside.shape[0] // size)


def default_threads(workers: int) -> int:
    """CPU threads per local worker so that the workers share the cores."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))
