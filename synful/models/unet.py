"""The valid-padded 3D U-Net of the original (funlib.learn.tensorflow ``unet``) in PyTorch.

Each level has two 3x3x3 valid convolutions with ReLU; the down path max-pools by the level's
downsample factor; the up path is a transposed convolution (kernel = stride = factor) to the
upper level's feature-map count followed by ReLU, a crop-to-factor of the upsampled maps (as in
funlib.learn.torch, so that the network is translation-equivariant on the grid of the product
of all downsample factors and its output shape is a multiple of that grid), a crop of the skip
connection to the same shape, concatenation ``[skip, upsampled]`` and two convolutions.

Where the crops are placed is the ``skip_alignment`` (:data:`SKIP_ALIGNMENTS`):

* ``"geometric"``: every feature map's position in the input is tracked; the skip connection is
  cut where the (cropped) upsampled map lies, so the concatenated maps are aligned voxel by
  voxel, as in the original (whose skip is centre-cropped to the uncropped upsampled map, which
  lies centred). The upsampled map is cropped as near its centre as allows the output to be
  centred in the input (:func:`crop_plan`). Each output voxel then computes the original's
  function at its position: for an input both networks accept, the original's output
  centre-cropped to ours is ours. For a few networks with kernels other than 3 and odd factors
  no input gives a centred output this way (for all others every input valid for
  ``centre_crop`` is valid); they have no valid input with this alignment.
* ``"centre_crop"``: the upsampled map and the skip connection are each centre-cropped (floor
  on the left) to the crop-to-factor shape, independently. With repeated factors of 3 the
  upsampled features then sit a few voxels away from the skip features they are concatenated
  with (relative to the original). This was synful's only behaviour before the key existed;
  networks trained with it learnt that alignment (``MODEL_DEFAULTS`` in :mod:`synful.models`).

Both give the same shapes (for every input valid for both) and both are translation-equivariant
on the grid.

Shapes are computed without running the network by :func:`unet_output_shape`, which mirrors
``forward`` exactly and raises ``ValueError`` for an input the network cannot process.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..settings.train import NORMALIZATIONS, SKIP_ALIGNMENTS

KERNEL_SIZE = (3, 3, 3)
CONVS_PER_LEVEL = 2
#: where the skip connection and the upsampled maps are cut (see the module docstring)


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
        raise ValueError(
            f"kernel_sizes needs one (z, y, x) kernel per level ({levels}), got {len(kernels)}"
        )
    for kernel in kernels:
        if len(kernel) != 3 or min(kernel) < 1 or any(k % 2 == 0 for k in kernel):
            raise ValueError(f"kernel size {list(kernel)} must be 3 odd positive integers")
    return kernels


def _crop_to_factor_size(size: int, factor: int, conv_crop: int) -> int:
    """Largest ``n * factor + conv_crop <= size`` (the size kept by crop-to-factor)."""
    return ((size - conv_crop) // factor) * factor + conv_crop


def _check_alignment(alignment: str) -> str:
    if alignment not in SKIP_ALIGNMENTS:
        raise ValueError(f"unknown skip_alignment {alignment!r}, expected one of {SKIP_ALIGNMENTS}")
    return alignment


@functools.lru_cache(maxsize=4096)
def _axis_plan(
    size: int,
    factors: tuple[int, ...],
    crops: tuple[int, ...],
    kernels: tuple[int, ...],
    alignment: str,
) -> tuple[int, tuple[tuple[int, int], ...]]:
    """(output size, per level ``(up_begin, skip_begin)``) along one axis; see :func:`crop_plan`."""
    levels = len(factors)
    conv_crops = [CONVS_PER_LEVEL * (k - 1) for k in kernels]
    skip_sizes = []
    below = size
    for level in range(levels + 1):
        below -= conv_crops[level]
        if below < 1:
            raise ValueError("too small for this network")
        if level < levels:
            skip_sizes.append(below)
            if below % factors[level] != 0:
                raise ValueError(
                    f"a feature map of size {below} cannot be max-pooled by {factors[level]}"
                )
            below //= factors[level]
    targets, slack = [0] * levels, [0] * levels
    for level in reversed(range(levels)):
        upsampled = below * factors[level]
        targets[level] = _crop_to_factor_size(upsampled, crops[level], conv_crops[level])
        if targets[level] <= conv_crops[level] or targets[level] > skip_sizes[level]:
            raise ValueError("too small for this network")
        slack[level] = upsampled - targets[level]
        below = targets[level] - conv_crops[level]
    output = below
    if alignment == "centre_crop":
        return output, tuple(
            ((d // 2), (n - t) // 2) for d, n, t in zip(slack, skip_sizes, targets)
        )
    # geometric: q = begin of a level's (decoder) output in voxels of that level's input. The
    # upsampled map of level l begins at skip index factor * q_(l+1); cropping it at u_l puts
    # its begin (and the skip's cut) at skip index k_l = factor * q_(l+1) + u_l, and the level's
    # output at q_l = k_l + conv_crop. The output's begin is q_0 = base + sum(u_l * step_l).
    steps = [int(np.prod(factors[:level])) for level in range(levels)]
    base = conv_crops[levels] // 2
    for level in reversed(range(levels)):
        base = factors[level] * base + conv_crops[level]
    if (size - output) % 2:
        raise ValueError(f"the output ({output}) is not centred in the input ({size})")
    remaining = (size - output) // 2 - base
    reachable = [{0}]  # reachable[l]: the sums of u_j * step_j over the levels j < l
    for level in range(levels):
        reachable.append(
            {r + u * steps[level] for r in reachable[-1] for u in range(slack[level] + 1)}
        )
    if remaining not in reachable[levels]:
        raise ValueError(
            f"with skip_alignment 'geometric' the output ({output}) cannot be centred in the input ({size})"
        )
    chosen = [0] * levels
    for level in reversed(range(levels)):  # coarse first, each as near its centre as possible
        options = [
            u for u in range(slack[level] + 1) if remaining - u * steps[level] in reachable[level]
        ]
        chosen[level] = min(options, key=lambda u: (abs(2 * u - slack[level]), u))
        remaining -= chosen[level] * steps[level]
    plan = [None] * levels
    q = conv_crops[levels] // 2
    for level in reversed(range(levels)):
        skip_begin = factors[level] * q + chosen[level]
        if (
            not 0 <= skip_begin <= skip_sizes[level] - targets[level]
        ):  # never, if the derivation holds
            raise ValueError("the skip connection does not cover the upsampled map")
        plan[level] = (chosen[level], skip_begin)
        q = skip_begin + conv_crops[level]
    assert q == (size - output) // 2
    return output, tuple(plan)


def crop_plan(
    size: int, factors: Sequence[int], crops=None, kernels=None, alignment: str = "centre_crop"
):
    """Output size and crop positions along one axis for input ``size``.

    Args:
        size: the input size (voxels).
        factors: that axis' downsample factors.
        crops: its crop factors (default: from the factors, :func:`crop_factors`).
        kernels: its kernel size per level (default: 3).
        alignment: one of :data:`SKIP_ALIGNMENTS`.

    Returns:
        ``(output size, plan)``; ``plan[l] = (up_begin, skip_begin)``: where the up path of
        level ``l`` cuts its upsampled map and the skip connection (both to the crop-to-factor
        size).

    Raises:
        ValueError: when a feature map would vanish, a max-pool would not divide exactly, or
            (``geometric``) the output cannot be centred in the input.
    """
    factors = tuple(int(f) for f in factors)
    if crops is None:
        crops = [c[0] for c in crop_factors([(f, 1, 1) for f in factors])]
    if kernels is None:
        kernels = [KERNEL_SIZE[0]] * (len(factors) + 1)
    return _axis_plan(
        int(size),
        factors,
        tuple(int(c) for c in crops),
        tuple(int(k) for k in kernels),
        _check_alignment(alignment),
    )


def unet_output_size(
    size: int,
    factors: Sequence[int],
    crops: Sequence[int] | None = None,
    kernels: Sequence[int] | None = None,
    alignment: str = "centre_crop",
) -> int:
    """Output size along one axis for input ``size``, that axis' downsample factors, crop
    factors (default: from the factors), kernel size per level (default: 3) and skip alignment.

    Raises:
        ValueError: when a feature map would vanish, a max-pool would not divide exactly, or
            (``geometric``) the output cannot be centred in the input.
    """
    return crop_plan(size, factors, crops, kernels, alignment)[0]


def _axis_arguments(downsample_factors, kernel_sizes):
    factors = [tuple(int(f) for f in factor) for factor in downsample_factors]
    crops = crop_factors(factors)
    kernels = level_kernel_sizes(kernel_sizes, len(factors) + 1)
    return [
        ([f[axis] for f in factors], [c[axis] for c in crops], [k[axis] for k in kernels])
        for axis in range(3)
    ]


def unet_output_shape(
    input_shape: Sequence[int],
    downsample_factors,
    kernel_sizes=None,
    alignment: str = "centre_crop",
) -> tuple[int, ...]:
    """Output shape (voxels) of the U-Net for ``input_shape``, mirroring ``forward``.

    Raises:
        ValueError: when a feature map would vanish, a max-pool would not divide exactly, or
            (``geometric``) the output cannot be centred in the input.
    """
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"input shape {input_shape} must have 3 entries (z, y, x)")
    out = []
    arguments = _axis_arguments(downsample_factors, kernel_sizes)
    for axis, (size, axis_arguments) in enumerate(zip(input_shape, arguments)):
        try:
            out.append(unet_output_size(size, *axis_arguments, alignment=alignment))
        except ValueError as exc:
            raise ValueError(
                f"input shape {input_shape} is not valid on axis {axis}: {exc}"
            ) from None
    return tuple(out)


def valid_input_shape(
    min_input_shape: Sequence[int],
    downsample_factors,
    kernel_sizes=None,
    alignment: str = "centre_crop",
) -> tuple[int, ...]:
    """The smallest input shape >= ``min_input_shape`` whose max-pools divide exactly and whose
    output is centred (even ``input - output``; ``geometric``: placed centred) on every axis.

    Raises:
        ValueError: for a shape without 3 entries, or when no such size exists.
    """
    min_input_shape = [max(1, int(s)) for s in min_input_shape]
    if len(min_input_shape) != 3:
        raise ValueError(f"shape {min_input_shape} must have 3 entries (z, y, x)")
    _check_alignment(alignment)
    result = []
    arguments = _axis_arguments(downsample_factors, kernel_sizes)
    for axis, (start, axis_arguments) in enumerate(zip(min_input_shape, arguments)):
        for size in range(start, start + 100_000):
            try:
                output = unet_output_size(size, *axis_arguments, alignment=alignment)
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
    return x[
        ...,
        begin[0] : begin[0] + shape[0],
        begin[1] : begin[1] + shape[1],
        begin[2] : begin[2] + shape[2],
    ]


class ConvPass(nn.Sequential):
    """Two valid convolutions (default 3x3x3), each followed by ReLU.

    ``normalization="batch"`` puts a BatchNorm between each convolution and its ReLU (not in
    the original). In evaluation mode BatchNorm is a fixed per-channel affine map, so the
    network stays translation-equivariant and blockwise prediction stays exact.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size=KERNEL_SIZE,
        normalization: str = "none",
    ):
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"unknown normalization {normalization!r}, expected one of {NORMALIZATIONS}"
            )
        batch_norm = normalization == "batch"
        layers = []
        for i in range(CONVS_PER_LEVEL):
            layers.append(
                nn.Conv3d(
                    in_channels if i == 0 else out_channels,
                    out_channels,
                    tuple(kernel_size),
                    bias=not batch_norm,
                )
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

    def __init__(
        self, in_channels: int, out_channels: int, factor, crop_factor, next_kernel=KERNEL_SIZE
    ):
        super().__init__()
        self.factor = tuple(int(f) for f in factor)
        self.crop_factor = tuple(int(f) for f in crop_factor)
        self.conv_crop = tuple(CONVS_PER_LEVEL * (int(k) - 1) for k in next_kernel)
        self.up = nn.ConvTranspose3d(in_channels, out_channels, self.factor, stride=self.factor)
        self.activation = nn.ReLU(inplace=True)

    def forward(self, skip: torch.Tensor, below: torch.Tensor, begins=None) -> torch.Tensor:
        """``begins``: per axis ``(up_begin, skip_begin)`` (from :func:`crop_plan`); ``None``
        centre-crops both maps (``centre_crop``)."""
        up = self.activation(self.up(below))
        target = tuple(
            _crop_to_factor_size(s, f, c)
            for s, f, c in zip(up.shape[-3:], self.crop_factor, self.conv_crop)
        )
        if begins is None:
            up = centre_crop(up, target)
            return torch.cat([centre_crop(skip, target), up], dim=1)
        up_cut = tuple(slice(b[0], b[0] + t) for b, t in zip(begins, target))
        skip_cut = tuple(slice(b[1], b[1] + t) for b, t in zip(begins, target))
        return torch.cat([skip[(..., *skip_cut)], up[(..., *up_cut)]], dim=1)


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
        skip_alignment: one of :data:`SKIP_ALIGNMENTS` (module docstring).
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
        skip_alignment="centre_crop",
    ):
        super().__init__()
        self.skip_alignment = _check_alignment(skip_alignment)
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
            ConvPass(
                in_channels if level == 0 else fmaps[level - 1],
                fmaps[level],
                kernels[level],
                normalization,
            )
            for level in range(levels)
        )
        self.pools = nn.ModuleList(nn.MaxPool3d(f, stride=f) for f in self.downsample_factors)
        crops = crop_factors(self.downsample_factors)
        self.decoders = nn.ModuleList()
        for _ in range(num_decoders):
            ups = nn.ModuleList(
                Upsample(
                    fmaps[level + 1],
                    fmaps[level],
                    self.downsample_factors[level],
                    crops[level],
                    kernels[level],
                )
                for level in range(levels - 1)
            )
            convs = nn.ModuleList(
                ConvPass(2 * fmaps[level], fmaps[level], kernels[level], normalization)
                for level in range(levels - 1)
            )
            self.decoders.append(nn.ModuleDict({"ups": ups, "convs": convs}))

    @property
    def output_grid(self) -> tuple[int, int, int]:
        return tuple(
            int(v) for v in np.prod(np.array([(1, 1, 1), *self.downsample_factors]), axis=0)
        )

    def crop_plans(self, input_shape: Sequence[int]):
        """Per level, per axis ``(up_begin, skip_begin)`` for ``input_shape`` (``None`` for
        ``centre_crop``, which crops from the maps' shapes).

        Raises:
            ValueError: for an input shape the network cannot process.
        """
        if self.skip_alignment == "centre_crop":
            return [None] * len(self.downsample_factors)
        input_shape = tuple(int(s) for s in input_shape)
        axes = []
        arguments = _axis_arguments(self.downsample_factors, self.kernel_sizes)
        for axis, (size, axis_arguments) in enumerate(zip(input_shape, arguments)):
            try:
                axes.append(crop_plan(size, *axis_arguments, alignment=self.skip_alignment)[1])
            except ValueError as exc:
                raise ValueError(
                    f"input shape {input_shape} is not valid on axis {axis}: {exc}"
                ) from None
        return [
            tuple(axis[level] for axis in axes) for level in range(len(self.downsample_factors))
        ]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        plans = self.crop_plans(x.shape[-3:])
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
                y = decoder["convs"][level](decoder["ups"][level](skips[level], y, plans[level]))
            outputs.append(y)
        return outputs
