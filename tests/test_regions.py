"""Region names (``raw``, ``labels``, ``masks/NAME``) are defined once, in :mod:`synful.geometry`;
the workflow schema's ``predict.roi`` choices, the command line and the workflow's predict
script use them."""

import argparse
import runpy
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from synful import geometry
from synful.commands import _args

REPO = Path(__file__).parents[1]
SCHEMA = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())


def test_the_schema_choices_are_the_workflow_regions():
    roi = SCHEMA["properties"]["predict"]["properties"]["roi"]
    assert sorted(roi["enum"]) == sorted(geometry.WORKFLOW_REGIONS)
    assert roi["default"] in geometry.WORKFLOW_REGIONS


@pytest.mark.parametrize("choice", sorted(geometry.WORKFLOW_REGIONS))
def test_every_workflow_choice_is_a_region_the_command_takes(choice):
    region = geometry.WORKFLOW_REGIONS[choice]
    assert geometry.is_region_name(region)
    assert _args.parse_roi(region) == region


def test_region_names():
    for name in (*geometry.REGION_NAMES, geometry.MASK_REGION_PREFIX + "training"):
        assert geometry.is_region_name(name)
    for name in ("neuron_ids", "masks/", "masks/a/b", "raws", "Masks/validation"):
        assert not geometry.is_region_name(name)
    with pytest.raises(argparse.ArgumentTypeError, match="raw, labels or masks/NAME"):
        _args.parse_roi("validation")


def test_the_predict_script_passes_the_section_not_the_region(monkeypatch):
    """workflow_scripts/predict.py hands the job's predict section to the command as it is;
    ``synful predict`` maps its ``roi`` (tests/test_rule_settings.py,
    test_predict_roi_from_the_section)."""
    calls = []
    fake = SimpleNamespace(run_synful=lambda snakemake, *args, **kw: calls.append((args, kw)))
    monkeypatch.setitem(sys.modules, "_synful", fake)
    settings = {"predict": {"roi": "validation", "dtype": "uint8"}}
    job = SimpleNamespace(
        input=SimpleNamespace(checkpoint="c.pt", store="s.zarr"),
        output=SimpleNamespace(predictions="p.zarr"),
        params=SimpleNamespace(settings=settings),
        threads=3,
    )
    runpy.run_path(
        str(REPO / "workflow_scripts" / "predict.py"),
        init_globals={"snakemake": job},
        run_name="__main__",
    )
    ((args, kw),) = calls
    assert args[:4] == ("predict", "c.pt", "s.zarr", "p.zarr")
    assert "--roi" not in args and kw == {"settings": settings}
