"""``synful extract PRED.zarr OUT.parquet``: prediction store -> synapse table."""

from __future__ import annotations

from ._args import zyx

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
    parser.add_argument(
        "--mode", choices=["cc", "nms", "split"], default="cc", help="candidate detection"
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        metavar="T",
        help="probability threshold in [0, 1] (strict)",
    )
    parser.add_argument(
        "--score",
        choices=["sum", "mean", "max", "count"],
        default="sum",
        help="cc/split mode: score of a component (nms scores by the maximum)",
    )
    parser.add_argument(
        "--cc-location",
        choices=["interior", "master"],
        default="interior",
        help="cc mode: where a component is located. interior (default): the voxel farthest "
        "from the component's outside, everything outside it counting as outside (the "
        "original's fanc_evaluation branch); master: the original master branch's rule (the "
        "paper's CREMI grid search), an EDT of the component's bounding box where only label "
        "transitions are boundaries and the box faces are not. See docs/extraction.md",
    )
    parser.add_argument(
        "--split-levels",
        type=float,
        nargs="+",
        default=[0.6, 0.7, 0.8, 0.9, 0.95],  # synful.extract.split.SPLIT_LEVELS
        metavar="P",
        help="split mode: levels above --threshold where components are tested for splitting",
    )
    parser.add_argument(
        "--min-piece-volume",
        type=float,
        default=32000.0,
        metavar="NM3",
        help="split mode: the smallest piece that counts (nm^3; 32000 = 50 voxels of 40x4x4)",
    )
    parser.add_argument(
        "--nms-radius", type=float, default=40.0, metavar="NM", help="nms radius (nm)"
    )
    parser.add_argument(
        "--nms-border",
        choices=["constant", "reflect"],
        default="constant",
        help="nms mode: the map beyond the volume's faces: 0 (constant, default) or its "
        "reflection (reflect, scipy's default in the original); both give the same maxima "
        "(docs/extraction.md)",
    )
    parser.add_argument(
        "--vector-radius",
        type=float,
        default=0.0,
        metavar="NM",
        help="average the partner vector over the voxels above --threshold within this radius "
        "of the post voxel, weighted by probability (0: the post voxel alone, the original)",
    )
    parser.add_argument(
        "--score-threshold",
        type=float,
        default=0.0,
        metavar="S",
        help="keep synapses with score > S",
    )
    parser.add_argument(
        "--min-distance",
        type=float,
        default=0.0,
        metavar="NM",
        help="drop synapses whose pre-post distance is below this (nm); 0 = off",
    )
    parser.add_argument(
        "--context",
        type=float,
        default=120.0,
        metavar="NM",
        help="margin read around each block (nm)",
    )
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
    parser.add_argument(
        "--drop-autapses",
        action="store_true",
        help="with --seg: drop synapses whose pre and post segment ids are equal (non-zero)",
    )
    zyx(parser, "--block-shape", "block shape in voxels (default: the whole volume)")
    parser.add_argument(
        "--workers", type=int, default=1, metavar="N", help="number of dask workers"
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="dask scheduler address (tcp://host:8786), or threads/processes/serial",
    )
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

    extract_synapses(
        args.predictions,
        args.out,
        mode=args.mode,
        threshold=args.threshold,
        score=args.score,
        nms_radius=args.nms_radius,
        split_levels=args.split_levels,
        min_piece_volume=args.min_piece_volume,
        vector_radius=args.vector_radius,
        cc_location=args.cc_location,
        nms_border=args.nms_border,
        score_threshold=args.score_threshold,
        min_distance=args.min_distance,
        context=args.context,
        seg_store=args.seg,
        drop_autapses=args.drop_autapses,
        vectors_store=args.vectors,
        block_shape=args.block_shape,
        workers=args.workers,
        scheduler=args.scheduler,
        progress=not args.quiet,
        restart="stale" if args.restart_stale else args.restart,
        return_table=False,  # the merge streams: never the whole table in memory
    )
    print(f"{args.out}: {summarize_file(args.out)}")
    return 0
