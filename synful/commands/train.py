"""``synful train SETUP.yaml --samples A.zarr [B.zarr ...] --out DIR``: train or resume a network."""

from __future__ import annotations

import argparse

NAME = "train"
HELP = "train a network (resumes from the newest checkpoint in --out)"
DESCRIPTION = (
    "Train a synful network on sample stores (raw, neuron_ids, optional masks/training, and the "
    "synapse table beside each store). Writes checkpoint_<iteration>.pt, snapshots/ and "
    "training_log.csv into --out; rerunning resumes from the newest checkpoint."
)


def add_arguments(parser) -> None:
    parser.add_argument("setup", metavar="SETUP.yaml", help="training setup (config/setups/*.yaml)")
    parser.add_argument("--samples", nargs="+", required=True, metavar="STORE.zarr", help="sample stores")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument(
        "--iterations",
        type=int,
        metavar="N",
        default=argparse.SUPPRESS,
        help="train until iteration N (without it: the setup's max_iteration)",
    )
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to train")


def run(args) -> int:
    from ..train import train

    path = train(args.setup, args.samples, args.out, iterations=getattr(args, "iterations", None), device=args.device,
                 progress=not getattr(args, "quiet", False))
    print(path)
    return 0
