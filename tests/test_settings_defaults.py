"""Every setting's default exists once: the workflow schema, the CLI and the stage functions
agree with the settings models (:mod:`synful.settings`).

The models are the owners; ``config/schema.yaml`` (the workflow's defaults) and the stage
functions' keyword defaults are copies or references checked here, so changing one copy fails.
"""

import argparse
import dataclasses
import inspect
from pathlib import Path

import pytest
import yaml

from synful import cli
from synful import convert as convert_module
from synful import download as download_module
from synful import masks as masks_module
from synful.evaluate import errors as errors_module
from synful.evaluate import evaluation, matching
from synful.extract import components, nms, split
from synful.extract import volume as extract_volume
from synful.io import prediction_store
from synful.masks import SplitRule
from synful.predict import volume as predict_volume
from synful.settings import extract as extract_settings
from synful.settings.evaluate import ErrorSettings, EvaluateSettings
from synful.settings.extract import ExtractConfig, ExtractRun
from synful.settings.fields import defaults, flag, settings_of
from synful.settings.predict import DTYPES, PredictConfig, PredictRun
from synful.settings.samples import (
    ConvertSettings,
    DownloadSettings,
    MaskSettings,
    SynthesizeSettings,
)
from synful.synthetic import output as synthetic_output
from synful.synthetic import sample as synthetic_sample

SCHEMA = yaml.safe_load((Path(__file__).parents[1] / "config" / "schema.yaml").read_text())

#: schema keys of a section that are no stage setting (the workflow's own)
WORKFLOW_ONLY = {
    "extract": {"grid", "threads"},
    "evaluate": {"samples", "test"},
    # predict.roi names a workflow region (geometry.WORKFLOW_REGIONS, tests/test_regions.py)
    "predict": {"roi", "threads"},
}
#: settings with a deliberate other default in the workflow, and why
WORKFLOW_DEFAULTS = {
    ("evaluate", "score_thresholds"): "the workflow always sweeps one fixed list (summable over "
    "samples); the command sweeps only when asked",
}
#: settings the workflow does not expose
NOT_IN_WORKFLOW = {
    "extract": {"nms_border", "scheduler"},
    "evaluate": {"pre_only", "merge_radius", "errors_at", "extraction_threshold"},
    "predict": {"gpus"},
}
MODELS = {
    "extract": (ExtractConfig, ExtractRun),
    "evaluate": (EvaluateSettings, ErrorSettings),
    "predict": (PredictRun, PredictConfig),
}


def _fields(section: str) -> dict[str, dataclasses.Field]:
    return {f.name: f for model in MODELS[section] for f in settings_of(model)}


def _schema_properties(section: str) -> dict:
    properties = dict(SCHEMA["properties"][section]["properties"])
    if section == "extract":  # the grid's keys: lists of values to try, [default] by default
        properties.update(SCHEMA["$defs"]["grid_point"]["properties"])
    return properties


def _bounds(prop: dict) -> dict:
    """The enum and range of a schema property (of its items for a list)."""
    prop = prop.get("items", prop)
    keys = {
        "enum": "choices",
        "minimum": "minimum",
        "maximum": "maximum",
        "exclusiveMinimum": "above",
    }
    return {name: prop[key] for key, name in keys.items() if key in prop}


def _spec_bounds(field: dataclasses.Field) -> dict:
    spec = field.metadata["setting"]
    out = {name: getattr(spec, name) for name in ("minimum", "maximum", "above")}
    out["choices"] = None if spec.choices is None else list(spec.choices)
    return {k: v for k, v in out.items() if v is not None}


@pytest.mark.parametrize("section", sorted(MODELS))
def test_schema_keys_are_settings_or_listed(section):
    keys = set(_schema_properties(section))
    fields = set(_fields(section))
    assert keys - fields == WORKFLOW_ONLY[section]
    assert fields - keys == NOT_IN_WORKFLOW[section]


