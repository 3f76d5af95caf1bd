"""``synful masks SAMPLE.zarr``: write the training and validation masks of a sample store."""

from __future__ import annotations

from ..settings.fields import GIVEN, add_options, apply_settings, settings_option, values_from
from ..settings.samples import MaskSettings
from ..settings.workflow import WORKFLOW_KEYS

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
    add_options(parser, MaskSettings)
    settings_option(parser, NAME)
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

    # on the command line a rule and mask volumes exclude each other; in --settings (a
    # workflow's samples.NAME.masks, its defaults filled in) volumes win over the rule
    flags = getattr(args, GIVEN, None) or set()
    rule_flags = flags & {"training_fraction", "training_range"}
    if len(rule_flags) == 2:
        raise SynfulError(args.store, "give --training-fraction or --training-range, not both")
    if rule_flags and flags & {"training_mask", "validation_mask"}:
        raise SynfulError(args.store, "give either mask volumes or a split rule, not both")
    apply_settings(args, NAME, (MaskSettings,), skip=WORKFLOW_KEYS[NAME])
    settings = MaskSettings(**values_from(MaskSettings, args))
    rule = SplitRule(
        axis=settings.split_axis,
        training_fraction=settings.training_fraction,
        training_range=settings.training_range,
    )
    table = Path(args.synapses) if args.synapses else default_synapse_table(args.store)
    masks = (settings.training_mask, settings.validation_mask)
    given = [mask_input_path(p) for p in masks if p]
    outputs = [output(args.summary, FILE)] if args.summary else []
    with claim(outputs, inputs=[args.store, table, *given]):
        voxels = make_masks(args.store, rule, *masks)
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
