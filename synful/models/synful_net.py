"""SynfulNet: a U-Net with a postsynaptic-indicator head and/or a partner-vector head.

``vanilla``: one decoder, both 1x1x1 heads read the same features ("MT1" with both heads).
``dh_unet``: two decoders on one encoder ("MT2"); decoder 0 feeds the vector head and
decoder 1 the mask head, as in the original.

Weight initialisation (``init``): ``"he"`` (our default since the first version; He-normal
weights and zero biases for the U-Net's convolutions and transposed convolutions, PyTorch's
default for the 1x1x1 heads) or ``"glorot"`` (the original's: TF1 ``tf.layers.conv3d`` /
``conv3d_transpose`` default Glorot-uniform weights, ``U(-a, a)`` with
``a = sqrt(6 / (fan_in + fan_out))``, and zero biases, for every convolution including the
heads).

Mask output (``mask_activation``): the mask head returns a linear value. ``"sigmoid"`` (the
``ce`` models) reads it as a logit; ``"clip"`` (the ``mse`` models, whose published graphs
regress the linear output against 0/1 without a sigmoid) clips it to [0, 1].
:meth:`SynfulNet.mask_probability` turns the head's output into the value in [0, 1] that
prediction stores.

Skip alignment (``skip_alignment``): ``"geometric"`` (the original's alignment of the skip
connections) or ``"centre_crop"`` (synful's before the key existed); see :mod:`synful.models.unet`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..io.prediction_store import PARTNER_VECTORS, POST_INDICATOR
from ..settings.train import INITS, NETWORK_TYPES, SKIP_ALIGNMENTS
from .unet import UNet, unet_output_shape, valid_input_shape

MASK_ACTIVATIONS = ("sigmoid", "clip")


def mask_probability(output: torch.Tensor, activation: str = "sigmoid") -> torch.Tensor:
    """The mask head's linear output as a value in [0, 1]: ``sigmoid`` (logits of a ``ce``
    model) or ``clip`` (the linear regression output of an ``mse`` model)."""
    if activation == "sigmoid":
        return torch.sigmoid(output)
    if activation == "clip":
        return output.clamp(0.0, 1.0)
    raise ValueError(f"unknown mask activation {activation!r}, expected one of {MASK_ACTIVATIONS}")


def _init_weights(modules, init: str) -> None:
    for module in modules:
        if isinstance(module, nn.Conv3d | nn.ConvTranspose3d):
            if init == "he":
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            else:
                # fan_in + fan_out = kernel volume x (in + out channels) for both layer types,
                # as TF's glorot_uniform computes it
                nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


class SynfulNet(nn.Module):
    """The synful network.

    ``forward(x)`` takes float32 ``(B, 1, Z, Y, X)`` in [-1, 1] and returns a dict with
    ``"post_indicator"`` (the linear head output, ``(B, 1, z, y, x)``: logits for ``ce``
    models; :meth:`mask_probability` maps it to [0, 1]) and/or ``"partner_vectors"``
    (``(B, 3, z, y, x)`` in nm, the raw head output divided by ``d_scale``).

    Args:
        network_type: ``"vanilla"`` or ``"dh_unet"``.
        downsample_factors: (z, y, x) factor per downsampling step.
        fmap_num: feature maps at the top level.
        fmap_inc_factor: multiplier per level.
        mask_head: whether to predict the postsynaptic indicator.
        vector_head: whether to predict partner vectors.
        d_scale: the factor the vector targets were multiplied by in training.
        kernel_sizes: one (z, y, x) kernel per level (``None``: the original's 3x3x3).
        normalization: ``"none"`` (the original) or ``"batch"`` (BatchNorm after every
            convolution; exact blockwise in evaluation mode).
        init: ``"he"`` or ``"glorot"`` (the original's; see the module docstring).
        mask_activation: ``"sigmoid"`` (``ce`` models) or ``"clip"`` (``mse`` models): how
            :meth:`mask_probability` maps the mask head's output to [0, 1].
        skip_alignment: ``"geometric"`` or ``"centre_crop"`` (where the U-Net cuts its skip
            connections; the module docstring).
    """

    def __init__(
        self,
        *,
        network_type: str = "vanilla",
        downsample_factors: Sequence[Sequence[int]] = ((1, 3, 3), (1, 3, 3), (3, 3, 3)),
        fmap_num: int = 4,
        fmap_inc_factor: int = 5,
        mask_head: bool = True,
        vector_head: bool = True,
        d_scale: float = 1.0,
        kernel_sizes: Sequence[Sequence[int]] | None = None,
        normalization: str = "none",
        init: str = "he",
        mask_activation: str = "sigmoid",
        skip_alignment: str = "centre_crop",
    ):
        super().__init__()
        if network_type not in NETWORK_TYPES:
            raise ValueError(
                f"unknown network_type {network_type!r}, expected one of {NETWORK_TYPES}"
            )
        if not (mask_head or vector_head):
            raise ValueError("the network needs a mask head, a vector head or both")
        if network_type == "dh_unet" and not (mask_head and vector_head):
            raise ValueError("dh_unet has two decoders and needs both the mask and the vector head")
        if d_scale <= 0:
            raise ValueError(f"d_scale must be positive, got {d_scale}")
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}, expected one of {INITS}")
        if mask_activation not in MASK_ACTIVATIONS:
            raise ValueError(
                f"unknown mask_activation {mask_activation!r}, expected one of {MASK_ACTIVATIONS}"
            )
        if skip_alignment not in SKIP_ALIGNMENTS:
            raise ValueError(
                f"unknown skip_alignment {skip_alignment!r}, expected one of {SKIP_ALIGNMENTS}"
            )
        self.network_type = network_type
        self.d_scale = float(d_scale)
        self.init = init
        self.mask_activation = mask_activation
        self.unet = UNet(
            1,
            fmap_num,
            fmap_inc_factor,
            downsample_factors,
            num_decoders=2 if network_type == "dh_unet" else 1,
            kernel_sizes=kernel_sizes,
            normalization=normalization,
            skip_alignment=skip_alignment,
        )
        # "he": He initialisation for the ReLU layers (PyTorch's default starts deep ReLU nets
        # slowly), the heads keep PyTorch's default; "glorot": the original's, heads included
        _init_weights(self.unet.modules(), init)
        top = self.unet.fmaps[0]
        self.mask_head = nn.Conv3d(top, 1, 1) if mask_head else None
        self.vector_head = nn.Conv3d(top, 3, 1) if vector_head else None
        if init == "glorot":
            _init_weights([h for h in (self.mask_head, self.vector_head) if h is not None], init)

    def mask_probability(self, output: torch.Tensor) -> torch.Tensor:
        """The mask head's output (``forward()["post_indicator"]``) as a value in [0, 1]:
        sigmoid for ``ce`` models, clip to [0, 1] for ``mse`` models."""
        return mask_probability(output, self.mask_activation)

    @property
    def skip_alignment(self) -> str:
        """Where the U-Net cuts its skip connections: ``"geometric"`` or ``"centre_crop"``."""
        return self.unet.skip_alignment

    @property
    def heads(self) -> tuple[str, ...]:
        """The output keys of this network."""
        names = []
        if self.mask_head is not None:
            names.append(POST_INDICATOR)
        if self.vector_head is not None:
            names.append(PARTNER_VECTORS)
        return tuple(names)

    @property
    def output_grid(self) -> tuple[int, int, int]:
        """Product of the downsample factors: the shift (voxels) the network is equivariant to."""
        return self.unet.output_grid

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, int, int]:
        """Output shape (voxels) for an input shape.

        Raises:
            ValueError: if a max-pool would not divide exactly, a feature map would vanish, or
                the output would not be centred in the input (odd ``input - output``).
        """
        output = unet_output_shape(
            input_shape,
            self.unet.downsample_factors,
            self.unet.kernel_sizes,
            self.unet.skip_alignment,
        )
        if any((int(i) - o) % 2 for i, o in zip(input_shape, output)):
            raise ValueError(
                f"input shape {tuple(input_shape)} gives an output {output} that is not centred "
                f"(downsample factors {[list(f) for f in self.unet.downsample_factors]} crop an odd "
                "number of voxels)"
            )
        return output

    def context(self, input_shape: Sequence[int]) -> tuple[int, int, int]:
        """Voxels between the input's and the output's begin: ``(input - output) / 2``."""
        output = self.output_shape(input_shape)
        return tuple((int(i) - o) // 2 for i, o in zip(input_shape, output))

    def valid_input_shape(self, min_input_shape: Sequence[int]) -> tuple[int, int, int]:
        """The smallest valid input shape >= ``min_input_shape`` on every axis.

        Valid means: every max-pool divides exactly and the output is centred in the input
        (``input - output`` is even), so ``context`` is a whole number of voxels.
        """
        return valid_input_shape(
            min_input_shape,
            self.unet.downsample_factors,
            self.unet.kernel_sizes,
            self.unet.skip_alignment,
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.ndim != 5 or x.shape[1] != 1:
            raise ValueError(f"expected input (B, 1, Z, Y, X), got {tuple(x.shape)}")
        self.output_shape(tuple(x.shape[-3:]))
        features = self.unet(x)
        out = {}
        if self.network_type == "dh_unet":
            out[PARTNER_VECTORS] = self.vector_head(features[0]) / self.d_scale
            out[POST_INDICATOR] = self.mask_head(features[1])
            return {k: out[k] for k in (POST_INDICATOR, PARTNER_VECTORS)}
        if self.mask_head is not None:
            out[POST_INDICATOR] = self.mask_head(features[0])
        if self.vector_head is not None:
            out[PARTNER_VECTORS] = self.vector_head(features[0]) / self.d_scale
        return out
