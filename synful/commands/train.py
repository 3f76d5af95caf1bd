"""``synful train SETUP.yaml --samples A.zarr [B.zarr ...] --out DIR``: train or resume a network."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._args import set_threads, threads_option

NAME = "train"
HELP = "train a network (resumes from the newest checkpoint in --out made with the same recipe)"
DESCRIPTION = (
    "Train a synful network on sample stores (raw, neuron_ids, optional masks/training, and the "
    "synapse table beside each store). Writes checkpoint_<iteration>.pt, snapshots/ and "
    "training_log.csv into --out; rerunning resumes from the newest checkpoint. Each checkpoint "
    "records its training recipe (the setup keys that change the weights and the samples by "
    "content); a checkpoint in --out made with another recipe is an error that says what "
    "differs, and --restart trains from scratch instead."
)


def add_arguments(parser) -> None:
    parser.add_argument("setup", metavar="SETUP.yaml", help="training setup (config/setups/*.yaml)")
    parser.add_argument(
        "--samples", nargs="+", required=True, metavar="STORE.zarr", help="sample stores"
    )
    out = parser.add_mutually_exclusive_group(required=True)
    out.add_argument("--out", metavar="DIR", help="output directory")
    out.add_argument(
        "--checkpoint",
        metavar="DIR/checkpoint_N.pt",
        help="train until this checkpoint is written: --out DIR --iterations N (what the "
        "workflow passes)",
    )
    parser.add_argument(
        "--iterations",
        type=int,
        metavar="N",
        default=argparse.SUPPRESS,
        help="train until iteration N (without it: the setup's max_iteration)",
    )
    parser.add_argument(
        "--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to train"
    )
    threads_option(parser)
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--restart",
        action="store_true",
        help="remove the checkpoints in --out (and the log and snapshots) and train from iteration 0",
    )
    start.add_argument(
        "--from",
        dest="start_from",
        metavar="CHECKPOINT|scratch",
        help="continue this checkpoint of --out (scratch: iteration 0), or the newest later one up "
        "to N trained from it with the same recipe; the other checkpoints in between are removed "
        "(the workflow's mode: resumes after a kill, never from a stale checkpoint)",
    )


def run(args) -> int:
    from ..train import train

    out, iterations = args.out, getattr(args, "iterations", None)
    if args.checkpoint is not None:
        out, iterations = _checkpoint_target(args.checkpoint, iterations)
    set_threads(args.threads)
    path = train(
        args.setup,
        args.samples,
        out,
        iterations=iterations,
        device=args.device,
        progress=not getattr(args, "quiet", False),
        restart=args.restart,
        start_from=args.start_from,
    )
    print(path)
    return 0


def _checkpoint_target(checkpoint: str, iterations: int | None) -> tuple[Path, int]:
    """``--checkpoint DIR/checkpoint_N.pt`` -> (DIR, N)."""
    from ..checkpoint import CHECKPOINT_PATTERN
    from ..errors import SynfulError

    path = Path(checkpoint)
    match = CHECKPOINT_PATTERN.match(path.name)
    if match is None:
        raise SynfulError(checkpoint, "--checkpoint must name a file checkpoint_N.pt")
    if iterations is not None and iterations != int(match.group(1)):
        raise SynfulError(None, "--iterations and --checkpoint name different iterations")
    return path.parent, int(match.group(1))
