"""The synful networks (PyTorch): ``build_model(setup)``, ``normalize_raw`` and shapes.

The setup keys read here (defaults in :data:`MODEL_DEFAULTS`) are ``network_type``
(``vanilla`` | ``dh_unet``), ``downsample_factors``, ``fmap_num``, ``fmap_inc_factor``,
``m_loss_scale`` / ``d_loss_scale`` (a head exists when its loss scale is > 0, as in the
original), ``d_scale`` and ``kernel_sizes`` (one (z, y, x) kernel per level; ``None``: the
original's 3x3x3 everywhere) and ``normalization`` (``none`` | ``batch``). Any other key is ignored, so a full training setup can be passed.
"""

from __future__ import annotations

import numpy as np

from .synful_net import NETWORK_TYPES, PARTNER_VECTORS, POST_INDICATOR, SynfulNet
from .unet import UNet, unet_output_shape, valid_input_shape

__all__ = [
    "MODEL_DEFAULTS",
    "NETWORK_TYPES",
    "PARTNER_VECTORS",
    "POST_INDICATOR",
    "SynfulNet",
    "UNet",
    "build_model",
    "model_heads",
    "normalize_raw",
    "unet_output_shape",
    "valid_input_shape",
]

MODEL_DEFAULTS = {
    "network_type": "vanilla",
    "downsample_factors": [[1, 3, 3], [1, 3, 3], [3, 3, 3]],
    "fmap_num": 4,
    "fmap_inc_factor": 5,
    "m_loss_scale": 1.0,
    "d_loss_scale": 1.0,
    "d_scale": 1.0,
    "kernel_sizes": None,
    "normalization": "none",
}


def model_heads(setup: dict) -> tuple[bool, bool]:
    """(mask head, vector head): a head exists when its loss scale is > 0."""
    get = lambda key: setup.get(key, MODEL_DEFAULTS[key])  # noqa: E731
    return float(get("m_loss_scale")) > 0, float(get("d_loss_scale")) > 0


def build_model(setup: dict) -> SynfulNet:
    """Build the network a setup describes (missing keys take :data:`MODEL_DEFAULTS`).

    Raises:
        ValueError: for an unknown network type or inconsistent heads.
    """
    get = lambda key: setup.get(key, MODEL_DEFAULTS[key])  # noqa: E731
    mask_head, vector_head = model_heads(setup)
    return SynfulNet(
        network_type=str(get("network_type")),
        downsample_factors=[[int(f) for f in factor] for factor in get("downsample_factors")],
        fmap_num=int(get("fmap_num")),
        fmap_inc_factor=int(get("fmap_inc_factor")),
        mask_head=mask_head,
        vector_head=vector_head,
        d_scale=float(get("d_scale")),
        kernel_sizes=None if get("kernel_sizes") is None else [[int(k) for k in kernel] for kernel in get("kernel_sizes")],
        normalization=str(get("normalization")),
    )


def normalize_raw(raw: np.ndarray) -> np.ndarray:
    """uint8 raw -> float32 in [-1, 1] (``raw / 255 * 2 - 1``), as the original network input."""
    return (np.asarray(raw, dtype=np.float32) / np.float32(255.0)) * np.float32(2.0) - np.float32(1.0)
