"""The original Synful network as its TensorFlow variables: names, shapes, and where each goes
in :class:`synful.models.SynfulNet`.

Names follow the code that built the published models (read there, not copied):

* ``funkelab/funlib.learn.tensorflow`` @ 0712fee, ``funlib/learn/tensorflow/models/unet.py``
  (the U-Net the original synful pinned):

  - encoder, level ``l`` (no variable scope): ``conv_pass(name='unet_layer_%i_left' % l)``
    makes one ``tf.layers.conv3d`` per kernel, named ``<name>_<i>``, so
    ``unet_layer_{l}_left_{i}/kernel`` (kz, ky, kx, in, out) and ``.../bias`` (out,);
  - decoder ``h``, level ``l`` < bottom, inside ``tf.variable_scope('decoder_%i_layer_%i')``
    (also with one decoder): ``upsample(name='unet_up_%i_to_%i' % (l + 1, l))``, a
    ``tf.layers.conv3d_transpose`` with kernel = stride = the downsample factor, so
    ``decoder_{h}_layer_{l}/unet_up_{l+1}_to_{l}/kernel`` (fz, fy, fx, out, in) and bias; then
    ``conv_pass(name='unet_layer_%i_right' % l)`` on ``concat([cropped skip, upsampled])``:
    ``decoder_{h}_layer_{l}/unet_layer_{l}_right_{i}/kernel`` and bias;
  - feature maps ``num_fmaps * fmap_inc_factor ** l``; no crop-to-factor.

* ``funkelab/synful`` @ dbd9fd6, ``scripts/train/setup0{1,2,3}/generate_network.py``
  (``mknet``): 1x1x1 heads ``conv_pass(kernel_sizes=[1], activation=None)`` named
  ``partner_vector`` (3 channels, reads U-Net output 0) and ``syn_indicator`` (1 channel,
  reads output 1; with one decoder both read the same output), so ``partner_vector_0/...`` and
  ``syn_indicator_0/...``. Both heads are always built, even when a loss scale is 0. Besides
  the weights the checkpoint holds ``training_iteration`` (the Adam ``global_step``), Adam's
  ``beta1_power`` / ``beta2_power`` and the slots ``<variable>/Adam`` and ``<variable>/Adam_1``.

Layouts: TensorFlow kernels are (z, y, x, in, out) for ``conv3d`` and (z, y, x, out, in) for
``conv3d_transpose``; PyTorch's are (out, in, z, y, x) for ``Conv3d`` and (in, out, z, y, x)
for ``ConvTranspose3d``, so both take the same axis permutation :data:`KERNEL_TO_TORCH`. Both
frameworks compute the transposed convolution as the adjoint of the same cross-correlation
(no kernel flip).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

#: TensorFlow kernel axes (z, y, x, a, b) -> PyTorch (b, a, z, y, x), for conv and transposed conv
KERNEL_TO_TORCH = (4, 3, 0, 1, 2)
CONVS_PER_LEVEL = 2  # generate_network.py leaves kernel_size_down/up at [[3, 3]] per level

VECTOR_HEAD = "partner_vector_0"
MASK_HEAD = "syn_indicator_0"
#: bookkeeping variables of the original training graph (generate_network.py: the iteration
#: variable and tf.train.AdamOptimizer's accumulators), not part of the network
BOOKKEEPING = ("training_iteration", "beta1_power", "beta2_power")
OPTIMIZER_SLOTS = ("/Adam", "/Adam_1")

_ENCODER = re.compile(r"^unet_layer_(\d+)_left_(\d+)$")
_DECODER_UP = re.compile(r"^decoder_(\d+)_layer_(\d+)/unet_up_(\d+)_to_(\d+)$")
_DECODER_CONV = re.compile(r"^decoder_(\d+)_layer_(\d+)/unet_layer_(\d+)_right_(\d+)$")


def encoder_conv(level: int, index: int) -> str:
    return f"unet_layer_{level}_left_{index}"


def decoder_up(decoder: int, level: int) -> str:
    return f"decoder_{decoder}_layer_{level}/unet_up_{level + 1}_to_{level}"


def decoder_conv(decoder: int, level: int, index: int) -> str:
    return f"decoder_{decoder}_layer_{level}/unet_layer_{level}_right_{index}"


def layer_of(variable: str) -> str | None:
    """The layer name of a weight variable (``<layer>/kernel`` or ``<layer>/bias``), else None."""
    for suffix in ("/kernel", "/bias"):
        if variable.endswith(suffix):
            return variable[: -len(suffix)]
    return None


def is_bookkeeping(variable: str, weights: set[str]) -> bool:
    """Whether ``variable`` is training state of the original graph: ``training_iteration``,
    Adam's beta powers, or an Adam slot of one of ``weights``."""
    if variable in BOOKKEEPING:
        return True
    for slot in OPTIMIZER_SLOTS:
        if variable.endswith(slot) and variable[: -len(slot)] in weights:
            return True
    return False


