"""The setup schema: defaults, typos with suggestions, types, checks, the shipped setups."""

from pathlib import Path

import pytest
import torch

from synful.errors import SynfulError
from synful.models import build_model
from synful.train.setup import TrainSetup, load_setup, resolve_setup

SETUPS = Path(__file__).resolve().parents[1] / "config" / "setups"


def write(tmp_path, text):
    path = tmp_path / "setup.yaml"
    path.write_text(text)
    return path


def test_defaults_are_the_original_values(tmp_path):
    setup = load_setup(write(tmp_path, "{}"))
    assert setup.learning_rate == 0.5e-4 and setup.adam_betas == [0.95, 0.999]
    assert setup.balance_clip == [7e-4, 0.9993]
    assert setup.elastic.control_point_spacing == [4, 40, 40]
    assert setup.reject_probability == 0.95
    # not the original's: He init and bf16 autocast stay the defaults (backward compatible);
    # the original and published setups set init: glorot and mixed_precision: false
    assert setup.init == "he" and setup.mixed_precision is True and setup.mask_loss == "ce"
    data = setup.to_dict()
    assert data["elastic"]["prob_slip"] == 0.05
    # the resolved input size is valid for the network
    model = build_model(data)
    model.output_shape(setup.input_shape)


def test_typo_gets_a_suggestion(tmp_path):
    path = write(tmp_path, "fmap_nu: 4\n")
    with pytest.raises(SynfulError) as info:
        load_setup(path)
    assert str(info.value) == f"{path}: unknown key 'fmap_nu' (did you mean 'fmap_num'?)"
    with pytest.raises(
        SynfulError, match=r"unknown key 'elastic.prob_slp' \(did you mean 'elastic.prob_slip'\?\)"
    ):
        load_setup(write(tmp_path, "elastic:\n  prob_slp: 0.1\n"))
    with pytest.raises(SynfulError, match="unknown key 'zzz'$"):
        load_setup(write(tmp_path, "zzz: 1\n"))


@pytest.mark.parametrize(
    "text, problem",
    [
        ("fmap_num: four\n", "fmap_num must be an integer"),
        ("learning_rate: fast\n", "learning_rate must be a number"),
        ("mixed_precision: 1\n", "mixed_precision must be true or false"),
        ("input_shape: 42\n", "input_shape must be a list"),
        ("network_type: resnet\n", "network_type must be"),
        ("m_loss_scale: 0\nd_loss_scale: 0\n", "nothing to train"),
        ("network_type: dh_unet\nd_loss_scale: 0\n", "dh_unet needs both"),
        ("balance_clip: [0.9, 0.1]\n", "balance_clip"),
        ("mask_loss: l1\n", "mask_loss"),
        ("init: xavier\n", "init must be 'he' or 'glorot'"),
        ("batch_norm_batches: -1\n", "batch_norm_batches must be >= 0"),
        ("normalization: group\n", "normalization must be 'none' or 'batch'"),
        ("blob_radius: 0\n", "blob_radius must be a number > 0 or 3 numbers > 0"),
        ("blob_radius: [60, 32]\n", "blob_radius must be a number > 0 or 3 numbers > 0"),
        ("d_blob_radius: [60, 0, 32]\n", "d_blob_radius must be a number > 0 or 3"),
        ("blob_radius: [60, wide, 32]\n", "blob_radius[1] must be a number"),
        ("d_scale: 0\n", "d_scale must be > 0"),
        ("[1, 2]\n", "must be a mapping"),
        ("fmap_num: [\n", "invalid YAML"),
        ("downsample_factors: [[1, 2, 2]]\nkernel_sizes: [[3, 3, 3]]\n", "invalid network"),
    ],
)
def test_bad_values(tmp_path, text, problem):
    with pytest.raises(SynfulError, match=problem.replace("[", r"\[")):
        load_setup(write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(SynfulError, match="no such setup file"):
        load_setup(tmp_path / "missing.yaml")


def test_a_radius_is_one_number_or_one_per_axis():
    assert resolve_setup({"blob_radius": 32}).blob_radius == 32.0
    setup = resolve_setup({"blob_radius": [60, 32, 32], "d_blob_radius": [80, 60, 60]})
    assert setup.blob_radius == [60.0, 32.0, 32.0]
    assert setup.d_blob_radius == [80.0, 60.0, 60.0]


def test_yaml_exponent_without_dot_is_a_number():
    assert resolve_setup({"learning_rate": "1e-4"}).learning_rate == 1e-4


def test_input_shape_is_rounded_up_to_a_valid_shape():
    setup = resolve_setup({"downsample_factors": [[1, 2, 2]], "input_shape": [10, 30, 31]})
    assert setup.input_shape == [10, 30, 34] or all(
        a >= b for a, b in zip(setup.input_shape, [10, 30, 31])
    )
    model = build_model(setup.to_dict())
    assert model.valid_input_shape([10, 30, 31]) == tuple(setup.input_shape)


def test_predict_input_shape_is_resolved_too():
    setup = resolve_setup(
        {"downsample_factors": [[1, 2, 2]], "predict_input_shape": [20, 100, 101]}
    )
    assert setup.predict_input_shape == list(
        build_model(setup.to_dict()).valid_input_shape([20, 100, 101])
    )
    assert resolve_setup({}).predict_input_shape is None


def test_curriculum_schedule():
    setup = resolve_setup(
        {
            "reject_probability": 0.5,
            "curriculum": {
                "iterations": 100,
                "reject_probability": [1.0, 0.9],
                "clipmin": [0.1, 0.001],
            },
        }
    )
    assert setup.reject_probability_at(0) == 1.0
    assert setup.reject_probability_at(50) == pytest.approx(0.95)
    assert setup.reject_probability_at(1000) == pytest.approx(0.9)
    assert setup.balance_clip_at(0) == (0.1, 0.9993)
    assert setup.balance_clip_at(100)[0] == pytest.approx(0.001)
    plain = resolve_setup({"reject_probability": 0.5})
    assert plain.reject_probability_at(10) == 0.5 and plain.balance_clip_at(10) == (7e-4, 0.9993)


def test_round_trip_through_to_dict():
    setup = resolve_setup({"fmap_num": 3, "elastic": {"enabled": False}})
    again = resolve_setup(setup.to_dict())
    assert again == setup
    assert isinstance(again, TrainSetup)


@pytest.mark.parametrize("path", sorted(SETUPS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_setups_load_and_build(path):
    setup = load_setup(path)
    with torch.device("meta"):  # the big published models: no memory for the weights
        model = build_model(setup.to_dict())
    assert model.output_shape(setup.input_shape)
