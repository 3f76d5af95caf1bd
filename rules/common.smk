import itertools
import json
import re
import sys
from importlib.util import find_spec
from pathlib import PurePosixPath, Path
from urllib.parse import urlparse

import pandas as pd
import yaml
from snakemake.utils import Paramspace, validate

validate(config, "../config/schema.yaml")

# synful.train.setup (torch-free) owns the setup keys and their defaults, synful.settings.workflow
# (standard library only) what of a config section goes to its command; a Snakemake without
# synful installed (e.g. with --use-conda) reads them from this checkout
if find_spec("synful") is None:
    sys.path.append(str(Path(workflow.basedir)))
from synful.settings.workflow import command_settings  # noqa: E402
from synful.train.setup import TrainSetup  # noqa: E402

SAMPLES = config["samples"]
# samples given as an existing raw array are used as they are (prediction only, no labels)
RAW_SAMPLES = [name for name, sample in SAMPLES.items() if "raw" in sample]
CONVERTED = [name for name in SAMPLES if name not in RAW_SAMPLES]
LABELLED = [name for name in CONVERTED if SAMPLES[name]["labels"]]


wildcard_constraints:
    sample="|".join(re.escape(name) for name in SAMPLES),


def sample_source(name):
    """How a sample's CREMI HDF5 file comes about: synthetic, url, archive or path."""
    sample = SAMPLES[name]
    return next(kind for kind in ("synthetic", "url", "archive", "path") if kind in sample)


# ---- archives: one download per archive URL, members unpacked one by one ----------------------

ARCHIVE_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tar", ".zip")


def archive_file_name(url):
    """The archive's file name: the last part of the URL's path (query dropped)."""
    name = PurePosixPath(urlparse(url).path).name
    if not name.lower().endswith(ARCHIVE_SUFFIXES):
        raise ValueError(
            f"config samples: archive URL {url} does not end with one of {', '.join(ARCHIVE_SUFFIXES)}"
        )
    return name


def archive_stem(file_name):
    """groundtruth.tar.gz -> groundtruth: the folder its members are unpacked into."""
    suffix = next(x for x in ARCHIVE_SUFFIXES if file_name.lower().endswith(x))
    return file_name[: -len(suffix)]


ARCHIVES = {}  # archive file name -> {"url": ..., "sha256": ...}
for _name, _sample in SAMPLES.items():
    if "archive" in _sample:
        _archive = _sample["archive"]
        _file = archive_file_name(_archive["url"])
        _known = ARCHIVES.setdefault(_file, {"url": _archive["url"], "sha256": _archive["sha256"]})
        if _known["url"] != _archive["url"] or _known["sha256"] != _archive["sha256"]:
            raise ValueError(
                f"config samples.{_name}.archive: {_file} is also given with another URL or sha256"
            )
ARCHIVE_STEMS = {archive_stem(name): name for name in ARCHIVES}
if len(ARCHIVE_STEMS) != len(ARCHIVES):
    raise ValueError(f"config samples: archive names {sorted(ARCHIVES)} share a folder name")


def archive_member_path(sample):
    """Where the member of an archive sample is unpacked: resources/archives/<stem>/<member>."""
    archive = SAMPLES[sample]["archive"]
    return (
        f"resources/archives/{archive_stem(archive_file_name(archive['url']))}/{archive['member']}"
    )


def sample_hdf(wildcards):
    """The CREMI HDF5 file of a sample: synthesized, downloaded, unpacked, or given."""
    name = wildcards.sample
    kind = sample_source(name)
    if kind == "path":
        return SAMPLES[name]["path"]
    if kind == "archive":
        return archive_member_path(name)
    folder = "synthetic" if kind == "synthetic" else "download"
    return f"resources/{folder}/{name}.hdf"


def synthesize_settings(wildcards):
    """What a synthesize job hands `synful synthesize --settings`: the sample's synthetic entry."""
    return command_settings("synthesize", SAMPLES[wildcards.sample]["synthetic"])


