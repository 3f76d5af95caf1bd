"""Interrupted jobs leave nothing that looks usable (issue 14, item 5): SIGTERM, sweeps, locks.

Real ``synful`` processes are started, signalled and rerun; nothing is mocked.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from _predict_fixtures import finished_blocks, make_checkpoint, make_sample

from synful.cli import main
from synful.io.sample_store import open_raw
from synful.io.zarr_array import open_array, read
from synful.outputs import lock_path
from synful.predict import partial_path

SLOW = ["--chunks", "1", "64", "64"]  # many small slabs: a few seconds for the volume below


def cremi_raw(path: Path, shape=(24, 1024, 1024)) -> np.ndarray:
    """A CREMI file with only ``volumes/raw`` (sections of noise, shifted per z)."""
    section = np.random.default_rng(0).integers(0, 256, size=shape[1:], dtype=np.uint8)
    raw = np.stack([np.roll(section, z, axis=1) for z in range(shape[0])])
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("volumes/raw", data=raw, chunks=(1, shape[1], shape[2]))
        ds.attrs["resolution"] = np.asarray([40.0, 4.0, 4.0])
    return raw


def start(*argv) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "synful", *map(str, argv), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition, process, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if condition():
            return
        time.sleep(0.01)
    pytest.fail(f"the run ended (or timed out) before {what}")


def temporaries(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}.tmp-"))


def chunks_written(path: Path) -> bool:
    """A temporary sibling of the store ``path`` holds raw chunks already."""
    for name in temporaries(path):
        chunks = path.parent / name / "raw" / "c"
        if chunks.is_dir() and len(list(chunks.iterdir())) >= 2:
            return True
    return False


def test_sigterm_ends_predict_cleanly_and_the_rerun_resumes(tmp_path):
    checkpoint, _ = make_checkpoint(tmp_path / "checkpoint_7.pt")
    sample, _ = make_sample(tmp_path / "sample.zarr", shape=(24, 60, 68))
    out = tmp_path / "pred.zarr"
    args = [checkpoint, sample, out, "--block-shape", 1, 1, 1, "--device", "cpu"]

    process = start("predict", *args)
    wait_for(lambda: len(finished_blocks(out)) >= 3, process, "3 blocks")
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143
    assert err.strip().splitlines() == [
        "synful: error: terminated (SIGTERM); finished work is kept, rerun to resume"
    ]
    assert not out.exists()  # nothing that looks complete
    finished = finished_blocks(out)
    assert 3 <= len(finished) < 48  # the resumable state is intact
    assert (
        not lock_path(out).exists() and not temporaries(out) and not temporaries(partial_path(out))
    )

    assert main(["--quiet", "predict", *map(str, args)]) == 0
    assert (
        main(["--quiet", "predict", *map(str, [*args[:2], tmp_path / "straight.zarr", *args[3:]])])
        == 0
    )
    for head in ("post_indicator", "partner_vectors"):
        resumed = read(open_array(out, head)).astype(np.int64)
        straight = read(open_array(tmp_path / "straight.zarr", head)).astype(np.int64)
        # the interrupted run was another process (other threads, so on some CPUs other float
        # rounding): values may differ by one step of the stored quantization, rarely
        assert np.abs(resumed - straight).max() <= 1
        assert np.mean(resumed != straight) < 1e-3
    assert not partial_path(out).exists()


def test_sigterm_ends_convert_without_leftovers(tmp_path):
    hdf = tmp_path / "big.hdf"
    cremi_raw(hdf)
    store, table = tmp_path / "big.zarr", tmp_path / "big.parquet"
    process = start("convert", hdf, store, "--synapses", table, *SLOW)
    wait_for(lambda: chunks_written(store), process, "chunks were written")
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert err.strip().splitlines() == [
        "synful: error: terminated (SIGTERM); finished work is kept, rerun to resume"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.hdf"]


def test_a_killed_runs_temporaries_are_swept_by_the_next_run(tmp_path):
    hdf = tmp_path / "big.hdf"
    raw = cremi_raw(hdf)
    store, table = tmp_path / "big.zarr", tmp_path / "big.parquet"
    process = start("convert", hdf, store, "--synapses", table, *SLOW)
    wait_for(lambda: chunks_written(store), process, "chunks were written")
    process.kill()  # SIGKILL: no clean-up at all
    process.wait()
    left = temporaries(store)
    assert left and not store.exists()
    assert main(["--quiet", "convert", str(hdf), str(store), "--synapses", str(table), *SLOW]) == 0
    assert not temporaries(store) and not lock_path(store).exists()
    np.testing.assert_array_equal(read(open_raw(store)), raw)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.hdf", "big.parquet", "big.zarr"]


def test_a_second_run_on_the_same_output_fails_naming_the_holder(tmp_path, capsys):
    hdf = tmp_path / "big.hdf"
    raw = cremi_raw(hdf)
    store, table = tmp_path / "big.zarr", tmp_path / "big.parquet"
    process = start("convert", hdf, store, "--synapses", table, *SLOW)
    lock = lock_path(store)
    wait_for(lambda: lock.exists() and lock.read_text().strip(), process, "the lock was taken")
    code = main(
        ["--quiet", "convert", str(hdf), str(store), "--synapses", str(tmp_path / "other.parquet")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    holder = f"pid {process.pid} on {socket.gethostname()} since "
    assert err[0].startswith(
        f"synful: error: {store}: is being written by another synful run ({holder}"
    )
    assert err[0].endswith("); wait for it to end")
    assert process.wait(timeout=300) == 0, process.stderr.read()
    np.testing.assert_array_equal(read(open_raw(store)), raw)
    assert not lock.exists() and not (tmp_path / "other.parquet").exists()


def test_the_lock_is_free_again_after_a_kill(tmp_path):
    """A SIGKILLed holder's lock file stays behind but does not block the next run."""
    import subprocess as sp

    target = tmp_path / "held.txt"
    code = (
        "import sys, time; from synful.outputs import output_lock\n"
        "with output_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(600)\n"
    )
    holder = sp.Popen([sys.executable, "-c", code, str(target)], stdout=sp.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    assert str(holder.pid) in lock_path(target).read_text()
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert lock_path(target).exists()
    from synful.outputs import output_lock

    with output_lock(target):
        assert str(os.getpid()) in lock_path(target).read_text()
    assert not lock_path(target).exists()


def test_two_trainings_into_one_directory(tmp_path, capsys):
    """The second ``synful train`` on an --out that another run holds fails at once."""
    import subprocess as sp

    import yaml
    from _train_stores import TINY_SETUP, write_store

    store = tmp_path / "s.zarr"
    write_store(store)
    setup = tmp_path / "setup.yaml"
    setup.write_text(yaml.safe_dump(TINY_SETUP))
    out = tmp_path / "run"
    code = (
        "import sys, time; from synful.outputs import output_lock\n"
        "with output_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(600)\n"
    )
    holder = sp.Popen([sys.executable, "-c", code, str(out)], stdout=sp.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        argv = ["train", str(setup), "--samples", str(store), "--out", str(out), "--iterations", "1",
                "--device", "cpu", "--quiet"]  # fmt: skip
        assert main(argv) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(
            f"synful: error: {out}: is being written by another synful run (pid {holder.pid} on "
        )
        assert not out.exists()
    finally:
        holder.kill()
        holder.wait()
    assert main(argv) == 0 and (out / "checkpoint_1.pt").exists()
