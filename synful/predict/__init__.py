"""Blockwise prediction (``synful predict``): shapes, block processor, output store, runner.

``predict(checkpoint, sample_store, out_store, *, roi=None, block_shape=None, workers=1,
scheduler=None, device="auto", dtype="uint8", bf16=False, fill_missing_sections=False,
flips=1, progress=True)`` writes the prediction store ``post_indicator`` /
``partner_vectors`` (:mod:`synful.io.prediction_store`, one chunk or shard per block:
:mod:`.output_store`) on the blocks of :mod:`.plan` (``roi``:
a box or a region named after the sample store's arrays, see :mod:`.roi`), through
:func:`synful.blockwise.run_blockwise` (:mod:`.volume`); ``flips`` averages the network over
mirrored and transposed copies of each block (:mod:`.flips`).
"""

from .block import PredictBlock, predict_raw, prepare_model, resolve_device
from .output_store import DTYPES, create_prediction_store
from .plan import PredictPlan, network_input_shape, plan_prediction
from .roi import nonzero_bounding_box, resolve_roi
from .volume import partial_path, predict

__all__ = [
    "DTYPES",
    "PredictBlock",
    "PredictPlan",
    "create_prediction_store",
    "network_input_shape",
    "nonzero_bounding_box",
    "partial_path",
    "plan_prediction",
    "predict",
    "predict_raw",
    "prepare_model",
    "resolve_device",
    "resolve_roi",
]