@pytest.mark.parametrize("section", sorted(MODELS))
def test_schema_defaults_equal_the_models(section):
    fields = _fields(section)
    grid = SCHEMA["$defs"]["grid_point"]["properties"] if section == "extract" else {}
    for key, prop in _schema_properties(section).items():
        if key not in fields or (section, key) in WORKFLOW_DEFAULTS:
            continue
        default = fields[key].default
        expected = [default] if key in grid else default
        if isinstance(expected, tuple):
            expected = list(expected)
        assert prop["default"] == expected, (
            f"{section}.{key}: schema {prop['default']!r}, model {default!r}"
        )


@pytest.mark.parametrize("section", sorted(MODELS))
def test_schema_ranges_and_choices_equal_the_models(section):
    fields = _fields(section)
    for key, prop in _schema_properties(section).items():
        if key in fields and "oneOf" not in prop and "if" not in prop:
            assert _bounds(prop) == _spec_bounds(fields[key]), f"{section}.{key}"


def test_workflow_defaults_differ_where_listed():
    """A listed exception that is no longer one must leave the list."""
    for section, key in WORKFLOW_DEFAULTS:
        assert _schema_properties(section)[key]["default"] != _fields(section)[key].default


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices[name]


@pytest.mark.parametrize("section", sorted(MODELS))
def test_cli_options_equal_the_models(section):
    actions = {a.dest: a for a in _subparser(section)._actions}
    for name, field in _fields(section).items():
        action = actions[name]
        assert action.option_strings == [flag(name)]
        default = action.default
        assert (tuple(default) if isinstance(default, list) else default) == field.default, name
        spec = field.metadata["setting"]
        assert (None if action.choices is None else tuple(action.choices)) == spec.choices, name


STAGE_FUNCTIONS = {
    PredictRun: [predict_volume.predict],
    PredictConfig: [predict_volume.predict],
    ExtractRun: [extract_volume.extract_synapses, extract_volume.run_extract_blocks],
    ErrorSettings: [evaluation.evaluate_files_with_errors, evaluation.error_thresholds],
    EvaluateSettings: [
        matching.candidate_edges,
        matching.solve_matching,
        matching.match_pairs,
        errors_module.classify_errors,
    ],
}
#: a stage function's parameter that holds a setting under another name
ALIASES = {"threshold": "matching_threshold"}


@pytest.mark.parametrize("model", list(STAGE_FUNCTIONS), ids=lambda m: m.__name__)
def test_stage_function_defaults_equal_the_models(model):
    expected = defaults(model)
    checked = set()
    for function in STAGE_FUNCTIONS[model]:
        for parameter in inspect.signature(function).parameters.values():
            name = ALIASES.get(parameter.name, parameter.name)
            if name in expected and parameter.default is not inspect.Parameter.empty:
                assert parameter.default == expected[name], f"{function.__name__}({parameter.name})"
                checked.add(name)
    assert checked  # the functions do take the model's settings


def test_extraction_settings_are_keywords_of_the_model():
    """extract_synapses and the evaluation functions restate no setting: they take the model's
    fields as keywords (``**settings``)."""
    for function, model in [
        (extract_volume.extract_synapses, ExtractConfig),
        (evaluation.evaluate_files, EvaluateSettings),
        (evaluation.evaluate_pairs, EvaluateSettings),
    ]:
        parameters = inspect.signature(function).parameters
        assert not set(parameters) & set(defaults(model)), function.__name__
        assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def test_stage_choices_are_the_models():
    """The stage modules check their rules against the settings module's lists, not copies."""
    assert components.SCORES is extract_settings.SCORES
    assert components.LOCATIONS is extract_settings.LOCATIONS
    assert nms.BORDERS is extract_settings.BORDERS
    assert split.SPLIT_LEVELS is extract_settings.SPLIT_LEVELS
    assert prediction_store.DTYPES is DTYPES


