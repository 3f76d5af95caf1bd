"""The prediction settings, defined once: :class:`PredictRun` (where and in which blocks the
network runs) and :class:`PredictConfig` (what the prediction store holds; part of the work's
identity). ``synful predict``'s options, :func:`synful.predict.predict`'s keyword defaults and
the defaults of the workflow's ``predict:`` section (``config/schema.yaml``, checked by
``tests/test_settings_defaults.py``) come from here. ``--roi``, ``--threads`` and the restart
flags are the command's own (a ROI is parsed into a box or a region name; ``--threads`` is
shared with ``synful train``).

Imports no stage (no numpy, zarr or torch): the command line builds its options from this
module.
"""

# no ``from __future__ import annotations``: the fields' types are read at run time
import dataclasses

from ..errors import SynfulError
from .fields import check_fields, setting

#: the prediction store's output dtypes (``uint8``: uint8 indicator and int8 vectors, scaled;
#: :mod:`synful.io.prediction_store` encodes them)
DTYPES = ("uint8", "float16", "float32")

#: how many in-plane mirrored/transposed copies of a block a prediction may average
#: (:mod:`synful.predict.flips`)
FLIP_COUNTS = (1, 2, 4, 8)


def check_device(device: str) -> None:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``, else a one-line error."""
    if device not in ("auto", "cpu") and not str(device).startswith("cuda"):
        raise SynfulError(None, f"unknown device {device!r}: expected auto, cpu, cuda or cuda:N")


@dataclasses.dataclass(frozen=True)
class PredictRun:
    """Where a prediction runs and in which blocks (validated; one line per field).

    ``scheduler``, ``gpus`` and ``cluster`` are the command line's text; from Python,
    :func:`synful.predict.predict` also takes a ``distributed.Client``, a GPU list and a
    :class:`synful.blockwise.clusters.ClusterConfig` for them, checked where they are used.
    """

    roi_margin: float | None = setting(
        None,
        "grow --roi by this many nm on every side before it is grown to the block grid: what "
        "a later stage reads around the region (the workflow passes extract.context, so that "
        "synapses at the border are extracted as from a prediction of all of raw); None: none",
        minimum=0.0, metavar="NM",
    )  # fmt: skip
    block_shape: tuple[int, int, int] | None = setting(
        None,
        "write block in voxels, rounded up to a multiple of the network output shape "
        "(1 1 1 = one network output per block); None: the multiple that recomputes the least "
        "context with at most ~2 GiB of network activations",
        minimum=1, metavar=("Z", "Y", "X"),
    )  # fmt: skip
    workers: int | None = setting(
        None,
        "local workers (one model each); None: one per GPU, or 1 (serial, in this process)",
        minimum=1,
    )
    scheduler: str | None = setting(
        None,
        "'threads' or 'processes' for a local dask cluster of --workers workers, or the "
        "address (tcp://host:8786) or scheduler file (*.json) of an existing dask cluster "
        "(e.g. dask-jobqueue on SLURM); "
        "None: serial for 1 worker, else local processes",
    )
    gpus: str | None = setting(
        None,
        "GPUs for local worker processes, e.g. 0,1,2,3: one worker per GPU, each started "
        "with its own CUDA_VISIBLE_DEVICES (numbers count the GPUs this process sees; more "
        "--workers than GPUs share them round-robin); None: every visible GPU when there are "
        "several workers",
        metavar="LIST",
    )
    cluster: str | None = setting(
        None,
        "start a dask-jobqueue cluster of batch jobs for this run and cancel it after "
        "(also on failure or SIGTERM): a YAML file of cluster settings (kind slurm|pbs|lsf|"
        "sge, jobs, gpus_per_job, cores, memory, walltime, partition, account, "
        "job_extra_directives, job_script_prologue, python, ...; docs/clusters.md) or the "
        "same inline ('{kind: slurm, jobs: 4, gpus_per_job: 4}'); one worker per GPU; needs "
        "the cluster extra (pip install 'synful[cluster]')",
        metavar="CLUSTER.yaml",
    )
    device: str = setting("auto", "auto, cpu, cuda or cuda:N")

    def __post_init__(self):
        check_fields(self)
        check_device(self.device)


@dataclasses.dataclass(frozen=True)
class PredictConfig:
    """What a prediction store holds (validated; part of the work's identity)."""

    dtype: str = setting(
        "uint8",
        "uint8: probability x255 (uint8) and vectors x0.25 nm (int8) as the original",
        choices=DTYPES,
    )
    bf16: bool = setting(
        False,
        "run the network in bfloat16 (autocast) where the device computes bfloat16 natively "
        "(CUDA, CPUs with AVX512-BF16 or AMX); float32 elsewhere",
    )
    fill_missing_sections: bool = setting(
        False,
        "fill black (missing) sections of the raw by interpolating the nearest present "
        "sections before the network sees them",
    )
    flips: int = setting(
        1,
        "average the network's outputs over this many in-plane mirrored and transposed "
        "copies of each block, mapped back (test-time augmentation: 2 adds the half turn, 4 "
        "the diagonal mirrors, 8 all symmetries of the square); costs that many times the "
        "network's time",
        choices=FLIP_COUNTS,
    )

    def __post_init__(self):
        check_fields(self)
