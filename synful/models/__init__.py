"""The synful networks (PyTorch): ``build_model(setup)``, ``normalize_raw`` and shapes.

The setup keys read here (defaults in :data:`MODEL_DEFAULTS`, from
:mod:`synful.settings.train`, their one owner) are ``network_type``
(``vanilla`` | ``dh_unet``), ``downsample_factors``, ``fmap_num``, ``fmap_inc_factor``,
``m_loss_scale`` / ``d_loss_scale`` (a head exists when its loss scale is > 0, as in the
original), ``d_scale`` and ``kernel_sizes`` (one (z, y, x) kernel per level; ``None``: the
original's 3x3x3 everywhere), ``normalization`` (``none`` | ``batch``), ``init`` (``he``, the
default, or ``glorot``, the original's TF1 default; see :mod:`synful.models.synful_net`) and
``mask_loss`` (``ce`` | ``mse``: it fixes how the mask head's linear output becomes a value in
[0, 1], a sigmoid for ``ce`` and a clip to [0, 1] for ``mse``; checkpoints written before the
key existed resolve to ``ce``, what they were trained with) and ``skip_alignment``
(``geometric`` | ``centre_crop``: where the U-Net cuts its skip connections, see
:mod:`synful.models.unet`). Any other key is ignored, so a full training setup can be passed.

``MODEL_DEFAULTS`` are what a setup *without* a key was built with: ``skip_alignment`` is
``centre_crop`` there, the only alignment before the key existed, so older checkpoints keep
their function. New training setups (:class:`synful.train.setup.TrainSetup`, whose resolved
setup, with every key, goes into each checkpoint) default to ``geometric``, the original's.
"""

from __future__ import annotations

import numpy as np

from ..settings.train import model_defaults
from .synful_net import (
    INITS,
    NETWORK_TYPES,
    PARTNER_VECTORS,
    POST_INDICATOR,
    SynfulNet,
    mask_probability,
)
from .unet import SKIP_ALIGNMENTS, UNet, unet_output_shape, valid_input_shape

__all__ = [
    "INITS",
    "MASK_ACTIVATION",
    "MODEL_DEFAULTS",
    "NETWORK_TYPES",
    "PARTNER_VECTORS",
    "POST_INDICATOR",
    "SKIP_ALIGNMENTS",
    "SynfulNet",
    "UNet",
    "build_model",
    "mask_probability",
    "model_heads",
    "normalize_raw",
    "unet_output_shape",
    "valid_input_shape",
]

#: the network keys' defaults for a setup without them: a new setup's
#: (:class:`synful.settings.train.SetupSettings`), but skip_alignment: centre_crop for
#: checkpoints written before the key existed (``LEGACY_DEFAULTS`` there)
MODEL_DEFAULTS = model_defaults()

#: mask loss -> how the mask head's linear output is mapped to [0, 1] in prediction
MASK_ACTIVATION = {"ce": "sigmoid", "mse": "clip"}


def model_heads(setup: dict) -> tuple[bool, bool]:
    """(mask head, vector head): a head exists when its loss scale is > 0."""
    get = lambda key: setup.get(key, MODEL_DEFAULTS[key])  # noqa: E731
    return float(get("m_loss_scale")) > 0, float(get("d_loss_scale")) > 0


def build_model(setup: dict) -> SynfulNet:
    """Build the network a setup describes (missing keys take :data:`MODEL_DEFAULTS`).

    Raises:
        ValueError: for an unknown network type, init, mask loss or skip alignment, or
            inconsistent heads.
    """
    get = lambda key: setup.get(key, MODEL_DEFAULTS[key])  # noqa: E731
    mask_head, vector_head = model_heads(setup)
    mask_loss = str(get("mask_loss"))
    if mask_loss not in MASK_ACTIVATION:
        raise ValueError(
            f"unknown mask_loss {mask_loss!r}, expected one of {tuple(MASK_ACTIVATION)}"
        )
    return SynfulNet(
        network_type=str(get("network_type")),
        downsample_factors=[[int(f) for f in factor] for factor in get("downsample_factors")],
        fmap_num=int(get("fmap_num")),
        fmap_inc_factor=int(get("fmap_inc_factor")),
        mask_head=mask_head,
        vector_head=vector_head,
        d_scale=float(get("d_scale")),
        kernel_sizes=None
        if get("kernel_sizes") is None
        else [[int(k) for k in kernel] for kernel in get("kernel_sizes")],
        normalization=str(get("normalization")),
        init=str(get("init")),
        mask_activation=MASK_ACTIVATION[mask_loss],
        skip_alignment=str(get("skip_alignment")),
    )


def normalize_raw(raw: np.ndarray) -> np.ndarray:
    """uint8 raw -> float32 in [-1, 1] (``raw / 255 * 2 - 1``), as the original network input."""
    return (np.asarray(raw, dtype=np.float32) / np.float32(255.0)) * np.float32(2.0) - np.float32(
        1.0
    )
