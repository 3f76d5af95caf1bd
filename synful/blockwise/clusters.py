"""Dask clusters for blockwise runs: one local worker per GPU, and clusters of batch jobs.

Two scheduler *specs* that :func:`synful.blockwise.dask_client` (and so ``run_blockwise(...,
scheduler=SPEC)``) turns into a running cluster, and closes again however the run ends:

* :class:`LocalGpus`: a ``distributed.LocalCluster`` of worker processes, each started with
  its own ``CUDA_VISIBLE_DEVICES`` (one GPU; several workers share GPUs round-robin when
  there are more workers than GPUs). The variable is set by the worker's nanny before the
  worker process starts, so torch only ever sees that one device (``cuda:0`` in the worker).
* :class:`ClusterConfig`: a dask-jobqueue cluster (SLURM, PBS, LSF, SGE) of ``jobs`` batch
  jobs with ``gpus_per_job`` GPUs and one worker process per GPU. The jobs are submitted
  when the run starts and cancelled when it ends (also on an error or SIGTERM). In each job,
  :class:`OneGpuPerWorker` (a nanny plugin) gives worker ``i`` the ``i``-th of the job's GPUs
  (the job's ``CUDA_VISIBLE_DEVICES`` as the batch system set it, else ``0..gpus-1``).

:func:`scheduler_for` decides which one a command runs on from its options; :func:`job_script`
renders a cluster's job script without submitting anything (check it before a long run).
The cluster settings are validated here, once, with their defaults
(:class:`ClusterConfig`; the workflow's ``predict.cluster`` and ``synful predict --cluster``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from distributed.diagnostics.plugin import NannyPlugin

from ..errors import SynfulError

logger = logging.getLogger(__name__)

#: the variable that restricts a process to some GPUs (read by CUDA when it initialises)
GPU_VARIABLE = "CUDA_VISIBLE_DEVICES"
#: ``kind`` -> the dask-jobqueue cluster class (``local`` runs the job's worker command as a
#: process on this machine: try a configuration without a batch system)
KINDS = {
    "slurm": "SLURMCluster",
    "pbs": "PBSCluster",
    "lsf": "LSFCluster",
    "sge": "SGECluster",
    "local": "LocalCluster",
}
#: the job directive that asks for ``{gpus}`` GPUs, when ``gpu_directive`` is not given
#: (PBS and SGE sites differ: they must say how, or ``gpu_directive: ""`` for none)
GPU_DIRECTIVES = {"slurm": "--gres=gpu:{gpus}", "lsf": '-gpu "num={gpus}"', "local": ""}
#: how long a local GPU cluster may take to start its workers (seconds)
LOCAL_START_TIMEOUT = 120


# --- one worker per GPU ----------------------------------------------------------------------


def parse_gpus(text: str | Sequence[str | int]) -> tuple[str, ...]:
    """``"0,1,2,3"`` (or a list) -> ``("0", "1", "2", "3")``: GPU ordinals as this process
    numbers them (``cuda:N``), or GPU/MIG UUIDs, which are passed on as they are."""
    items = text.split(",") if isinstance(text, str) else list(text)
    gpus = tuple(str(item).strip() for item in items)
    if not gpus or any(not gpu for gpu in gpus):
        raise SynfulError(None, f"--gpus: expected GPU numbers such as 0,1,2,3, got {text!r}")
    if len(set(gpus)) != len(gpus):
        raise SynfulError(None, f"--gpus: a GPU is named twice in {text!r}")
    return gpus


def _visible(environ: Mapping[str, str]) -> list[str] | None:
    """This process's ``CUDA_VISIBLE_DEVICES`` as a list, or None when unset."""
    value = environ.get(GPU_VARIABLE)
    if value is None:
        return None
    return [item.strip() for item in value.split(",") if item.strip()]


