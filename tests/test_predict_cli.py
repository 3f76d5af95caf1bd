"""``synful predict`` on the command line: success, bad input, a killed run resumed."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from _predict_fixtures import finished_blocks, make_checkpoint, make_sample

import synful.predict.volume as predict_volume
from synful.cli import main
from synful.io.zarr_array import open_array, write_volume
from synful.predict import PredictBlock, partial_path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    checkpoint, _ = make_checkpoint(root / "checkpoint_7.pt")
    sample, _ = make_sample(root / "sample.zarr")
    return checkpoint, sample


def run_cli(capsys, *args):
    code = main(["predict", *map(str, args), "--quiet"])
    captured = capsys.readouterr()
    return code, captured.err.strip()


def test_cli_writes_a_prediction_store(inputs, tmp_path, capsys):
    checkpoint, sample = inputs
    out = tmp_path / "pred.zarr"
    code, err = run_cli(
        capsys,
        checkpoint,
        sample,
        out,
        "--block-shape",
        1,
        1,
        1,
        "--dtype",
        "float16",
        "--device",
        "cpu",
    )
    assert code == 0, err
    assert open_array(out, "post_indicator").dtype == np.float16
    assert open_array(out, "partner_vectors").shape == (3, 13, 30, 34)


class Evil:
    """Unpickling this would create a directory (code execution)."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def corrupt(tmp_path, checkpoint):
    path = tmp_path / "corrupt.pt"
    path.write_bytes(Path(checkpoint).read_bytes()[:2000])
    return path


def foreign(tmp_path, checkpoint):
    path = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(3)}}, path)
    return path


def pickled_code(tmp_path, checkpoint):
    path = tmp_path / "evil.pt"
    torch.save({"format": "synful-checkpoint", "setup": Evil(tmp_path / "pwned")}, path)
    return path


@pytest.mark.parametrize(
    "make_bad,message",
    [
        (corrupt, "corrupt or unreadable checkpoint"),
        (foreign, "not a synful checkpoint"),
        (pickled_code, "corrupt or unreadable checkpoint"),
    ],
)
def test_bad_checkpoints_are_one_line_errors(inputs, tmp_path, capsys, make_bad, message):
    checkpoint, sample = inputs
    bad = make_bad(tmp_path, checkpoint)
    out = tmp_path / "pred.zarr"
    code, err = run_cli(capsys, bad, sample, out)
    assert code == 1
    assert err.startswith(f"synful: error: {bad}: {message}") and "\n" not in err
    assert not (tmp_path / "pwned").exists()  # never unpickled with code execution
    assert not out.exists() and not partial_path(out).exists()


def test_sample_without_raw(inputs, tmp_path, capsys):
    checkpoint, _ = inputs
    sample = tmp_path / "noraw.zarr"
    write_volume(
        zarr.open_group(str(sample), mode="w"),
        "neuron_ids",
        np.zeros((4, 4, 4), np.uint64),
        (4, 2, 2),
        (0, 0, 0),
    )
    out = tmp_path / "pred.zarr"
    code, err = run_cli(capsys, checkpoint, sample, out)
    assert code == 1 and err == f"synful: error: {sample}: missing array raw"
    assert not out.exists() and not partial_path(out).exists()


def test_wrong_voxel_size(inputs, tmp_path, capsys):
    checkpoint, _ = inputs
    sample, _ = make_sample(tmp_path / "cremi.zarr", voxel_size=(40, 4, 4))
    out = tmp_path / "pred.zarr"
    code, err = run_cli(capsys, checkpoint, sample, out)
    assert code == 1
    assert err == (
        f"synful: error: {sample}: raw voxel size [40, 4, 4] nm differs from the "
        "network's [4, 2, 2] nm"
    )
    assert not out.exists() and not partial_path(out).exists()


def test_missing_sample_and_bad_dtype(inputs, tmp_path, capsys):
    checkpoint, _ = inputs
    code, err = run_cli(capsys, checkpoint, tmp_path / "none.zarr", tmp_path / "p.zarr")
    assert code == 1 and err.endswith("none.zarr: no such zarr store")
    sample, _ = make_sample(tmp_path / "float.zarr", dtype=np.float32)
    code, err = run_cli(capsys, checkpoint, sample, tmp_path / "p.zarr")
    assert code == 1 and "raw must be uint8" in err
    assert not (tmp_path / "p.zarr").exists()


class Counting(PredictBlock):
    calls: list = []

    def process_block(self, block):
        super().process_block(block)
        Counting.calls.append(block.block_id)


def test_killed_run_resumes_and_redoes_no_finished_block(tmp_path, monkeypatch):
    """SIGKILL a real ``synful predict`` process mid-run, then rerun it."""
    checkpoint, _ = make_checkpoint(tmp_path / "checkpoint_7.pt")
    sample, _ = make_sample(tmp_path / "sample.zarr", shape=(24, 60, 68))
    out = tmp_path / "pred.zarr"
    args = [str(checkpoint), str(sample), str(out), "--block-shape", "1", "1", "1", "--quiet"]
    process = subprocess.Popen([sys.executable, "-m", "synful", "predict", *args])

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if len(finished_blocks(out)) >= 3:
            break
        time.sleep(0.01)
    assert process.poll() is None, "the run ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not out.exists()  # a killed run never leaves a result that looks complete
    finished = finished_blocks(out)
    assert 3 <= len(finished) < 48
    Counting.calls = []
    monkeypatch.setattr(predict_volume, "PredictBlock", Counting)
    assert main(["predict", *args]) == 0
    assert not set(Counting.calls) & finished
    assert sorted(set(Counting.calls) | finished) == list(range(48))
    assert out.exists() and not partial_path(out).exists()


def test_cuda_without_a_gpu_is_a_one_line_error(inputs, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    checkpoint, sample = inputs
    code, err = run_cli(capsys, checkpoint, sample, tmp_path / "p.zarr", "--device", "cuda")
    assert code == 1 and err == "synful: error: --device cuda: no CUDA device is available"
    assert not (tmp_path / "p.zarr").exists()
