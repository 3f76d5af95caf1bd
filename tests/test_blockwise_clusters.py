"""Many GPUs: one local worker per GPU (CUDA_VISIBLE_DEVICES per worker process), and clusters
of batch jobs through dask-jobqueue (settings, rendered job scripts, one GPU per worker)."""

import json
import os
import sys
import time

import cloudpickle
import numpy as np
import pytest

from synful.blockwise import BlockwiseTask, run_blockwise
from synful.blockwise.clusters import (
    GPU_VARIABLE,
    ClusterConfig,
    LocalGpus,
    OneGpuPerWorker,
    job_script,
    job_worker_index,
    jobqueue_client,
    jobqueue_cluster,
    load_cluster_config,
    parse_gpus,
    scheduler_for,
    select_gpus,
    visible_gpus,
    worker_gpus,
)
from synful.errors import SynfulError
from synful.geometry import Coordinate, Roi

# worker processes cannot import this test module: ship its classes by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])

SLURM = {
    "kind": "slurm",
    "jobs": 2,
    "gpus_per_job": 4,
    "cores": 32,
    "memory": "128GB",
    "walltime": "04:00:00",
    "partition": "gpu",
    "account": "lab",
    "job_extra_directives": ["--constraint=a100"],
    "job_script_prologue": ["module load cuda"],
    "python": "/opt/synful/bin/python",
}


# --- which GPUs the workers get (pure) ------------------------------------------------------


def test_parse_gpus():
    assert parse_gpus("0,1, 2,3") == ("0", "1", "2", "3")
    assert parse_gpus([2, 5]) == ("2", "5")
    assert parse_gpus("GPU-8f3a,GPU-11c2") == ("GPU-8f3a", "GPU-11c2")
    for bad in ("", "0,,1", "1,1"):
        with pytest.raises(SynfulError, match="--gpus"):
            parse_gpus(bad)


def test_visible_gpus_follow_this_process_cuda_visible_devices():
    assert visible_gpus(4, environ={}) == ("0", "1", "2", "3")
    # inside a job given GPUs 3 and 5, cuda:0 and cuda:1 are the physical GPUs 3 and 5
    assert visible_gpus(2, environ={GPU_VARIABLE: "3,5"}) == ("3", "5")
    assert visible_gpus(0, environ={GPU_VARIABLE: ""}) == ()
    assert select_gpus(("1",), environ={GPU_VARIABLE: "3,5"}) == ("5",)
    assert select_gpus(("0", "1"), environ={}) == ("0", "1")
    assert select_gpus(("MIG-ab12",), environ={GPU_VARIABLE: "3"}) == ("MIG-ab12",)
    with pytest.raises(SynfulError, match="sees only 2 GPU"):
        select_gpus(("2",), environ={GPU_VARIABLE: "3,5"})


def test_worker_gpus_round_robin():
    assert worker_gpus(4, ("0", "1", "2", "3")) == ["0", "1", "2", "3"]
    assert worker_gpus(3, ("3", "5")) == ["3", "5", "3"]
    assert worker_gpus(1, ("7",)) == ["7"]


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        # one worker per visible GPU by default
        ({"gpu_count": 4}, (LocalGpus(("0", "1", "2", "3")), 4)),
        ({"gpu_count": 2, "workers": 3}, (LocalGpus(("0", "1")), 3)),
        # one GPU, one worker: serial in this process (the GPU is this process's)
        ({"gpu_count": 1}, (None, 1)),
        # no GPU, or the CPU asked for: as before
        ({"gpu_count": 0}, (None, 1)),
        ({"gpu_count": 4, "device": "cpu", "workers": 2}, (None, 2)),
        ({"gpu_count": 4, "device": "cuda:1", "workers": 2}, (None, 2)),
        ({"gpu_count": 4, "scheduler": "threads"}, ("threads", 4)),
        ({"gpu_count": 4, "scheduler": "tcp://h:8786"}, ("tcp://h:8786", 1)),
        # an explicit list: one worker per listed GPU, also without any GPU here (CPU)
        ({"gpus": "0,1"}, (LocalGpus(("0", "1")), 2)),
        ({"gpus": "2", "workers": 2, "scheduler": "processes"}, (LocalGpus(("2",)), 2)),
    ],
)
def test_scheduler_for(kwargs, expected, monkeypatch):
    monkeypatch.delenv(GPU_VARIABLE, raising=False)
    kwargs = {"scheduler": None, "workers": None, **kwargs}
    assert scheduler_for(kwargs.pop("scheduler"), kwargs.pop("workers"), **kwargs) == expected


