"""The training loop: Adam, checkpoints, resume, snapshots, a loss log and a progress bar.

``train(setup_path, samples, out_dir)`` trains until ``iterations`` (default: the setup's
``max_iteration``), writes a checkpoint every ``checkpoint_every`` iterations and at the end, a
snapshot every ``snapshot_every`` iterations (keeping the last ``keep_snapshots``), and appends
one row per logged iteration to ``training_log.csv`` (iteration, losses, step and data-wait
seconds).

Every checkpoint records the run's training identity (:mod:`synful.train.resume`): the setup
keys that change the weights and the training inputs by content. A run resumes only from a
checkpoint with the same identity: by default from the newest ``checkpoint_<it>.pt`` in
``out_dir`` at or before ``iterations`` (a corrupt one is an error naming it; a checkpoint made
with another recipe is a one-line error saying what differs); ``restart`` removes the
checkpoints and starts from iteration 0; ``start_from`` (``--from``, the workflow's mode)
continues a given checkpoint, replacing the later ones not trained from it. Asked for an
iteration below the newest checkpoint, it resumes from the newest one at or before it (the
batches are deterministic, so the result is the same as in the first run). The log rows and
snapshots after the start are dropped (a run rewrites them).

``out_dir`` is claimed first (:func:`synful.outputs.claim`): it may not be an input (setup,
sample stores, their tables) or hold one, and an existing directory must be empty or a
training directory (marked by ``.synful.json``); it is locked while training, and temporary
files of a killed run are swept. SIGTERM keeps the checkpoints written so far.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_output, remove_path
from ..checkpoint import checkpoint_name, load_checkpoint, save_checkpoint
from ..errors import SynfulError
from ..identity import file_identity
from ..io.sample_store import default_synapse_table
from ..models import MASK_ACTIVATION, POST_INDICATOR, build_model, mask_probability
from ..outputs import SNAPSHOT, TRAINING, claim, is_kind, mark_directory, output
from . import batchnorm
from .dataset import TrainingBatches, batch_loader
from .losses import training_loss
from .precision import NO_AMX_ISA, avoid_amx_weight_gradient_crash, native_bf16
from .resume import plan_start, training_identity
from .sampling import open_training_sample
from .setup import TrainSetup, load_setup
from .snapshots import list_snapshots, write_snapshot

logger = logging.getLogger(__name__)

LOG_NAME = "training_log.csv"
LOG_COLUMNS = ["iteration", "loss", "mask_loss", "vector_loss", "step_seconds", "data_seconds"]
TENSOR_KEYS = ("raw", "post_indicator", "partner_vectors", "vector_mask", "loss_weights")


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SynfulError(None, f"--device {device}: CUDA is not available on this machine")
    try:
        return torch.device(device)
    except RuntimeError:
        raise SynfulError(None, f"unknown device {device!r} (expected auto, cpu or cuda)") from None


def train(
    setup_path: str | os.PathLike,
    samples: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    iterations: int | None = None,
    device: str = "auto",
    progress: bool = True,
    restart: bool = False,
    start_from: str | os.PathLike | None = None,
) -> Path:
    """Train (or resume) a network; returns the last checkpoint.

    Args:
        setup_path: the setup YAML.
        samples: sample stores (each with its synapse table beside it).
        out_dir: where checkpoints, snapshots and the log go.
        iterations: train until this iteration (default: the setup's ``max_iteration``).
        device: ``auto``, ``cpu`` or ``cuda``.
        progress: show a tqdm progress bar.
        restart: remove the checkpoints in ``out_dir`` and train from iteration 0.
        start_from: continue this checkpoint of ``out_dir`` (``"scratch"``: iteration 0), or
            the newest later one up to ``iterations`` trained from it with the same recipe;
            the other checkpoints in that range are removed (the workflow's mode).

    Raises:
        SynfulError: bad input, or (without ``restart`` / ``start_from``) a checkpoint in
            ``out_dir`` made with another recipe.
    """
    setup = load_setup(setup_path)
    return train_setup(
        setup,
        samples,
        out_dir,
        iterations=iterations,
        device=device,
        progress=progress,
        setup_path=setup_path,
        restart=restart,
        start_from=start_from,
    )


def train_setup(
    setup: TrainSetup,
    samples: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    iterations: int | None = None,
    device: str = "auto",
    progress: bool = True,
    setup_path: str | os.PathLike | None = None,
    restart: bool = False,
    start_from: str | os.PathLike | None = None,
) -> Path:
    """:func:`train` for an already resolved setup."""
    inputs = [setup_path, *samples, *(default_synapse_table(s) for s in samples)]
    with claim([output(out_dir, TRAINING, sweep=("", "snapshots"))], inputs):
        return _train_setup(
            setup,
            samples,
            out_dir,
            iterations=iterations,
            device=device,
            progress=progress,
            setup_path=setup_path,
            restart=restart,
            start_from=start_from,
        )


def _train_setup(
    setup, samples, out_dir, *, iterations, device, progress, setup_path, restart, start_from
) -> Path:
    if not samples:
        raise SynfulError(None, "no sample stores given (--samples)")
    last_iteration = int(iterations if iterations is not None else setup.max_iteration)
    if last_iteration < 1:
        raise SynfulError(None, f"--iterations must be >= 1, got {last_iteration}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mark_directory(out_dir, TRAINING)
    torch_device = resolve_device(device)
    setup_dict = setup.to_dict()
    # open the stores once here, so bad input fails before any worker starts
    for path in samples:
        open_training_sample(path, setup.voxel_size)
    identity = training_identity(setup_dict, samples)

    torch.manual_seed(setup.seed)
    start = plan_start(
        out_dir, setup_dict, identity, last_iteration, restart=restart, start_from=start_from
    )
    start_iteration, lineage = start.iteration, list(start.lineage)
    if start.path is not None:
        checkpoint = load_checkpoint(start.path, device=torch_device)
        model = checkpoint.model
        if start_iteration == last_iteration:
            logger.info("%s exists: nothing to do", start.path)
            return start.path
        logger.info("resuming from %s (training recipe %s)", start.path, identity["recipe"][:12])
    else:
        checkpoint = None
        model = build_model(setup_dict).to(torch_device)
        logger.info("training from scratch (training recipe %s)", identity["recipe"][:12])
    model.train()
    optimizer = torch.optim.Adam(
        model.parameters(),
        lr=setup.learning_rate,
        betas=tuple(setup.adam_betas),
        eps=setup.adam_eps,
    )
    if checkpoint is not None and checkpoint.optimizer_state is not None:
        optimizer.load_state_dict(checkpoint.optimizer_state)
        for group in optimizer.param_groups:  # the setup's values, not the stored ones
            group.update(betas=tuple(setup.adam_betas), eps=setup.adam_eps)
    input_shape = tuple(setup.input_shape)
    output_shape = model.output_shape(input_shape)
    context = model.context(input_shape)
    log_path = out_dir / LOG_NAME
    _truncate_log(log_path, start_iteration)
    _remove_snapshots_after(out_dir / "snapshots", start_iteration)

    use_cuda = torch_device.type == "cuda"
    bf16 = setup.mixed_precision and native_bf16(torch_device)
    logger.info(
        "training on %s in %s", torch_device, "bfloat16 mixed precision" if bf16 else "float32"
    )
    if avoid_amx_weight_gradient_crash(torch_device, bf16, setup.batch_size):
        logger.info(
            "%d threads for batches of %d: oneDNN kept off AMX (ONEDNN_MAX_CPU_ISA=%s)",
            torch.get_num_threads(),
            setup.batch_size,
            NO_AMX_ISA,
        )

    def forward(raw: torch.Tensor) -> dict:
        with torch.autocast(torch_device.type, dtype=torch.bfloat16, enabled=bf16):
            return model(raw)

    recompute_batch_norm = bool(batchnorm.batch_norms(model)) and setup.batch_norm_batches > 0
    dataset = TrainingBatches(
        samples, setup_dict, input_shape, output_shape, start=start_iteration + 1
    )
    loader = batch_loader(dataset, setup.num_workers, pin_memory=use_cuda)
    batches = iter(loader)
    last_path = None
    bar = _progress(progress, start_iteration, last_iteration)
    try:
        with open(log_path, "a", newline="") as log_file:
            writer = csv.DictWriter(log_file, fieldnames=LOG_COLUMNS)
            if log_file.tell() == 0:
                writer.writeheader()
            for iteration in range(start_iteration + 1, last_iteration + 1):
                t0 = time.perf_counter()
                batch = next(batches)
                t1 = time.perf_counter()
                if int(batch["iteration"]) != iteration:  # the loader's order is the contract
                    raise RuntimeError(
                        f"batch for iteration {int(batch['iteration'])} arrived at {iteration}"
                    )
                tensors = {k: batch[k].to(torch_device, non_blocking=True) for k in TENSOR_KEYS}
                optimizer.zero_grad(set_to_none=True)
                for group in optimizer.param_groups:
                    group["lr"] = setup.learning_rate_at(iteration)
                outputs = forward(tensors["raw"])
                loss, parts = training_loss(outputs, tensors, setup)
                if not torch.isfinite(loss):
                    raise SynfulError(
                        setup_path, f"the loss became {float(loss)} at iteration {iteration}"
                    )
                loss.backward()
                optimizer.step()
                if use_cuda:
                    torch.cuda.synchronize()
                t2 = time.perf_counter()
                if iteration % setup.log_every == 0 or iteration == last_iteration:
                    writer.writerow(
                        {
                            "iteration": iteration,
                            **{k: parts.get(k, "") for k in LOG_COLUMNS[1:4]},
                            "step_seconds": round(t2 - t0, 5),
                            "data_seconds": round(t1 - t0, 5),
                        }
                    )
                    log_file.flush()
                if bar is not None:
                    bar.set_postfix(loss=f"{parts['loss']:.4g}", refresh=False)
                    bar.update(1)
                if iteration % setup.snapshot_every == 0:
                    _snapshot(out_dir, iteration, batch, outputs, setup, context)
                if iteration % setup.checkpoint_every == 0 or iteration == last_iteration:
                    if recompute_batch_norm:
                        batchnorm.recompute_statistics(
                            model,
                            _batch_norm_inputs(dataset, iteration, torch_device),
                            setup.batch_norm_batches,
                            forward,
                        )
                    last_path = save_checkpoint(
                        out_dir / checkpoint_name(iteration),
                        model=model,
                        setup=setup_dict,
                        iteration=iteration,
                        optimizer=optimizer,
                        identity={**identity, "lineage": lineage},
                    )
                    lineage.append(file_identity(last_path))
    finally:
        if bar is not None:
            bar.close()
        del batches
    return last_path


#: the stream of batches used for BatchNorm statistics (training batches are stream 0)
BATCH_NORM_STREAM = 1


def _batch_norm_inputs(training: TrainingBatches, iteration: int, device):
    """Input batches for the BatchNorm statistics of the checkpoint at ``iteration``: the
    training batches' samples and shapes, from their own stream."""
    batches = TrainingBatches(
        training.sample_paths,
        training.setup_dict,
        training.input_shape,
        training.output_shape,
        start=iteration,
        stream=BATCH_NORM_STREAM,
    )
    return (torch.as_tensor(batch["raw"]).to(device) for batch in batches)


def _remove_snapshots_after(directory: Path, iteration: int) -> None:
    """Remove the snapshots after ``iteration`` (of a run this one replaces or repeats)."""
    for it, paths in list_snapshots(directory).items():
        if it <= iteration:
            continue
        for path in paths:
            if (
                path.suffix == ".png"
                and path.is_file()
                and not path.is_symlink()
                or is_kind(path, SNAPSHOT)
            ):
                remove_path(path)


def _truncate_log(log_path: Path, iteration: int) -> None:
    """Drop log rows after ``iteration`` (written after the last checkpoint of a killed run)."""
    if not log_path.exists():
        return
    with open(log_path, newline="") as f:
        rows = [row for row in csv.DictReader(f) if int(row["iteration"]) <= iteration]
    with atomic_output(log_path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LOG_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def _progress(enabled: bool, start: int, total: int):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(
        total=total, initial=start, desc="train", unit="it", mininterval=1.0, dynamic_ncols=True
    )


def _snapshot(
    out_dir: Path, iteration: int, batch: dict, outputs: dict, setup: TrainSetup, context
) -> None:
    predictions = {}
    for key, value in outputs.items():
        value = value.detach().float()
        if key == POST_INDICATOR:
            value = mask_probability(value, MASK_ACTIVATION[setup.mask_loss])
        predictions[key] = value.cpu().numpy()
    numpy_batch = {
        k: (v.numpy() if isinstance(v, torch.Tensor) else np.asarray(v)) for k, v in batch.items()
    }
    write_snapshot(
        out_dir / "snapshots",
        iteration,
        numpy_batch,
        predictions,
        setup.voxel_size,
        context,
        keep=setup.keep_snapshots,
    )
