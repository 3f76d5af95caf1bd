"""``synful extract PRED.zarr OUT.parquet``: prediction store -> synapse table."""

from __future__ import annotations

from ..settings.extract import ExtractConfig, ExtractRun
from ..settings.fields import add_options, apply_settings, settings_option, values_from
from ..settings.workflow import WORKFLOW_KEYS
from ._args import positive_int

NAME = "extract"
HELP = "prediction store -> synapse table (cc, nms or split, blockwise, resumable)"
DESCRIPTION = (
    "Find synapses in a prediction store (post_indicator, partner_vectors). Postsynaptic "
    "points: connected components of probability > threshold located at their most interior "
    "voxel (--mode cc), the same split where components break apart at higher --split-levels "
    "(--mode split), or local maxima within --nms-radius (--mode nms); the presynaptic "
    "partner is the post point plus the predicted vector there, snapped to the voxel grid. "
    "Runs blockwise with a context around each block; every synapse belongs to the block "
    "holding its post point. Per-block results go to OUT.blocks/ and a rerun with the same "
    "inputs (by content) and settings resumes (other ones: an error unless --restart); OUT "
    "appears only when complete. With --vectors OTHER.zarr the partner vectors come from another "
    "prediction store (e.g. of a vector-only network) and PRED.zarr needs only post_indicator. "
    "Prints a one-line summary."
)


def add_arguments(parser) -> None:
    parser.add_argument("predictions", metavar="PRED.zarr", help="prediction store")
    parser.add_argument(
        "out", metavar="OUT.parquet", help="synapse table to write (.parquet or .csv)"
    )
    add_options(parser, ExtractConfig)
    parser.add_argument(
        "--seg",
        metavar="SAMPLE.zarr",
        default=None,
        help="add pre/post segment ids from neuron_ids",
    )
    parser.add_argument(
        "--vectors",
        metavar="OTHER.zarr",
        default=None,
        help="take partner_vectors from this prediction store (e.g. from a vector-only "
        "network; same voxel size, covering PRED.zarr's post_indicator) instead of PRED.zarr",
    )
    add_options(parser, ExtractRun)
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        metavar="N",
        help="the CPU threads this run may use: at most N local --workers (what a workflow job "
        "was given); None: --workers as given",
    )
    settings_option(parser, NAME)
    parser.add_argument(
        "--restart",
        action="store_true",
        help="discard the unfinished work of an earlier run (OUT.blocks) and start fresh; needed "
        "when that run's predictions, segmentation or settings differ (it is never resumed then)",
    )
    parser.add_argument(
        "--restart-stale",
        action="store_true",
        help="discard the unfinished work of an earlier run (OUT.blocks) only when it was made "
        "from other inputs or settings, else resume it (what the workflow passes)",
    )


def run(args) -> int:
    from ..extract import extract_synapses
    from ..extract.summary import summarize_file

    apply_settings(args, NAME, (ExtractConfig, ExtractRun), skip=WORKFLOW_KEYS[NAME])
    if args.threads is not None and args.workers is not None:
        args.workers = min(args.workers, args.threads)
    extract_synapses(
        args.predictions,
        args.out,
        seg_store=args.seg,
        vectors_store=args.vectors,
        progress=not args.quiet,
        restart="stale" if args.restart_stale else args.restart,
        return_table=False,  # the merge streams: never the whole table in memory
        **values_from(ExtractRun, args),
        **values_from(ExtractConfig, args),
    )
    print(f"{args.out}: {summarize_file(args.out)}")
    return 0
