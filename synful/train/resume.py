"""Resume only from the same recipe: the training identity of a checkpoint and where a run starts.

Every checkpoint ``synful train`` writes holds an ``identity``:

* ``recipe``: the sha256 (:func:`synful.identity.recipe_identity`) of the setup keys that
  change the weights (all but :data:`NOT_IN_RECIPE`) and of the training inputs by content, in
  the order given (a batch draws its sample by index, so the order changes the batches):
  per sample store :func:`~synful.identity.store_identity` of ``raw`` and ``neuron_ids``
  (convert's creation id plus their metadata), a digest of the bytes of ``masks/training``
  (the masks are rewritten in place with the same metadata when the split changes) and the
  :func:`~synful.identity.file_identity` of the synapse table beside the store. Never paths.
* ``samples`` / ``sample_names``: the per-sample identities and the stores' names, to say which
  sample differs.
* ``lineage``: the sha256 of every checkpoint file this one was trained through (those written
  earlier in its run and, on a resume, the checkpoint resumed from and its lineage), so that
  ``--from CHECKPOINT`` recognises the checkpoints trained from that file.

Where a run starts (:func:`plan_start`):

* by default, from the newest checkpoint at or before the requested iteration; every checkpoint
  in the directory must have the current recipe, otherwise a one-line error names the first one
  that does not and what differs (``--restart`` starts over);
* ``restart``: from iteration 0, after removing the directory's checkpoints (the log and the
  snapshots after the start go as in every run);
* ``start_from`` (``--from``; the workflow's mode): a checkpoint in the directory (or
  :data:`SCRATCH`). The run continues from the newest checkpoint after it, up to the requested
  iteration, that has the current recipe and was trained from it, else from it; the other
  checkpoints in that range are stale and removed. The start itself must have the current recipe.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..checkpoint import CHECKPOINT_PATTERN, list_checkpoints, read_checkpoint_identity
from ..errors import SynfulError
from ..identity import CHUNK, file_identity, recipe_identity, store_identity
from ..io.sample_store import default_synapse_table
from ..settings.train import LEGACY_DEFAULTS

logger = logging.getLogger(__name__)

#: bumped when what the recipe covers changes (older checkpoints then differ in their recipe)
VERSION = 1
#: ``--from scratch``: continue from iteration 0
SCRATCH = "scratch"
#: setup keys that do not change the weights of a checkpoint, and why
NOT_IN_RECIPE = {
    "description": "free text",
    # batch i is drawn from a generator seeded with (seed, i), whichever worker makes it
    # (train/dataset.py; tests: the same losses with 0 and 2 workers)
    "num_workers": "which process prepares a batch",
    # an array read into memory holds the same values as the zarr array it was read from
    "in_memory_mib": "where the sample arrays are read from",
    "log_every": "what is logged",
    # a snapshot reads the batch and the outputs and draws no random numbers
    "snapshot_every": "when snapshots are written",
    "keep_snapshots": "how many snapshots are kept",
    # writing a checkpoint changes neither the weights nor the optimiser; the BatchNorm statistics
    # stored in it are recomputed from its weights alone, and training-mode forward passes never
    # read running statistics (train/batchnorm.py)
    "checkpoint_every": "when checkpoints are written",
    # read by prediction only (predict/plan.py)
    "predict_input_shape": "the prediction window",
}
#: setup keys added after checkpoints had identities, with the value a setup without them
#: resolves to in those checkpoints (models.MODEL_DEFAULTS): left out of the recipe at that
#: value, so that those checkpoints keep their recipe (and resume) when the key says so
#: explicitly, and differ from any other value
LATER_KEYS = LEGACY_DEFAULTS
#: keys that only the decaying learning-rate schedules read: with ``lr_schedule: constant`` the
#: rate is ``learning_rate`` (after warm-up) whatever they are, so they do not change the weights
DECAY_ONLY = ("max_iteration", "lr_final")


def recipe_setup(setup: dict) -> dict:
    """The setup keys that change the weights (all but :data:`NOT_IN_RECIPE`, and
    :data:`DECAY_ONLY` for a constant schedule; a key of :data:`LATER_KEYS` at its old value is
    left out)."""
    excluded = set(NOT_IN_RECIPE)
    if setup.get("lr_schedule", "constant") == "constant":
        excluded |= set(DECAY_ONLY)
    excluded |= {k for k, old in LATER_KEYS.items() if k in setup and setup[k] == old}
    return {k: v for k, v in setup.items() if k not in excluded}


def _tree_digest(root: Path) -> str:
    """sha256 of the relative paths and bytes of every file under ``root``."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(CHUNK), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def sample_identity(store: str | os.PathLike) -> dict:
    """The content identity of what training reads from a sample store (see the module doc)."""
    store = Path(store)
    mask = store / "masks" / "training"
    return {
        "store": store_identity(store, "raw", "neuron_ids"),
        "training_mask": _tree_digest(mask) if mask.is_dir() else None,
        "synapses": file_identity(default_synapse_table(store)),
    }


def training_identity(setup: dict, samples: Sequence[str | os.PathLike]) -> dict:
    """The identity of a training run (without its lineage): see the module doc.

    Args:
        setup: the full resolved setup (``TrainSetup.to_dict()``).
        samples: the sample stores, in the order given to training.
    """
    entries = [sample_identity(path) for path in samples]
    recipe = {"version": VERSION, "setup": recipe_setup(setup), "samples": entries}
    return {
        "version": VERSION,
        "recipe": recipe_identity(recipe),
        "samples": entries,
        "sample_names": [Path(path).name for path in samples],
    }


