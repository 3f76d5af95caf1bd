import itertools
import re
from pathlib import Path

import pandas as pd
from snakemake.utils import Paramspace, validate

validate(config, "../config/schema.yaml")

SAMPLES = config["samples"]
LABELLED = [name for name, sample in SAMPLES.items() if sample["labels"]]


wildcard_constraints:
    sample="|".join(re.escape(name) for name in SAMPLES),


def sample_source(name):
    """How a sample's CREMI HDF5 file comes about: synthetic, url or path."""
    sample = SAMPLES[name]
    return next(kind for kind in ("synthetic", "url", "path") if kind in sample)


def sample_hdf(wildcards):
    """The CREMI HDF5 file of a sample: synthesized, downloaded, or given."""
    name = wildcards.sample
    kind = sample_source(name)
    if kind == "path":
        return SAMPLES[name]["path"]
    folder = "synthetic" if kind == "synthetic" else "download"
    return f"resources/{folder}/{name}.hdf"


def synthesize_args(wildcards):
    """Command-line arguments of `synful synthesize` for a synthetic sample."""
    synthetic = SAMPLES[wildcards.sample]["synthetic"]
    return [
        "--seed",
        synthetic["seed"],
        "--shape",
        *synthetic["shape"],
        "--padding",
        *synthetic["padding"],
        "--missing-sections",
        synthetic["missing_sections"],
        "--misaligned-sections",
        synthetic["misaligned_sections"],
    ]


def download_args(wildcards):
    """Command-line arguments of `synful download` for a URL sample (URL first)."""
    sample = SAMPLES[wildcards.sample]
    args = [sample["url"]]
    if sample["sha256"]:
        args += ["--sha256", sample["sha256"]]
    if sample["labels"]:
        args.append("--require-labels")
    args += ["--retries", config["download"]["retries"]]
    args += ["--timeout", config["download"]["timeout"]]
    return args


def convert_args(wildcards):
    """Command-line arguments of `synful convert` after IN.hdf OUT.zarr --synapses OUT.parquet."""
    return [
        "--voxel-size",
        *SAMPLES[wildcards.sample]["voxel_size"],
        "--chunks",
        *config["chunks"],
    ]


def masks_args(wildcards):
    """Command-line arguments of `synful masks`: mask volumes if given, else the split rule."""
    masks = SAMPLES[wildcards.sample]["masks"]
    given = [key for key in ("training_mask", "validation_mask") if masks.get(key)]
    if given:
        return [arg for key in given for arg in (f"--{key.replace('_', '-')}", masks[key])]
    args = ["--split-axis", masks["split_axis"]]
    if masks.get("training_range"):
        return args + ["--training-range", *masks["training_range"]]
    return args + ["--training-fraction", masks["training_fraction"]]


def mask_volume_files(wildcards):
    """The files (HDF5 or zarr containers) of the given mask volumes, inputs of the masks rule.

    `file.hdf/dataset` -> `file.hdf`, like synful.masks.split_container_path (not imported so
    that parsing the workflow does not need synful installed, e.g. with --use-conda).
    """
    masks = SAMPLES[wildcards.sample]["masks"]
    files = []
    for key in ("training_mask", "validation_mask"):
        parts = masks.get(key, "").split("/")
        for i, part in enumerate(parts):
            if part.lower().endswith((".hdf", ".h5", ".hdf5", ".zarr", ".n5")):
                files.append("/".join(parts[: i + 1]))
                break
    return files


def data_targets():
    """Every sample store and synapse table, and the masks of every labelled sample."""
    targets = expand("results/samples/{sample}.zarr", sample=SAMPLES)
    targets += expand("results/samples/{sample}.parquet", sample=SAMPLES)
    targets += expand("results/samples/{sample}.masks.json", sample=LABELLED)
    return targets


# ---- training, prediction, extraction, evaluation --------------------------------------------


def split_can_be_empty(name, split):
    """Whether a split rule leaves the training (validation) region of a sample empty."""
    masks = SAMPLES[name]["masks"]
    if any(masks.get(key) for key in ("training_mask", "validation_mask", "training_range")):
        return False
    return masks["training_fraction"] == (0.0 if split == "training" else 1.0)


