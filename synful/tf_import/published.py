"""The configuration files that come with a published Synful model (one directory per setup,
as in ``pretrained.zip`` and its public mirror ``Mohinta2892/catena``,
``synful/tensorflow/pretrained/train/p_setupNN/``):

* ``train_net_config.json`` (required), written by ``mknet`` in the original
  ``generate_network.py``: the graph's tensor names, ``input_shape`` / ``output_shape`` of the
  training network, and ``outputs`` (``pred_syn_indicator_out`` and/or
  ``pred_partner_vectors``: a head whose loss scale was 0 is left out). The mask output tells
  the loss: ``Sigmoid:0`` for cross-entropy models, the linear ``pred_syn_indicator`` tensor
  itself (``Reshape_2:0``) for the MSE models (p_setup54, p_setup45).
* ``<setup>_config.json`` (optional): the prediction config; its ``iteration`` is the
  published checkpoint's.
* ``test_net_config.json`` (optional): the larger prediction network's shapes.
* ``parameter.json`` (optional; not in the published archive as mirrored): the training
  parameters, checked against the checkpoint and copied into the setup.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SynfulError

TRAIN_NET_CONFIG = "train_net_config.json"
TEST_NET_CONFIG = "test_net_config.json"
PARAMETER_FILE = "parameter.json"
MASK_OUTPUT = "pred_syn_indicator_out"
VECTOR_OUTPUT = "pred_partner_vectors"


@dataclass
class PublishedConfig:
    """What the config files of one published setup say."""

    name: str
    train_net_config: Path
    input_shape: tuple[int, int, int]
    output_shape: tuple[int, int, int]
    mask_head: bool
    vector_head: bool
    mask_loss: str  # "ce" | "mse"
    iteration: int | None = None
    test_input_shape: tuple[int, int, int] | None = None
    parameters: dict | None = None
    parameter_file: Path | None = None
    files: list[Path] = field(default_factory=list)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise SynfulError(path, f"cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise SynfulError(path, f"invalid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise SynfulError(path, "expected a JSON object")
    return data


def _shape(data: dict, key: str, path: Path) -> tuple[int, int, int]:
    value = data.get(key)
    if (
        not isinstance(value, list)
        or len(value) != 3
        or not all(isinstance(v, int) and v > 0 for v in value)
    ):
        raise SynfulError(path, f"{key} must be 3 positive integers (z, y, x), got {value!r}")
    return tuple(value)


def setup_name(setup_dir: Path, name: str | None) -> str:
    """``name``, else the ``<setup>`` of the one ``<setup>_config.json`` in the directory, else
    the directory's name."""
    if name:
        return name
    own = {TRAIN_NET_CONFIG, TEST_NET_CONFIG}
    found = sorted(
        p.name[: -len("_config.json")] for p in setup_dir.glob("*_config.json") if p.name not in own
    )
    return found[0] if len(found) == 1 else setup_dir.resolve().name


def read_published_config(setup_dir: str | os.PathLike, name: str | None = None) -> PublishedConfig:
    """Read a published setup's config files.

    Raises:
        SynfulError: (file, problem) for a missing ``train_net_config.json``, invalid JSON,
            a bad shape, no outputs, or a mask output that is neither a sigmoid nor linear.
    """
    setup_dir = Path(setup_dir)
    if not setup_dir.is_dir():
        raise SynfulError(setup_dir, "no such setup directory")
    name = setup_name(setup_dir, name)
    path = setup_dir / TRAIN_NET_CONFIG
    if not path.is_file():
        raise SynfulError(
            path,
            "missing: a published setup directory holds the train_net_config.json that generate_network.py wrote",
        )
    net = _read_json(path)
    files = [path]
    input_shape, output_shape = _shape(net, "input_shape", path), _shape(net, "output_shape", path)
    parameters = parameter_file = None
    if (setup_dir / PARAMETER_FILE).is_file():
        parameter_file = setup_dir / PARAMETER_FILE
        parameters = _read_json(parameter_file)
        files.append(parameter_file)
    outputs = net.get("outputs")
    if outputs is None and parameters is not None:
        # older configs without "outputs": generate_network.py keeps a head when its loss scale is not 0
        outputs = {
            k: {}
            for k, scale in ((MASK_OUTPUT, "m_loss_scale"), (VECTOR_OUTPUT, "d_loss_scale"))
            if float(parameters.get(scale, 1)) != 0
        }
    if not isinstance(outputs, dict) or not outputs:
        raise SynfulError(path, "no 'outputs' (pred_syn_indicator_out and/or pred_partner_vectors)")
    unknown = sorted(set(outputs) - {MASK_OUTPUT, VECTOR_OUTPUT})
    if unknown:
        raise SynfulError(
            path,
            f"unknown output {unknown[0]!r} (the original networks output {MASK_OUTPUT} and {VECTOR_OUTPUT})",
        )
    mask_loss = "ce"
    if MASK_OUTPUT in outputs:
        tensor, linear = net.get(MASK_OUTPUT), net.get("pred_syn_indicator")
        if tensor is not None and tensor == linear:
            mask_loss = "mse"  # the MSE graphs output the linear indicator itself
        elif not (isinstance(tensor, str) and tensor.split("/")[-1].startswith("Sigmoid")):
            raise SynfulError(
                path,
                f"{MASK_OUTPUT} is {tensor!r}: neither a Sigmoid (CE models) nor the linear "
                f"pred_syn_indicator {linear!r} (MSE models)",
            )
    iteration = None
    own = setup_dir / f"{name}_config.json"
    if own.is_file():
        files.append(own)
        value = _read_json(own).get("iteration")
        if value is not None:
            if not isinstance(value, int) or value < 0:
                raise SynfulError(own, f"iteration must be a non-negative integer, got {value!r}")
            iteration = value
    test_input_shape = None
    if (setup_dir / TEST_NET_CONFIG).is_file():
        files.append(setup_dir / TEST_NET_CONFIG)
        test_input_shape = _shape(
            _read_json(setup_dir / TEST_NET_CONFIG), "input_shape", setup_dir / TEST_NET_CONFIG
        )
    return PublishedConfig(
        name=name,
        train_net_config=path,
        input_shape=input_shape,
        output_shape=output_shape,
        mask_head=MASK_OUTPUT in outputs,
        vector_head=VECTOR_OUTPUT in outputs,
        mask_loss=mask_loss,
        iteration=iteration,
        test_input_shape=test_input_shape,
        parameters=parameters,
        parameter_file=parameter_file,
        files=files,
    )