def test_scheduler_for_maps_gpus_through_this_process_visible_devices(monkeypatch):
    monkeypatch.setenv(GPU_VARIABLE, "3,5")
    assert scheduler_for(None, None, gpu_count=2) == (LocalGpus(("3", "5")), 2)
    assert scheduler_for(None, None, gpus="1") == (LocalGpus(("5",)), 1)


@pytest.mark.parametrize(
    "kwargs, problem",
    [
        ({"gpus": "0,1", "scheduler": "threads"}, "--gpus needs local worker processes"),
        ({"gpus": "0,1", "device": "cpu"}, "--gpus goes with --device auto or cuda"),
        ({"cluster": {"jobs": 2}, "workers": 4}, "--cluster starts its own workers"),
        ({"cluster": {"jobs": 2}, "scheduler": "tcp://h:1"}, "--cluster starts its own workers"),
    ],
)
def test_scheduler_for_refuses_contradictions(kwargs, problem):
    kwargs = {"scheduler": None, "workers": None, **kwargs}
    with pytest.raises(SynfulError, match=problem):
        scheduler_for(kwargs.pop("scheduler"), kwargs.pop("workers"), **kwargs)


def test_scheduler_for_a_cluster_counts_its_workers():
    scheduler, workers = scheduler_for(None, None, cluster=SLURM, gpu_count=0)
    assert scheduler == ClusterConfig.from_mapping(SLURM)
    assert workers == 8  # 2 jobs x 4 GPUs, one worker each


# --- cluster settings --------------------------------------------------------------------------


def test_cluster_settings_defaults_and_round_trip(tmp_path):
    config = ClusterConfig()
    assert (config.kind, config.jobs, config.gpus_per_job, config.cores, config.memory) == (
        "slurm", 1, 1, 8, "32GB"
    )  # fmt: skip
    path = tmp_path / "cluster.yaml"
    path.write_text("kind: slurm\njobs: 2\ngpus_per_job: 4\ncores: 32\nqueue: gpu\n")
    loaded = load_cluster_config(str(path))
    assert (loaded.jobs, loaded.partition, loaded.workers) == (2, "gpu", 8)
    # what the workflow passes: the section inline, as JSON
    assert load_cluster_config(json.dumps(SLURM)) == ClusterConfig.from_mapping(SLURM)
    assert load_cluster_config("{kind: lsf, jobs: 3}").kind == "lsf"


@pytest.mark.parametrize(
    "settings, problem",
    [
        ({"nodes": 2}, "unknown cluster setting"),
        ({"kind": "htcondor"}, "kind must be one of"),
        ({"jobs": 0}, "jobs must be an integer >= 1"),
        ({"gpus_per_job": 4, "cores": 2}, "at least one per worker"),
        ({"memory": "lots"}, "memory must be a size"),
        ({"job_extra_directives": "--exclusive"}, "must be a list of strings"),
        ({"kind": "pbs"}, "say how a job asks for its GPUs"),
        ({"partition": "a", "queue": "b"}, "not both"),
    ],
)
def test_bad_cluster_settings_are_one_line_errors(settings, problem):
    with pytest.raises(SynfulError, match=problem) as error:
        ClusterConfig.from_mapping(settings)
    assert "\n" not in str(error.value)


def test_a_missing_cluster_file_is_a_one_line_error(tmp_path):
    with pytest.raises(SynfulError, match="cannot read the cluster settings"):
        load_cluster_config(str(tmp_path / "nope.yaml"))


# --- job scripts, rendered without submitting -------------------------------------------------


def test_slurm_job_script():
    pytest.importorskip("dask_jobqueue")
    script = job_script(SLURM)
    lines = script.splitlines()
    for directive in (
        "#SBATCH -p gpu",
        "#SBATCH -A lab",
        "#SBATCH --gres=gpu:4",
        "#SBATCH -t 04:00:00",
        "#SBATCH --cpus-per-task=32",
        "#SBATCH --constraint=a100",
        "#SBATCH -J synful-dask",
    ):
        assert directive in lines, script
    assert "module load cuda" in lines
    assert "export OMP_NUM_THREADS=8" in lines  # 32 cores shared by 4 workers
    (command,) = [line for line in lines if "distributed.cli.dask_worker" in line]
    assert command.startswith("/opt/synful/bin/python -m distributed.cli.dask_worker")
    words = command.split()
    assert words[words.index("--nworkers") + 1] == "4"  # one worker process per GPU
    assert words[len(words) - 1 - words[::-1].index("--nthreads") + 1] == "1"  # the last wins


