"""``synful synthesize OUT.hdf``: a synthetic CREMI-like sample in the padded CREMI layout."""

from __future__ import annotations

from ..settings.fields import add_options, apply_settings, settings_option, values_from
from ..settings.samples import SynthesizeSettings
from ..settings.workflow import WORKFLOW_KEYS

NAME = "synthesize"
HELP = "write a synthetic CREMI-like sample (raw, neuron ids, polyadic synapses)"
DESCRIPTION = (
    "Write a deterministic synthetic sample in the padded CREMI HDF5 layout: volumes/raw "
    "(uint8, the labelled cube grown by --padding voxels on every side), "
    "volumes/labels/neuron_ids (uint64, the cube, with its offset in nm) and annotations "
    "(locations relative to the annotations' offset, polyadic presynaptic_site/partners). "
    "Neurons run along z, with dark membranes, textured cytoplasm, mitochondria, dense bodies "
    "and vesicle clusters as distractors, and synapses made of a T-bar with a vesicle cloud "
    "facing 1-4 partner neurons with postsynaptic densities. Voxel size 40 x 4 x 4 nm. The "
    "same seed gives identical arrays."
)


def add_arguments(parser) -> None:
    parser.add_argument("out", metavar="OUT.hdf", help="the CREMI HDF5 file to write")
    add_options(parser, SynthesizeSettings)
    settings_option(parser, NAME)
    parser.add_argument("--preview", metavar="PNG", help="also draw a few sections with synapses")


def run(args) -> int:
    import logging

    from ..synthetic.output import write_synthetic

    apply_settings(args, NAME, (SynthesizeSettings,), skip=WORKFLOW_KEYS[NAME])
    settings = SynthesizeSettings(**values_from(SynthesizeSettings, args))
    sample = write_synthetic(args.out, **vars(settings), preview=args.preview)
    ann = sample.annotations
    pre_sites = len(set(ann.partners[:, 0].tolist()))
    logging.getLogger(__name__).info(
        "wrote %s: raw %s, neuron_ids %s at offset %s nm, %d presynaptic sites, %d partner pairs",
        args.out,
        "x".join(map(str, sample.raw.data.shape)),
        "x".join(map(str, sample.neuron_ids.data.shape)),
        tuple(int(o) for o in sample.neuron_ids.offset),
        pre_sites,
        len(ann.partners),
    )
    return 0
