"""``synful masks SAMPLE.zarr``: write the training and validation masks of a sample store."""

from __future__ import annotations

NAME = "masks"
HELP = "training/validation masks of a sample store"
DESCRIPTION = (
    "Write masks/training and masks/validation (uint8 0/1 on the neuron_ids grid) into a "
    "sample store, from a split rule (a fraction of the labelled cube or a world-nm range "
    "along one axis: training inside, validation the rest) or from given mask volumes "
    "(file.hdf/dataset or store.zarr/array with resolution and offset attributes in nm; "
    "when only one is given, the other split is its complement). A synapse belongs to the "
    "split whose mask holds its postsynaptic point."
)


def add_arguments(parser) -> None:
    parser.add_argument("store", metavar="SAMPLE.zarr", help="sample store (with neuron_ids)")
    parser.add_argument(
        "--split-axis", choices=["z", "y", "x"], default="z", help="axis of the split rule"
    )
    rule = parser.add_mutually_exclusive_group()
    rule.add_argument(
        "--training-fraction",
        type=float,
        metavar="F",
        help="training = the first F of the labelled cube along the axis (default 0.75)",
    )
    rule.add_argument(
        "--training-range",
        nargs=2,
        type=float,
        metavar=("BEGIN", "END"),
        help="training = voxels whose centres lie in [BEGIN, END) nm (world) along the axis",
    )
    parser.add_argument("--training-mask", metavar="PATH", help="training mask volume")
    parser.add_argument("--validation-mask", metavar="PATH", help="validation mask volume")
    parser.add_argument(
        "--synapses",
        metavar="TABLE",
        help="synapse table to count per split (default: the store's table beside it, if any)",
    )
    parser.add_argument("--summary", metavar="OUT.json", help="write voxel and synapse counts")


def run(args) -> int:
    import json
    import logging
    from pathlib import Path

    from ..atomic import atomic_output
    from ..errors import SynfulError
    from ..io.sample_store import default_synapse_table
    from ..masks import SplitRule, make_masks, mask_input_path, synapses_in_split
    from ..outputs import FILE, claim, output

    given_masks = args.training_mask or args.validation_mask
    if given_masks and (args.training_fraction is not None or args.training_range):
        raise SynfulError(args.store, "give either mask volumes or a split rule, not both")
    rule = SplitRule(
        axis=args.split_axis,
        training_fraction=0.75 if args.training_fraction is None else args.training_fraction,
        training_range=tuple(args.training_range) if args.training_range else None,
    )
    table = Path(args.synapses) if args.synapses else default_synapse_table(args.store)
    given = [mask_input_path(p) for p in (args.training_mask, args.validation_mask) if p]
    outputs = [output(args.summary, FILE)] if args.summary else []
    with claim(outputs, inputs=[args.store, table, *given]):
        voxels = make_masks(args.store, rule, args.training_mask, args.validation_mask)
        summary = {split: {"voxels": count} for split, count in voxels.items()}
        if args.synapses or table.exists():
            for split in summary:
                summary[split]["synapses"] = len(synapses_in_split(table, args.store, split))
        for split, counts in summary.items():
            logging.getLogger(__name__).info("%s %s: %s", args.store, split, counts)
        if args.summary:
            with atomic_output(args.summary, kind=FILE) as tmp:
                tmp.write_text(json.dumps(summary, indent=2) + "\n")
    return 0
