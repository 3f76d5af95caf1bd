"""``synful export``: a synapse table as a CREMI submission file (annotations only)."""

from __future__ import annotations

NAME = "export"
HELP = "write a synapse table as a CREMI submission HDF5 file"
DESCRIPTION = (
    "Write the pairs of a synapse table (Parquet, CSV or CREMI HDF5) as CREMI annotations "
    "(ids, types, locations, presynaptic_site/partners, offset) in a new HDF5 file."
)


def add_arguments(parser) -> None:
    from ._args import zyx

    parser.add_argument(
        "synapses", metavar="SYNAPSES", help="synapse table (.parquet, .csv or .hdf)"
    )
    parser.add_argument("out", metavar="OUT.hdf", help="CREMI HDF5 file to write")
    zyx(
        parser,
        "--offset",
        "annotation offset (nm); locations are stored relative to it",
        default=[0.0, 0.0, 0.0],
        type=float,
    )
    parser.add_argument(
        "--score-threshold",
        type=float,
        default=None,
        metavar="S",
        help="export only pairs with score >= S",
    )


def run(args) -> int:
    from ..export import export_cremi

    count = export_cremi(
        args.synapses, args.out, offset=args.offset, score_threshold=args.score_threshold
    )
    if not args.quiet:
        print(f"wrote {count} synaptic partner pairs to {args.out}")
    return 0