def visible_gpus(count: int, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The ``CUDA_VISIBLE_DEVICES`` value of each of the ``count`` GPUs this process sees.

    Within a job whose ``CUDA_VISIBLE_DEVICES`` is ``3,5``, torch's ``cuda:0`` and ``cuda:1``
    are the physical GPUs 3 and 5: a worker restricted to ``cuda:1`` needs the value ``5``.

    Args:
        count: the number of GPUs this process sees (``torch.cuda.device_count()``).
        environ: this process's environment (default ``os.environ``).
    """
    visible = _visible(os.environ if environ is None else environ)
    if visible is None:
        return tuple(str(i) for i in range(count))
    return tuple(visible[:count])


def select_gpus(gpus: Sequence[str], environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The ``CUDA_VISIBLE_DEVICES`` values of the GPUs named by ``--gpus``: ordinals count
    this process's visible GPUs (``CUDA_VISIBLE_DEVICES=3,5`` and ``--gpus 1`` -> ``5``);
    UUIDs (``GPU-...``, ``MIG-...``) pass unchanged."""
    visible = _visible(os.environ if environ is None else environ)
    chosen = []
    for gpu in gpus:
        if visible is not None and gpu.isdigit():
            if int(gpu) >= len(visible):
                raise SynfulError(
                    None, f"--gpus {gpu}: this process sees only {len(visible)} GPU(s) "
                    f"({GPU_VARIABLE}={','.join(visible)})",
                )  # fmt: skip
            gpu = visible[int(gpu)]
        chosen.append(gpu)
    return tuple(chosen)


def worker_gpus(workers: int, gpus: Sequence[str]) -> list[str]:
    """The ``CUDA_VISIBLE_DEVICES`` of each of ``workers`` workers: GPU ``i % len(gpus)``."""
    if not gpus:
        raise ValueError("no GPUs to share among the workers")
    return [gpus[i % len(gpus)] for i in range(workers)]


@dataclasses.dataclass(frozen=True)
class LocalGpus:
    """Scheduler spec: local worker processes, each restricted to one of ``devices``
    (``CUDA_VISIBLE_DEVICES`` values), round-robin."""

    devices: tuple[str, ...]

    def __str__(self) -> str:
        return f"local workers on GPUs {','.join(self.devices)} (one each)"


def place_gpu_workers(cluster, gpus: Sequence[str]) -> None:
    """Start one worker of ``cluster`` (a ``LocalCluster`` of processes without workers)
    per entry of ``gpus``, each with that ``CUDA_VISIBLE_DEVICES`` (set in the worker
    process's environment by its nanny before the process starts)."""
    spec = cluster.new_spec
    for i, gpu in enumerate(gpus):
        options = dict(spec.get("options", {}))
        options["env"] = {**options.get("env", {}), GPU_VARIABLE: str(gpu)}
        cluster.worker_spec[i] = {"cls": spec["cls"], "options": options}
    try:
        cluster.scale(len(gpus))
        # started here, like LocalCluster's own workers (inside the caller's dask config)
        cluster.wait_for_workers(len(gpus), timeout=LOCAL_START_TIMEOUT)
    except BaseException:
        cluster.close()
        raise


def scheduler_for(scheduler, workers: int | None, *, device: str = "auto", gpus=None,
                  cluster=None, gpu_count: int = 0) -> tuple[Any, int]:  # fmt: skip
    """The scheduler (name, address or spec) and number of workers a blockwise GPU stage
    runs on.

    Args:
        scheduler: ``--scheduler`` (``None``, ``serial``, ``threads``, ``processes``, an
            address or scheduler file).
        workers: ``--workers`` (``None``: one per GPU, or 1 without GPUs).
        device: ``--device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``).
        gpus: ``--gpus`` (GPU list; one local worker process per GPU), or None.
        cluster: ``--cluster`` (a :class:`ClusterConfig`, or what :func:`load_cluster_config`
            reads), or None.
        gpu_count: the GPUs this process sees (``torch.cuda.device_count()``).

    Returns:
        ``(scheduler, workers)``: with ``cluster``, the :class:`ClusterConfig` and its number
        of worker processes; with ``gpus``, or with several workers on local processes and
        ``device`` ``auto``/``cuda`` where GPUs are visible, :class:`LocalGpus`; else
        ``scheduler`` as given.
    """
    local = scheduler in (None, "processes")
    if cluster is not None:
        if scheduler is not None or gpus is not None or workers is not None:
            raise SynfulError(
                None, "--cluster starts its own workers: it goes without --scheduler, --gpus "
                "and --workers (set jobs and gpus_per_job in the cluster settings)",
            )  # fmt: skip
        cluster = load_cluster_config(cluster)
        return cluster, cluster.workers
    if gpus is not None:
        if not local:
            raise SynfulError(
                None, f"--gpus needs local worker processes, not --scheduler {scheduler}"
            )
        if device not in ("auto", "cuda"):
            raise SynfulError(None, f"--gpus goes with --device auto or cuda, not {device}")
        devices = select_gpus(parse_gpus(gpus))
        workers = len(devices) if workers is None else workers
        if workers < 1:
            raise SynfulError(None, f"--workers must be >= 1, got {workers}")
        return LocalGpus(devices), workers
    gpu_count = gpu_count if device in ("auto", "cuda") else 0
    if workers is None:
        workers = max(1, gpu_count) if scheduler in (None, "serial", "threads", "processes") else 1
    if local and gpu_count and workers > 1:
        return LocalGpus(visible_gpus(gpu_count)), workers
    return scheduler, workers


# --- clusters of batch jobs (dask-jobqueue) ------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ClusterConfig:
    """A dask-jobqueue cluster: ``jobs`` batch jobs, each with ``gpus_per_job`` GPUs and one
    dask worker process (one thread) per GPU.

    Args:
        kind: ``slurm``, ``pbs``, ``lsf``, ``sge`` (the dask-jobqueue classes), or ``local``
            (the job's worker command as a process here: a test without a batch system).
        jobs: batch jobs to submit (one that ends early, e.g. at its walltime, is not
            replaced: give the walltime of the whole run, or rerun to resume).
        gpus_per_job: GPUs per job = worker processes per job (0: one CPU worker per job).
        cores: CPU cores per job (shared by its workers).
        memory: memory per job (``64GB``), shared by its workers.
        walltime: job time limit in the batch system's format (SLURM ``HH:MM:SS`` or
            ``D-HH:MM:SS``, LSF ``HH:MM``); None: the site's default.
        partition: SLURM partition (or the queue of PBS, LSF, SGE); None: the default.
        account: account (SLURM, PBS) or project (LSF, SGE) to charge; None: the default.
        job_extra_directives: more job directives, without the prefix (``--constraint=a100``
            for ``#SBATCH --constraint=a100``).
        job_script_prologue: shell lines run before the worker starts (``module load cuda``,
            ``source /path/venv/bin/activate``).
        python: the Python that runs the workers (it must have synful); None: this one.
        gpu_directive: the directive that asks for the GPUs, ``{gpus}`` replaced by
            ``gpus_per_job``; None: ``--gres=gpu:{gpus}`` for SLURM, ``-gpu "num={gpus}"`` for
            LSF (PBS and SGE sites differ: give it, e.g. ``-l select=1:ngpus={gpus}``, or
            ``""`` when the queue implies the GPUs).
        interface: network interface of the scheduler and workers (``ib0``); None: default.
        local_directory: a worker's scratch directory on the node (``$TMPDIR``); None: default.
        log_directory: where the jobs' logs go; None: the batch system's default.
    """

    kind: str = "slurm"
    jobs: int = 1
    gpus_per_job: int = 1
    cores: int = 8
    memory: str = "32GB"
    walltime: str | None = None
    partition: str | None = None
    account: str | None = None
    job_extra_directives: tuple[str, ...] = ()
    job_script_prologue: tuple[str, ...] = ()
    python: str | None = None
    gpu_directive: str | None = None
    interface: str | None = None
    local_directory: str | None = None
    log_directory: str | None = None

    def __post_init__(self):
        problems = []
        if self.kind not in KINDS:
            problems.append(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        for name, least in (("jobs", 1), ("gpus_per_job", 0), ("cores", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                problems.append(f"{name} must be an integer >= {least}, not {value!r}")
        if not problems and self.cores < self.workers_per_job:
            problems.append(
                f"cores ({self.cores}) must be at least one per worker ({self.workers_per_job})"
            )
        try:
            from dask.utils import parse_bytes

            if parse_bytes(str(self.memory)) <= 0:
                raise ValueError
        except (ValueError, TypeError):
            problems.append(f"memory must be a size such as 32GB, not {self.memory!r}")
        for name in ("job_extra_directives", "job_script_prologue"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                problems.append(f"{name} must be a list of strings, not {value!r}")
            else:
                object.__setattr__(self, name, tuple(value))
        if (self.gpus_per_job and self.gpu_directive is None and self.kind in KINDS
                and self.kind not in GPU_DIRECTIVES):  # fmt: skip
            problems.append(
                f"{self.kind}: say how a job asks for its GPUs (gpu_directive, e.g. "
                f"'-l select=1:ngpus={{gpus}}'; '' when the queue implies them)"
            )
        if problems:
            raise SynfulError("cluster", "; ".join(problems))

    @property
    def workers_per_job(self) -> int:
        return max(1, self.gpus_per_job)

    @property
    def workers(self) -> int:
        """Worker processes of all jobs together."""
        return self.jobs * self.workers_per_job

    def __str__(self) -> str:
        gpus = f"{self.gpus_per_job} GPU(s)" if self.gpus_per_job else "no GPU"
        where = f", partition {self.partition}" if self.partition else ""
        limit = f", walltime {self.walltime}" if self.walltime else ""
        return f"a {self.kind} cluster of {self.jobs} job(s) x {gpus}{where}{limit}"

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], source: str = "cluster") -> ClusterConfig:
        """Settings from a mapping (unknown keys are an error; missing ones take defaults;
        ``queue`` is another name for ``partition``)."""
        if not isinstance(mapping, Mapping):
            raise SynfulError(source, f"expected a mapping of cluster settings, got {mapping!r}")
        mapping = dict(mapping)
        if "queue" in mapping:
            if mapping.get("partition") is not None:
                raise SynfulError(source, "give partition or queue, not both")
            mapping["partition"] = mapping.pop("queue")
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(mapping) - known)
        if unknown:
            raise SynfulError(
                source, f"unknown cluster setting(s) {', '.join(unknown)} "
                f"(known: {', '.join(sorted(known))})",
            )  # fmt: skip
        try:
            return cls(**mapping)
        except SynfulError as exc:
            raise SynfulError(source, exc.problem) from None

    def jobqueue_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the dask-jobqueue cluster (and job) class."""
        per_job = self.workers_per_job
        directives = list(self.job_extra_directives)
        template = self.gpu_directive
        if template is None:
            template = GPU_DIRECTIVES.get(self.kind, "")
        if self.gpus_per_job and template:
            directives.append(template.format(gpus=self.gpus_per_job))
        prologue = list(self.job_script_prologue)
        if self.kind != "local":  # a local "job" runs its command without a shell
            # torch and numpy threads: the job's cores shared by its worker processes
            prologue.append(f"export OMP_NUM_THREADS={max(1, self.cores // per_job)}")
        kwargs: dict[str, Any] = {
            "cores": self.cores,
            "memory": self.memory,
            "processes": per_job,
            "python": self.python or sys.executable,
            "job_name": "synful-dask",
            # one thread per worker: one block at a time on each GPU (the last --nthreads
            # of the worker command wins over dask-jobqueue's cores / processes)
            "worker_extra_args": ["--nthreads", "1"],
            "job_extra_directives": directives,
            "job_script_prologue": prologue,
        }
        if self.kind != "local":
            kwargs["walltime"] = self.walltime
            kwargs["queue"] = self.partition
            if self.account is not None:
                kwargs["account" if self.kind in ("slurm", "pbs") else "project"] = self.account
        for name in ("interface", "local_directory", "log_directory"):
            if getattr(self, name) is not None:
                kwargs[name] = getattr(self, name)
        return kwargs


def load_cluster_config(spec) -> ClusterConfig:
    """Cluster settings from a :class:`ClusterConfig`, a mapping, a YAML file (``--cluster
    CLUSTER.yaml``) or inline YAML/JSON text (``--cluster '{kind: slurm, jobs: 4}'``)."""
    if isinstance(spec, ClusterConfig):
        return spec
    if isinstance(spec, Mapping):
        return ClusterConfig.from_mapping(spec)
    import yaml

    text = str(spec).strip()
    source = "--cluster"
    if not text.startswith("{"):
        path = Path(text)
        source = str(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise SynfulError(path, f"cannot read the cluster settings ({exc.strerror})") from None
    try:
        mapping = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SynfulError(source, f"not valid YAML ({str(exc).splitlines()[0]})") from None
    return ClusterConfig.from_mapping(mapping or {}, source)


def _cluster_class(kind: str):
    try:
        import dask_jobqueue
    except ImportError:
        raise SynfulError(
            None, "--cluster needs dask-jobqueue: pip install 'synful[cluster]' (or dask-jobqueue)"
        ) from None
    if kind == "local":
        from dask_jobqueue.local import LocalCluster

        return LocalCluster
    return getattr(dask_jobqueue, KINDS[kind])


def job_script(config, scheduler: str = "tcp://SCHEDULER:8786") -> str:
    """The job script of ``config``'s cluster, rendered without starting or submitting
    anything (the worker command connects to ``scheduler``)."""
    config = load_cluster_config(config)
    cls = _cluster_class(config.kind)
    return cls.job_cls(
        scheduler=scheduler, name="synful-dask", **config.jobqueue_kwargs()
    ).job_script()


def jobqueue_cluster(config):
    """The dask-jobqueue cluster of ``config``, its scheduler started in this process and no
    job submitted yet (``cluster.job_script()`` shows what ``scale`` submits)."""
    config = load_cluster_config(config)
    cls = _cluster_class(config.kind)
    return cls(silence_logs=logging.WARNING, **config.jobqueue_kwargs())


class OneGpuPerWorker(NannyPlugin):
    """Nanny plugin: worker ``i`` of a batch job (dask's worker command names the workers of a
    job of several worker processes ``JOB-0``, ``JOB-1``, ...) starts with
    ``CUDA_VISIBLE_DEVICES`` = the ``i``-th of the job's GPUs: the job's own
    ``CUDA_VISIBLE_DEVICES`` (set by SLURM or LSF to the GPUs the job got), else
    ``0 .. per_job - 1``. The nanny sets it in the worker process's environment before the
    process starts; a worker already running when the plugin arrives is restarted.

    Args:
        per_job: worker processes per job.
    """

    name = "synful-one-gpu-per-worker"
    idempotent = False
    restart = True

    def __init__(self, per_job: int):
        self.per_job = int(per_job)

    def device(self, worker_name, environ: Mapping[str, str] | None = None) -> str:
        """The ``CUDA_VISIBLE_DEVICES`` value of the worker ``worker_name``."""
        index = job_worker_index(worker_name, self.per_job)
        job_gpus = _visible(os.environ if environ is None else environ)
        if not job_gpus:
            job_gpus = [str(i) for i in range(self.per_job)]
        elif len(job_gpus) < self.per_job:
            logger.warning("the job sees %d GPU(s) (%s=%s) for %d workers: they share",
                           len(job_gpus), GPU_VARIABLE, ",".join(job_gpus), self.per_job)  # fmt: skip
        return job_gpus[index % len(job_gpus)]

    def setup(self, nanny) -> None:
        device = self.device(nanny.name)
        nanny.env[GPU_VARIABLE] = device  # the worker process starts with it
        logger.info("worker %s: %s=%s", nanny.name, GPU_VARIABLE, device)


def job_worker_index(name, per_job: int) -> int:
    """Which worker of its job ``name`` is: dask's worker command names the workers of a job
    with several ``JOB-0``, ``JOB-1``, ...; a job's only worker is 0."""
    if per_job <= 1:
        return 0
    try:
        return int(str(name).rsplit("-", 1)[-1])
    except ValueError:
        logger.warning("worker %r: not named JOB-i, given the job's first GPU", name)
        return 0


@contextlib.contextmanager
def jobqueue_client(config) -> Iterator[Any]:
    """A ``distributed.Client`` of a new dask-jobqueue cluster of ``config``: ``config.jobs``
    jobs submitted on entry (blocks start as their workers connect), jobs cancelled on exit,
    also on an error, ``KeyboardInterrupt`` or SIGTERM turned into an exception
    (:func:`synful.interrupts.sigterm_raises`). A job that ends early (walltime, preemption)
    is not replaced: its blocks go to the other workers."""
    import distributed

    config = load_cluster_config(config)
    cluster = jobqueue_cluster(config)
    client = None
    try:
        client = distributed.Client(cluster)
        if config.gpus_per_job:
            client.register_plugin(OneGpuPerWorker(config.workers_per_job))
        logger.info("dask-jobqueue: %s; job script:\n%s", config, cluster.job_script())
        cluster.scale(jobs=config.jobs)
        yield client
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
        with contextlib.suppress(Exception):
            cluster.close()
