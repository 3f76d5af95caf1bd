"""``synful train SETUP.yaml --samples A.zarr [B.zarr ...] --out DIR``: train or resume a network."""

from __future__ import annotations

import argparse

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
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
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

    set_threads(args.threads)
    path = train(
        args.setup,
        args.samples,
        args.out,
        iterations=getattr(args, "iterations", None),
        device=args.device,
        progress=not getattr(args, "quiet", False),
        restart=args.restart,
        start_from=args.start_from,
    )
    print(path)
    return 0
