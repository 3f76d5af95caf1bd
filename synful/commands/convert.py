"""``synful convert IN.hdf OUT.zarr --synapses OUT.parquet``: CREMI HDF5 -> sample store + table."""

from __future__ import annotations

from ..io.cremi import CREMI_VOXEL_SIZE
from ._args import zyx

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
    zyx(
        parser,
        "--voxel-size",
        "expected resolution of every volume (nm)",
        default=list(CREMI_VOXEL_SIZE),
    )
    zyx(parser, "--chunks", "zarr chunk shape (voxels)", default=[8, 256, 256])


def run(args) -> int:
    from ..convert import convert_cremi

    convert_cremi(
        args.hdf,
        args.store,
        args.synapses,
        voxel_size=args.voxel_size,
        chunks=args.chunks,
        progress=not args.quiet,
    )
    return 0