class NetworkError(ValueError):
    """Variables that the original code could not have built, or synful cannot (one line)."""


@dataclass(frozen=True)
class Architecture:
    """The network read off the checkpoint's variables."""

    fmaps: tuple[int, ...]  # feature maps per level
    kernels: tuple[tuple[int, int, int], ...]  # one kernel per level
    downsample_factors: tuple[tuple[int, int, int], ...]
    num_decoders: int

    @property
    def levels(self) -> int:
        return len(self.fmaps)

    @property
    def fmap_num(self) -> int:
        return self.fmaps[0]

    @property
    def fmap_inc_factor(self) -> int:
        return self.fmaps[1] // self.fmaps[0] if self.levels > 1 else 1


def _kernel(shapes: dict[str, tuple[int, ...]], layer: str) -> tuple[int, ...]:
    name = f"{layer}/kernel"
    if name not in shapes:
        raise NetworkError(f"missing variable {name}")
    shape = shapes[name]
    if len(shape) != 5:
        raise NetworkError(
            f"variable {name} has shape {list(shape)}, expected a 3D kernel (z, y, x, in, out)"
        )
    return shape


def infer_architecture(shapes: dict[str, tuple[int, ...]]) -> Architecture:
    """Levels, feature maps, kernels, downsample factors and decoders from variable shapes.

    Raises:
        NetworkError: when the layers do not form a U-Net of the original code that synful can
            build (missing levels or decoders, not two convolutions per level, feature maps
            that are not ``fmap_num * fmap_inc_factor ** level``, kernels that differ within a
            level).
    """
    layers = {layer_of(n) for n in shapes} - {None}
    encoder, decoders = {}, set()
    for layer in layers:
        if m := _ENCODER.match(layer):
            encoder.setdefault(int(m[1]), set()).add(int(m[2]))
        elif (m := _DECODER_UP.match(layer)) or (m := _DECODER_CONV.match(layer)):
            decoders.add(int(m[1]))
    if not encoder:
        raise NetworkError(
            "no U-Net variables (unet_layer_0_left_0/kernel): not a Synful network checkpoint"
        )
    levels = max(encoder) + 1
    for level in range(levels):
        if encoder.get(level, set()) != set(range(CONVS_PER_LEVEL)):
            found = sorted(encoder.get(level, set()))
            raise NetworkError(
                f"U-Net level {level} has left convolutions {found}; synful's U-Net has "
                f"{CONVS_PER_LEVEL} per level ({', '.join(encoder_conv(level, i) for i in range(CONVS_PER_LEVEL))})"
            )
    if decoders != set(range(len(decoders))) or len(decoders) not in (1, 2):
        raise NetworkError(
            f"decoders {sorted(decoders)} found; synful builds one (vanilla) or two (dh_unet) "
            "decoders numbered from 0"
        )
    fmaps, kernels = [], []
    for level in range(levels):
        shape = _kernel(shapes, encoder_conv(level, 0))
        fmaps.append(int(shape[4]))
        kernels.append(tuple(int(k) for k in shape[:3]))
    factors = []
    for level in range(levels - 1):
        factors.append(tuple(int(k) for k in _kernel(shapes, decoder_up(0, level))[:3]))
    for level in range(levels):
        layers_here = [encoder_conv(level, i) for i in range(CONVS_PER_LEVEL)]
        if level < levels - 1:
            layers_here += [
                decoder_conv(h, level, i)
                for h in range(len(decoders))
                for i in range(CONVS_PER_LEVEL)
            ]
        for layer in layers_here:
            kernel = tuple(int(k) for k in _kernel(shapes, layer)[:3])
            if kernel != kernels[level]:
                raise NetworkError(
                    f"{layer}/kernel is {list(kernel)} but level {level} starts with {list(kernels[level])}; "
                    "synful uses one kernel per level"
                )
    if levels > 1:
        inc = fmaps[1] // fmaps[0] if fmaps[0] else 0
        expected = [fmaps[0] * inc**level for level in range(levels)]
        if inc < 1 or expected != fmaps:
            raise NetworkError(
                f"feature maps per level {fmaps} are not fmap_num * fmap_inc_factor ** level "
                "with one integer factor (synful's U-Net)"
            )
    return Architecture(tuple(fmaps), tuple(kernels), tuple(factors), len(decoders))