def test_the_cluster_class_takes_the_same_settings_without_submitting():
    pytest.importorskip("dask_jobqueue")
    cluster = jobqueue_cluster(SLURM)
    try:
        assert "#SBATCH --gres=gpu:4" in cluster.job_script()
        assert not cluster.workers  # nothing submitted
    finally:
        cluster.close()


def test_lsf_and_pbs_job_scripts():
    pytest.importorskip("dask_jobqueue")
    lsf = job_script({"kind": "lsf", "gpus_per_job": 2, "partition": "gpu", "walltime": "04:00"})
    assert '#BSUB -gpu "num=2"' in lsf and "#BSUB -q gpu" in lsf and "#BSUB -W 04:00" in lsf
    pbs = job_script({"kind": "pbs", "gpus_per_job": 2, "gpu_directive": "-l ngpus={gpus}"})
    assert "#PBS -l ngpus=2" in pbs


def test_job_worker_index():
    assert job_worker_index("SLURMCluster-3-2", 4) == 2
    assert job_worker_index("SLURMCluster-3", 1) == 0
    plugin = OneGpuPerWorker(per_job=2)
    assert plugin.device("SLURMCluster-0-1", {GPU_VARIABLE: "4,6"}) == "6"
    assert plugin.device("SLURMCluster-0-1", {}) == "1"  # no GPU list from the batch system


# --- the workers really run with their own CUDA_VISIBLE_DEVICES -------------------------------


class WhereAmI:
    """Records, per block, the worker process, its CUDA_VISIBLE_DEVICES, dask name and threads,
    and (optionally) the torch device it resolves; sleeps so that every worker gets a block."""

    def __init__(self, out_dir, torch_device=False):
        self.out_dir = str(out_dir)
        self.torch_device = torch_device

    def process_block(self, block):
        from distributed import get_worker

        worker = get_worker()
        record = {
            "pid": os.getpid(),
            "gpu": os.environ.get(GPU_VARIABLE),
            "name": str(worker.name),
            "nthreads": worker.state.nthreads,
        }
        if self.torch_device:
            from synful.predict.block import resolve_device

            record["device"] = resolve_device("auto")
        with open(os.path.join(self.out_dir, f"block-{block.block_id}.json"), "w") as f:
            json.dump(record, f)
        time.sleep(1.0)


def records(out_dir) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(out_dir.glob("block-*.json"))]


def two_blocks() -> BlockwiseTask:
    voxel = Coordinate(1, 1, 1)
    return BlockwiseTask(Roi((0, 0, 0), (2, 4, 4)), Coordinate(1, 4, 4), Coordinate(0, 0, 0),
                         voxel)  # fmt: skip


def test_local_gpu_workers_each_see_their_own_device(tmp_path, monkeypatch):
    """Fake GPUs on a CPU machine: worker i starts with CUDA_VISIBLE_DEVICES = GPU i, one block
    runs on each, and the device stays cpu (no CUDA here)."""
    monkeypatch.setenv(GPU_VARIABLE, "3,5")  # this process: two GPUs, physical 3 and 5
    scheduler, workers = scheduler_for(None, None, gpus="0,1")
    assert scheduler == LocalGpus(("3", "5"))
    out = tmp_path / "records"
    out.mkdir()
    result = run_blockwise(two_blocks(), WhereAmI(out, torch_device=True),
                           done_dir=tmp_path / "done", workers=workers, scheduler=scheduler,
                           progress=False)  # fmt: skip
    assert result.processed == 2
    seen = records(out)
    assert sorted(r["gpu"] for r in seen) == ["3", "5"]
    assert len({r["pid"] for r in seen}) == 2 and os.getpid() not in {r["pid"] for r in seen}
    assert {r["name"]: r["gpu"] for r in seen} == {"0": "3", "1": "5"}
    assert {r["device"] for r in seen} == {"cpu"}


