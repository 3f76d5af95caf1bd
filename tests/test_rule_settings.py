"""Settings travel from the workflow config to the commands as the config section itself
(``--settings``, :mod:`synful.settings.workflow`), checked by the models that make the flags:
the same values as the flags the rules used to encode one by one, errors naming the config key,
flags winning over the section."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from snakemake.utils import validate

from synful import cli
from synful.commands import evaluate as evaluate_command
from synful.commands import predict as predict_command
from synful.settings.evaluate import ErrorSettings, EvaluateSettings
from synful.settings.extract import ExtractConfig, ExtractRun
from synful.settings.fields import apply_settings, settings_of, values_from
from synful.settings.predict import PredictConfig, PredictRun
from synful.settings.samples import (
    ConvertSettings,
    DownloadSettings,
    MaskSettings,
    SynthesizeSettings,
)
from synful.settings.workflow import WORKFLOW_KEYS, command_settings

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "config" / "schema.yaml"
MODELS = {
    "extract": (ExtractConfig, ExtractRun),
    "predict": (PredictRun, PredictConfig),
    "evaluate": (EvaluateSettings, ErrorSettings),
}
#: section keys a command applies itself (not a model's field)
OWN = {"extract": (), "predict": predict_command.SECTION_OWN, "evaluate": ()}
POINT = {"mode": "cc", "threshold": np.float64(0.5), "score": "sum", "nms_radius": np.float64(40)}


def workflow_config(**sections) -> dict:
    config = {"samples": {"a": {"synthetic": {}}}, **sections}
    validate(config, str(SCHEMA))  # fills in the schema's defaults
    return config


def parse(command: str, *argv: str):
    positional = {"extract": ["p.zarr", "o.parquet"], "predict": ["c.pt", "s.zarr", "o.zarr"]}
    positional["evaluate"] = ["--pred", "p.parquet", "--gt", "g.zarr", "--out", "m.json"]
    return cli.build_parser().parse_args([command, *positional[command], *argv])


def settings_argv(command: str, settings: dict) -> list[str]:
    return ["--settings", json.dumps({command: settings}, sort_keys=True)]


def applied(command: str, argv: list[str]) -> dict:
    """The settings of ``command`` parsed from ``argv``, as the models hold them (checked and
    converted), and the section's keys the command applies itself."""
    args = parse(command, *argv)
    own = apply_settings(
        args, command, MODELS[command], skip=WORKFLOW_KEYS[command], own=OWN[command]
    )
    values = {}
    for model in MODELS[command]:
        values |= dataclasses.asdict(model(**values_from(model, args)))
    return values | own


# the flags rules/common.smk encoded before the sections were handed over (the reference)
def old_extract_flags(options: dict, point: dict) -> list[str]:
    args = []
    for key, value in point.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    args += ["--score-threshold", options["score_threshold"]]
    args += ["--min-distance", options["min_distance"]]
    args += ["--context", options["context"]]
    args += ["--split-levels", *options["split_levels"]]
    args += ["--min-piece-volume", options["min_piece_volume"]]
    args += ["--vector-radius", options["vector_radius"]]
    args += ["--cc-location", options["cc_location"]]
    if options["block_shape"]:
        args += ["--block-shape", *options["block_shape"]]
    if options["drop_autapses"]:
        args.append("--drop-autapses")
    return [str(a) for a in args] + ["--workers", str(options["workers"])]


def old_predict_flags(options: dict) -> list[str]:
    args = ["--device", options["device"], "--dtype", options["dtype"]]
    if options["block_shape"]:
        args += ["--block-shape", *options["block_shape"]]
    if options["workers"]:
        args += ["--workers", options["workers"]]
    if options["scheduler"]:
        args += ["--scheduler", options["scheduler"]]
    if options["cluster"] is not None:
        args += ["--cluster", json.dumps(options["cluster"], sort_keys=True)]
    return [str(a) for a in args]


def old_evaluate_flags(options: dict, seg: bool, threshold) -> list[str]:
    args = ["--matching-threshold", options["matching_threshold"]]
    args += ["--score-thresholds", *options["score_thresholds"]]
    args += ["--extraction-threshold", threshold] + (["--filter-same-seg"] if seg else [])
    return [str(a) for a in args]