def download_settings(wildcards):
    """What a download job of a URL sample hands `synful download --settings`: config download
    with the sample's sha256 and whether it must have labels."""
    sample = SAMPLES[wildcards.sample]
    return command_settings(
        "download", config["download"], sha256=sample["sha256"], require_labels=sample["labels"]
    )


def archive_download_settings(wildcards):
    """What the download job of an archive hands `synful download --settings`: config download
    with the archive's sha256, without the CREMI layout check."""
    archive = ARCHIVES[wildcards.archive]
    return command_settings("download", config["download"], sha256=archive["sha256"], no_check=True)


def unpack_archive(wildcards):
    """The downloaded archive a member is unpacked from."""
    return f"resources/archives/{ARCHIVE_STEMS[wildcards.stem]}"


def convert_settings(wildcards):
    """What a convert job hands `synful convert --settings`: the sample's voxel_size, the
    workflow's chunks."""
    return command_settings(
        "convert",
        {"voxel_size": SAMPLES[wildcards.sample]["voxel_size"], "chunks": config["chunks"]},
    )


def masks_settings(wildcards):
    """What a masks job hands `synful masks --settings`: the sample's masks entry (mask
    volumes win over the split rule, a training_range over the training_fraction)."""
    return command_settings("masks", SAMPLES[wildcards.sample]["masks"])


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
    targets = expand("results/samples/{sample}.zarr", sample=CONVERTED)
    targets += expand("results/samples/{sample}.parquet", sample=CONVERTED)
    targets += expand("results/samples/{sample}.masks.json", sample=LABELLED)
    return targets


# ---- training, prediction, extraction, evaluation --------------------------------------------


def split_can_be_empty(name, split):
    """Whether a split rule leaves the training (validation) region of a sample empty."""
    masks = SAMPLES[name]["masks"]
    if any(masks.get(key) for key in ("training_mask", "validation_mask", "training_range")):
        return False
    return masks["training_fraction"] == (0.0 if split == "training" else 1.0)


TRAIN_SAMPLES = config["train"].get(
    "samples", [name for name in LABELLED if not split_can_be_empty(name, "training")]
)
EVALUATE_SAMPLES = config["evaluate"].get(
    "samples", [name for name in LABELLED if not split_can_be_empty(name, "validation")]
)
CHECKPOINTS = sorted(set(config["train"]["checkpoints"]))
# held-out test sets: group -> samples, scored at the configuration chosen on EVALUATE_SAMPLES
TEST_GROUPS = config["evaluate"]["test"]
TEST_SAMPLES = {name: group for group, names in TEST_GROUPS.items() for name in names}
for key, names in (
    ("train.samples", TRAIN_SAMPLES),
    ("evaluate.samples", EVALUATE_SAMPLES),
    *((f"evaluate.test.{group}", names) for group, names in TEST_GROUPS.items()),
):
    unknown = [name for name in names if name not in LABELLED]
    if unknown:
        raise ValueError(f"config {key}: {unknown} are not labelled samples of config samples")
for _name, _group in TEST_SAMPLES.items():
    for key, names in (("train.samples", TRAIN_SAMPLES), ("evaluate.samples", EVALUATE_SAMPLES)):
        if _name in names:
            raise ValueError(
                f"config evaluate.test.{_group}: {_name} is also in {key} "
                "(a test sample is never trained or validated on)"
            )
if len(TEST_SAMPLES) != sum(len(names) for names in TEST_GROUPS.values()):
    raise ValueError("config evaluate.test: a sample is in more than one test group")

# ---- models: a multi-task setup, or a (mask, vectors) pair of single-task setups --------------

HEAD_OUTPUTS = {
    "mask": "post_indicator (m_loss_scale > 0)",
    "vectors": "partner_vectors (d_loss_scale > 0)",
}


