"""Blockwise prediction (``synful predict``): shapes, block processor, output store, runner.

``predict(checkpoint, sample_store, out_store, *, roi=None, block_shape=None, workers=1,
scheduler=None, device="auto", dtype="uint8", bf16=False, progress=True)`` writes the
prediction store ``post_indicator`` / ``partner_vectors`` (see :mod:`.output_store`) on the
blocks of :mod:`.plan`, through :func:`synful.blockwise.run_blockwise` (:mod:`.run`).
"""

from .output_store import DTYPES, create_prediction_store, encode, head_scale, stored_dtype
from .plan import PredictPlan, network_input_shape, plan_prediction
from .predict_block import PredictBlock, predict_raw, prepare_model, resolve_device
from .run import partial_path, predict

__all__ = [
    "DTYPES",
    "PredictBlock",
    "PredictPlan",
    "create_prediction_store",
    "encode",
    "head_scale",
    "network_input_shape",
    "partial_path",
    "plan_prediction",
    "predict",
    "predict_raw",
    "prepare_model",
    "resolve_device",
    "stored_dtype",
]
