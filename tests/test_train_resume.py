"""Training resumes only from the same recipe: the identity in every checkpoint, the one-line
mismatch error, --restart, and --from (the workflow's mode: lineage through a given checkpoint)."""

import csv
import shutil

import numpy as np
import pytest
import torch
import yaml
import zarr
from _train_stores import TINY_SETUP, write_store

from synful.checkpoint import (
    list_checkpoints,
    load_checkpoint,
    read_checkpoint_identity,
    save_checkpoint,
)
from synful.cli import main
from synful.errors import SynfulError
from synful.identity import file_identity
from synful.io.sample_store import default_synapse_table
from synful.io.synapse_table import read_synapses, write_synapses
from synful.train import resolve_setup, train
from synful.train.resume import NOT_IN_RECIPE, recipe_difference, training_identity

FAST = {**TINY_SETUP, "checkpoint_every": 1, "snapshot_every": 1000}


@pytest.fixture()
def stores(tmp_path):
    paths = []
    for seed in (0, 1):
        path = tmp_path / f"s{seed}.zarr"
        write_store(path, seed=seed, training_mask=np.ones((12, 64, 64), np.uint8))
        paths.append(path)
    return paths


def write_setup(tmp_path, name="setup.yaml", **extra):
    path = tmp_path / name
    path.write_text(yaml.safe_dump({**FAST, **extra}))
    return path


def resolved(**extra):
    return resolve_setup({**FAST, **extra}).to_dict()


def log_iterations(out):
    with open(out / "training_log.csv") as f:
        return [int(row["iteration"]) for row in csv.DictReader(f)]


def iterations(out):
    return [it for it, _ in list_checkpoints(out)]


# ---- the identity -----------------------------------------------------------------------------


def test_identity_covers_the_keys_that_change_the_weights(stores):
    base = training_identity(resolved(), stores)
    # keys that only change logging, snapshots, checkpoint times, workers or prediction
    for extra in (
        {"description": "x"},
        {"num_workers": 2},
        {"in_memory_mib": 0},
        {"log_every": 5},
        {"snapshot_every": 7},
        {"keep_snapshots": 0},
        {"checkpoint_every": 3},
        {"predict_input_shape": [12, 48, 48]},
        # a constant schedule never reads the decay's end
        {"max_iteration": 10},
        {"lr_final": 0.5},
    ):
        assert training_identity(resolved(**extra), stores)["recipe"] == base["recipe"], extra
    assert set(NOT_IN_RECIPE) == {
        "description",
        "num_workers",
        "in_memory_mib",
        "log_every",
        "snapshot_every",
        "keep_snapshots",
        "checkpoint_every",
        "predict_input_shape",
    }
    # targets, losses, optimiser, schedule, augmentation, curriculum, seed, init, precision, BN
    for extra in (
        {"d_blob_radius": 50},
        {"blob_radius": 30},
        {"balance_clip": [0.01, 0.99]},
        {"m_loss_scale": 0.5},
        {"mask_loss": "mse"},
        {"learning_rate": 1e-4},
        {"adam_eps": 1e-6},
        {"lr_schedule": "cosine"},
        {"lr_warmup": 2},
        {"seed": 1},
        {"elastic": {"prob_slip": 0.5}},
        {"simple": {"mirror": False}},
        {"intensity": {"enabled": False}},
        {"defect": {"prob_missing": 0.1}},
        {"curriculum": {"iterations": 10, "clipmin": [0.1, 0.01]}},
        {"init": "glorot"},
        {"mixed_precision": True},
        {"batch_norm_batches": 3},
        {"reject_probability": 0.1},
        {"batch_size": 2},
        {"fmap_num": 3},
    ):
        assert training_identity(resolved(**extra), stores)["recipe"] != base["recipe"], extra
    # the decay's end matters to a decaying schedule
    cosine = training_identity(resolved(lr_schedule="cosine"), stores)["recipe"]
    assert (
        training_identity(resolved(lr_schedule="cosine", max_iteration=10), stores)["recipe"]
        != cosine
    )


