"""``synful import-tf``: a published TensorFlow Synful model -> a synful checkpoint.

1. Read the checkpoint's variables (:mod:`.bundle`, no TensorFlow needed) and the setup's
   config files (:mod:`.published`).
2. Read the architecture off the variable shapes (:func:`.original.infer_architecture`) and
   check it against the configs: the original U-Net must map the published training input to
   the published output, and a ``parameter.json``, when present, must agree.
3. Build the synful setup (validated by :func:`synful.train.setup.resolve_setup`) and its
   network, copy every weight (:func:`.original.weight_map`), and write the checkpoint.

Every variable is used exactly once: a network weight, the weights of a head the published
graph did not output (its loss scale was 0; dropped), or training state (the iteration
counter, Adam's accumulators). Anything else, a missing weight or a shape mismatch is a
one-line :class:`~synful.errors.SynfulError` and nothing is written.

Input shapes: synful's U-Net crops its upsampled maps to the grid of its downsampling factors
(translation equivariance), the original's did not, so the original's training input (e.g.
42x430x430) is not a valid input here. The setup gets the smallest valid input whose output
covers the original output rounded down to that grid (48x484x484 -> 6x216x216 for the
published models, as ``config/setups/p_setup*.yaml``); prediction uses that input too (the
published prediction scripts ran the training network), or the input of a
``test_net_config.json`` rounded up to a valid one.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np

from ..errors import SynfulError
from .bundle import TFCheckpoint
from .original import (
    KERNEL_TO_TORCH,
    MASK_HEAD,
    VECTOR_HEAD,
    Architecture,
    NetworkError,
    infer_architecture,
    is_bookkeeping,
    layer_of,
    original_output_shape,
    weight_map,
)
from .published import PublishedConfig, read_published_config

logger = logging.getLogger(__name__)

#: parameter.json keys copied into the setup (same name unless mapped)
PARAMETER_KEYS = {
    "learning_rate": "learning_rate",
    "reject_probability": "reject_probability",
    "blob_radius": "blob_radius",
    "d_blob_radius": "d_blob_radius",
    "d_scale": "d_scale",
    "max_iteration": "max_iteration",
    "cliprange": "balance_clip",
    "voxel_size": "voxel_size",
    "m_loss_scale": "m_loss_scale",
    "d_loss_scale": "d_loss_scale",
}
_ITERATION_SUFFIX = re.compile(r"[_-](\d+)$")


def matching_input_shape(original_input, original_output, downsample_factors, kernels) -> list[int]:
    """The smallest input valid for synful's U-Net whose output covers the original output
    rounded down to the downsampling grid (at least one grid step) on every axis."""
    from ..models.unet import crop_factors, unet_output_size

    crops = crop_factors(downsample_factors)
    shape = []
    for axis in range(3):
        factors = [f[axis] for f in downsample_factors]
        grid = int(np.prod(factors)) if factors else 1
        target = max(grid, (int(original_output[axis]) // grid) * grid)
        size = target
        while True:
            try:
                out = unet_output_size(
                    size, factors, [c[axis] for c in crops], [k[axis] for k in kernels]
                )
            except ValueError:
                out = -1
            if out >= target and (size - out) % 2 == 0:
                break
            size += 1
        shape.append(size)
    return shape


def _parameter_checks(config: PublishedConfig, arch: Architecture, network_type: str) -> dict:
    """Check parameter.json against the checkpoint; return the setup keys it sets."""
    params, path = config.parameters, config.parameter_file
    if params is None:
        return {}
    found = {
        "unet_model": network_type,
        "fmap_num": arch.fmap_num,
        "downsample_factors": [list(f) for f in arch.downsample_factors],
        "input_size": list(config.input_shape),
    }
    for key, value in found.items():
        if key in params and params[key] != value:
            raise SynfulError(
                path, f"{key} is {params[key]!r} but the checkpoint's network has {value!r}"
            )
    inc = params.get("fmap_inc_factor")
    if inc is not None and arch.levels > 1:
        incs = inc if isinstance(inc, list) else [inc] * (arch.levels - 1)
        if any(i != arch.fmap_inc_factor for i in incs):
            raise SynfulError(
                path,
                f"fmap_inc_factor is {inc!r} but the checkpoint's network has {arch.fmap_inc_factor}",
            )
    for key, head in (("m_loss_scale", config.mask_head), ("d_loss_scale", config.vector_head)):
        if key in params and (float(params[key]) > 0) != head:
            raise SynfulError(
                path,
                f"{key} {params[key]} disagrees with the outputs in {config.train_net_config.name}",
            )
    return {ours: params[theirs] for theirs, ours in PARAMETER_KEYS.items() if theirs in params}


def build_setup(config: PublishedConfig, arch: Architecture, source: str) -> dict:
    """The resolved synful setup (a plain dict) of an imported network."""
    from ..train.setup import resolve_setup

    network_type = "dh_unet" if arch.num_decoders == 2 else "vanilla"
    if network_type == "dh_unet" and not (config.mask_head and config.vector_head):
        raise SynfulError(
            config.train_net_config,
            "a two-decoder (dh_unet) network that outputs only one head: synful's dh_unet needs both",
        )
    factors = [list(f) for f in arch.downsample_factors]
    kernels = None if all(k == (3, 3, 3) for k in arch.kernels) else [list(k) for k in arch.kernels]
    input_shape = matching_input_shape(
        config.input_shape, config.output_shape, arch.downsample_factors, arch.kernels
    )
    data = {
        "description": (
            f"{config.name}: imported from the TensorFlow checkpoint {source} (original input "
            f"{'x'.join(map(str, config.input_shape))} -> {'x'.join(map(str, config.output_shape))}; "
            "see docs/pretrained.md)"
        ),
        "network_type": network_type,
        "input_shape": input_shape,
        # the published prediction scripts ran the training network ("configname": "train");
        # a test_net_config.json, when given, sets the (larger) prediction input
        "predict_input_shape": list(config.test_input_shape) if config.test_input_shape else None,
        "downsample_factors": factors,
        "fmap_num": arch.fmap_num,
        "fmap_inc_factor": arch.fmap_inc_factor,
        "kernel_sizes": kernels,
        "init": "glorot",  # the original's TF1 default (only matters for training from scratch)
        "m_loss_scale": 1.0 if config.mask_head else 0.0,
        "d_loss_scale": 1.0 if config.vector_head else 0.0,
        "mask_loss": config.mask_loss,
        "mixed_precision": False,  # the original computed in float32
    }
    data.update(_parameter_checks(config, arch, network_type))
    return resolve_setup(data, config.parameter_file or config.train_net_config).to_dict()


def _iteration(prefix: Path, config: PublishedConfig, checkpoint: TFCheckpoint) -> int:
    """The checkpoint's iteration: the number ending its name (``train_net_checkpoint_390000``),
    else the setup config's ``iteration``, else the graph's ``training_iteration``, else 0."""
    if m := _ITERATION_SUFFIX.search(prefix.name):
        return int(m[1])
    if config.iteration is not None:
        return config.iteration
    if "training_iteration" in checkpoint.entries and checkpoint.shape("training_iteration") == ():
        return int(checkpoint.read("training_iteration"))
    return 0


def import_tf_checkpoint(
    prefix: str | os.PathLike,
    setup_dir: str | os.PathLike,
    out: str | os.PathLike,
    setup_name: str | None = None,
) -> Path:
    """Convert a published TensorFlow Synful model into a synful checkpoint at ``out``.

    Args:
        prefix: the TensorFlow checkpoint prefix (``.../train_net_checkpoint_390000``) or one
            of its files.
        setup_dir: the directory with ``train_net_config.json`` (and optionally
            ``<setup>_config.json``, ``test_net_config.json``, ``parameter.json``).
        out: the synful checkpoint to write (atomically, only after every check passed).
        setup_name: the setup's name (default: from ``<setup>_config.json`` or the directory).

    Raises:
        SynfulError: (file, problem) for anything that does not fit; nothing is written then.
    """
    import torch

    from ..checkpoint import save_checkpoint
    from ..models import build_model

    checkpoint = TFCheckpoint(prefix)
    index = checkpoint.index_path
    config = read_published_config(setup_dir, setup_name)
    shapes = {name: entry.shape for name, entry in checkpoint.entries.items()}
    weights = {n: s for n, s in shapes.items() if layer_of(n) is not None}
    try:
        arch = infer_architecture(weights)
        original = original_output_shape(config.input_shape, arch.downsample_factors, arch.kernels)
    except NetworkError as exc:
        raise SynfulError(index, str(exc)) from None
    if original != config.output_shape:
        raise SynfulError(
            config.train_net_config,
            f"output_shape {list(config.output_shape)} does not fit the checkpoint's network, whose "
            f"original U-Net maps input {list(config.input_shape)} to {list(original)}",
        )
    setup = build_setup(config, arch, checkpoint.prefix.name)
    model = build_model(setup)

    used: set[str] = set()
    state = {}
    for variable, parameter, kind in weight_map(model):
        if variable not in checkpoint.entries:
            raise SynfulError(
                index, f"missing variable {variable} (the {setup['network_type']} network needs it)"
            )
        array = checkpoint.read(variable)
        if not np.issubdtype(array.dtype, np.floating):
            raise SynfulError(index, f"variable {variable} is {array.dtype}, not floating point")
        tensor = torch.from_numpy(np.ascontiguousarray(array.astype(np.float32)))
        if kind == "kernel" and tensor.ndim == 5:
            tensor = tensor.permute(*KERNEL_TO_TORCH)
        if tuple(tensor.shape) != tuple(parameter.shape):
            expected = tuple(parameter.shape)
            if kind == "kernel" and len(expected) == 5:
                inverse = np.argsort(KERNEL_TO_TORCH)
                expected = tuple(expected[i] for i in inverse)
            raise SynfulError(
                index,
                f"variable {variable} has shape {list(array.shape)}, the network needs {list(expected)}",
            )
        state[id(parameter)] = tensor
        used.add(variable)
    top = arch.fmaps[0]
    dropped = []
    for head, present, channels in (
        (VECTOR_HEAD, model.vector_head is not None, 3),
        (MASK_HEAD, model.mask_head is not None, 1),
    ):
        if present:
            continue
        for variable, shape in (
            (f"{head}/kernel", (1, 1, 1, top, channels)),
            (f"{head}/bias", (channels,)),
        ):
            if variable in checkpoint.entries:
                if tuple(checkpoint.shape(variable)) != shape:
                    raise SynfulError(
                        index,
                        f"variable {variable} has shape {list(checkpoint.shape(variable))}, the original head has {list(shape)}",
                    )
                dropped.append(variable)
    accounted = used | set(dropped)
    rest = sorted(
        n for n in checkpoint.entries if n not in accounted and not is_bookkeeping(n, accounted)
    )
    if rest:
        more = f" (and {len(rest) - 1} more)" if len(rest) > 1 else ""
        raise SynfulError(
            index, f"unmapped variable {rest[0]}{more}: not part of the original Synful network"
        )
    with torch.no_grad():
        for parameter in model.parameters():
            if id(parameter) not in state:  # pragma: no cover - weight_map covers every parameter
                raise SynfulError(index, "internal error: a network parameter has no variable")
            parameter.copy_(state[id(parameter)])
    iteration = _iteration(checkpoint.prefix, config, checkpoint)
    path = save_checkpoint(out, model=model, setup=setup, iteration=iteration)
    logger.info(
        "%s: %d weights (%d parameters) from %s, iteration %d, %s%s; input %s -> %s here (original %s -> %s)",
        config.name,
        len(used),
        sum(p.numel() for p in model.parameters()),
        checkpoint.prefix.name,
        iteration,
        setup["network_type"],
        f", dropped the untrained head {dropped[0].split('/')[0]}" if dropped else "",
        setup["input_shape"],
        list(model.output_shape(setup["input_shape"])),
        list(config.input_shape),
        list(config.output_shape),
    )
    return path
