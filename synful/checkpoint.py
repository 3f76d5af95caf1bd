"""Checkpoints: one file with the model's state dict, the full setup, the iteration and the
optimizer state; it loads with ``torch.load(weights_only=True)`` and rebuilds the model from the
stored setup alone.

A checkpoint written by ``synful train`` also holds its training ``identity``
(:mod:`synful.train.resume`): the digest of its recipe (the setup keys that change the weights
and the training inputs by content) and its lineage (the sha256 of every checkpoint file it was
trained through). Checkpoints from other sources (older synful, imported networks) have none.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .atomic import atomic_output
from .errors import SynfulError
from .models import SynfulNet, build_model

FORMAT = "synful-checkpoint"
FORMAT_VERSION = 1
CHECKPOINT_PATTERN = re.compile(r"^checkpoint_(\d+)\.pt$")


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        model: the network, in eval mode, on the requested device.
        setup: the full resolved setup the model was trained with.
        iteration: the number of training iterations done.
        optimizer_state: the optimizer's state dict, or ``None``.
        identity: the training identity (:mod:`synful.train.resume`), or ``None``.
    """

    model: SynfulNet
    setup: dict
    iteration: int
    optimizer_state: dict | None = None
    identity: dict | None = None


def checkpoint_name(iteration: int) -> str:
    """``checkpoint_<iteration>.pt``."""
    return f"checkpoint_{int(iteration)}.pt"


def list_checkpoints(directory: str | os.PathLike) -> list[tuple[int, Path]]:
    """(iteration, path) of every ``checkpoint_<iteration>.pt`` in ``directory``, ascending."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = CHECKPOINT_PATTERN.match(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def _plain(value):
    """A copy of ``value`` made of dicts, lists, str, int, float, bool and None only."""
    return json.loads(json.dumps(value))


def save_checkpoint(
    path,
    *,
    model: torch.nn.Module,
    setup: dict,
    iteration: int,
    optimizer=None,
    identity: dict | None = None,
) -> Path:
    """Write a checkpoint atomically (a failure never leaves a file that looks complete).

    Args:
        path: the checkpoint file to write.
        model: the network; its state dict is stored on the CPU.
        setup: the full resolved setup (JSON-like); ``build_model(setup)`` must rebuild ``model``.
        iteration: the number of iterations done.
        optimizer: optionally, the optimizer whose state is stored for resuming.
        identity: optionally, the training identity (JSON-like; :mod:`synful.train.resume`).
    """
    path = Path(path)
    state = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "setup": _plain(setup),
        "iteration": int(iteration),
        "model_state": state,
        "optimizer_state": None if optimizer is None else _to_cpu(optimizer.state_dict()),
    }
    if identity is not None:
        payload["identity"] = _plain(identity)
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)
    return path


def _to_cpu(value):
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu")
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_cpu(v) for v in value)
    return value


def _read_payload(path: Path, mmap: bool = False) -> dict:
    """The checked contents of a checkpoint file (``mmap``: tensors mapped, not read)."""
    if not path.is_file():
        raise SynfulError(path, "no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:
        text = str(exc).splitlines()[0][:120] if str(exc) else ""
        raise SynfulError(
            path, f"corrupt or unreadable checkpoint ({type(exc).__name__}: {text})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise SynfulError(path, "not a synful checkpoint")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise SynfulError(
            path, f"checkpoint format version {payload['format_version']} is newer than this synful"
        )
    missing = [k for k in ("setup", "iteration", "model_state") if k not in payload]
    if missing:
        raise SynfulError(path, f"checkpoint is missing {', '.join(missing)}")
    return payload


def read_checkpoint_setup(path) -> tuple[dict, int]:
    """The setup and the iteration stored in a checkpoint, without building its model.

    Raises:
        SynfulError: for a missing, corrupt or foreign file.
    """
    payload = _read_payload(Path(path), mmap=True)
    return payload["setup"], int(payload["iteration"])


def read_checkpoint_identity(path) -> tuple[dict, dict | None]:
    """The setup and the training identity (``None`` when it has none) stored in a checkpoint,
    without building its model.

    Raises:
        SynfulError: for a missing, corrupt or foreign file.
    """
    payload = _read_payload(Path(path), mmap=True)
    identity = payload.get("identity")
    return payload["setup"], identity if isinstance(identity, dict) else None


def load_checkpoint(path, device: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint and rebuild its model (eval mode) from the stored setup alone.

    Raises:
        SynfulError: for a missing, corrupt or foreign file, or weights that do not fit the setup.
    """
    path = Path(path)
    payload = _read_payload(path)
    setup = payload["setup"]
    try:
        model = build_model(setup)
        model.load_state_dict(payload["model_state"])
    except (ValueError, TypeError, KeyError, RuntimeError) as exc:
        text = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise SynfulError(path, f"checkpoint weights do not fit its setup ({text})") from None
    model.to(device).eval()
    return Checkpoint(
        model=model,
        setup=setup,
        iteration=int(payload["iteration"]),
        optimizer_state=payload.get("optimizer_state"),
        identity=payload.get("identity") if isinstance(payload.get("identity"), dict) else None,
    )