def test_identity_is_the_samples_content_not_their_paths(tmp_path, stores):
    base = training_identity(resolved(), stores)
    elsewhere = tmp_path / "moved"
    elsewhere.mkdir()
    copies = []
    for store in stores:
        shutil.copytree(store, elsewhere / store.name)
        shutil.copy(default_synapse_table(store), elsewhere / default_synapse_table(store).name)
        copies.append(elsewhere / store.name)
    assert training_identity(resolved(), copies)["recipe"] == base["recipe"]
    # the order matters (a batch draws its sample by index)
    swapped = training_identity(resolved(), copies[::-1])
    assert swapped["recipe"] != base["recipe"]
    assert recipe_difference(resolved(), base, resolved(), swapped) == "the order of the samples"
    # another synapse table
    table = read_synapses(default_synapse_table(copies[1]))
    write_synapses(table.iloc[1:], default_synapse_table(copies[1]))
    changed = training_identity(resolved(d_blob_radius=50), copies)
    assert recipe_difference(resolved(), base, resolved(d_blob_radius=50), changed) == (
        "setup key d_blob_radius / sample s1.zarr"
    )
    # a training mask rewritten with the same metadata (another split), then a validation mask
    mask = zarr.open_array(str(copies[0] / "masks" / "training"), mode="r+")
    mask[:6] = 0
    assert (
        training_identity(resolved(), copies[:1])["recipe"]
        != training_identity(resolved(), stores[:1])["recipe"]
    )
    shutil.rmtree(copies[0] / "masks" / "training")
    shutil.copytree(stores[0] / "masks" / "training", copies[0] / "masks" / "training")
    zarr.open_group(str(copies[0])).create_array("masks/validation", shape=(2, 2, 2), dtype="uint8")
    assert (
        training_identity(resolved(), copies[:1])["recipe"]
        == training_identity(resolved(), stores[:1])["recipe"]
    )
    # fewer samples
    fewer = training_identity(resolved(), stores[:1])
    assert recipe_difference(resolved(), base, resolved(), fewer) == "2 training samples, now 1"


# ---- synful train: resume, refuse, restart ------------------------------------------------------


def test_checkpoints_record_the_identity_and_their_lineage(tmp_path, stores):
    out = tmp_path / "run"
    train(write_setup(tmp_path), stores, out, iterations=3, device="cpu", progress=False)
    expected = training_identity(resolved(), stores)
    lineages = []
    for _, path in list_checkpoints(out):
        _, identity = read_checkpoint_identity(path)
        assert identity["recipe"] == expected["recipe"] and identity["sample_names"] == [
            "s0.zarr",
            "s1.zarr",
        ]
        lineages.append(identity["lineage"])
    sha = [file_identity(path) for _, path in list_checkpoints(out)]
    assert lineages == [[], sha[:1], sha[:2]]
    assert load_checkpoint(out / "checkpoint_3.pt").identity["lineage"] == sha[:2]
    # a resume continues the lineage through the checkpoint it resumed from
    (out / "checkpoint_3.pt").unlink()
    train(write_setup(tmp_path), stores, out, iterations=3, device="cpu", progress=False)
    assert read_checkpoint_identity(out / "checkpoint_3.pt")[1]["lineage"] == sha[:2]


