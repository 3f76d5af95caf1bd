"""The valid-padded 3D U-Net of the original (funlib.learn.tensorflow ``unet``) in PyTorch.

Each level has two 3x3x3 valid convolutions with ReLU; the down path max-pools by the level's
downsample factor; the up path is a transposed convolution (kernel = stride = factor) to the
upper level's feature-map count followed by ReLU, a crop-to-factor of the upsampled maps (as in
funlib.learn.torch, so that the network is translation-equivariant on the grid of the product
of all downsample factors and its output shape is a multiple of that grid), a centre crop of
the skip connection, concatenation ``[skip, upsampled]`` and two convolutions.

Shapes are computed without running the network by :func:`unet_output_shape`, which mirrors
``forward`` exactly and raises ``ValueError`` for an input the network cannot process.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

KERNEL_SIZE = 3
CONVS_PER_LEVEL = 2
CONV_CROP = CONVS_PER_LEVEL * (KERNEL_SIZE - 1)  # voxels lost per level by the valid convs


def level_fmaps(fmap_num: int, fmap_inc_factor: int, levels: int) -> list[int]:
    """Feature maps per level: ``fmap_num * fmap_inc_factor ** level``."""
    return [int(fmap_num * fmap_inc_factor**level) for level in range(levels)]


def crop_factors(downsample_factors: Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
    """For the up path at level ``l``: the product of the downsample factors ``l .. L-2``."""
    factors = [tuple(int(f) for f in factor) for factor in downsample_factors]
    products = []
    running = (1, 1, 1)
    for factor in reversed(factors):
        running = tuple(a * b for a, b in zip(running, factor))
        products.append(running)
    return products[::-1]


def _crop_to_factor_size(size: int, factor: int) -> int:
    """Largest ``n * factor + CONV_CROP <= size`` (the size kept by crop-to-factor)."""
    return ((size - CONV_CROP) // factor) * factor + CONV_CROP


def unet_output_size(size: int, factors: Sequence[int], crops: Sequence[int] | None = None) -> int:
    """Output size along one axis for input ``size`` and that axis' downsample factors.

    Raises:
        ValueError: when a feature map would vanish or a max-pool would not divide exactly.
    """
    factors = [int(f) for f in factors]
    if crops is None:
        crops = [c[0] for c in crop_factors([(f, 1, 1) for f in factors])]
    lefts = []
    for level in range(len(factors) + 1):
        size -= CONV_CROP
        if size < 1:
            raise ValueError("too small for this network")
        lefts.append(size)
        if level < len(factors):
            if size % factors[level] != 0:
                raise ValueError(f"a feature map of size {size} cannot be max-pooled by {factors[level]}")
            size //= factors[level]
    for level in reversed(range(len(factors))):
        size = _crop_to_factor_size(size * factors[level], crops[level])
        if size <= CONV_CROP or size > lefts[level]:
            raise ValueError("too small for this network")
        size -= CONV_CROP
    return size


def unet_output_shape(input_shape: Sequence[int], downsample_factors) -> tuple[int, ...]:
    """Output shape (voxels) of the U-Net for ``input_shape``, mirroring ``forward``.

    Raises:
        ValueError: when a feature map would vanish or a max-pool would not divide exactly.
    """
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"input shape {input_shape} must have 3 entries (z, y, x)")
    factors = [tuple(int(f) for f in factor) for factor in downsample_factors]
    crops = crop_factors(factors)
    out = []
    for axis, size in enumerate(input_shape):
        try:
            out.append(unet_output_size(size, [f[axis] for f in factors], [c[axis] for c in crops]))
        except ValueError as exc:
            raise ValueError(f"input shape {input_shape} is not valid on axis {axis}: {exc}") from None
    return tuple(out)


def centre_crop(x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Crop the last three axes of ``x`` to ``shape`` around the centre (floor on the left)."""
    begin = [(s - t) // 2 for s, t in zip(x.shape[-3:], shape)]
    return x[..., begin[0] : begin[0] + shape[0], begin[1] : begin[1] + shape[1], begin[2] : begin[2] + shape[2]]


class ConvPass(nn.Sequential):
    """Two valid 3x3x3 convolutions, each followed by ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        layers = []
        for i in range(CONVS_PER_LEVEL):
            layers.append(nn.Conv3d(in_channels if i == 0 else out_channels, out_channels, KERNEL_SIZE))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class Upsample(nn.Module):
    """Transposed convolution (kernel = stride = factor) + ReLU, crop-to-factor, skip concat."""

    def __init__(self, in_channels: int, out_channels: int, factor, crop_factor):
        super().__init__()
        self.factor = tuple(int(f) for f in factor)
        self.crop_factor = tuple(int(f) for f in crop_factor)
        self.up = nn.ConvTranspose3d(in_channels, out_channels, self.factor, stride=self.factor)
        self.activation = nn.ReLU(inplace=True)

    def forward(self, skip: torch.Tensor, below: torch.Tensor) -> torch.Tensor:
        up = self.activation(self.up(below))
        target = tuple(_crop_to_factor_size(s, f) for s, f in zip(up.shape[-3:], self.crop_factor))
        up = centre_crop(up, target)
        return torch.cat([centre_crop(skip, target), up], dim=1)


class UNet(nn.Module):
    """A shared encoder with ``num_decoders`` independent decoders (1: vanilla, 2: dh_unet).

    Args:
        in_channels: input channels (1 for EM raw).
        fmap_num: feature maps at the top level.
        fmap_inc_factor: multiplier per level.
        downsample_factors: one (z, y, x) factor per downsampling step (levels = len + 1).
        num_decoders: how many decoders read the shared encoder.
    """

    def __init__(self, in_channels, fmap_num, fmap_inc_factor, downsample_factors, num_decoders=1):
        super().__init__()
        self.downsample_factors = [tuple(int(f) for f in factor) for factor in downsample_factors]
        for factor in self.downsample_factors:
            if len(factor) != 3 or min(factor) < 1:
                raise ValueError(f"downsample factor {list(factor)} must be 3 positive integers")
        levels = len(self.downsample_factors) + 1
        fmaps = level_fmaps(fmap_num, fmap_inc_factor, levels)
        self.fmaps = fmaps
        self.encoder = nn.ModuleList(
            ConvPass(in_channels if level == 0 else fmaps[level - 1], fmaps[level]) for level in range(levels)
        )
        self.pools = nn.ModuleList(nn.MaxPool3d(f, stride=f) for f in self.downsample_factors)
        crops = crop_factors(self.downsample_factors)
        self.decoders = nn.ModuleList()
        for _ in range(num_decoders):
            ups = nn.ModuleList(
                Upsample(fmaps[level + 1], fmaps[level], self.downsample_factors[level], crops[level])
                for level in range(levels - 1)
            )
            convs = nn.ModuleList(ConvPass(2 * fmaps[level], fmaps[level]) for level in range(levels - 1))
            self.decoders.append(nn.ModuleDict({"ups": ups, "convs": convs}))

    @property
    def output_grid(self) -> tuple[int, int, int]:
        return tuple(int(v) for v in np.prod(np.array([(1, 1, 1), *self.downsample_factors]), axis=0))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        skips = []
        for level, conv in enumerate(self.encoder):
            x = conv(x)
            if level < len(self.pools):
                skips.append(x)
                x = self.pools[level](x)
        outputs = []
        for decoder in self.decoders:
            y = x
            for level in reversed(range(len(skips))):
                y = decoder["convs"][level](decoder["ups"][level](skips[level], y))
            outputs.append(y)
        return outputs