def same_recipe(stored: dict | None, current: dict) -> bool:
    return bool(stored) and stored.get("recipe") == current["recipe"]


def _changed_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    changed = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += _changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            changed.append(f"{prefix}{key}")
    return changed


def recipe_difference(
    stored_setup: dict, stored: dict | None, current_setup: dict, current: dict
) -> str:
    """What differs between a checkpoint's recipe and the current one, in a few words, e.g.
    ``setup keys d_blob_radius, learning_rate / sample A.zarr``."""
    if not stored or "recipe" not in stored:
        return "it has no training identity: written by an older synful or not by synful train"
    parts = []
    keys = _changed_keys(recipe_setup(stored_setup), recipe_setup(current_setup))
    if keys:
        parts.append(("setup key " if len(keys) == 1 else "setup keys ") + ", ".join(keys))
    old, new = stored.get("samples") or [], current["samples"]
    names = current["sample_names"]
    if len(old) != len(new):
        parts.append(f"{len(old)} training samples, now {len(new)}")
    elif old != new:
        canonical = sorted(json.dumps(s, sort_keys=True) for s in old)
        if canonical == sorted(json.dumps(s, sort_keys=True) for s in new):
            parts.append("the order of the samples")
        else:
            differing = [names[i] for i in range(len(new)) if old[i] != new[i]]
            parts.append(("sample " if len(differing) == 1 else "samples ") + ", ".join(differing))
    if not parts and stored.get("version") != current["version"]:
        parts.append(f"training identity version {stored.get('version')}, now {current['version']}")
    return " / ".join(parts) or "another recipe"


@dataclass
class Start:
    """Where a run starts: ``iteration`` 0 (``path`` None) or the checkpoint ``path``, and the
    lineage of the checkpoints it will write (without the ones it writes itself)."""

    iteration: int = 0
    path: Path | None = None
    lineage: list[str] = field(default_factory=list)


def _lineage_after(path: Path, identity: dict | None) -> list[str]:
    """The lineage of checkpoints trained from ``path`` (which has ``identity``)."""
    return [*(identity or {}).get("lineage", []), file_identity(path)]


def _mismatch(path: Path, stored_setup, stored, setup, current, advice: str) -> SynfulError:
    difference = recipe_difference(stored_setup, stored, setup, current)
    return SynfulError(path, f"made with another recipe ({difference}); {advice}")


def _remove(path: Path, why: str) -> None:
    logger.info("removing %s (%s)", path, why)
    os.unlink(path)


def plan_start(
    out_dir: Path,
    setup: dict,
    identity: dict,
    last_iteration: int,
    *,
    restart: bool = False,
    start_from: str | os.PathLike | None = None,
) -> Start:
    """Where a run up to ``last_iteration`` in ``out_dir`` starts (see the module doc); removes
    the checkpoints that ``restart`` or ``start_from`` make stale.

    Raises:
        SynfulError: a checkpoint made with another recipe (default mode) or a bad ``start_from``.
    """
    out_dir = Path(out_dir)
    checkpoints = list_checkpoints(out_dir)
    if restart and start_from is not None:
        raise SynfulError(None, "--restart and --from exclude each other")
    if restart:
        for _, path in checkpoints:
            _remove(path, "--restart")
        return Start()
    if start_from is None:
        for _, path in reversed(checkpoints):
            stored_setup, stored = read_checkpoint_identity(path)
            if not same_recipe(stored, identity):
                raise _mismatch(
                    path,
                    stored_setup,
                    stored,
                    setup,
                    identity,
                    "rerun with --restart to train from scratch",
                )
        eligible = [(it, path) for it, path in checkpoints if it <= last_iteration]
        if not eligible:
            return Start()
        iteration, path = eligible[-1]
        return Start(iteration, path, _lineage_after(path, read_checkpoint_identity(path)[1]))
    start = _resolve_start(out_dir, start_from, last_iteration)
    required = None
    if start.path is not None:
        stored_setup, stored = read_checkpoint_identity(start.path)
        if not same_recipe(stored, identity):
            raise _mismatch(
                start.path,
                stored_setup,
                stored,
                setup,
                identity,
                "it cannot be continued with this setup and these samples",
            )
        start.lineage = _lineage_after(start.path, stored)
        required = start.lineage[-1]
    best = start
    for iteration, path in checkpoints:
        if not start.iteration < iteration <= last_iteration:
            continue
        stored_setup, stored = read_checkpoint_identity(path)
        if not same_recipe(stored, identity):
            _remove(
                path,
                "made with another recipe: "
                + recipe_difference(stored_setup, stored, setup, identity),
            )
        elif required is not None and required not in stored.get("lineage", []):
            _remove(path, f"not trained from {start.path.name}")
        else:
            best = Start(iteration, path, _lineage_after(path, stored))
    return best


def _resolve_start(out_dir: Path, start_from, last_iteration: int) -> Start:
    if str(start_from) == SCRATCH:
        return Start()
    path = Path(start_from)
    match = CHECKPOINT_PATTERN.match(path.name)
    if match is None or os.path.realpath(path.parent) != os.path.realpath(out_dir):
        raise SynfulError(
            path, f"--from must be a checkpoint_<iteration>.pt in --out {out_dir} (or '{SCRATCH}')"
        )
    iteration = int(match.group(1))
    if iteration > last_iteration:
        raise SynfulError(path, f"--from is after --iterations {last_iteration}")
    if not path.is_file():
        raise SynfulError(path, "no such checkpoint file (--from)")
    return Start(iteration, path)