def test_changed_recipe_is_a_one_line_error_and_restart_trains_from_scratch(
    tmp_path, stores, capsys
):
    out = tmp_path / "run"
    args = ["--samples", *map(str, stores), "--out", str(out), "--device", "cpu", "--quiet"]
    assert (
        main(["train", str(write_setup(tmp_path, snapshot_every=2)), *args, "--iterations", "4"])
        == 0
    )
    assert (out / "snapshots" / "batch_4.zarr").is_dir()
    capsys.readouterr()
    changed = write_setup(
        tmp_path, "changed.yaml", d_blob_radius=60, learning_rate=1e-4, snapshot_every=2
    )
    # asked for an earlier iteration too: the newest checkpoint at or before it is never used
    assert main(["train", str(changed), *args, "--iterations", "2"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        f"synful: error: {out}/checkpoint_4.pt: made with another recipe (setup keys d_blob_radius, "
        "learning_rate); rerun with --restart to train from scratch"
    )
    assert iterations(out) == [1, 2, 3, 4]  # nothing touched
    # a changed sample names it
    table = read_synapses(default_synapse_table(stores[1]))
    write_synapses(table.iloc[1:], default_synapse_table(stores[1]))
    assert main(["train", str(changed), *args, "--iterations", "2"]) == 1
    assert "(setup keys d_blob_radius, learning_rate / sample s1.zarr)" in capsys.readouterr().err
    # --restart: the old checkpoints, log rows and snapshots go, training starts at 0
    assert main(["train", str(changed), *args, "--iterations", "2", "--restart"]) == 0
    assert iterations(out) == [1, 2]
    assert log_iterations(out) == [1, 2]
    assert (
        not (out / "snapshots" / "batch_4.zarr").exists()
        and (out / "snapshots" / "batch_2.zarr").is_dir()
    )
    current = training_identity(
        resolve_setup(yaml.safe_load(changed.read_text())).to_dict(), stores
    )
    for _, path in list_checkpoints(out):
        assert read_checkpoint_identity(path)[1]["recipe"] == current["recipe"]
    # now it resumes
    assert main(["train", str(changed), *args, "--iterations", "3"]) == 0
    assert log_iterations(out) == [1, 2, 3]


def test_settings_that_do_not_change_the_weights_resume(tmp_path, stores):
    out = tmp_path / "run"
    train(write_setup(tmp_path), stores, out, iterations=2, device="cpu", progress=False)
    other = write_setup(
        tmp_path,
        "other.yaml",
        num_workers=1,
        log_every=2,
        checkpoint_every=2,
        snapshot_every=5,
        keep_snapshots=1,
        description="renamed",
        in_memory_mib=0,
    )
    train(other, stores, out, iterations=3, device="cpu", progress=False)
    assert log_iterations(out) == [1, 2, 3]  # resumed: rows 1-2 kept
    assert load_checkpoint(out / "checkpoint_3.pt").setup["log_every"] == 2


def test_checkpoints_without_an_identity_are_a_mismatch(tmp_path, stores):
    out = tmp_path / "run"
    train(write_setup(tmp_path), stores, out, iterations=2, device="cpu", progress=False)
    old = load_checkpoint(out / "checkpoint_2.pt")
    save_checkpoint(
        out / "checkpoint_2.pt", model=old.model, setup=old.setup, iteration=2
    )  # as before
    with pytest.raises(
        SynfulError, match="made with another recipe \\(it has no training identity"
    ) as info:
        train(write_setup(tmp_path), stores, out, iterations=3, device="cpu", progress=False)
    assert info.value.path == str(out / "checkpoint_2.pt")
    assert str(info.value).endswith("rerun with --restart to train from scratch")
    train(
        write_setup(tmp_path), stores, out, iterations=2, device="cpu", progress=False, restart=True
    )
    assert read_checkpoint_identity(out / "checkpoint_2.pt")[1] is not None


# ---- --from: the workflow's mode -----------------------------------------------------------------


def test_from_scratch_replaces_stale_checkpoints_and_resumes_its_own(tmp_path, stores, caplog):
    out = tmp_path / "run"
    train(write_setup(tmp_path), stores, out, iterations=4, device="cpu", progress=False)
    changed = write_setup(tmp_path, "changed.yaml", d_blob_radius=60)
    with caplog.at_level("INFO", logger="synful.train"):
        train(
            changed, stores, out, iterations=2, device="cpu", progress=False, start_from="scratch"
        )
    assert "training from scratch" in caplog.text and "resuming" not in caplog.text
    assert "made with another recipe: setup key d_blob_radius" in caplog.text
    current = training_identity(resolved(d_blob_radius=60), stores)["recipe"]
    # the stale checkpoints up to 2 were replaced; those after 2 belong to a later job
    assert [
        read_checkpoint_identity(p)[1]["recipe"] == current for _, p in list_checkpoints(out)
    ] == [True, True, False, False]
    assert log_iterations(out) == [1, 2]
    # a killed job's rerun resumes from its own checkpoints
    (out / "checkpoint_2.pt").unlink()
    caplog.clear()
    with caplog.at_level("INFO", logger="synful.train"):
        train(
            changed, stores, out, iterations=2, device="cpu", progress=False, start_from="scratch"
        )
    assert f"resuming from {out / 'checkpoint_1.pt'}" in caplog.text


def test_from_a_checkpoint_resumes_only_what_was_trained_from_it(tmp_path, stores, caplog):
    setup = write_setup(tmp_path)
    out = tmp_path / "run"
    train(setup, stores, out, iterations=4, device="cpu", progress=False)
    # a killed job (checkpoint 4 missing): resumes from 3, which descends from 2
    (out / "checkpoint_4.pt").unlink()
    with caplog.at_level("INFO", logger="synful.train"):
        train(
            setup,
            stores,
            out,
            iterations=4,
            device="cpu",
            progress=False,
            start_from=out / "checkpoint_2.pt",
        )
    assert f"resuming from {out / 'checkpoint_3.pt'}" in caplog.text
    # checkpoint 2 is made again (same recipe, other weights): 3 and 4 are stale
    payload = torch.load(out / "checkpoint_2.pt", weights_only=True)
    name = next(iter(payload["model_state"]))
    payload["model_state"][name] = payload["model_state"][name] + 0.01
    torch.save(payload, out / "checkpoint_2.pt")
    new_two = file_identity(out / "checkpoint_2.pt")
    caplog.clear()
    with caplog.at_level("INFO", logger="synful.train"):
        train(
            setup,
            stores,
            out,
            iterations=4,
            device="cpu",
            progress=False,
            start_from=out / "checkpoint_2.pt",
        )
    assert "not trained from checkpoint_2.pt" in caplog.text
    assert f"resuming from {out / 'checkpoint_2.pt'}" in caplog.text
    for it in (3, 4):
        assert new_two in read_checkpoint_identity(out / f"checkpoint_{it}.pt")[1]["lineage"]
    assert log_iterations(out) == [1, 2, 3, 4]
    # a previous checkpoint of another recipe cannot be continued
    with pytest.raises(
        SynfulError,
        match="checkpoint_2.pt: made with another recipe \\(setup key seed\\); it cannot",
    ):
        train(
            write_setup(tmp_path, "seed.yaml", seed=3),
            stores,
            out,
            iterations=4,
            device="cpu",
            progress=False,
            start_from=out / "checkpoint_2.pt",
        )


def test_from_must_be_a_checkpoint_of_out_before_the_end(tmp_path, stores, capsys):
    setup = write_setup(tmp_path)
    out = tmp_path / "run"
    train(setup, stores, out, iterations=2, device="cpu", progress=False)
    other = tmp_path / "other"
    shutil.copytree(out, other)
    with pytest.raises(SynfulError, match="--from must be a checkpoint_<iteration>.pt in --out"):
        train(
            setup,
            stores,
            out,
            iterations=4,
            device="cpu",
            progress=False,
            start_from=other / "checkpoint_2.pt",
        )
    with pytest.raises(SynfulError, match="--from is after --iterations 1"):
        train(
            setup,
            stores,
            out,
            iterations=1,
            device="cpu",
            progress=False,
            start_from=out / "checkpoint_2.pt",
        )
    with pytest.raises(SystemExit):
        main(
            [
                "train",
                str(setup),
                "--samples",
                str(stores[0]),
                "--out",
                str(out),
                "--restart",
                "--from",
                "scratch",
            ]
        )
    assert "not allowed with argument" in capsys.readouterr().err


def test_training_keeps_the_setups_number_of_snapshots(tmp_path, stores):
    out = tmp_path / "run"
    train(
        write_setup(tmp_path, snapshot_every=1, keep_snapshots=2, checkpoint_every=10),
        stores[:1],
        out,
        iterations=4,
        device="cpu",
        progress=False,
    )
    assert sorted(p.name for p in (out / "snapshots").glob("*.zarr")) == [
        "batch_3.zarr",
        "batch_4.zarr",
    ]
