"""``synful import-tf CHECKPOINT_PREFIX SETUP_DIR OUT.pt``: a published TensorFlow model -> a
synful checkpoint."""

from __future__ import annotations

NAME = "import-tf"
HELP = "convert a published TensorFlow Synful model (p_setupNN) into a synful checkpoint"
DESCRIPTION = (
    "Read a TensorFlow 1 checkpoint of the original Synful (PREFIX.index + PREFIX.data-*; "
    "TensorFlow is not needed) and its setup directory (train_net_config.json, optional "
    "<setup>_config.json, test_net_config.json, parameter.json), check that every variable "
    "belongs to the original network, and write a synful checkpoint that synful predict uses "
    "as it is. The imported network takes synful's valid input shapes (48x484x484 for the "
    "published 42x430x430; see docs/pretrained.md)."
)


def add_arguments(parser) -> None:
    parser.add_argument(
        "prefix",
        metavar="CHECKPOINT_PREFIX",
        help="TensorFlow checkpoint prefix, e.g. p_setup52/train_net_checkpoint_390000 (or its .index file)",
    )
    parser.add_argument(
        "setup_dir", metavar="SETUP_DIR", help="directory with train_net_config.json"
    )
    parser.add_argument("out", metavar="OUT.pt", help="synful checkpoint to write")
    parser.add_argument(
        "--setup-name",
        default=None,
        metavar="NAME",
        help="the setup's name (reads NAME_config.json); None: from the one *_config.json or the directory",
    )


def run(args) -> int:
    from pathlib import Path

    from ..outputs import FILE, claim, output
    from ..tf_import import import_tf_checkpoint
    from ..tf_import.bundle import checkpoint_prefix

    prefix = checkpoint_prefix(args.prefix)
    inputs = [
        prefix.with_name(prefix.name + ".index"),
        *prefix.parent.glob(prefix.name + ".data-*"),
    ]
    inputs += Path(args.setup_dir).glob("*.json")
    with claim([output(args.out, FILE)], inputs):
        path = import_tf_checkpoint(prefix, args.setup_dir, args.out, setup_name=args.setup_name)
    if not args.quiet:
        print(path)
    return 0
