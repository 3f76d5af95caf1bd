"""The Snakemake workflow: formatting, lint, config validation, dry runs and real runs of the
data targets (given, downloaded and synthetic samples) in temporary working directories."""

import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from _cremi_files import (
    model_names,
    serve,
    setup_names,
    write_archive,
    write_masks,
    write_reduced_setups,
    write_sample,
)
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from synful.io.cremi import CremiAnnotations, CremiSample, CremiVolume, write_cremi
from synful.io.sample_store import open_mask, open_neuron_ids, open_raw
from synful.io.synapse_table import read_synapses
from synful.io.zarr_array import read, storage
from synful.masks import synapses_in_split

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def snakemake(*args, workdir=None, check=True, timeout=600):
    """Run snakemake from the repository root (the default profile applies), in ``workdir``."""
    argv = [str(BIN / "snakemake"), *map(str, args)]
    if workdir is not None:
        argv += ["--directory", str(workdir)]
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        pytest.fail(
            f"snakemake {' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}"
        )
    return result


def write_config(workdir: Path, config: dict) -> None:
    (workdir / "config").mkdir(parents=True, exist_ok=True)
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))


def test_snakefmt_clean():
    result = subprocess.run(
        [str(BIN / "snakefmt"), "--check", "."], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_lint_clean():
    result = snakemake("--lint", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "configfile, jobs",
    [
        (
            # 13 samples (6 for training, 5 validation, 4 held-out test); 1 checkpoint x 9
            # evaluated samples x 3 grid points (split 0.5 and 0.7, CC 0.9)
            "config/config.yaml",
            {
                "synthesize": 13,
                "convert": 13,
                "masks": 13,
                "train": 1,
                "predict": 9,
                "extract": 27,
                "evaluate": 27,
            },
        ),
        # the pair p_setup52 + p_setup10: 2 networks x 2 checkpoints, each predicted on A, B, C;
        # 7 extraction settings x 2 checkpoints x 3 samples, each evaluated with and without
        # seg (one job each); the test samples A+, B+, C+ are converted only
        (
            "config/cremi.yaml",
            {
                "download": 6,
                "convert": 6,
                "masks": 3,
                "train": 4,
                "predict": 12,
                "extract": 42,
                "evaluate": 84,
            },
        ),
        # the same protocol on the realigned samples: one archive, three members unpacked
        (
            "config/cremi_realigned.yaml",
            {
                "download_archive": 1,
                "unpack": 3,
                "convert": 3,
                "masks": 3,
                "train": 4,
                "predict": 12,
                "extract": 42,
                "evaluate": 84,
            },
        ),
    ],
)
def test_dry_run(tmp_path, configfile, jobs):
    result = snakemake("-n", "--configfile", REPO / configfile, workdir=tmp_path)
    counts = job_counts(result.stdout)
    assert {k: v for k, v in counts.items() if k in jobs} == jobs


def job_counts(output: str) -> dict[str, int]:
    """The job table of a dry run: rule -> number of jobs."""
    table = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and not parts[0].endswith(":"):
            table[parts[0]] = int(parts[1])
    return table


def test_full_workflow_dry_run(tmp_path):
    """The tiny .test config through every stage: 2 samples, 2 checkpoints, 1 grid point."""
    shutil.copytree(REPO / ".test" / "config", tmp_path / "config")
    result = snakemake("-n", workdir=tmp_path)
    counts = job_counts(result.stdout)
    # tiny2 is held out (no training region): training uses tiny1 only; both are evaluated
    assert counts == {
        "synthesize": 2,
        "convert": 2,
        "masks": 2,
        "train": 2,
        "predict": 4,
        "extract": 4,
        "evaluate": 4,
        "evaluate_all": 1,
        "all": 1,
        "total": 22,
    }
    assert "results/train/tiny/checkpoint_4.pt" in result.stdout
    assert "mode~cc_threshold~0.5_score~sum_nms_radius~40.0/seg~without/tiny2.json" in result.stdout


def test_extraction_grid_and_setups_are_wildcards(tmp_path):
    """Two setups x two checkpoints x a 2 x 2 extraction grid x two evaluated samples."""
    shutil.copytree(REPO / ".test" / "config", tmp_path / "config")
    (tmp_path / "config" / "setups" / "other.yaml").write_text(
        (tmp_path / "config" / "setups" / "tiny.yaml").read_text()
    )
    config = yaml.safe_load((tmp_path / "config" / "config.yaml").read_text())
    config["setups"] = ["tiny", "other"]
    config["extract"]["grid"] = {"mode": ["cc", "nms"], "threshold": [0.3, 0.5]}
    write_config(tmp_path, config)
    result = snakemake("-n", workdir=tmp_path)
    counts = job_counts(result.stdout)
    assert (counts["train"], counts["predict"], counts["extract"], counts["evaluate"]) == (
        4,
        8,
        32,
        32,
    )
    # grid keys left out take their defaults (score sum, nms_radius 40) and appear in the paths
    pattern = "mode~nms_threshold~0.3_score~sum_nms_radius~40.0"
    assert f"results/evaluate/other/4/{pattern}/seg~without/tiny1.json" in result.stdout


def copy_test_config_with_single_task_setups(workdir: Path) -> None:
    """The .test config plus masknet (mask only) and vectornet (vectors only): tiny's network
    with one loss scale set to 0."""
    shutil.copytree(REPO / ".test" / "config", workdir / "config")
    tiny = yaml.safe_load((workdir / "config" / "setups" / "tiny.yaml").read_text())
    for name, scales in (("masknet", (1.0, 0.0)), ("vectornet", (0.0, 1.0))):
        setup = tiny | {"m_loss_scale": scales[0], "d_loss_scale": scales[1]}
        (workdir / "config" / "setups" / f"{name}.yaml").write_text(yaml.safe_dump(setup))


def test_pairs_grid_sets_and_seg_variants(tmp_path):
    """A (mask, vectors) pair and a multi-task setup; two grid-point sets (their union, not the
    cross product); evaluated with and without seg, one job per run, sample and variant."""
    copy_test_config_with_single_task_setups(tmp_path)
    config = yaml.safe_load((tmp_path / "config" / "config.yaml").read_text())
    config["setups"] = [{"mask": "masknet", "vectors": "vectornet"}, "tiny"]
    config["extract"]["grid"] = [
        {"mode": ["nms"], "threshold": [0.9, 0.95], "score": ["max"]},
        {"mode": ["cc"], "threshold": [0.9]},
    ]
    config["evaluate"]["filter_same_seg"] = [True, False]
    write_config(tmp_path, config)
    result = snakemake("-n", workdir=tmp_path)
    counts = job_counts(result.stdout)
    # 3 networks x 2 checkpoints; 2 models x 2 checkpoints x 3 grid points x 2 samples (x 2
    # seg variants for evaluate)
    assert (counts["train"], counts["predict"], counts["extract"], counts["evaluate"]) == (
        6,
        12,
        24,
        48,
    )
    run = "masknet+vectornet/4/mode~nms_threshold~0.95_score~max_nms_radius~40.0"
    assert f"results/extract/{run}/tiny1.parquet" in result.stdout
    assert f"results/evaluate/{run}/seg~with/tiny1.json" in result.stdout
    assert f"results/evaluate/{run}/seg~without/tiny1.json" in result.stdout
    assert "mode~cc_threshold~0.9_score~max" not in result.stdout


@pytest.mark.parametrize(
    "setups, problem",
    [
        (["masknet"], "masknet does not predict partner_vectors"),
        (
            [{"mask": "vectornet", "vectors": "tiny"}],
            "vectornet (the mask network of vectornet+tiny) does not predict post_indicator",
        ),
        ([{"mask": "tiny", "vectors": "masknet"}], "does not predict partner_vectors"),
        (["missing"], "missing: no such setup file"),
    ],
)
def test_setups_that_cannot_produce_both_outputs_fail_at_load(tmp_path, setups, problem):
    copy_test_config_with_single_task_setups(tmp_path)
    config = yaml.safe_load((tmp_path / "config" / "config.yaml").read_text())
    config["setups"] = setups
    write_config(tmp_path, config)
    result = snakemake("-n", workdir=tmp_path, check=False)
    assert result.returncode != 0
    assert problem in result.stdout + result.stderr
    assert "Job stats" not in result.stdout  # before any job is planned


@pytest.mark.parametrize(
    "test_groups, problem",
    [
        ({"new": ["tiny1"]}, "config evaluate.test.new: tiny1 is also in train.samples"),
        ({"new": ["tiny2"]}, "config evaluate.test.new: tiny2 is also in evaluate.samples"),
        ({"new": ["nosuch"]}, "config evaluate.test.new: ['nosuch'] are not labelled samples"),
        ({"a": ["tiny3"], "b": ["tiny3"]}, "config evaluate.test: a sample is in more than one"),
    ],
)
def test_test_samples_must_be_held_out(tmp_path, test_groups, problem):
    shutil.copytree(REPO / ".test" / "config", tmp_path / "config")
    config = yaml.safe_load((tmp_path / "config" / "config.yaml").read_text())
    config["samples"]["tiny3"] = config["samples"]["tiny2"]
    config["train"]["samples"] = ["tiny1"]
    config["evaluate"]["samples"] = ["tiny1", "tiny2"]
    config["evaluate"]["test"] = test_groups
    write_config(tmp_path, config)
    result = snakemake("-n", workdir=tmp_path, check=False)
    assert result.returncode != 0
    assert problem in result.stdout + result.stderr
    assert "Job stats" not in result.stdout


@pytest.mark.slow
def test_slurm_profile_dry_run(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    shutil.copytree(REPO / ".test" / "config", tmp_path / "config")
    result = snakemake("-n", "--profile", "profiles/slurm", workdir=tmp_path)
    assert job_counts(result.stdout)["train"] == 2


@pytest.mark.slow
def test_predict_cluster_dry_run(tmp_path):
    """predict.cluster: every predict job starts its own dask-jobqueue cluster (the settings
    passed to synful predict --cluster) and asks for no GPU itself, also under the SLURM
    profile."""
    shutil.copytree(REPO / ".test" / "config", tmp_path / "config")
    config = yaml.safe_load((tmp_path / "config" / "config.yaml").read_text())
    cluster = {"jobs": 2, "gpus_per_job": 4, "partition": "gpu", "walltime": "04:00:00"}
    config["predict"]["cluster"] = cluster
    write_config(tmp_path, config)
    profiles = [[]]
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401

        profiles.append(["--profile", "profiles/slurm"])
    except ImportError:
        pass
    for profile in profiles:
        result = snakemake("-n", *profile, workdir=tmp_path)
        jobs = [line for line in result.stdout.splitlines() if "on a dask-jobqueue" in line]
        assert len(jobs) == job_counts(result.stdout)["predict"] == 4
        for line in jobs:
            assert "(this job: gpu=0)" in line
            passed = json.loads(line.split("--cluster ", 1)[1])
            assert passed == cluster
    # without predict.cluster, a predict job is a GPU job as before
    shutil.copy(REPO / ".test" / "config" / "config.yaml", tmp_path / "config" / "config.yaml")
    result = snakemake("-n", workdir=tmp_path)
    assert "dask-jobqueue" not in result.stdout and "gpu=1" in result.stdout


@pytest.mark.slow
def test_configfile_replaces_the_demo_config(tmp_path):
    write_config(tmp_path, {"samples": {"demo_only": {"synthetic": {"seed": 1}}}})
    result = snakemake(
        "data", "-n", "--configfile", REPO / "config" / "cremi.yaml", workdir=tmp_path
    )
    assert "demo_only" not in result.stdout
    assert job_counts(result.stdout)["download"] == 6


@pytest.mark.parametrize(
    "sample, problem",
    [
        ({"synthetic": {"seed": 1}, "url": "https://x/y.hdf"}, "is valid under each of"),
        ({"synthetic": {"seed": 1, "colour": "red"}}, "Additional properties"),
        ({"path": "a.hdf", "masks": {"training_fraction": 2}}, "greater than the maximum"),
        ({"url": "cremi.org/a.hdf"}, "does not match"),
    ],
)
def test_schema_rejects_bad_samples(sample, problem):
    with pytest.raises(WorkflowError, match=problem):
        validate({"samples": {"s": sample}}, str(REPO / "config" / "schema.yaml"))


def test_schema_fills_defaults():
    config = {"samples": {"s": {"synthetic": {"seed": 4}}, "t": {"url": "https://x/t.hdf"}}}
    validate(config, str(REPO / "config" / "schema.yaml"))
    assert config["samples"]["s"]["synthetic"]["shape"] == [32, 320, 320]
    assert config["samples"]["s"]["masks"] == {"split_axis": "z", "training_fraction": 0.75}
    assert config["samples"]["t"]["labels"] is True
    assert config["samples"]["t"]["voxel_size"] == [40, 4, 4]
    assert config["download"] == {"retries": 5, "timeout": 60}


def test_workflow_rejects_invalid_config(tmp_path):
    write_config(tmp_path, {"samples": {"bad name": {"path": "a.hdf"}}})
    result = snakemake("-n", workdir=tmp_path, check=False)
    assert result.returncode != 0
    assert "does not match" in result.stdout + result.stderr


def cremi_file(path: Path) -> CremiSample:
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(1, 5, dtype=np.uint64), 8).reshape(1, 1, 32)
    sample = CremiSample(
        raw=CremiVolume(rng.integers(0, 255, (10, 40, 40), dtype=np.uint8)),
        neuron_ids=CremiVolume(np.broadcast_to(labels, (6, 32, 32)).copy(), offset=(80, 16, 16)),
        annotations=CremiAnnotations(
            ids=[1, 2, 3, 4],
            types=[
                "presynaptic_site",
                "postsynaptic_site",
                "presynaptic_site",
                "postsynaptic_site",
            ],
            locations=[[40, 40, 20], [40, 40, 60], [160, 60, 60], [160, 60, 100]],
            partners=[[1, 2], [3, 4]],
            offset=(80, 16, 16),
        ),
    )
    write_cremi(path, sample)
    return sample


@pytest.mark.slow
def test_given_and_downloaded_samples(tmp_path):
    """A local CREMI file with given mask volumes, and one fetched from a file:// URL."""
    data = tmp_path / "data"
    data.mkdir()
    cremi_file(data / "given.hdf")
    cremi_file(data / "remote.hdf")
    with h5py.File(data / "masks.hdf", "w") as f:
        training = np.zeros((6, 32, 32), np.uint8)
        training[:3] = 1
        ds = f.create_dataset("volumes/masks/training", data=training)
        ds.attrs["resolution"] = [40.0, 4.0, 4.0]
        ds.attrs["offset"] = [80.0, 16.0, 16.0]
    config = {
        "samples": {
            "given": {
                "path": "data/given.hdf",
                "masks": {"training_mask": "data/masks.hdf/volumes/masks/training"},
            },
            "fetched": {
                "url": (data / "remote.hdf").as_uri(),
                "masks": {"split_axis": "y", "training_range": [16, 80]},
            },
        },
        "chunks": [2, 16, 16],
    }
    write_config(tmp_path, config)
    snakemake("--cores", 2, "data", workdir=tmp_path)

    samples = tmp_path / "results" / "samples"
    for name in ("given", "fetched"):
        store = samples / f"{name}.zarr"
        assert storage(open_raw(store)).chunks == (2, 16, 16)
        assert open_neuron_ids(store).offset == (80, 16, 16)
        synapses = read_synapses(samples / f"{name}.parquet")
        assert len(synapses) == 2
        summary = json.loads((samples / f"{name}.masks.json").read_text())
        for split in ("training", "validation"):
            assert summary[split]["synapses"] == len(synapses_in_split(synapses, store, split))
        assert (tmp_path / "logs" / "masks" / f"{name}.log").read_text().startswith("synful masks")
    given_training = read(open_mask(samples / "given.zarr", "training"))
    assert given_training[:3].all() and not given_training[3:].any()
    fetched_training = read(open_mask(samples / "fetched.zarr", "training"))
    assert fetched_training[:, :16].all() and not fetched_training[:, 16:].any()
    assert (tmp_path / "resources" / "download" / "fetched.hdf").read_bytes() == (
        data / "remote.hdf"
    ).read_bytes()

    again = snakemake("--cores", 2, "data", workdir=tmp_path)
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.slow
def test_bad_sample_fails_with_one_line_and_no_output(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "broken.hdf").write_text("not HDF5")
    write_config(tmp_path, {"samples": {"broken": {"path": "data/broken.hdf"}}})
    result = snakemake("--cores", 1, "data", workdir=tmp_path, check=False)
    assert result.returncode != 0
    log = (tmp_path / "logs" / "convert" / "broken.log").read_text().splitlines()
    assert log[-1].startswith("synful: error: data/broken.hdf: not an HDF5 file")
    assert not (tmp_path / "results" / "samples" / "broken.zarr").exists()
    assert not (tmp_path / "results" / "samples" / "broken.parquet").exists()


@pytest.mark.slow
def test_synthetic_data_targets(tmp_path):
    """The tiny synthetic config (.test) end to end through synthesize, convert and masks."""
    shutil.copytree(REPO / ".test" / "config", tmp_path / "config")
    snakemake("data", "--cores", 2, workdir=tmp_path)
    samples = tmp_path / "results" / "samples"
    held_out = json.loads((samples / "tiny2.masks.json").read_text())
    assert held_out["training"] == {"voxels": 0, "synapses": 0}
    assert held_out["validation"]["synapses"] == len(read_synapses(samples / "tiny2.parquet")) > 0
    split = json.loads((samples / "tiny1.masks.json").read_text())
    assert split["training"]["voxels"] == split["validation"]["voxels"] > 0
    funlib_persistence = pytest.importorskip("funlib.persistence")
    raw = funlib_persistence.open_ds(samples / "tiny1.zarr" / "raw")
    labels = funlib_persistence.open_ds(samples / "tiny1.zarr" / "neuron_ids")
    assert raw.roi.contains(labels.roi) and raw.roi != labels.roi


@pytest.mark.slow
def test_full_workflow_run_and_report(tmp_path):
    """The tiny .test config through every stage, then the HTML report."""
    shutil.copytree(REPO / ".test" / "config", tmp_path / "config")
    snakemake("--cores", 2, workdir=tmp_path)
    summary = pd.read_csv(tmp_path / "results" / "summary.csv")
    # 2 checkpoints x 1 grid point x (2 samples + the combined row)
    assert len(summary) == 6
    assert set(summary["sample"]) == {"tiny1", "tiny2", "all"}
    assert sorted(set(summary["iteration"])) == [2, 4]
    for _, combined in summary[summary["sample"] == "all"].iterrows():
        rows = summary[
            (summary["iteration"] == combined["iteration"]) & (summary["sample"] != "all")
        ]
        assert combined["tp"] == rows["tp"].sum() and combined["fn"] == rows["fn"].sum()
        assert combined["n_gt"] == sum(
            len(
                synapses_in_split(
                    tmp_path / f"results/samples/{s}.parquet",
                    tmp_path / f"results/samples/{s}.zarr",
                    "validation",
                )
            )
            for s in ("tiny1", "tiny2")
        )
    for plot in ("fscore_by_iteration.png", "precision_recall.png"):
        assert (tmp_path / "results" / "plots" / plot).stat().st_size > 1000
    # the errors of the best run by cause, per sample, at its best score threshold
    from synful.evaluate import COUNT_COLUMNS

    errors = pd.read_csv(tmp_path / "results" / "errors.csv")
    keys = ["setup", "iteration", "mode", "threshold", "score", "nms_radius", "seg"]
    assert list(errors.columns) == keys + ["sample", "score_threshold", *COUNT_COLUMNS]
    assert errors["sample"].tolist() == ["tiny1", "tiny2", "all"]
    combined = summary[summary["sample"] == "all"]
    best = combined.loc[combined["best_fscore"].idxmax()]
    assert errors[keys].eq(best[keys]).all().all()
    assert (errors["score_threshold"] == best["best_score_threshold"]).all()
    run = errors.iloc[0]
    grid_point = "_".join(f"{k}~{run[k]}" for k in ("mode", "threshold", "score", "nms_radius"))
    run_dir = tmp_path / "results/evaluate" / run["setup"] / str(run["iteration"]) / grid_point
    run_dir = run_dir / f"seg~{run['seg']}"
    for _, row in errors[errors["sample"] != "all"].iterrows():
        metrics = json.loads((run_dir / f"{row['sample']}.json").read_text())
        entry = next(e for e in metrics["sweep"] if e["score_threshold"] == row["score_threshold"])
        assert (row["fn"], row["fp"]) == (entry["fn"], entry["fp"])
        assert (run_dir / f"{row['sample']}.errors.csv").exists()
    total = errors[errors["sample"] == "all"].iloc[0]
    assert total["fn"] == errors["fn"].iloc[:2].sum()
    assert total["fn"] == round(best["n_gt"] * (1 - best["best_recall"]))
    for kind in ("fn", "fp"):
        by_cause = [c for c in COUNT_COLUMNS if c.startswith(f"{kind}_")]
        assert (errors[by_cause].sum(axis=1) == errors[kind]).all()
    assert total["fn_other"] == total["fp_other"] == 0
    pairs = pd.read_csv(tmp_path / "results" / "error_pairs.csv")
    assert len(pairs) == total["fn"] + total["fp"]
    snakemake("--report", tmp_path / "report.html", workdir=tmp_path)
    report_html = (tmp_path / "report.html").read_text(errors="replace")
    assert "summary.csv" in report_html and "errors.csv" in report_html


# ---- the real-data configs, rehearsed for real against a local server -------------------------

GRID_DEFAULTS = {"mode": ["cc"], "threshold": [0.5], "score": ["sum"], "nms_radius": [40.0]}


def configured_runs(config: dict, checkpoints) -> set[tuple]:
    """Every (model, checkpoint, mode, threshold, score, nms_radius, seg) a config asks for."""
    grids = config["extract"]["grid"]
    points = set()
    for grid in grids if isinstance(grids, list) else [grids]:
        grid = GRID_DEFAULTS | grid
        points |= set(itertools.product(*(grid[k] for k in GRID_DEFAULTS)))
    seg = config["evaluate"].get("filter_same_seg", False)
    variants = ["with" if v else "without" for v in (seg if isinstance(seg, list) else [seg])]
    return {
        (model, iteration, mode, float(threshold), score, float(radius), variant)
        for model in model_names(config)
        for iteration in checkpoints
        for mode, threshold, score, radius in points
        for variant in variants
    }


# what a rehearsal changes besides the data and the networks: one checkpoint (several are run
# by test_full_workflow_run_and_report) and this 2-core machine's threads and workers (a
# shipped config asks for a workstation's; a local dask cluster of 4 extract workers per job
# costs seconds of start-up for a second of work)
REHEARSAL_RESOURCES = {
    "train": {"checkpoints": [2], "threads": 1},
    "predict": {"threads": 1},
    "extract": {"workers": 1, "threads": 1},
}


def rehearse(tmp_path: Path, configfile: str, overrides: dict, config: dict) -> pd.DataFrame:
    """Run ``configfile`` (shipped) through every target with ``overrides`` (a second config
    file: URLs) and reduced setups and resources; check the summary against the config."""
    checkpoints = REHEARSAL_RESOURCES["train"]["checkpoints"]
    overrides = overrides | REHEARSAL_RESOURCES
    (tmp_path / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    write_reduced_setups(tmp_path, setup_names(config))
    snakemake(
        "--cores",
        2,
        "--configfile",
        REPO / configfile,
        tmp_path / "overrides.yaml",
        workdir=tmp_path,
        timeout=1500,
    )
    summary = pd.read_csv(tmp_path / "results" / "summary.csv")
    columns = ["setup", "iteration", "mode", "threshold", "score", "nms_radius", "seg"]
    samples = config["evaluate"]["samples"]
    for sample in samples + ["all"]:
        rows = summary[summary["sample"] == sample]
        assert set(map(tuple, rows[columns].itertuples(index=False))) == configured_runs(
            config, checkpoints
        ), sample
    assert (summary["n_gt"] > 0).all()
    # "with seg" drops predictions whose pre and post lie in the same neuron: never more left
    keys = [c for c in columns if c != "seg"] + ["sample"]
    by_seg = summary.pivot_table(index=keys, columns="seg", values="n_pred")
    if {"with", "without"} <= set(by_seg.columns):
        assert (by_seg["with"] <= by_seg["without"]).all()
    return summary


def check_pairs(tmp_path: Path, config: dict, sample: str) -> None:
    """A pair's networks predict one output each, and extraction reads both stores."""
    for entry in config["setups"]:
        if isinstance(entry, str):
            continue
        predict = tmp_path / "results" / "predict"
        mask_store = predict / entry["mask"] / "2" / f"{sample}.zarr"
        vector_store = predict / entry["vectors"] / "2" / f"{sample}.zarr"
        assert (mask_store / "post_indicator").exists()
        assert not (mask_store / "partner_vectors").exists()
        assert (vector_store / "partner_vectors").exists()
        assert not (vector_store / "post_indicator").exists()
        model = f"{entry['mask']}+{entry['vectors']}"
        logs = list((tmp_path / "logs" / "extract" / model / "2").rglob(f"{sample}.log"))
        assert logs and all(
            f"--vectors {vector_store.relative_to(tmp_path)}" in log.read_text() for log in logs
        )


@pytest.mark.slow
def test_demo_config_rehearsal(tmp_path):
    """config/config.yaml (the demo) as shipped, with every synthetic sample smaller, the demo
    network reduced and one checkpoint: the validation summary, the errors by cause and the
    held-out test table at the configuration chosen on validation."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    small = {"shape": [16, 160, 160], "padding": [4, 48, 48]}
    samples = {
        name: {"synthetic": small} for name, s in config["samples"].items() if "synthetic" in s
    }
    summary = rehearse(tmp_path, "config/config.yaml", {"samples": samples}, config)
    errors = pd.read_csv(tmp_path / "results" / "errors.csv")
    assert errors["sample"].tolist() == [*config["evaluate"]["samples"], "all"]
    groups = config["evaluate"].get("test", {})
    if not groups:
        assert not (tmp_path / "results" / "test.csv").exists()
        return
    test = pd.read_csv(tmp_path / "results" / "test.csv")
    expected = [(g, s) for g, names in groups.items() for s in names] + [(g, "all") for g in groups]
    assert list(zip(test["group"], test["sample"])) == expected
    combined = summary[summary["sample"] == "all"]
    best = combined.loc[combined["best_fscore"].idxmax()]
    keys = ["setup", "iteration", "mode", "threshold", "score", "nms_radius", "seg"]
    assert test[keys].eq(best[keys]).all().all()
    assert (test["score_threshold"] == best["best_score_threshold"]).all()
    for group in groups:
        rows = test[(test["group"] == group) & (test["sample"] != "all")]
        total = test[(test["group"] == group) & (test["sample"] == "all")].iloc[0]
        assert total["tp"] == rows["tp"].sum() and total["fn"] == rows["fn"].sum()
        assert (rows["n_gt"] > 0).all()
    # the shipped predict settings reach every prediction (the demo fills black sections and
    # averages test-time flips)
    fill = config["predict"].get("fill_missing_sections", False)
    flips = config["predict"].get("flips", 1)
    bf16 = config["predict"].get("bf16", False)
    # the predicted region grows by what extraction reads around it (predict.roi_margin unset)
    margin = float(config.get("extract", {}).get("context", 120.0))
    predict_logs = list((tmp_path / "logs" / "predict").rglob("*.log"))
    assert predict_logs
    for log in predict_logs:
        text = log.read_text()
        assert f'"fill_missing_sections": {str(fill).lower()}' in text
        assert f'"flips": {flips}' in text
        assert f'"bf16": {str(bf16).lower()}' in text
        assert f'"roi_margin": {margin}' in text
    # test samples are predicted and scored, never trained on
    log = next((tmp_path / "logs" / "train").rglob("*.log")).read_text()
    for names in groups.values():
        for name in names:
            assert f"{name}.zarr" not in log


@pytest.mark.slow
def test_cremi_config_rehearsal(tmp_path):
    """config/cremi.yaml as shipped, end to end through evaluate_all, against a local server
    with small CREMI-layout files named as the real ones, reduced setups and 2 checkpoints."""
    config = yaml.safe_load((REPO / "config" / "cremi.yaml").read_text())
    served = tmp_path / "served"
    served.mkdir()
    files = {}
    for seed, (name, sample) in enumerate(config["samples"].items(), start=11):
        files[name] = PurePosixPath(urlparse(sample["url"]).path).name
        write_sample(served / files[name], seed, labels=sample.get("labels", True))
    with serve(served) as url:
        samples = {name: {"url": f"{url}/{file}"} for name, file in files.items()}
        rehearse(tmp_path, "config/cremi.yaml", {"samples": samples}, config)
    check_pairs(tmp_path, config, "A")
    # the test samples (raw only) are downloaded and converted, never trained on or evaluated
    for name, sample in config["samples"].items():
        assert (tmp_path / "results" / "samples" / f"{name}.zarr" / "raw").exists()
        if not sample.get("labels", True):
            assert not (tmp_path / "results" / "samples" / f"{name}.masks.json").exists()


@pytest.mark.slow
def test_cremi_realigned_config_rehearsal(tmp_path):
    """config/cremi_realigned.yaml as shipped: the samples and their non-cuboid masks are
    members of one tar.gz archive (served locally), downloaded once and unpacked."""
    config = yaml.safe_load((REPO / "config" / "cremi_realigned.yaml").read_text())
    build = tmp_path / "build"
    served = tmp_path / "served"
    served.mkdir()
    urls = {sample["archive"]["url"] for sample in config["samples"].values()}
    assert len(urls) == 1  # one archive, as published
    archive = PurePosixPath(urlparse(urls.pop()).path).name
    members = {}
    for seed, sample in enumerate(config["samples"].values(), start=21):
        file = build / sample["archive"]["member"]
        file.parent.mkdir(parents=True, exist_ok=True)
        write_masks(file, write_sample(file, seed))
        members[sample["archive"]["member"]] = file
    write_archive(served / archive, members)
    with serve(served) as url:
        samples = {name: {"archive": {"url": f"{url}/{archive}"}} for name in config["samples"]}
        rehearse(tmp_path, "config/cremi_realigned.yaml", {"samples": samples}, config)
    check_pairs(tmp_path, config, "A")
    # the archive came down once; the masks are the archive's (non-cuboid), not a split rule
    assert len(list((tmp_path / "resources" / "archives").glob("*.tar.gz"))) == 1
    training = read(open_mask(tmp_path / "results" / "samples" / "A.zarr", "training"))
    assert training[:12].any() and not training[12:].any() and not training[:4, :, :48].any()


def write_pretrained(path: Path, setup_file: Path, iteration: int, **changes) -> Path:
    """A synful checkpoint with random weights for the setup in ``setup_file`` (+ changes)."""
    from synful.checkpoint import save_checkpoint
    from synful.models import build_model
    from synful.train import resolve_setup

    setup = resolve_setup(yaml.safe_load(setup_file.read_text()) | changes).to_dict()
    return save_checkpoint(path, model=build_model(setup), setup=setup, iteration=iteration)


@pytest.mark.slow
def test_pretrained_networks_are_predicted_not_trained(tmp_path):
    """A pair of networks given as checkpoint files (config pretrained): no train job, the
    files are predicted at their iteration, extracted as a pair and evaluated."""
    shutil.copytree(REPO / ".test" / "config", tmp_path / "config")
    tiny = tmp_path / "config" / "setups" / "tiny.yaml"
    models = tmp_path / "models"
    models.mkdir()
    write_pretrained(models / "mask.pt", tiny, 390000, d_loss_scale=0.0)
    write_pretrained(models / "vectors.pt", tiny, 390000, m_loss_scale=0.0)
    config = yaml.safe_load((tmp_path / "config" / "config.yaml").read_text())
    config["pretrained"] = {
        "published_mask": {"checkpoint": "models/mask.pt", "iteration": 390000},
        "published_vectors": {"checkpoint": "models/vectors.pt", "iteration": 390000},
    }
    config["setups"] = [{"mask": "published_mask", "vectors": "published_vectors"}]
    write_config(tmp_path, config)
    dry = snakemake("-n", workdir=tmp_path)
    counts = job_counts(dry.stdout)
    assert "train" not in counts and counts["predict"] == 4 and counts["extract"] == 2
    assert "input: models/mask.pt, results/samples/tiny1.zarr" in dry.stdout
    snakemake("--cores", 2, workdir=tmp_path)
    summary = pd.read_csv(tmp_path / "results" / "summary.csv")
    assert set(summary["setup"]) == {"published_mask+published_vectors"}
    assert set(summary["iteration"]) == {390000}
    assert not (tmp_path / "results" / "train").exists()


def test_pretrained_network_without_the_needed_output_fails_at_load(tmp_path):
    shutil.copytree(REPO / ".test" / "config", tmp_path / "config")
    write_pretrained(
        tmp_path / "mask.pt", tmp_path / "config" / "setups" / "tiny.yaml", 10, d_loss_scale=0.0
    )
    config = yaml.safe_load((tmp_path / "config" / "config.yaml").read_text())
    config["pretrained"] = {"given": {"checkpoint": "mask.pt", "iteration": 10}}
    config["setups"] = ["given"]
    write_config(tmp_path, config)
    result = snakemake("-n", workdir=tmp_path, check=False)
    assert result.returncode != 0
    assert "given does not predict partner_vectors" in result.stdout + result.stderr
    config["setups"] = [{"mask": "given", "vectors": "tiny"}]
    write_config(tmp_path, config)
    result = snakemake("-n", workdir=tmp_path, check=False)
    assert result.returncode != 0
    assert "pairs networks of different iterations" in result.stdout + result.stderr


@pytest.mark.slow
def test_infer_on_an_existing_raw_array_and_a_test_sample(tmp_path):
    """`infer`: a sample given as an existing zarr array (no conversion) and an unlabelled
    CREMI sample are predicted over all of raw and extracted, without evaluation."""
    import zarr

    shutil.copytree(REPO / ".test" / "config", tmp_path / "config")
    write_sample(tmp_path / "unlabelled.hdf", 5, labels=False)
    raw = np.random.default_rng(0).integers(0, 255, (24, 100, 100), dtype=np.uint8)
    array = zarr.open_group(str(tmp_path / "volumes.zarr"), mode="w").create_array(
        "em/raw", data=raw
    )
    array.attrs.update(voxel_size=[40, 4, 4], offset=[400, 40, 80], axis_names=["z", "y", "x"])
    config = yaml.safe_load((tmp_path / "config" / "config.yaml").read_text())
    config["samples"]["existing"] = {"raw": "volumes.zarr/em/raw"}
    config["samples"]["test"] = {"path": "unlabelled.hdf", "labels": False}
    config["train"]["checkpoints"] = [2]
    config["infer"] = {"samples": ["existing", "test"]}
    write_config(tmp_path, config)
    dry = snakemake("-n", "infer", workdir=tmp_path)
    assert "results/samples/existing.zarr" not in dry.stdout  # used as it is
    snakemake("--cores", 2, "infer", workdir=tmp_path)
    for name in ("existing", "test"):
        (table,) = (tmp_path / "results/extract/tiny/2").glob(f"*/{name}.parquet")
        assert len(read_synapses(table)) > 0  # an untrained network finds plenty
        log = tmp_path / "logs/predict/tiny/2" / f"{name}.log"
        assert "--roi" not in log.read_text().splitlines()[0]  # all of raw
    assert not (tmp_path / "results" / "evaluate").exists()


@pytest.mark.slow
def test_changed_setup_retrains_from_scratch_never_from_an_old_checkpoint(tmp_path):
    """Issue 14: after a change of d_blob_radius the workflow retrains from scratch; the
    intermediate checkpoints of the old setup (not declared by any rule, so Snakemake's rerun
    leaves them) are never resumed from."""
    from synful.checkpoint import list_checkpoints, read_checkpoint_identity
    from synful.identity import file_identity

    shutil.copytree(REPO / ".test" / "config", tmp_path / "config")
    tiny = tmp_path / "config" / "setups" / "tiny.yaml"
    setup = yaml.safe_load(tiny.read_text())
    setup["checkpoint_every"] = 1  # intermediate checkpoints 1 and 3 beside the declared 2 and 4
    tiny.write_text(yaml.safe_dump(setup))
    target = "results/train/tiny/checkpoint_4.pt"
    train = tmp_path / "results" / "train" / "tiny"
    snakemake("--cores", 2, target, workdir=tmp_path)
    old = {it: read_checkpoint_identity(path)[1] for it, path in list_checkpoints(train)}
    assert sorted(old) == [1, 2, 3, 4] and len({i["recipe"] for i in old.values()}) == 1

    setup["d_blob_radius"] = 60
    tiny.write_text(yaml.safe_dump(setup))
    assert job_counts(snakemake("-n", target, workdir=tmp_path).stdout)["train"] == 2
    snakemake("--cores", 2, target, workdir=tmp_path)
    new = {it: read_checkpoint_identity(path)[1] for it, path in list_checkpoints(train)}
    assert sorted(new) == [1, 2, 3, 4]
    (recipe,) = {identity["recipe"] for identity in new.values()}
    assert recipe != old[1]["recipe"]
    # checkpoint 1 was trained from scratch, 3 and 4 from the new checkpoint 2
    assert new[1]["lineage"] == []
    two = file_identity(train / "checkpoint_2.pt")
    assert two in new[3]["lineage"] and two in new[4]["lineage"]
    first = (tmp_path / "logs/train/tiny/checkpoint_2.log").read_text()
    assert "training from scratch" in first and "resuming" not in first
    assert (
        "removing results/train/tiny/checkpoint_1.pt (made with another recipe: setup key d_blob_radius)"
        in first
    )
    second = (tmp_path / "logs/train/tiny/checkpoint_4.log").read_text()
    assert "removing results/train/tiny/checkpoint_3.pt (made with another recipe" in second
    assert "resuming from results/train/tiny/checkpoint_2.pt" in second
    with open(train / "training_log.csv") as f:
        assert [int(line.split(",")[0]) for line in f.readlines()[1:]] == [1, 2, 3, 4]
    # nothing changed: nothing to do
    assert "Nothing to be done" in snakemake("-n", target, workdir=tmp_path).stdout
