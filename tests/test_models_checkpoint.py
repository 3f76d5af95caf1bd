"""Checkpoints: round trip with weights_only loading, resume state, bad files."""

import pickle

import numpy as np
import pytest
import torch

from synful.checkpoint import checkpoint_name, list_checkpoints, load_checkpoint, save_checkpoint
from synful.errors import SynfulError
from synful.models import build_model, normalize_raw

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
    path = save_checkpoint(
        tmp_path / checkpoint_name(7), model=model, setup=setup, iteration=7, optimizer=optimizer
    )
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
    path = save_checkpoint(
        tmp_path / "c.pt", model=model, setup={**SETUP, "fmap_num": 3}, iteration=1
    )
    with pytest.raises(SynfulError, match="do not fit"):
        load_checkpoint(path)


def test_failed_save_leaves_no_file(tmp_path):
    model, _, _ = trained_model()
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "c.pt", model=model, setup={"bad": object()}, iteration=1)
    assert list(tmp_path.iterdir()) == []


def _predict(checkpoint, raw):
    from synful.predict import predict_raw

    return predict_raw(checkpoint.model, raw)["post_indicator"]


def _raw_and_linear(model):
    """A uint8 raw block and the mask head's linear output on it (no activation)."""
    shape = model.valid_input_shape((10, 40, 40))
    raw = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    with torch.no_grad():
        linear = model(torch.from_numpy(normalize_raw(raw)[None, None]))["post_indicator"][
            0, 0
        ].numpy()
    return raw, linear


def test_mse_model_predicts_its_linear_output_clipped_to_0_1(tmp_path):
    setup = {**SETUP, "mask_loss": "mse"}
    model, _, _ = trained_model(setup)
    model.eval()
    _, linear = _raw_and_linear(model)
    low, middle, high = np.percentile(linear - float(model.mask_head.bias.detach()), [10, 50, 90])
    scale = 2.0 / (high - low)
    with torch.no_grad():  # spread the linear output around 0.5, well beyond [0, 1]
        model.mask_head.weight.mul_(scale)
        model.mask_head.bias.fill_(0.5 - scale * middle)
    path = save_checkpoint(tmp_path / "c.pt", model=model, setup=setup, iteration=1)
    loaded = load_checkpoint(path)
    assert loaded.model.mask_activation == "clip"
    raw, linear = _raw_and_linear(loaded.model)
    assert (linear < 0).any() and (linear > 1).any() and ((linear > 0) & (linear < 1)).any()
    predicted = _predict(loaded, raw)
    assert predicted.min() >= 0.0 and predicted.max() <= 1.0
    np.testing.assert_allclose(predicted, np.clip(linear, 0.0, 1.0), rtol=1e-5, atol=1e-6)


def test_ce_model_and_checkpoints_without_the_key_predict_the_sigmoid(tmp_path):
    assert (
        "mask_loss" not in SETUP and "init" not in SETUP
    )  # as checkpoints written before both keys
    model, _, _ = trained_model()
    path = save_checkpoint(tmp_path / "old.pt", model=model, setup=SETUP, iteration=1)
    loaded = load_checkpoint(path)
    assert loaded.model.mask_activation == "sigmoid" and loaded.model.init == "he"
    raw, linear = _raw_and_linear(loaded.model)
    predicted = _predict(loaded, raw)
    np.testing.assert_allclose(predicted, 1.0 / (1.0 + np.exp(-linear)), rtol=1e-5, atol=1e-6)


def test_read_checkpoint_setup_without_building_the_model(tmp_path):
    from synful.checkpoint import read_checkpoint_setup, save_checkpoint
    from synful.models import build_model

    setup = {
        "network_type": "vanilla",
        "downsample_factors": [[1, 2, 2]],
        "fmap_num": 2,
        "fmap_inc_factor": 2,
        "m_loss_scale": 1.0,
        "d_loss_scale": 0.0,
    }
    path = save_checkpoint(tmp_path / "c.pt", model=build_model(setup), setup=setup, iteration=7)
    stored, iteration = read_checkpoint_setup(path)
    assert iteration == 7 and stored["d_loss_scale"] == 0.0
    (tmp_path / "bad.pt").write_text("no")
    with pytest.raises(SynfulError, match="corrupt or unreadable"):
        read_checkpoint_setup(tmp_path / "bad.pt")


def test_training_identity_is_stored_and_read_back(tmp_path):
    from synful.checkpoint import read_checkpoint_identity

    model, optimizer, _ = trained_model()
    identity = {
        "version": 1,
        "recipe": "ab" * 32,
        "samples": [{"store": "x"}],
        "lineage": ["cd" * 32],
    }
    path = save_checkpoint(
        tmp_path / "c.pt",
        model=model,
        setup=SETUP,
        iteration=3,
        optimizer=optimizer,
        identity=identity,
    )
    assert load_checkpoint(path).identity == identity
    setup, stored = read_checkpoint_identity(path)
    assert stored == identity and setup["fmap_num"] == SETUP["fmap_num"]
    assert torch.load(path, weights_only=True)["identity"] == identity  # plain data, safe to load
    # checkpoints without one (older synful, imported networks) read as None
    old = save_checkpoint(tmp_path / "old.pt", model=model, setup=SETUP, iteration=3)
    assert load_checkpoint(old).identity is None and read_checkpoint_identity(old)[1] is None
