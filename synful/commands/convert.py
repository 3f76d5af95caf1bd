"""``synful convert IN.hdf OUT.zarr --synapses OUT.parquet``: CREMI HDF5 -> sample store + table."""

from __future__ import annotations

from ..settings.fields import add_options, apply_settings, settings_option, values_from
from ..settings.samples import ConvertSettings
from ..settings.workflow import WORKFLOW_KEYS

NAME = "convert"
HELP = "CREMI HDF5 -> sample store (zarr) + synapse table (parquet)"
DESCRIPTION = (
    "Convert a CREMI HDF5 file into a sample store (zarr v3: raw, neuron_ids with their "
    "offsets) and a synapse table (absolute nm, one row per partner pair). Volumes are copied "
    "in z-slabs; both outputs appear only when complete."
)


def add_arguments(parser) -> None:
    parser.add_argument("hdf", metavar="IN.hdf", help="CREMI HDF5 file (volumes/raw required)")
    parser.add_argument("store", metavar="OUT.zarr", help="sample store to write")
    parser.add_argument(
        "--synapses",
        required=True,
        metavar="OUT.parquet",
        help="synapse table to write (.parquet or .csv)",
    )
    add_options(parser, ConvertSettings)
    settings_option(parser, NAME)


def run(args) -> int:
    from ..convert import convert_cremi

    apply_settings(args, NAME, (ConvertSettings,), skip=WORKFLOW_KEYS[NAME])
    settings = ConvertSettings(**values_from(ConvertSettings, args))
    convert_cremi(args.hdf, args.store, args.synapses, **vars(settings), progress=not args.quiet)
    return 0