def setup_path(name):
    """config/setups/<name>.yaml in the working directory, else beside the Snakefile."""
    path = f"config/setups/{name}.yaml"
    return path if Path(path).exists() else str(Path(workflow.basedir) / path)


PRETRAINED = config["pretrained"]


def network_setup(name):
    """The setup of a network: its setup file, or the setup stored in its pretrained checkpoint
    (None when that cannot be read here: torch not installed where Snakemake runs)."""
    if name in PRETRAINED:
        path = PRETRAINED[name]["checkpoint"]
        if not Path(path).is_file():
            raise ValueError(f"config pretrained.{name}: no such checkpoint file {path}")
        try:
            from synful.checkpoint import read_checkpoint_setup
        except ImportError:
            return None
        return read_checkpoint_setup(path)[0]
    path = setup_path(name)
    try:
        return yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise ValueError(f"config setups: {name}: no such setup file {path}") from None


def setup_heads(name):
    """The outputs (mask, vectors) that a network predicts: a head exists when its loss scale
    is > 0 (defaults from synful.train.setup.TrainSetup)."""
    data = network_setup(name)
    if data is None:
        return {"mask", "vectors"}  # checked by the jobs instead
    defaults = TrainSetup()
    scales = {
        "mask": data.get("m_loss_scale", defaults.m_loss_scale),
        "vectors": data.get("d_loss_scale", defaults.d_loss_scale),
    }
    return {head for head, scale in scales.items() if float(scale) > 0}


def model_entry(entry):
    """(model name, {"mask": setup, "vectors": setup}) of a `setups` entry."""
    if isinstance(entry, str):
        return entry, {"mask": entry, "vectors": entry}
    return f"{entry['mask']}+{entry['vectors']}", {
        "mask": entry["mask"],
        "vectors": entry["vectors"],
    }


MODELS = dict(model_entry(entry) for entry in config["setups"])
if len(MODELS) != len(config["setups"]):
    raise ValueError(f"config setups: a model is listed twice in {config['setups']}")
NETWORKS = sorted({setup for parts in MODELS.values() for setup in parts.values()})
for _model, _parts in MODELS.items():
    for _head, _setup in _parts.items():
        if _head not in setup_heads(_setup):
            _pair = "" if _model == _setup else f" (the {_head} network of {_model})"
            raise ValueError(
                f"config setups: {_setup}{_pair} does not predict {HEAD_OUTPUTS[_head]}; "
                f"give a pair {{mask: SETUP, vectors: SETUP}}"
            )


def model_iterations(model):
    """The iterations a model is evaluated at: train.checkpoints, or the iteration of its
    pretrained networks (the same for both of a pair)."""
    parts = set(MODELS[model].values())
    pretrained = {PRETRAINED[name]["iteration"] for name in parts if name in PRETRAINED}
    if not pretrained:
        return CHECKPOINTS
    if len(pretrained) > 1 or not parts <= set(PRETRAINED):
        raise ValueError(
            f"config setups: {model} pairs networks of different iterations (a pretrained "
            f"network goes with another pretrained one at the same iteration)"
        )
    return sorted(pretrained)


for _model in MODELS:
    model_iterations(_model)

# the extraction grid: the union of the combinations of each listed grid-point set
_grids = config["extract"]["grid"]
_grids = _grids if isinstance(_grids, list) else [_grids]
# in the schema's order (mode, threshold, score, nms_radius), whatever the config's order
_schema = yaml.safe_load((Path(workflow.basedir) / "config" / "schema.yaml").read_text())
_grid_keys = list(_schema["$defs"]["grid_point"]["properties"])
EXTRACTION = Paramspace(
    pd.DataFrame(
        [row for grid in _grids for row in itertools.product(*(grid[k] for k in _grid_keys))],
        columns=_grid_keys,
    ).drop_duplicates(),
    filename_params="*",
)
RUN = f"{{model}}/{{iteration}}/{EXTRACTION.wildcard_pattern}"

