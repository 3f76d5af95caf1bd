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

KERNEL_SIZE = (3, 3, 3)
CONVS_PER_LEVEL = 2


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


def level_kernel_sizes(kernel_sizes, levels: int) -> list[tuple[int, int, int]]:
    """One (z, y, x) kernel per level (both convolutions of a level, down and up path).

    ``None`` gives the original's 3x3x3 everywhere.

    Raises:
        ValueError: for a wrong number of levels or a kernel that is not 3 odd positive ints.
    """
    if kernel_sizes is None:
        return [KERNEL_SIZE] * levels
    kernels = [tuple(int(k) for k in kernel) for kernel in kernel_sizes]
    if len(kernels) != levels:
        raise ValueError(f"kernel_sizes needs one (z, y, x) kernel per level ({levels}), got {len(kernels)}")
    for kernel in kernels:
        if len(kernel) != 3 or min(kernel) < 1 or any(k % 2 == 0 for k in kernel):
            raise ValueError(f"kernel size {list(kernel)} must be 3 odd positive integers")
    return kernels


def _crop_to_factor_size(size: int, factor: int, conv_crop: int) -> int:
    """Largest ``n * factor + conv_crop <= size`` (the size kept by crop-to-factor)."""
    return ((size - conv_crop) // factor) * factor + conv_crop


def unet_output_size(
    size: int, factors: Sequence[int], crops: Sequence[int] | None = None, kernels: Sequence[int] | None = None
) -> int:
    """Output size along one axis for input ``size``, that axis' downsample factors, crop
    factors (default: from the factors) and kernel size per level (default: 3).

    Raises:
        ValueError: when a feature map would vanish or a max-pool would not divide exactly.
    """
    factors = [int(f) for f in factors]
    if crops is None:
        crops = [c[0] for c in crop_factors([(f, 1, 1) for f in factors])]
    if kernels is None:
        kernels = [KERNEL_SIZE[0]] * (len(factors) + 1)
    conv_crops = [CONVS_PER_LEVEL * (int(k) - 1) for k in kernels]
    lefts = []
    for level in range(len(factors) + 1):
        size -= conv_crops[level]
        if size < 1:
            raise ValueError("too small for this network")
        lefts.append(size)
        if level < len(factors):
            if size % factors[level] != 0:
                raise ValueError(f"a feature map of size {size} cannot be max-pooled by {factors[level]}")
            size //= factors[level]
    for level in reversed(range(len(factors))):
        size = _crop_to_factor_size(size * factors[level], crops[level], conv_crops[level])
        if size <= conv_crops[level] or size > lefts[level]:
            raise ValueError("too small for this network")
        size -= conv_crops[level]
    return size


def unet_output_shape(input_shape: Sequence[int], downsample_factors, kernel_sizes=None) -> tuple[int, ...]:
    """Output shape (voxels) of the U-Net for ``input_shape``, mirroring ``forward``.

    Raises:
        ValueError: when a feature map would vanish or a max-pool would not divide exactly.
    """
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"input shape {input_shape} must have 3 entries (z, y, x)")
    factors = [tuple(int(f) for f in factor) for factor in downsample_factors]
    crops = crop_factors(factors)
    kernels = level_kernel_sizes(kernel_sizes, len(factors) + 1)
    out = []
    for axis, size in enumerate(input_shape):
        try:
            out.append(
                unet_output_size(size, [f[axis] for f in factors], [c[axis] for c in crops], [k[axis] for k in kernels])
            )
        except ValueError as exc:
            raise ValueError(f"input shape {input_shape} is not valid on axis {axis}: {exc}") from None
    return tuple(out)


def valid_input_shape(min_input_shape: Sequence[int], downsample_factors, kernel_sizes=None) -> tuple[int, ...]:
    """The smallest input shape >= ``min_input_shape`` whose max-pools divide exactly and whose
    output is centred (even ``input - output``) on every axis.

    Raises:
        ValueError: for a shape without 3 entries, or when no such size exists.
    """
    min_input_shape = [max(1, int(s)) for s in min_input_shape]
    if len(min_input_shape) != 3:
        raise ValueError(f"shape {min_input_shape} must have 3 entries (z, y, x)")
    factors = [tuple(int(f) for f in factor) for factor in downsample_factors]
    kernels = level_kernel_sizes(kernel_sizes, len(factors) + 1)
    crops = crop_factors(factors)
    result = []
    for axis, start in enumerate(min_input_shape):
        axis_factors = [f[axis] for f in factors]
        axis_crops = [c[axis] for c in crops]
        axis_kernels = [k[axis] for k in kernels]
        for size in range(start, start + 100_000):
            try:
                output = unet_output_size(size, axis_factors, axis_crops, axis_kernels)
            except ValueError:
                continue
            if (size - output) % 2 == 0:
                result.append(size)
                break
        else:
            raise ValueError(f"no valid input size >= {start} on axis {axis}")
    return tuple(result)