EXTRACT_SECTIONS = [
    {},
    {
        "score_threshold": 2,
        "min_distance": 10,
        "context": 200,
        "split_levels": [0.9, 0.7],
        "min_piece_volume": 6400,
        "vector_radius": 30,
        "cc_location": "master",
        "block_shape": [4, 40, 40],
        "drop_autapses": True,
        "workers": 3,
        "threads": 2,
        "grid": {"mode": ["cc", "nms"], "threshold": [0.5, 0.9]},
    },
]


@pytest.mark.parametrize("section", EXTRACT_SECTIONS)
def test_extract_section_gives_the_old_flags_values(section):
    options = workflow_config(extract=section)["extract"]
    settings = command_settings("extract", options, **POINT)
    assert "grid" not in settings and "threads" not in settings
    assert json.loads(json.dumps(settings)) == settings  # plain data (numpy scalars converted)
    new = applied("extract", settings_argv("extract", settings))
    assert new == applied("extract", old_extract_flags(options, POINT))


@pytest.mark.parametrize(
    "section",
    [
        {},
        {"block_shape": [2, 20, 20], "workers": 2, "scheduler": "threads", "device": "cpu"},
        {"dtype": "float32", "cluster": {"jobs": 2, "gpus_per_job": 4, "partition": "gpu"}},
    ],
)
def test_predict_section_gives_the_old_flags_values(section):
    options = workflow_config(predict=section)["predict"]
    settings = command_settings("predict", options, roi="labels", roi_margin=120.0)
    assert "threads" not in settings
    new = applied("predict", settings_argv("predict", settings))
    assert new.pop("roi") == "labels" and new.pop("roi_margin") == 120.0
    cluster = new.pop("cluster")
    old = applied("predict", old_predict_flags(options))
    assert old.pop("roi_margin") is None  # the flags the rules passed had no margin
    old_cluster = old.pop("cluster")
    assert new == old
    assert cluster == (None if old_cluster is None else json.loads(old_cluster))


@pytest.mark.parametrize("seg", [True, False])
def test_evaluate_section_gives_the_old_flags_values(seg):
    options = workflow_config(evaluate={"filter_same_seg": [True, False], "test": {}})["evaluate"]
    settings = command_settings("evaluate", options, filter_same_seg=seg, extraction_threshold=0.5)
    assert "test" not in settings
    new = applied("evaluate", settings_argv("evaluate", settings))
    assert new == applied("evaluate", old_evaluate_flags(options, seg, 0.5))


def test_flags_win_over_the_section():
    settings = {"nms_radius": 20, "context": 60, "drop_autapses": True, "workers": 4}
    values = applied("extract", ["--nms-radius", "10", *settings_argv("extract", settings)])
    assert values["nms_radius"] == 10 and values["context"] == 60.0
    assert values["drop_autapses"] is True and values["workers"] == 4
    # the flag before or after --settings, the same
    assert applied("extract", [*settings_argv("extract", settings), "--nms-radius", "10"]) == values


def test_a_config_file_and_its_section(tmp_path):
    config = tmp_path / "my.yaml"
    config.write_text(yaml.safe_dump({"samples": {}, "extract": {"context": 80, "grid": {}}}))
    assert applied("extract", ["--settings", str(config)])["context"] == 80.0


@pytest.mark.parametrize(
    "command, settings, line",
    [
        ("extract", {"context": -1}, "config extract.context: must be >= 0, got -1"),
        ("extract", {"workers": 0}, "config extract.workers: must be >= 1, got 0"),
        ("extract", {"nms_radiu": 3}, "config extract.nms_radiu: unknown setting (did you mean nms_radius?)"),
        ("extract", {"drop_autapses": [True]}, "config extract.drop_autapses: must be true or false, got [True]"),
        ("predict", {"block_shape": [0, 1, 1]}, "config predict.block_shape: must be >= 1, got 0"),
        ("predict", {"dtype": "int4"}, "config predict.dtype: unknown value 'int4', expected one of uint8, float16, float32"),
        ("predict", {"roi": "everywhere"}, "config predict.roi: unknown region 'everywhere', expected one of labels, raw, validation"),
        ("predict", {"roi_margin": -1}, "config predict.roi_margin: must be >= 0, got -1"),
        ("evaluate", {"matching_threshold": 0}, "config evaluate.matching_threshold: must be positive, got 0"),
        ("evaluate", {"filter_same_seg": [True, False]}, "config evaluate.filter_same_seg: must be true or false, got [True, False]"),
    ],
)  # fmt: skip
def test_errors_name_the_config_key(tmp_path, capsys, command, settings, line):
    files = {
        "extract": ["p.zarr", "o.parquet"],
        "predict": ["c.pt", "s.zarr", "o.zarr"],
        "evaluate": ["--pred", "p.parquet", "--gt", "g.zarr", "--out", "m.json"],
    }[command]
    argv = [str(tmp_path / a) if "." in a else a for a in files]
    assert cli.main([command, *argv, "--quiet", *settings_argv(command, settings)]) == 1
    assert capsys.readouterr().err.strip() == f"synful: error: {line}"
    assert list(tmp_path.iterdir()) == []