# evaluation variants: "with seg" (filter_same_seg) and/or "without seg"
_filter = config["evaluate"]["filter_same_seg"]
SEG = {True: "with", False: "without"}
SEG_VARIANTS = [SEG[value] for value in (_filter if isinstance(_filter, list) else [_filter])]


wildcard_constraints:
    setup="|".join(re.escape(name) for name in NETWORKS),
    model="|".join(re.escape(name) for name in MODELS),
    iteration=r"\d+",
    seg="with|without",
    archive="|".join(re.escape(name) for name in ARCHIVES) or "^$",
    stem="|".join(re.escape(name) for name in ARCHIVE_STEMS) or "^$",


def setup_file(wildcards):
    """The setup YAML of the network being trained."""
    if wildcards.setup in PRETRAINED:
        raise ValueError(f"{wildcards.setup} is pretrained (config pretrained): it is not trained")
    return setup_path(wildcards.setup)


def network_checkpoint(wildcards):
    """The checkpoint a network is predicted with: trained here, or given (config pretrained)."""
    if wildcards.setup in PRETRAINED:
        return PRETRAINED[wildcards.setup]["checkpoint"]
    return f"results/train/{wildcards.setup}/checkpoint_{wildcards.iteration}.pt"


def model_predictions(wildcards):
    """The prediction stores a model is extracted from: the mask network's, and the vector
    network's when it is another one (passed as --vectors)."""
    parts = MODELS[wildcards.model]
    stores = {
        "predictions": f"results/predict/{parts['mask']}/{wildcards.iteration}/{wildcards.sample}.zarr"
    }
    if parts["vectors"] != parts["mask"]:
        stores["vectors"] = (
            f"results/predict/{parts['vectors']}/{wildcards.iteration}/{wildcards.sample}.zarr"
        )
    return stores


def training_inputs(wildcards):
    """The sample stores, tables and masks summaries of the training samples: what the
    training recipe identifies by content, so a change reruns the train jobs."""
    return {
        "stores": expand("results/samples/{sample}.zarr", sample=TRAIN_SAMPLES),
        "synapses": expand("results/samples/{sample}.parquet", sample=TRAIN_SAMPLES),
        "masks": expand("results/samples/{sample}.masks.json", sample=TRAIN_SAMPLES),
    }


def previous_checkpoint(wildcards):
    """The checkpoint a training job continues (`synful train --from`): the largest configured
    one before it (none for the first: from scratch)."""
    before = [it for it in CHECKPOINTS if it < int(wildcards.iteration)]
    return f"results/train/{wildcards.setup}/checkpoint_{before[-1]}.pt" if before else []


def sample_raw(wildcards):
    """What a prediction reads: the sample store, or a sample's existing raw array."""
    if wildcards.sample in RAW_SAMPLES:
        return SAMPLES[wildcards.sample]["raw"]
    return f"results/samples/{wildcards.sample}.zarr"


def sample_store(wildcards):
    """The sample store whose neuron_ids give segment ids at extraction (labelled samples)."""
    return f"results/samples/{wildcards.sample}.zarr" if wildcards.sample in LABELLED else []


def predict_roi(wildcards):
    """config predict.roi, or all of raw for a sample without labels (an existing raw array,
    a CREMI test sample)."""
    return config["predict"]["roi"] if wildcards.sample in LABELLED else "raw"


def predict_masks(wildcards):
    """The masks summary when the prediction ROI is the validation mask's (written in the store)."""
    if predict_roi(wildcards) == "validation":
        return f"results/samples/{wildcards.sample}.masks.json"
    return []


def predict_settings(wildcards):
    """What a predict job hands `synful predict --settings`: config predict (but the
    workflow's own keys), with all of raw for a sample without labels, and the region grown
    by predict.roi_margin or else the extraction context (what extraction reads around it)."""
    margin = config["predict"]["roi_margin"]
    return command_settings(
        "predict",
        config["predict"],
        roi=predict_roi(wildcards),
        roi_margin=config["extract"]["context"] if margin is None else margin,
    )


