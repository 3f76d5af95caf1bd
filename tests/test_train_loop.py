"""The training loop: checkpoints, resume after a kill, log, snapshots, workers, the CLI."""

import csv
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
import zarr
from _train_stores import TINY_SETUP, write_store

from synful.checkpoint import list_checkpoints, load_checkpoint
from synful.cli import main
from synful.errors import SynfulError
from synful.train import train
from synful.train.setup import load_setup


@pytest.fixture()
def stores(tmp_path):
    paths = []
    for seed in (0, 1):
        path = tmp_path / f"s{seed}.zarr"
        write_store(path, seed=seed)
        paths.append(path)
    return paths


def write_setup(tmp_path, **extra):
    path = tmp_path / "setup.yaml"
    path.write_text(yaml.safe_dump({**TINY_SETUP, **extra}))
    return path


def log_rows(out):
    with open(out / "training_log.csv") as f:
        return list(csv.DictReader(f))


def test_train_writes_checkpoints_log_and_snapshots(tmp_path, stores):
    out = tmp_path / "run"
    last = train(write_setup(tmp_path), stores, out, iterations=4, device="cpu", progress=False)
    assert last == out / "checkpoint_4.pt"
    assert [it for it, _ in list_checkpoints(out)] == [2, 4]
    rows = log_rows(out)
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4]
    assert all(
        float(r["loss"]) > 0 and float(r["step_seconds"]) >= float(r["data_seconds"]) for r in rows
    )
    snapshot = zarr.open_group(str(out / "snapshots" / "batch_3.zarr"), mode="r")
    assert {
        "raw",
        "post_indicator",
        "partner_vectors",
        "pred_post_indicator",
        "pred_partner_vectors",
    } <= set(snapshot.array_keys())
    assert snapshot["pred_partner_vectors"].shape[0] == 3
    assert (out / "snapshots" / "batch_3.png").stat().st_size > 1000
    checkpoint = load_checkpoint(last)
    assert checkpoint.iteration == 4
    assert checkpoint.setup["fmap_num"] == TINY_SETUP["fmap_num"]
    assert checkpoint.setup["elastic"]["control_point_spacing"] == [
        4,
        40,
        40,
    ]  # defaults stored too


@pytest.mark.parametrize(
    "schedule", [{}, {"lr_schedule": "cosine", "lr_warmup": 1, "lr_final": 0.1, "max_iteration": 4}]
)
def test_resume_continues_exactly(tmp_path, stores, schedule):
    setup = write_setup(tmp_path, **schedule)
    straight = tmp_path / "straight"
    train(setup, stores, straight, iterations=4, device="cpu", progress=False)
    resumed = tmp_path / "resumed"
    train(setup, stores, resumed, iterations=2, device="cpu", progress=False)
    # a killed run may have logged iterations after its last checkpoint
    with open(resumed / "training_log.csv", "a") as f:
        f.write("3,9.9,,,1.0,0.5\n")
    train(setup, stores, resumed, iterations=4, device="cpu", progress=False)
    assert [int(r["iteration"]) for r in log_rows(resumed)] == [1, 2, 3, 4]
    a, b = (
        load_checkpoint(straight / "checkpoint_4.pt"),
        load_checkpoint(resumed / "checkpoint_4.pt"),
    )
    for (name, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6, msg=name)
    losses = [float(r["loss"]) for r in log_rows(straight)]
    # the optimiser stepped at the schedule's rate
    expected = load_setup(setup).learning_rate_at(4)
    assert [g["lr"] for g in b.optimizer_state["param_groups"]] == pytest.approx([expected])
    np.testing.assert_allclose([float(r["loss"]) for r in log_rows(resumed)], losses, rtol=1e-4)
    # nothing left to do: returns the checkpoint without training
    before = (resumed / "checkpoint_4.pt").stat().st_mtime_ns
    assert (
        train(setup, stores, resumed, iterations=4, device="cpu", progress=False)
        == resumed / "checkpoint_4.pt"
    )
    assert (resumed / "checkpoint_4.pt").stat().st_mtime_ns == before
    # an earlier iteration resumes from the checkpoint before it and gives the same weights
    assert (
        train(setup, stores, resumed, iterations=3, device="cpu", progress=False)
        == resumed / "checkpoint_3.pt"
    )
    assert [int(r["iteration"]) for r in log_rows(resumed)] == [1, 2, 3]
    np.testing.assert_allclose([float(r["loss"]) for r in log_rows(resumed)], losses[:3], rtol=1e-4)