SETUPS = config["setups"]
TRAIN_SAMPLES = config["train"].get(
    "samples", [name for name in LABELLED if not split_can_be_empty(name, "training")]
)
EVALUATE_SAMPLES = config["evaluate"].get(
    "samples", [name for name in LABELLED if not split_can_be_empty(name, "validation")]
)
CHECKPOINTS = sorted(set(config["train"]["checkpoints"]))
for key, names in (("train.samples", TRAIN_SAMPLES), ("evaluate.samples", EVALUATE_SAMPLES)):
    unknown = [name for name in names if name not in LABELLED]
    if unknown:
        raise ValueError(f"config {key}: {unknown} are not labelled samples of config samples")

# the extraction grid: one row per combination of the listed settings
EXTRACTION = Paramspace(
    pd.DataFrame(
        list(itertools.product(*config["extract"]["grid"].values())),
        columns=list(config["extract"]["grid"]),
    ),
    filename_params="*",
)
RUN = f"{{setup}}/{{iteration}}/{EXTRACTION.wildcard_pattern}"


wildcard_constraints:
    setup="|".join(re.escape(name) for name in SETUPS),
    iteration=r"\d+",


def setup_file(wildcards):
    """config/setups/<setup>.yaml in the working directory, else beside the Snakefile."""
    name = f"config/setups/{wildcards.setup}.yaml"
    return name if Path(name).exists() else str(Path(workflow.basedir) / name)


def training_inputs(wildcards):
    """The sample stores, tables and masks summaries of the training samples."""
    return {
        "stores": expand("results/samples/{sample}.zarr", sample=TRAIN_SAMPLES),
        "synapses": expand("results/samples/{sample}.parquet", sample=TRAIN_SAMPLES),
        "masks": expand("results/samples/{sample}.masks.json", sample=TRAIN_SAMPLES),
    }


def previous_checkpoint(wildcards):
    """The checkpoint a training job resumes from: the largest configured one before it."""
    before = [it for it in CHECKPOINTS if it < int(wildcards.iteration)]
    return f"results/train/{wildcards.setup}/checkpoint_{before[-1]}.pt" if before else []


def predict_masks(wildcards):
    """The masks summary when the prediction ROI is the validation mask's (written in the store)."""
    if config["predict"]["roi"] == "validation":
        return f"results/samples/{wildcards.sample}.masks.json"
    return []


def predict_args(wildcards):
    """Options of `synful predict` from config (the ROI is added by the script)."""
    options = config["predict"]
    args = ["--device", options["device"], "--dtype", options["dtype"]]
    if options["block_shape"]:
        args += ["--block-shape", *options["block_shape"]]
    if options["workers"]:
        args += ["--workers", options["workers"]]
    if options["scheduler"]:
        args += ["--scheduler", options["scheduler"]]
    return args


def extract_args(wildcards):
    """Options of `synful extract`: this run's grid point plus the fixed settings."""
    options = config["extract"]
    args = []
    for key, value in EXTRACTION.instance(wildcards).items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    args += ["--score-threshold", options["score_threshold"]]
    args += ["--min-distance", options["min_distance"]]
    args += ["--context", options["context"], "--workers", options["workers"]]
    args += ["--split-levels", *options["split_levels"]]
    args += ["--min-piece-volume", options["min_piece_volume"]]
    args += ["--vector-radius", options["vector_radius"]]
    if options["block_shape"]:
        args += ["--block-shape", *options["block_shape"]]
    if options["drop_autapses"]:
        args.append("--drop-autapses")
    return args


def evaluate_args(wildcards):
    """Options of `synful evaluate` from config."""
    options = config["evaluate"]
    args = ["--matching-threshold", options["matching_threshold"]]
    args += ["--score-thresholds", *options["score_thresholds"]]
    if options["filter_same_seg"]:
        args.append("--filter-same-seg")
    return args


def evaluation_runs():
    """Every evaluated run: setup, iteration, extraction settings, sample and metrics file."""
    runs = []
    for setup in SETUPS:
        for iteration in CHECKPOINTS:
            grid = EXTRACTION.dataframe.to_dict("records")
            for settings, pattern in zip(grid, EXTRACTION.instance_patterns):
                for sample in EVALUATE_SAMPLES:
                    path = f"results/evaluate/{setup}/{iteration}/{pattern}/{sample}.json"
                    run = {"setup": setup, "iteration": iteration, **settings}
                    runs.append(run | {"sample": sample, "metrics": path})
    return runs