def predict_cluster_message():
    """The predict jobs' message with predict.cluster (None without): the cluster settings
    the job hands synful predict (in --settings), as JSON."""
    cluster = config["predict"]["cluster"]
    if not cluster:
        return None
    text = json.dumps(cluster, sort_keys=True).replace("{", "{{").replace("}", "}}")
    return (
        "predict {output.predictions} with {input.checkpoint} on a dask-jobqueue cluster "
        f"(this job: gpu={{resources.gpu}}); synful predict --cluster {text}"
    )


def extract_settings(wildcards):
    """What an extract job hands `synful extract --settings`: config extract (but the
    workflow's own keys, the grid among them) with this run's grid point."""
    return command_settings("extract", config["extract"], **EXTRACTION.instance(wildcards))


def evaluate_settings(wildcards):
    """What an evaluate job hands `synful evaluate --settings`: config evaluate (but the
    workflow's own keys) with its seg variant's filter_same_seg and the threshold the run was
    extracted at (its grid point)."""
    return command_settings(
        "evaluate",
        config["evaluate"],
        filter_same_seg=wildcards.seg == "with",
        extraction_threshold=EXTRACTION.instance(wildcards).get("threshold"),
    )


def trained_checkpoints():
    """Every checkpoint the workflow trains (target train_all)."""
    return [
        f"results/train/{network}/checkpoint_{iteration}.pt"
        for network in NETWORKS
        if network not in PRETRAINED
        for iteration in CHECKPOINTS
    ]


def prediction_stores():
    """Every prediction store the evaluation reads (target predict_all)."""
    return sorted(
        {
            f"results/predict/{network}/{iteration}/{sample}.zarr"
            for model, parts in MODELS.items()
            for network in set(parts.values())
            for iteration in model_iterations(model)
            for sample in [*EVALUATE_SAMPLES, *TEST_SAMPLES]
        }
    )


INFER_SAMPLES = config["infer"]["samples"]
for _name in INFER_SAMPLES:
    if _name not in SAMPLES:
        raise ValueError(f"config infer.samples: {_name} is not a sample of config samples")


def inferred_tables():
    """Every synapse table of the samples predicted and extracted without evaluation."""
    return [
        f"results/extract/{model}/{iteration}/{pattern}/{sample}.parquet"
        for model in MODELS
        for iteration in model_iterations(model)
        for pattern in EXTRACTION.instance_patterns
        for sample in INFER_SAMPLES
    ]


def evaluation_errors():
    """The error tables beside every evaluated run's metrics (X.json -> X.errors.csv)."""
    return [re.sub(r"\.json$", ".errors.csv", run["metrics"]) for run in evaluation_runs()]


def evaluation_runs(samples=None):
    """Every evaluated run: model (setup or mask+vectors pair), iteration, extraction settings,
    seg variant, sample and metrics file; of the validation samples, or of ``samples``."""
    runs = []
    for model in MODELS:
        for iteration in model_iterations(model):
            grid = EXTRACTION.dataframe.to_dict("records")
            for settings, pattern in zip(grid, EXTRACTION.instance_patterns):
                for seg in SEG_VARIANTS:
                    for sample in EVALUATE_SAMPLES if samples is None else samples:
                        path = f"results/evaluate/{model}/{iteration}/{pattern}/seg~{seg}/{sample}.json"
                        run = {"setup": model, "iteration": iteration, **settings, "seg": seg}
                        runs.append(run | {"sample": sample, "metrics": path})
    return runs


def test_runs():
    """The evaluated runs of the held-out test samples, each with its test ``group``."""
    return [run | {"group": TEST_SAMPLES[run["sample"]]} for run in evaluation_runs(TEST_SAMPLES)]


def test_table():
    """results/test.csv when the config names test samples (evaluate.test)."""
    if not TEST_SAMPLES:
        return {}
    return {"test": report("results/test.csv", caption="../report/test.rst", category="Summary")}