def test_predict_function_takes_every_setting():
    """predict() has a keyword for each predict setting, defaulting to the model's (the command
    passes the models' fields as keywords); its workers default is the command's (None)."""
    parameters = inspect.signature(predict_volume.predict).parameters
    for model in (PredictRun, PredictConfig):
        for name, default in defaults(model).items():
            assert parameters[name].default == default, name
    assert parameters["workers"].default is None


@pytest.mark.parametrize(
    "argv, line",
    [
        (["--threshold", "1.5"], "synful: error: --threshold: must lie in [0, 1], got 1.5"),
        (["--nms-radius", "0"], "synful: error: --nms-radius: must be positive, got 0"),
        (["--context", "-1"], "synful: error: --context: must be >= 0, got -1"),
        (["--workers", "0"], "synful: error: --workers: must be >= 1, got 0"),
        (
            ["--split-levels", "0.5", "2"],
            "synful: error: --split-levels: must lie in [0, 1], got 2",
        ),
    ],
)
def test_extract_errors_name_the_flag(tmp_path, capsys, argv, line):
    assert cli.main(["extract", str(tmp_path / "p.zarr"), str(tmp_path / "o.parquet"), *argv]) == 1
    assert capsys.readouterr().err.strip() == line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv, line",
    [
        (
            ["--matching-threshold", "0"],
            "synful: error: --matching-threshold: must be positive, got 0",
        ),
        (["--merge-radius", "-5"], "synful: error: --merge-radius: must be positive, got -5"),
        (["--score-thresholds", "1", "x"], "synful: error: --score-thresholds: not a number: 'x'"),
        (
            ["--errors-csv", "e.csv", "--predictions", "p.zarr", "--extraction-threshold", "3"],
            "synful: error: --extraction-threshold: must lie in [0, 1], got 3",
        ),
    ],
)
def test_evaluate_errors_name_the_flag(tmp_path, capsys, argv, line):
    pred, gt = tmp_path / "pred.parquet", tmp_path / "gt.hdf"
    pred.touch()
    gt.touch()
    argv = [str(tmp_path / a) if a.endswith((".csv", ".zarr")) else a for a in argv]
    assert (
        cli.main(
            [
                "evaluate",
                "--pred",
                str(pred),
                "--gt",
                str(gt),
                "--out",
                str(tmp_path / "m.json"),
                *argv,
            ]
        )
        == 1
    )
    assert capsys.readouterr().err.strip() == line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gt.hdf", "pred.parquet"]


@pytest.mark.parametrize(
    "argv, line",
    [
        (["--block-shape", "0", "1", "1"], "synful: error: --block-shape: must be >= 1, got 0"),
        (["--workers", "0"], "synful: error: --workers: must be >= 1, got 0"),
        (
            ["--device", "tpu"],
            "synful: error: unknown device 'tpu': expected auto, cpu, cuda or cuda:N",
        ),
    ],
)
def test_predict_errors_name_the_flag(tmp_path, capsys, argv, line):
    """The model checks the settings before the checkpoint is read or anything is written."""
    args = [str(tmp_path / name) for name in ("c.pt", "s.zarr", "p.zarr")]
    assert cli.main(["predict", *args, "--quiet", *argv]) == 1
    assert capsys.readouterr().err.strip() == line
    assert list(tmp_path.iterdir()) == []


# ---- the commands that make a sample (synthesize, download, convert, masks) -------------------

#: command -> (model, the schema properties its settings come from in a workflow, schema keys
#: that are no setting of the command, settings the workflow does not take from those keys)
SAMPLE_SECTIONS = {
    "synthesize": (SynthesizeSettings, SCHEMA["$defs"]["synthetic"]["properties"], set(), set()),
    # a sample's sha256 and labels (require_labels) are handed over with the download section
    "download": (
        DownloadSettings,
        SCHEMA["properties"]["download"]["properties"],
        set(),
        {"sha256", "require_labels", "no_check"},
    ),
    # voxel_size is a sample's key, chunks the workflow's
    "convert": (
        ConvertSettings,
        {
            "voxel_size": SCHEMA["$defs"]["sample"]["properties"]["voxel_size"],
            "chunks": SCHEMA["properties"]["chunks"],
        },
        set(),
        set(),
    ),
    "masks": (MaskSettings, SCHEMA["$defs"]["masks"]["properties"], set(), set()),
}


