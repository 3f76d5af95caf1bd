"""``synful predict``: blockwise network prediction of raw data (resumable)."""

from __future__ import annotations

from ..geometry import LABELS_REGION, MASK_REGION_PREFIX, RAW_REGION, WORKFLOW_REGIONS
from ._args import parse_roi, set_threads, threads_option, zyx

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


def add_arguments(parser) -> None:
    parser.add_argument("checkpoint", help="checkpoint file written by synful train")
    parser.add_argument(
        "sample", metavar="RAW",
        help="the raw to predict (uint8, z y x, at the network's voxel size): a sample store "
        "SAMPLE.zarr (its raw); a zarr v2/v3 array CONTAINER.zarr/path/to/raw with voxel_size/"
        "offset (or resolution/offset) attributes; an N5 dataset CONTAINER.n5/path/to/raw with "
        "resolution/offset attributes (x y z order); or an OME-Zarr image IMAGE.zarr (the "
        "multiscale level at the network's voxel size is read)",
    )
    parser.add_argument("out", metavar="OUT.zarr", help="prediction store to write")
    parser.add_argument(
        "--roi", type=parse_roi, default=None, metavar="ROI",
        help="region to predict, grown to the block grid: z0:z1,y0:y1,x0:x1 in nm; "
        f"'{RAW_REGION}' (all of raw, the default); '{LABELS_REGION}' (the sample's neuron_ids "
        f"ROI); or '{MASK_REGION_PREFIX}NAME', e.g. {WORKFLOW_REGIONS['validation']} (the "
        "bounding box of that mask's nonzero voxels)",
    )
    zyx(parser, "--block-shape",
        "write block in voxels, rounded up to a multiple of the network output shape "
        "(1 1 1 = one network output per block); None: the multiple that recomputes the least "
        "context with at most ~2 GiB of network activations")
    parser.add_argument(
        "--workers", type=int, default=None,
        help="local workers (one model each); None: one per GPU, or 1 (serial, in this process)",
    )
    parser.add_argument(
        "--scheduler", default=None,
        help="'threads' or 'processes' for a local dask cluster of --workers workers, or the "
        "address (tcp://host:8786) or scheduler file (*.json) of an existing dask cluster "
        "(e.g. dask-jobqueue on SLURM); "
        "None: serial for 1 worker, else local processes",
    )
    parser.add_argument(
        "--gpus", default=None, metavar="LIST",
        help="GPUs for local worker processes, e.g. 0,1,2,3: one worker per GPU, each started "
        "with its own CUDA_VISIBLE_DEVICES (numbers count the GPUs this process sees; more "
        "--workers than GPUs share them round-robin); None: every visible GPU when there are "
        "several workers",
    )
    parser.add_argument(
        "--cluster", default=None, metavar="CLUSTER.yaml",
        help="start a dask-jobqueue cluster of batch jobs for this run and cancel it after "
        "(also on failure or SIGTERM): a YAML file of cluster settings (kind slurm|pbs|lsf|"
        "sge, jobs, gpus_per_job, cores, memory, walltime, partition, account, "
        "job_extra_directives, job_script_prologue, python, ...; docs/clusters.md) or the "
        "same inline ('{kind: slurm, jobs: 4, gpus_per_job: 4}'); one worker per GPU; needs "
        "the cluster extra (pip install 'synful[cluster]')",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--dtype", choices=("uint8", "float16", "float32"), default="uint8",
        help="uint8: probability x255 (uint8) and vectors x0.25 nm (int8) as the original",
    )
    parser.add_argument("--bf16", action="store_true", help="run the network in bfloat16 (autocast)")
    threads_option(parser)
    parser.add_argument(
        "--restart", action="store_true",
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

    cluster = None if args.cluster is None else load_cluster_config(args.cluster)
    set_threads(args.threads)
    predict(
        args.checkpoint,
        args.sample,
        args.out,
        roi=args.roi,
        block_shape=args.block_shape,
        workers=args.workers,
        scheduler=args.scheduler,
        device=args.device,
        dtype=args.dtype,
        bf16=args.bf16,
        progress=not args.quiet,
        restart="stale" if args.restart_stale else args.restart,
        gpus=args.gpus,
        cluster=cluster,
    )
    return 0