def test_workers_give_the_same_batches(tmp_path, stores):
    inline = tmp_path / "inline"
    train(write_setup(tmp_path), stores, inline, iterations=3, device="cpu", progress=False)
    workers = tmp_path / "workers"
    train(
        write_setup(tmp_path, num_workers=2),
        stores,
        workers,
        iterations=3,
        device="cpu",
        progress=False,
    )
    np.testing.assert_allclose(
        [float(r["loss"]) for r in log_rows(workers)],
        [float(r["loss"]) for r in log_rows(inline)],
        rtol=1e-4,
    )


def test_corrupt_last_checkpoint_is_named(tmp_path, stores):
    setup = write_setup(tmp_path)
    out = tmp_path / "run"
    train(setup, stores, out, iterations=2, device="cpu", progress=False)
    (out / "checkpoint_2.pt").write_bytes(b"truncated")
    with pytest.raises(SynfulError, match="corrupt") as info:
        train(setup, stores, out, iterations=4, device="cpu", progress=False)
    assert info.value.path == str(out / "checkpoint_2.pt")


def test_changed_recipe_on_resume_is_an_error(tmp_path, stores):
    """Not only the network: any setup key that changes the weights (tests/test_train_resume.py)."""
    out = tmp_path / "run"
    train(write_setup(tmp_path), stores, out, iterations=2, device="cpu", progress=False)
    for extra, keys in (
        ({"fmap_num": 3}, "setup key fmap_num"),
        ({"d_loss_scale": 0.0}, "setup key d_loss_scale"),
        ({"learning_rate": 1e-4, "init": "glorot"}, "setup keys init, learning_rate"),
    ):
        with pytest.raises(
            SynfulError, match=f"made with another recipe \\({keys}\\); rerun with --restart"
        ):
            train(
                write_setup(tmp_path, **extra),
                stores,
                out,
                iterations=4,
                device="cpu",
                progress=False,
            )
    assert [it for it, _ in list_checkpoints(out)] == [2]


@pytest.mark.parametrize(
    "extra",
    [{"network_type": "dh_unet", "mask_loss": "mse"}, {"m_loss_scale": 0.0}, {"d_loss_scale": 0.0}],
)
def test_other_networks_and_losses_train(tmp_path, stores, extra):
    out = tmp_path / "run"
    train(
        write_setup(tmp_path, **extra), stores[:1], out, iterations=1, device="cpu", progress=False
    )
    rows = log_rows(out)
    assert (rows[0]["mask_loss"] == "") == (extra.get("m_loss_scale") == 0.0)
    assert (rows[0]["vector_loss"] == "") == (extra.get("d_loss_scale") == 0.0)


def test_cuda_without_gpu_is_an_error(tmp_path, stores):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(SynfulError, match="CUDA is not available"):
        train(
            write_setup(tmp_path),
            stores,
            tmp_path / "run",
            iterations=1,
            device="cuda",
            progress=False,
        )