@pytest.mark.parametrize("command", sorted(SAMPLE_SECTIONS))
def test_sample_schema_keys_defaults_and_ranges_equal_the_models(command):
    model, properties, workflow_only, not_in_workflow = SAMPLE_SECTIONS[command]
    fields = {f.name: f for f in settings_of(model)}
    assert set(properties) - set(fields) == workflow_only
    assert set(fields) - set(properties) == not_in_workflow
    for key, prop in properties.items():
        if "$ref" in prop:  # zyx_positive / zyx_int: integers >= 1 / >= 0
            ref = SCHEMA["$defs"][prop["$ref"].rsplit("/", 1)[1]]
            prop = ref | {k: v for k, v in prop.items() if k != "$ref"}
        if "default" in prop:
            default = fields[key].default
            assert prop["default"] == (list(default) if isinstance(default, tuple) else default)
        assert _bounds(prop) == _spec_bounds(fields[key]), f"{command}.{key}"


@pytest.mark.parametrize("command", sorted(SAMPLE_SECTIONS))
def test_sample_cli_options_equal_the_models(command):
    model = SAMPLE_SECTIONS[command][0]
    actions = {a.dest: a for a in _subparser(command)._actions}
    for field in settings_of(model):
        action = actions[field.name]
        assert action.option_strings == [flag(field.name)]
        default = action.default
        assert (tuple(default) if isinstance(default, list) else default) == field.default
        spec = field.metadata["setting"]
        assert (None if action.choices is None else tuple(action.choices)) == spec.choices


@pytest.mark.parametrize(
    "model, function",
    [
        (SynthesizeSettings, synthetic_output.write_synthetic),
        (SynthesizeSettings, synthetic_sample.synthesize_sample),
        (DownloadSettings, download_module.download),
        (ConvertSettings, convert_module.convert_cremi),
    ],
    ids=lambda x: getattr(x, "__name__", ""),
)
def test_sample_stage_defaults_equal_the_models(model, function):
    expected = defaults(model)
    parameters = inspect.signature(function).parameters
    shared = [name for name in expected if name in parameters]
    assert shared  # the function does take the model's settings
    for name in shared:
        default = parameters[name].default
        assert (tuple(default) if isinstance(default, list) else default) == expected[name], name


def test_split_rule_defaults_are_the_models():
    rule, expected = SplitRule(), defaults(MaskSettings)
    assert (rule.axis, rule.training_fraction) == (
        expected["split_axis"],
        expected["training_fraction"],
    )
    spec = {f.name: f for f in settings_of(MaskSettings)}["split_axis"].metadata["setting"]
    assert masks_module.SPLIT_AXES is spec.choices


def _schema_keys(node: dict, prefix: str = ""):
    """Every key of the workflow schema, dotted (``predict.fill_missing_sections``)."""
    for key, prop in (node.get("properties") or {}).items():
        name = f"{prefix}.{key}" if prefix else key
        yield name
        if isinstance(prop, dict):
            yield from _schema_keys(prop, name)


def test_every_schema_key_is_documented_in_config_readme():
    """config/README.md documents every key of config/schema.yaml (a row, heading or paragraph
    naming it), so a new setting cannot ship without its line."""
    readme = (Path(__file__).parents[1] / "config" / "README.md").read_text()
    keys = list(_schema_keys(SCHEMA))
    assert "predict.fill_missing_sections" in keys and "evaluate.mask_rule" in keys
    assert [key for key in keys if f"`{key}`" not in readme] == []