def original_output_shape(
    input_shape: Sequence[int], downsample_factors, kernels
) -> tuple[int, ...]:
    """The output shape of the original U-Net (funlib.learn.tensorflow @ 0712fee: valid
    convolutions, ``max_pooling3d`` that floors, transposed convolution by the factor, skip
    centre-cropped to the upsampled map, no crop-to-factor) for ``input_shape``.

    Raises:
        NetworkError: where the original graph cannot be built for this input (a map would
            vanish, or an upsampled map would be larger than its skip connection).
    """
    out = []
    for axis, size in enumerate(input_shape):
        size = int(size)
        lefts = []
        for level, kernel in enumerate(kernels):
            size -= CONVS_PER_LEVEL * (kernel[axis] - 1)
            if size < 1:
                raise NetworkError(
                    f"input {list(input_shape)} vanishes on axis {axis} at level {level}"
                )
            lefts.append(size)
            if level < len(downsample_factors):
                size //= downsample_factors[level][axis]
        for level in reversed(range(len(downsample_factors))):
            size *= downsample_factors[level][axis]
            if size > lefts[level]:
                raise NetworkError(
                    f"input {list(input_shape)}: the upsampled map exceeds its skip on axis {axis}"
                )
            size -= CONVS_PER_LEVEL * (kernels[level][axis] - 1)
            if size < 1:
                raise NetworkError(
                    f"input {list(input_shape)} vanishes on axis {axis} on the way up"
                )
        out.append(size)
    return tuple(out)


def weight_map(model) -> list[tuple[str, object, str]]:
    """(TensorFlow variable, PyTorch parameter, kind) for every weight of a SynfulNet built
    with ``normalization='none'``; kind is ``"kernel"`` (permute by :data:`KERNEL_TO_TORCH`)
    or ``"bias"``. dh_unet: decoder 0 feeds the vector head and decoder 1 the mask head, as
    ``outputs[0]`` / ``outputs[1]`` in generate_network.py; vanilla: both heads read decoder 0.
    """
    unet = model.unet
    pairs = []

    def conv(layer: str, module) -> None:
        pairs.append((f"{layer}/kernel", module.weight, "kernel"))
        pairs.append((f"{layer}/bias", module.bias, "bias"))

    def convs(sequential) -> list:
        return [m for m in sequential if hasattr(m, "weight")]

    for level, block in enumerate(unet.encoder):
        for i, module in enumerate(convs(block)):
            conv(encoder_conv(level, i), module)
    for h, decoder in enumerate(unet.decoders):
        for level, up in enumerate(decoder["ups"]):
            conv(decoder_up(h, level), up.up)
        for level, block in enumerate(decoder["convs"]):
            for i, module in enumerate(convs(block)):
                conv(decoder_conv(h, level, i), module)
    if model.vector_head is not None:
        conv(VECTOR_HEAD, model.vector_head)
    if model.mask_head is not None:
        conv(MASK_HEAD, model.mask_head)
    return pairs
