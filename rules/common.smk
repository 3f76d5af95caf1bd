import re

from snakemake.utils import validate

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
