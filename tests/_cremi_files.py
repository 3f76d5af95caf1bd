"""Small CREMI-layout samples for rehearsing the real-data configs, and a local HTTP server.

The files are written by the project's CREMI writer from synthetic samples, so they have the
layout of the real padded CREMI files: raw larger than ``neuron_ids`` (padding), non-zero label
and annotation offsets, polyadic sites. Test samples (``labels=False``) hold raw only, as the
CREMI test files do.
"""

from __future__ import annotations

import functools
import tarfile
import threading
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import h5py
import numpy as np
import yaml

from synful.io.cremi import CremiSample, write_cremi
from synful.synthetic import synthesize_sample

REPO = Path(__file__).resolve().parents[1]

# small enough that a reduced network trains and predicts in seconds on one core
SHAPE = (16, 160, 160)
PADDING = (4, 48, 48)

# the network keys a reduced variant replaces: everything else (network type, heads, losses,
# initialisation, targets, augmentation, curriculum) stays as the shipped setup has it
REDUCED_NETWORK = {
    "input_shape": [21, 44, 44],
    "predict_input_shape": None,
    "downsample_factors": [[1, 2, 2], [1, 2, 2]],
    "kernel_sizes": None,  # the original's 3x3x3 on each of the reduced network's levels
    "fmap_num": 2,
    "fmap_inc_factor": 2,
    "num_workers": 0,
    "checkpoint_every": 2,
    "snapshot_every": 1000,
    "log_every": 1,
}


def write_sample(path: Path, seed: int, labels: bool = True) -> CremiSample:
    """A synthetic sample in CREMI layout at ``path`` (raw only when ``labels`` is false)."""
    sample = synthesize_sample(seed=seed, shape=SHAPE, padding=PADDING)
    if not labels:
        sample = CremiSample(raw=sample.raw)
    write_cremi(path, sample)
    return sample


def write_masks(path: Path, sample: CremiSample) -> None:
    """Non-cuboid training and validation masks over the labelled cube, into the sample file
    (``volumes/masks/{training,validation}``, with resolution and offset like every volume):
    training = the first 12 sections except a notch at low x in the first 4; validation = the
    rest."""
    shape = sample.neuron_ids.data.shape
    training = np.zeros(shape, np.uint8)
    training[:12] = 1
    training[:4, :, :48] = 0
    with h5py.File(path, "r+") as f:
        for name, mask in (("training", training), ("validation", 1 - training)):
            ds = f.create_dataset(f"volumes/masks/{name}", data=mask)
            ds.attrs["resolution"] = list(sample.neuron_ids.resolution)
            ds.attrs["offset"] = list(sample.neuron_ids.offset)


def write_archive(path: Path, members: dict[str, Path]) -> None:
    """A tar.gz archive holding ``members`` (member name -> file)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, file in members.items():
            tar.add(file, arcname=name)


def write_reduced_setups(workdir: Path, names) -> None:
    """config/setups/<name>.yaml in ``workdir`` (looked up before the shipped ones): each
    shipped setup with the network made small (:data:`REDUCED_NETWORK`)."""
    folder = workdir / "config" / "setups"
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        setup = yaml.safe_load((REPO / "config" / "setups" / f"{name}.yaml").read_text())
        setup.update(REDUCED_NETWORK)
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(setup))


def setup_names(config: dict) -> list[str]:
    """Every setup a config's `setups` entries name (pairs contribute both)."""
    names = []
    for entry in config["setups"]:
        names += [entry] if isinstance(entry, str) else [entry["mask"], entry["vectors"]]
    return names


def model_names(config: dict) -> list[str]:
    """The model names of a config's `setups` entries: a setup, or mask+vectors."""
    return [e if isinstance(e, str) else f"{e['mask']}+{e['vectors']}" for e in config["setups"]]


@contextmanager
def serve(directory: Path):
    """Serve ``directory`` over HTTP on 127.0.0.1; yields the base URL."""
    handler = functools.partial(QuietHandler, directory=str(directory))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