def centre_crop(x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Crop the last three axes of ``x`` to ``shape`` around the centre (floor on the left)."""
    begin = [(s - t) // 2 for s, t in zip(x.shape[-3:], shape)]
    return x[..., begin[0] : begin[0] + shape[0], begin[1] : begin[1] + shape[1], begin[2] : begin[2] + shape[2]]


NORMALIZATIONS = ("none", "batch")


class ConvPass(nn.Sequential):
    """Two valid convolutions (default 3x3x3), each followed by ReLU.

    ``normalization="batch"`` puts a BatchNorm between each convolution and its ReLU (not in
    the original). In evaluation mode BatchNorm is a fixed per-channel affine map, so the
    network stays translation-equivariant and blockwise prediction stays exact.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size=KERNEL_SIZE, normalization: str = "none"):
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {normalization!r}, expected one of {NORMALIZATIONS}")
        batch_norm = normalization == "batch"
        layers = []
        for i in range(CONVS_PER_LEVEL):
            layers.append(
                nn.Conv3d(in_channels if i == 0 else out_channels, out_channels, tuple(kernel_size), bias=not batch_norm)
            )
            if batch_norm:
                layers.append(nn.BatchNorm3d(out_channels))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class Upsample(nn.Module):
    """Transposed convolution (kernel = stride = factor) + ReLU, crop-to-factor, skip concat.

    Args:
        in_channels, out_channels: channels below and at this level.
        factor: the downsample factor between this level and the one below.
        crop_factor: the product of the factors from this level down.
        next_kernel: the kernel of the convolutions that follow (their crop is accounted for).
    """

    def __init__(self, in_channels: int, out_channels: int, factor, crop_factor, next_kernel=KERNEL_SIZE):
        super().__init__()
        self.factor = tuple(int(f) for f in factor)
        self.crop_factor = tuple(int(f) for f in crop_factor)
        self.conv_crop = tuple(CONVS_PER_LEVEL * (int(k) - 1) for k in next_kernel)
        self.up = nn.ConvTranspose3d(in_channels, out_channels, self.factor, stride=self.factor)
        self.activation = nn.ReLU(inplace=True)

    def forward(self, skip: torch.Tensor, below: torch.Tensor) -> torch.Tensor:
        up = self.activation(self.up(below))
        target = tuple(
            _crop_to_factor_size(s, f, c) for s, f, c in zip(up.shape[-3:], self.crop_factor, self.conv_crop)
        )
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
        kernel_sizes: one (z, y, x) kernel per level (``None``: 3x3x3 everywhere).
        normalization: ``"none"`` (the original) or ``"batch"`` (see :class:`ConvPass`).
    """

    def __init__(
        self,
        in_channels,
        fmap_num,
        fmap_inc_factor,
        downsample_factors,
        num_decoders=1,
        kernel_sizes=None,
        normalization="none",
    ):
        super().__init__()
        self.downsample_factors = [tuple(int(f) for f in factor) for factor in downsample_factors]
        for factor in self.downsample_factors:
            if len(factor) != 3 or min(factor) < 1:
                raise ValueError(f"downsample factor {list(factor)} must be 3 positive integers")
        levels = len(self.downsample_factors) + 1
        self.kernel_sizes = level_kernel_sizes(kernel_sizes, levels)
        kernels = self.kernel_sizes
        fmaps = level_fmaps(fmap_num, fmap_inc_factor, levels)
        self.fmaps = fmaps
        self.encoder = nn.ModuleList(
            ConvPass(in_channels if level == 0 else fmaps[level - 1], fmaps[level], kernels[level], normalization)
            for level in range(levels)
        )
        self.pools = nn.ModuleList(nn.MaxPool3d(f, stride=f) for f in self.downsample_factors)
        crops = crop_factors(self.downsample_factors)
        self.decoders = nn.ModuleList()
        for _ in range(num_decoders):
            ups = nn.ModuleList(
                Upsample(fmaps[level + 1], fmaps[level], self.downsample_factors[level], crops[level], kernels[level])
                for level in range(levels - 1)
            )
            convs = nn.ModuleList(
                ConvPass(2 * fmaps[level], fmaps[level], kernels[level], normalization) for level in range(levels - 1)
            )
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