def test_errors_name_the_config_file(tmp_path, capsys):
    config = tmp_path / "my.yaml"
    config.write_text("extract: {context: -2}\n")
    argv = [
        "extract",
        str(tmp_path / "p.zarr"),
        str(tmp_path / "o.parquet"),
        "--settings",
        str(config),
    ]
    assert cli.main(argv) == 1
    assert (
        capsys.readouterr().err.strip()
        == f"synful: error: {config} extract.context: must be >= 0, got -2"
    )


def test_a_missing_section_is_an_error(tmp_path, capsys):
    argv = ["extract", str(tmp_path / "p.zarr"), str(tmp_path / "o.parquet")]
    assert cli.main([*argv, "--settings", '{"predict": {}}']) == 1
    assert capsys.readouterr().err.strip() == "synful: error: config: no 'extract:' section"


@pytest.mark.parametrize("section", sorted(MODELS))
def test_workflow_keys_are_the_schema_keys_that_are_no_settings(section):
    schema = yaml.safe_load(SCHEMA.read_text())
    keys = set(schema["properties"][section]["properties"])
    if section == "extract":
        keys |= set(schema["$defs"]["grid_point"]["properties"])  # a job gets its grid point
    fields = {f.name for model in MODELS[section] for f in settings_of(model)}
    assert keys - fields == set(WORKFLOW_KEYS[section]) | set(OWN[section]) - fields


@pytest.mark.parametrize(
    "roi, expected", [("labels", "labels"), ("validation", "masks/validation"), ("raw", None)]
)
def test_predict_roi_from_the_section(monkeypatch, roi, expected):
    from synful.commands import predict

    seen = {}
    monkeypatch.setattr("synful.predict.predict", lambda *a, **k: seen.update(k))
    predict.run(parse("predict", *settings_argv("predict", {"roi": roi})))
    assert seen["roi"] == expected
    # --roi on the command line wins
    predict.run(parse("predict", "--roi", "raw", *settings_argv("predict", {"roi": roi})))
    assert seen["roi"] == "raw"


def test_predict_roi_margin_from_the_section(monkeypatch):
    from synful.commands import predict

    seen = {}
    monkeypatch.setattr("synful.predict.predict", lambda *a, **k: seen.update(k))
    predict.run(parse("predict", *settings_argv("predict", {"roi_margin": 120})))
    assert seen["roi_margin"] == 120.0
    # null (the schema's default, which the workflow replaces by extract.context): no margin
    predict.run(parse("predict", *settings_argv("predict", {"roi_margin": None})))
    assert seen["roi_margin"] is None
    # --roi-margin on the command line wins
    argv = ["--roi-margin", "8", *settings_argv("predict", {"roi_margin": 120})]
    predict.run(parse("predict", *argv))
    assert seen["roi_margin"] == 8.0


def test_predict_cluster_from_the_section(monkeypatch):
    from synful.blockwise.clusters import load_cluster_config
    from synful.commands import predict

    seen = {}
    monkeypatch.setattr("synful.predict.predict", lambda *a, **k: seen.update(k))
    cluster = {"jobs": 2, "gpus_per_job": 4, "partition": "gpu"}
    predict.run(parse("predict", *settings_argv("predict", {"cluster": cluster})))
    assert seen["cluster"] == load_cluster_config(json.dumps(cluster, sort_keys=True))


@pytest.mark.parametrize("workers, threads, expected", [(4, "2", 2), (1, "2", 1), (3, None, 3)])
def test_extract_workers_capped_at_threads(monkeypatch, tmp_path, workers, threads, expected):
    from synful.commands import extract

    seen = {}
    monkeypatch.setattr("synful.extract.extract_synapses", lambda *a, **k: seen.update(k))
    monkeypatch.setattr("synful.extract.summary.summarize_file", lambda path: "")
    argv = settings_argv("extract", {"workers": workers})
    if threads is not None:
        argv += ["--threads", threads]
    extract.run(parse("extract", *argv))
    assert seen["workers"] == expected