def test_cli_train_and_errors(tmp_path, stores, capsys):
    setup = write_setup(tmp_path)
    out = tmp_path / "cli"
    assert (
        main(
            [
                "train",
                str(setup),
                "--samples",
                *map(str, stores),
                "--out",
                str(out),
                "--iterations",
                "1",
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 0
    )
    assert (out / "checkpoint_1.pt").exists()
    typo = tmp_path / "typo.yaml"
    typo.write_text("fmap_nu: 4\n")
    assert main(["train", str(typo), "--samples", str(stores[0]), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"synful: error: {typo}: unknown key 'fmap_nu' (did you mean 'fmap_num'?)"
    assert (
        main(["train", str(setup), "--samples", str(tmp_path / "nope.zarr"), "--out", str(out)])
        == 1
    )
    assert "no such zarr store" in capsys.readouterr().err


def test_command_does_not_import_torch_at_startup():
    code = "import sys, synful.cli; synful.cli.build_parser(); print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_mixed_precision_trains_in_bf16_and_stores_float32_weights(
    tmp_path, stores, monkeypatch, caplog
):
    # as on a CPU with AVX512-BF16 / AMX (elsewhere bf16 is emulated: slower, same numbers path)
    monkeypatch.setattr("synful.train.loop.native_bf16", lambda device: True)
    seen = []
    original = torch.nn.Conv3d.forward

    def recording_forward(self, x):
        out = original(self, x)
        seen.append(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.Conv3d, "forward", recording_forward)
    out = tmp_path / "run"
    with caplog.at_level("INFO", logger="synful.train.loop"):
        last = train(
            write_setup(tmp_path, mixed_precision=True),
            stores,
            out,
            iterations=2,
            device="cpu",
            progress=False,
        )
    assert "bfloat16 mixed precision" in caplog.text
    assert seen and set(seen) == {torch.bfloat16}
    assert all(np.isfinite(float(r["loss"])) for r in log_rows(out))
    state = torch.load(last, weights_only=True)["model_state"]
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())


@pytest.mark.parametrize(("mixed_precision", "native"), [(False, True), (True, False)])
def test_float32_without_mixed_precision_or_native_bf16(
    tmp_path, stores, monkeypatch, caplog, mixed_precision, native
):
    monkeypatch.setattr("synful.train.loop.native_bf16", lambda device: native)
    with caplog.at_level("INFO", logger="synful.train.loop"):
        train(
            write_setup(tmp_path, mixed_precision=mixed_precision),
            stores,
            tmp_path / "run",
            iterations=1,
            device="cpu",
            progress=False,
        )
    assert "in float32" in caplog.text


def test_mask_losses_on_a_hand_made_example():
    """ce: weighted sigmoid CE on the logits; mse: weighted squared error of the LINEAR output
    (no sigmoid, as the published MSE graphs); both summed and divided by the voxel count."""
    from synful.train.losses import mask_loss

    output = torch.tensor([[[[[2.0, -1.0], [0.5, 1.5]]]]])  # (B, 1, z, y, x) = (1, 1, 1, 2, 2)
    target = torch.tensor([[[[[1.0, 0.0], [0.0, 1.0]]]]])
    weights = torch.tensor([[[[[3.0, 1.0], [1.0, 2.0]]]]])
    mse = (3 * (2.0 - 1) ** 2 + 1 * (-1.0 - 0) ** 2 + 1 * (0.5 - 0) ** 2 + 2 * (1.5 - 1) ** 2) / 4
    assert float(mask_loss(output, target, weights, "mse")) == pytest.approx(mse)
    assert mse == pytest.approx(1.1875)  # (3 + 1 + 0.25 + 0.5) / 4

    def ce(x, t):
        p = 1 / (1 + np.exp(-x))
        return -(t * np.log(p) + (1 - t) * np.log(1 - p))

    expected_ce = (3 * ce(2.0, 1) + ce(-1.0, 0) + ce(0.5, 0) + 2 * ce(1.5, 1)) / 4
    assert float(mask_loss(output, target, weights, "ce")) == pytest.approx(expected_ce)
    # a perfect linear output has zero mse loss, also outside the sigmoid's reach
    assert float(mask_loss(target, target, weights, "mse")) == 0.0
    with pytest.raises(ValueError):
        mask_loss(output, target, weights, "l1")