def test_jobqueue_workers_each_get_one_of_the_jobs_gpus(tmp_path, monkeypatch):
    """dask-jobqueue's own worker command (kind local: the job runs here as a process) with 2
    workers in a job given GPUs 4 and 6: each worker gets one, runs one block with one thread,
    and the job is gone after the run."""
    pytest.importorskip("dask_jobqueue")
    monkeypatch.setenv(GPU_VARIABLE, "4,6")  # what SLURM sets for a job's GPUs
    config = ClusterConfig(kind="local", jobs=1, gpus_per_job=2, cores=2, memory="2GB")
    out = tmp_path / "records"
    out.mkdir()
    with jobqueue_client(config) as client:
        # jobs start one by one: wait for both, so that each takes a block
        client.wait_for_workers(2, timeout=60)
        result = run_blockwise(two_blocks(), WhereAmI(out), done_dir=tmp_path / "done",
                               workers=config.workers, scheduler=client, progress=False)  # fmt: skip
    assert result.processed == 2
    seen = records(out)
    assert sorted(r["gpu"] for r in seen) == ["4", "6"]
    assert len({r["pid"] for r in seen}) == 2
    assert {r["name"].rsplit("-", 1)[1]: r["gpu"] for r in seen} == {"0": "4", "1": "6"}
    assert {r["nthreads"] for r in seen} == {1}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(alive(r["pid"]) for r in seen):
        time.sleep(0.2)
    assert not any(alive(r["pid"]) for r in seen)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped) counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_predict_on_fake_gpus_equals_serial_prediction(tmp_path, monkeypatch):
    """`synful predict --gpus 0,1` on a machine without GPUs: two worker processes on cpu,
    the same predictions as one process."""
    from _predict_fixtures import make_checkpoint, make_sample

    from synful.io.zarr_array import open_array, read
    from synful.predict import predict

    monkeypatch.delenv(GPU_VARIABLE, raising=False)
    checkpoint, _ = make_checkpoint(tmp_path / "checkpoint_7.pt")
    sample, _ = make_sample(tmp_path / "sample.zarr")
    serial, gpus = tmp_path / "serial.zarr", tmp_path / "gpus.zarr"
    predict(checkpoint, sample, serial, block_shape=(1, 1, 1), dtype="float32", progress=False)
    predict(checkpoint, sample, gpus, block_shape=(1, 1, 1), dtype="float32", progress=False,
            gpus="0,1")  # fmt: skip
    for head in ("post_indicator", "partner_vectors"):
        np.testing.assert_allclose(
            read(open_array(gpus, head)), read(open_array(serial, head)), rtol=0, atol=2e-3
        )


class Fails:
    def __init__(self, out_dir):
        self.out_dir = str(out_dir)

    def process_block(self, block):
        with open(os.path.join(self.out_dir, f"pid-{os.getpid()}"), "w"):
            pass
        raise RuntimeError("broken block")


def test_a_failed_run_cancels_its_jobs(tmp_path):
    """run_blockwise(scheduler=ClusterConfig): jobs submitted for the run, cancelled after it,
    also when it fails."""
    pytest.importorskip("dask_jobqueue")
    from synful.blockwise import BlockwiseError

    config = ClusterConfig(kind="local", jobs=1, gpus_per_job=0, cores=1, memory="1GB")
    out = tmp_path / "records"
    out.mkdir()
    with pytest.raises(BlockwiseError, match="broken block"):
        run_blockwise(two_blocks(), Fails(out), done_dir=tmp_path / "done", workers=1,
                      scheduler=config, progress=False, max_retries=0)  # fmt: skip
    pids = [int(p.name.split("-")[1]) for p in out.glob("pid-*")]
    assert pids
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.2)
    assert not any(alive(pid) for pid in pids)


def test_config_readme_documents_every_cluster_setting_with_its_default():
    """config/README.md's predict.cluster rows: every ClusterConfig field, with its default."""
    import dataclasses
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "config" / "README.md").read_text()
    rows = dict(re.findall(r"^\| `predict\.cluster\.(\w+)` \| `([^`]*)` \|", text, re.M))
    fields = {f.name: f.default for f in dataclasses.fields(ClusterConfig)}
    assert set(rows) == set(fields)
    for name, default in fields.items():
        shown = {None: "null", (): "[]"}.get(default, default)
        assert rows[name] == str(shown), name