def test_evaluate_mask_names_a_mask_of_the_gt_store():
    assert evaluate_command._names_a_mask_of_gt("masks/validation")
    assert not evaluate_command._names_a_mask_of_gt("a/b.zarr/masks/validation")
    assert not evaluate_command._names_a_mask_of_gt("masks/s.zarr/masks/validation")
    assert not evaluate_command._names_a_mask_of_gt(None)


def test_evaluate_mask_of_gt_needs_a_sample_store(tmp_path, capsys):
    pred, gt = tmp_path / "pred.parquet", tmp_path / "gt.hdf"
    pred.touch()
    gt.touch()
    argv = ["evaluate", "--pred", str(pred), "--gt", str(gt), "--out", str(tmp_path / "m.json")]
    assert cli.main([*argv, "--mask", "masks/validation"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "synful: error: --mask: masks/validation names a mask of --gt, a sample store"


def test_train_checkpoint_gives_out_and_iterations(monkeypatch, capsys):
    from synful.commands import train

    seen = {}
    monkeypatch.setattr("synful.train.train", lambda *a, **k: seen.update(out=a[2], **k))
    argv = ["train", "s.yaml", "--samples", "a.zarr", "--checkpoint", "r/t/checkpoint_40.pt"]
    train.run(cli.build_parser().parse_args(argv))
    assert (seen["out"], seen["iterations"]) == (Path("r/t"), 40)
    with pytest.raises(Exception, match="checkpoint_N.pt"):
        train.run(cli.build_parser().parse_args([*argv[:-1], "r/t/last.pt"]))
    with pytest.raises(SystemExit):  # --out or --checkpoint, not both
        cli.build_parser().parse_args([*argv, "--out", "r/t"])


# ---- the commands that make a sample: a sample's part of the config as --settings -------------

SAMPLE_POSITIONAL = {
    "synthesize": ["o.hdf"],
    "download": ["https://example.org/a.hdf", "o.hdf"],
    "convert": ["i.hdf", "o.zarr", "--synapses", "o.parquet"],
    "masks": ["s.zarr"],
}
SAMPLE_MODELS = {
    "synthesize": SynthesizeSettings,
    "download": DownloadSettings,
    "convert": ConvertSettings,
    "masks": MaskSettings,
}


def sample_applied(command: str, argv: list[str]) -> dict:
    """What ``command``'s model holds after parsing ``argv`` and applying ``--settings``."""
    args = cli.build_parser().parse_args([command, *SAMPLE_POSITIONAL[command], *argv])
    apply_settings(args, command, (SAMPLE_MODELS[command],), skip=WORKFLOW_KEYS[command])
    model = SAMPLE_MODELS[command]
    return dataclasses.asdict(model(**values_from(model, args)))


# the flags rules/common.smk encoded before the sample entries were handed over (the reference)
def old_synthesize_flags(synthetic: dict) -> list[str]:
    args = ["--seed", synthetic["seed"], "--shape", *synthetic["shape"]]
    args += ["--padding", *synthetic["padding"]]
    args += ["--missing-sections", synthetic["missing_sections"]]
    args += ["--misaligned-sections", synthetic["misaligned_sections"]]
    return [str(a) for a in args]


def old_download_flags(sample: dict, download: dict) -> list[str]:
    args = ["--sha256", sample["sha256"]] if sample["sha256"] else []
    args += ["--require-labels"] if sample["labels"] else []
    args += ["--retries", download["retries"], "--timeout", download["timeout"]]
    return [str(a) for a in args]


def old_masks_flags(masks: dict) -> list[str]:
    given = [key for key in ("training_mask", "validation_mask") if masks.get(key)]
    if given:
        return [arg for key in given for arg in (f"--{key.replace('_', '-')}", masks[key])]
    args = ["--split-axis", masks["split_axis"]]
    if masks.get("training_range"):
        return [str(a) for a in [*args, "--training-range", *masks["training_range"]]]
    return [str(a) for a in [*args, "--training-fraction", masks["training_fraction"]]]


SHA = "ab" * 32


@pytest.mark.parametrize(
    "entry",
    [
        {"synthetic": {}},
        {
            "synthetic": {
                "seed": 401,
                "shape": [16, 64, 64],
                "padding": [2, 8, 8],
                "missing_sections": 0.06,
                "misaligned_sections": 0.06,
            },
            "voxel_size": [40, 8, 8],
            "masks": {"split_axis": "y", "training_range": [100, 400]},
        },
        {"url": "https://example.org/a.hdf", "sha256": SHA, "masks": {"training_fraction": 0.5}},
        {"url": "https://example.org/b.hdf", "labels": False},
        {"path": "x.hdf", "masks": {"training_mask": "m.hdf/t", "training_fraction": 0.2}},
        {"path": "x.hdf", "masks": {"validation_mask": "m.zarr/v", "split_axis": "x"}},
    ],
)
def test_sample_entries_give_the_old_flags_values(entry):
    config = workflow_config(samples={"a": entry}, chunks=[4, 64, 64], download={"retries": 2})
    sample = config["samples"]["a"]
    if "synthetic" in sample:
        settings = command_settings("synthesize", sample["synthetic"])
        new = sample_applied("synthesize", settings_argv("synthesize", settings))
        assert new == sample_applied("synthesize", old_synthesize_flags(sample["synthetic"]))
    if "url" in sample:
        settings = command_settings(
            "download", config["download"], sha256=sample["sha256"], require_labels=sample["labels"]
        )
        new = sample_applied("download", settings_argv("download", settings))
        assert new == sample_applied("download", old_download_flags(sample, config["download"]))
    settings = command_settings(
        "convert", {"voxel_size": sample["voxel_size"], "chunks": config["chunks"]}
    )
    new = sample_applied("convert", settings_argv("convert", settings))
    old = ["--voxel-size", *map(str, sample["voxel_size"]), "--chunks", "4", "64", "64"]
    assert new == sample_applied("convert", old)
    settings = command_settings("masks", sample["masks"])
    new = sample_applied("masks", settings_argv("masks", settings))
    old = sample_applied("masks", old_masks_flags(sample["masks"]))
    if sample["masks"].get("training_mask") or sample["masks"].get("validation_mask"):
        # mask volumes win: the rule's values are not used, only the volumes must agree
        for key in ("training_mask", "validation_mask"):
            assert new[key] == old[key]
    else:
        assert new == old


def test_masks_volumes_win_over_the_rule_of_the_section(monkeypatch, tmp_path):
    from synful.commands import masks

    seen = {}

    def make_masks(store, rule, training_mask, validation_mask):
        seen.update(rule=rule, masks=(training_mask, validation_mask))
        return {"training": 1, "validation": 1}

    monkeypatch.setattr("synful.masks.make_masks", make_masks)
    section = {"training_mask": "m.hdf/t", "training_fraction": 0.2, "split_axis": "z"}
    argv = ["masks", str(tmp_path / "s.zarr")]  # no synapse table beside it: no counts
    masks.run(cli.build_parser().parse_args([*argv, *settings_argv("masks", section)]))
    assert seen["masks"] == ("m.hdf/t", None)


@pytest.mark.parametrize(
    "command, settings, line",
    [
        ("synthesize", {"shape": [0, 10, 10]}, "config synthesize.shape: must be >= 1, got 0"),
        ("synthesize", {"seeds": 3}, "config synthesize.seeds: unknown setting (did you mean seed?)"),
        ("download", {"retries": -1}, "config download.retries: must be >= 0, got -1"),
        ("convert", {"voxel_size": [40, 4]}, "config convert.voxel_size: needs 3 values, got [40, 4]"),
        ("masks", {"split_axis": "t"}, "config masks.split_axis: unknown value 't', expected one of z, y, x"),
        ("masks", {"training_fraction": 2}, "config masks.training_fraction: must lie in [0, 1], got 2"),
    ],
)  # fmt: skip
def test_sample_errors_name_the_config_key(tmp_path, capsys, command, settings, line):
    argv = [
        str(tmp_path / a) if "." in a and "/" not in a else a for a in SAMPLE_POSITIONAL[command]
    ]
    assert cli.main([command, *argv, "--quiet", *settings_argv(command, settings)]) == 1
    assert capsys.readouterr().err.strip() == f"synful: error: {line}"
    assert list(tmp_path.iterdir()) == []
