"""Checkpoints: round trip with weights_only loading, resume state, bad files."""

import pickle

import pytest
import torch

from synful.checkpoint import checkpoint_name, list_checkpoints, load_checkpoint, save_checkpoint
from synful.errors import SynfulError
from synful.models import build_model

SETUP = {
    "network_type": "dh_unet",
    "downsample_factors": [[1, 2, 2], [2, 2, 2]],
    "fmap_num": 2,
    "fmap_inc_factor": 2,
    "d_scale": 2.0,
    "learning_rate": 1e-3,
}


def trained_model(setup=SETUP):
    torch.manual_seed(0)
    model = build_model(setup)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(1, 1, 26, 44, 44)
    out = model(x)
    (out["post_indicator"].mean() + out["partner_vectors"].pow(2).mean()).backward()
    optimizer.step()
    return model, optimizer, x


@pytest.mark.parametrize("normalization", ["none", "batch"])
def test_round_trip_rebuilds_the_model_from_the_setup_alone(tmp_path, normalization):
    setup = {**SETUP, "normalization": normalization}
    model, optimizer, x = trained_model(setup)
    path = save_checkpoint(tmp_path / checkpoint_name(7), model=model, setup=setup, iteration=7, optimizer=optimizer)
    assert path.name == "checkpoint_7.pt"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint_7.pt"]  # no temporary left behind
    loaded = load_checkpoint(path)
    assert loaded.iteration == 7
    assert loaded.setup == setup
    assert not loaded.model.training
    model.eval()
    with torch.no_grad():
        expected, got = model(x), loaded.model(x)
    for key in expected:
        torch.testing.assert_close(expected[key], got[key])
    resumed = torch.optim.Adam(loaded.model.parameters(), lr=1e-3)
    resumed.load_state_dict(loaded.optimizer_state)
    assert resumed.state_dict()["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]
    # the file needs nothing but weights_only loading
    payload = torch.load(path, weights_only=True)
    assert payload["iteration"] == 7


def test_list_checkpoints_sorts_by_iteration(tmp_path):
    model, _, _ = trained_model()
    for it in (100, 20, 3):
        save_checkpoint(tmp_path / checkpoint_name(it), model=model, setup=SETUP, iteration=it)
    (tmp_path / "checkpoint_x.pt").write_text("not one")
    assert [it for it, _ in list_checkpoints(tmp_path)] == [3, 20, 100]
    assert list_checkpoints(tmp_path / "missing") == []


def test_corrupt_file_is_a_synful_error(tmp_path):
    model, _, _ = trained_model()
    path = save_checkpoint(tmp_path / "checkpoint_1.pt", model=model, setup=SETUP, iteration=1)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SynfulError, match="corrupt") as info:
        load_checkpoint(path)
    assert info.value.path == str(path)


def test_foreign_files_are_rejected(tmp_path):
    plain = tmp_path / "state.pt"
    torch.save(build_model(SETUP).state_dict(), plain)
    with pytest.raises(SynfulError, match="not a synful checkpoint"):
        load_checkpoint(plain)
    pickled = tmp_path / "object.pt"
    pickled.write_bytes(pickle.dumps(object()))
    with pytest.raises(SynfulError):
        load_checkpoint(pickled)
    with pytest.raises(SynfulError, match="no such"):
        load_checkpoint(tmp_path / "missing.pt")


def test_weights_that_do_not_fit_the_setup(tmp_path):
    model, _, _ = trained_model()
    path = save_checkpoint(tmp_path / "c.pt", model=model, setup={**SETUP, "fmap_num": 3}, iteration=1)
    with pytest.raises(SynfulError, match="do not fit"):
        load_checkpoint(path)


def test_failed_save_leaves_no_file(tmp_path):
    model, _, _ = trained_model()
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "c.pt", model=model, setup={"bad": object()}, iteration=1)
    assert list(tmp_path.iterdir()) == []
