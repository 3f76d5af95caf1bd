"""The training setup's keys and defaults have one owner, synful.settings.train.SetupSettings:
TrainSetup adds no key, the network's defaults (models.MODEL_DEFAULTS) are its defaults but the
documented legacy ones, the shipped setups use only its keys, and the workflow schema's train
section agrees with synful train."""

import argparse
import dataclasses
from pathlib import Path

import pytest
import yaml

from synful import cli
from synful.models import MODEL_DEFAULTS
from synful.settings.train import (
    LEGACY_DEFAULTS,
    MODEL_KEYS,
    SetupSettings,
    model_defaults,
    setup_defaults,
)
from synful.train import resume
from synful.train.setup import TrainSetup, load_setup

REPO = Path(__file__).resolve().parents[1]
SETUPS = sorted((REPO / "config" / "setups").glob("*.yaml"))


def test_train_setup_adds_no_key():
    assert [f.name for f in dataclasses.fields(TrainSetup)] == [
        f.name for f in dataclasses.fields(SetupSettings)
    ]
    assert TrainSetup().to_dict() == setup_defaults()


def test_model_defaults_are_the_setup_defaults_but_the_legacy_ones():
    assert MODEL_DEFAULTS == model_defaults()
    assert set(MODEL_DEFAULTS) == set(MODEL_KEYS)
    defaults = setup_defaults()
    for key in MODEL_KEYS:
        expected = LEGACY_DEFAULTS.get(key, defaults[key])
        assert MODEL_DEFAULTS[key] == expected, key
    assert set(LEGACY_DEFAULTS) <= set(MODEL_KEYS)
    for key, old in LEGACY_DEFAULTS.items():
        assert old != defaults[key], f"{key}: a legacy default equal to the default is no exception"


def test_resume_later_keys_are_the_legacy_defaults():
    """The training recipe leaves a later key out at the value older checkpoints resolve to."""
    assert resume.LATER_KEYS == LEGACY_DEFAULTS


@pytest.mark.parametrize("path", SETUPS, ids=lambda p: p.stem)
def test_shipped_setups_use_only_setup_keys(path):
    data = yaml.safe_load(path.read_text()) or {}
    defaults = setup_defaults()
    for key, value in data.items():
        assert key in defaults, f"{path.name}: {key}"
        if isinstance(value, dict):
            assert set(value) <= set(defaults[key]), f"{path.name}: {key}"
    load_setup(path)  # valid, every other key at its default


def test_schema_train_device_is_the_commands():
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    (device,) = [a for a in sub.choices["train"]._actions if a.dest == "device"]
    train = schema["properties"]["train"]["properties"]
    assert train["device"]["enum"] == list(device.choices)
    assert train["device"]["default"] == device.default


def test_mask_losses_are_the_ones_the_network_can_activate():
    """settings.train.MASK_LOSSES (what a setup may say) and models.MASK_ACTIVATION (how the
    network reads each) name the same losses."""
    from synful.models import MASK_ACTIVATION
    from synful.settings.train import MASK_LOSSES

    assert tuple(MASK_ACTIVATION) == MASK_LOSSES
