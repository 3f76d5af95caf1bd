"""The Snakemake workflow: formatting, lint, config validation, dry runs and real runs of the
data targets (given, downloaded and synthetic samples) in temporary working directories."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from synful.io.cremi import CremiAnnotations, CremiSample, CremiVolume, write_cremi
from synful.io.sample_store import open_mask, open_neuron_ids, open_raw
from synful.io.synapse_table import read_synapses
from synful.masks import synapses_in_split

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def snakemake(*args, workdir=None, check=True):
    """Run snakemake from the repository root (the default profile applies), in ``workdir``."""
    argv = [str(BIN / "snakemake"), *map(str, args)]
    if workdir is not None:
        argv += ["--directory", str(workdir)]
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)
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
            # 7 samples (6 for training); 1 checkpoint x 3 validation samples, evaluated
            # with 2 modes x 2 thresholds
            "config/config.yaml",
            {"synthesize": 7, "convert": 7, "masks": 7, "train": 1, "predict": 3, "evaluate": 12},
        ),
        # 7 checkpoints x 3 samples; the test samples A+, B+, C+ are converted only
        (
            "config/cremi.yaml",
            {"download": 6, "convert": 6, "masks": 3, "train": 7, "predict": 21, "evaluate": 21},
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
    assert "mode~cc_threshold~0.5_score~sum_nms_radius~40.0/tiny2.json" in result.stdout


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
    assert f"results/evaluate/other/4/{pattern}/tiny1.json" in result.stdout


@pytest.mark.slow
def test_slurm_profile_dry_run(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    shutil.copytree(REPO / ".test" / "config", tmp_path / "config")
    result = snakemake("-n", "--profile", "profiles/slurm", workdir=tmp_path)
    assert job_counts(result.stdout)["train"] == 2


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
        assert open_raw(store).array.chunks == (2, 16, 16)
        assert open_neuron_ids(store).offset == (80, 16, 16)
        synapses = read_synapses(samples / f"{name}.parquet")
        assert len(synapses) == 2
        summary = json.loads((samples / f"{name}.masks.json").read_text())
        for split in ("training", "validation"):
            assert summary[split]["synapses"] == len(synapses_in_split(synapses, store, split))
        assert (tmp_path / "logs" / "masks" / f"{name}.log").read_text().startswith("synful masks")
    given_training = open_mask(samples / "given.zarr", "training").read()
    assert given_training[:3].all() and not given_training[3:].any()
    fetched_training = open_mask(samples / "fetched.zarr", "training").read()
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
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(
        (REPO / ".test" / "config" / "config.yaml").read_text()
    )
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
    snakemake("--report", tmp_path / "report.html", workdir=tmp_path)
    assert "summary.csv" in (tmp_path / "report.html").read_text(errors="replace")
