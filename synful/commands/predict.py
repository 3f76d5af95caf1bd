"""``synful predict``: blockwise network prediction of raw data (resumable)."""

from __future__ import annotations

from ..errors import SynfulError
from ..geometry import LABELS_REGION, MASK_REGION_PREFIX, RAW_REGION, WORKFLOW_REGIONS
from ..settings.fields import (
    add_options,
    apply_settings,
    settings_option,
    settings_origin,
    values_from,
)
from ..settings.predict import PredictConfig, PredictRun
from ..settings.workflow import WORKFLOW_KEYS
from ._args import parse_roi, set_threads, threads_option

NAME = "predict"
HELP = "predict post-synaptic indicator and partner vectors blockwise (resumable)"
DESCRIPTION = (
    "Run a trained network over raw data (a sample store's raw, or an existing zarr, N5 or "
    "OME-Zarr volume), block by block, into a prediction "
    "store (post_indicator, partner_vectors). Blocks are multiples of the network output "
    "shape; finished blocks are remembered, so an interrupted run resumes when rerun with the "
    "same checkpoint, sample and options (by content); unfinished work of other ones is an "
    "error unless --restart. OUT.zarr appears only when every block is done."
)

#: keys of a workflow config's predict section that the command applies itself: roi (a
#: workflow region, geometry.WORKFLOW_REGIONS) and cluster (a mapping there, text as a flag)
SECTION_OWN = ("roi", "cluster")


def add_arguments(parser) -> None:
    parser.add_argument("checkpoint", help="checkpoint file written by synful train")
    parser.add_argument(
        "sample",
        metavar="RAW",
        help="the raw to predict (uint8, z y x, at the network's voxel size): a sample store "
        "SAMPLE.zarr (its raw); a zarr v2/v3 array CONTAINER.zarr/path/to/raw with voxel_size/"
        "offset (or resolution/offset) attributes; an N5 dataset CONTAINER.n5/path/to/raw with "
        "resolution/offset attributes (x y z order); or an OME-Zarr image IMAGE.zarr (the "
        "multiscale level at the network's voxel size is read)",
    )
    parser.add_argument("out", metavar="OUT.zarr", help="prediction store to write")
    parser.add_argument(
        "--roi",
        type=parse_roi,
        default=None,
        metavar="ROI",
        help="region to predict, grown to the block grid: z0:z1,y0:y1,x0:x1 in nm; "
        f"'{RAW_REGION}' (all of raw, the default); '{LABELS_REGION}' (the sample's neuron_ids "
        f"ROI); or '{MASK_REGION_PREFIX}NAME', e.g. {WORKFLOW_REGIONS['validation']} (the "
        "bounding box of that mask's nonzero voxels)",
    )
    add_options(parser, PredictRun)
    add_options(parser, PredictConfig)
    threads_option(parser)
    settings_option(parser, NAME)
    parser.add_argument(
        "--restart",
        action="store_true",
        help="discard the unfinished work of an earlier run (.OUT.zarr.partial) and start fresh; "
        "needed when that run's checkpoint, sample, ROI, blocks or options differ (it is never "
        "resumed then)",
    )
    parser.add_argument(
        "--restart-stale",
        action="store_true",
        help="discard the unfinished work of an earlier run (.OUT.zarr.partial) only when it was made "
        "from other inputs or settings, else resume it (what the workflow passes)",
    )


def run(args) -> int:
    from ..blockwise.clusters import load_cluster_config
    from ..predict import predict

    own = apply_settings(
        args, NAME, (PredictRun, PredictConfig), skip=WORKFLOW_KEYS[NAME], own=SECTION_OWN
    )
    if args.roi is None and own.get("roi") is not None:
        args.roi = _workflow_region(own["roi"], args.settings)
    if own.get("cluster") is not None:  # a mapping in a workflow config
        args.cluster = own["cluster"]
    settings = values_from(PredictRun, args) | values_from(PredictConfig, args)
    if settings["cluster"] is not None:
        settings["cluster"] = load_cluster_config(settings["cluster"])
    set_threads(args.threads)
    predict(
        args.checkpoint,
        args.sample,
        args.out,
        roi=args.roi,
        progress=not args.quiet,
        restart="stale" if args.restart_stale else args.restart,
        **settings,
    )
    return 0


def _workflow_region(name, origin: str):
    """A workflow config's ``predict.roi`` (labels, raw, validation) -> ``--roi`` (None: raw)."""
    if name not in WORKFLOW_REGIONS:
        raise SynfulError(
            f"{settings_origin(origin)} {NAME}.roi",
            f"unknown region {name!r}, expected one of {', '.join(WORKFLOW_REGIONS)}",
        )
    region = WORKFLOW_REGIONS[name]
    return None if region == RAW_REGION else region
