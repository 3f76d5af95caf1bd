"""Benchmark ``synful extract`` (cc mode) against a plain scipy version of the original.

A synthetic prediction store (uint8 probabilities x255, int8 vectors x0.25, as the original
wrote them) with thousands of blob-shaped synapses is generated, then

* baseline: the original algorithm in memory on the float map (scipy ``ndimage.label``,
  per-component bounding-box crop, scipy EDT of the crop, argmax, sum; vector at the post
  voxel, de-scaled there), not counting the map's conversion to float;
* ours: the whole ``extract_synapses`` call (zarr read, extraction, parquet write), once as
  one block and once blockwise.

Prints the times and the ratio baseline / ours (> 1: ours is faster), measured in the same
process on the same map. Default size 50 x 1000 x 1000; ``--full`` is 100 x 1500 x 1500.
``--nms`` also times nms mode (radius 40 nm, threshold 0.9) against the original's scipy
maximum filter over the whole map (slow: use a small ``--shape``).

    .venv/bin/python benchmarks/bench_extract.py [--full] [--shape Z Y X] [--synapses N] [--nms]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr
from scipy import ndimage

from synful.extract import extract_synapses
from synful.io.zarr_array import write_volume

VOXEL_SIZE = (40, 4, 4)
THRESHOLD = 0.5
NMS_THRESHOLD = 0.9


def synthetic_map(shape, n_synapses, seed=0):
    """uint8 probabilities (x255) with ellipsoid blobs, int8 vectors (x0.25) per blob."""
    rng = np.random.default_rng(seed)
    prob = np.zeros(shape, np.uint8)
    vectors = np.zeros((3, *shape), np.int8)
    radius = np.array([2, 10, 10])
    grid = np.indices(2 * radius + 1) - radius[:, None, None, None]
    template = 1 - sum((g / r) ** 2 for g, r in zip(grid, radius))
    centres = rng.integers(radius, np.array(shape) - radius, (n_synapses, 3))
    for c in centres:
        blob = template * rng.uniform(0.6, 1.0) + rng.normal(0, 0.05, template.shape)
        blob = np.clip(blob * 255, 0, 255).astype(np.uint8)
        region = tuple(slice(ci - r, ci + r + 1) for ci, r in zip(c, radius))
        np.maximum(prob[region], blob, out=prob[region])
        vec = rng.integers(-60, 60, 3)
        for i in range(3):
            vectors[(i, *region)][blob > 0] = vec[i]
    return prob, vectors


def baseline_extract(prob, vectors, vector_scale, voxel_size, threshold):
    """The original cc extraction, straightforwardly in scipy (bounding-box EDT quirk)."""
    labels, n = ndimage.label(prob > threshold)
    posts, scores = [], []
    for i, box in enumerate(ndimage.find_objects(labels), start=1):
        component = labels[box] == i
        dist = ndimage.distance_transform_edt(component, sampling=voxel_size)
        local = np.unravel_index(int(np.argmax(dist)), component.shape)
        posts.append([s.start + j for s, j in zip(box, local)])
        scores.append(float(prob[box][component].sum()))
    posts = np.asarray(posts, dtype=np.int64).reshape(-1, 3)
    vs = np.asarray(voxel_size)
    vec = np.stack([vectors[c][tuple(posts.T)] for c in range(3)], axis=1) / vector_scale
    pre = np.round((posts * vs + vec) / vs) * vs
    return posts * vs, pre, np.asarray(scores)


def baseline_nms(prob, voxel_size, radius_nm, threshold):
    """The original nms (``synful/nms.py``) in scipy: maximum filter over the whole map."""
    radius = [int(np.ceil(radius_nm / v)) for v in voxel_size]
    grid = np.indices([2 * r + 1 for r in radius]) - np.array(radius)[:, None, None, None]
    footprint = sum((g / r) ** 2 for g, r in zip(grid, radius)) <= 1
    filtered = ndimage.maximum_filter(prob, footprint=footprint)
    maxima = (filtered == prob) & (prob > threshold)
    labels, n = ndimage.label(maxima)
    index = np.arange(1, n + 1)
    centres = ndimage.center_of_mass(maxima, labels, index)
    return np.asarray(centres).reshape(-1, 3), ndimage.maximum(prob, labels, index)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="100 x 1500 x 1500 voxels")
    parser.add_argument("--shape", nargs=3, type=int, default=None)
    parser.add_argument("--synapses", type=int, default=None)
    parser.add_argument(
        "--block-shape", nargs=3, type=int, default=None, help="default: Z/2 Y/2 X/2"
    )
    parser.add_argument(
        "--nms", action="store_true", help="also time nms mode against scipy's maximum filter"
    )
    args = parser.parse_args()
    shape = tuple(args.shape or ((100, 1500, 1500) if args.full else (50, 1000, 1000)))
    n = args.synapses or max(100, int(5000 * np.prod(shape) / (100 * 1500 * 1500)))
    block_shape = tuple(args.block_shape or (max(1, s // 2) for s in shape))
    print(f"map {shape} voxels, {n} synapses placed, voxel size {VOXEL_SIZE}")

    stored, vectors = synthetic_map(shape, n)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "pred.zarr"
        group = zarr.open_group(str(store), mode="w")
        write_volume(group, "post_indicator", stored, VOXEL_SIZE, (0, 0, 0), attrs={"scale": 255})
        write_volume(
            group,
            "partner_vectors",
            vectors,
            VOXEL_SIZE,
            (0, 0, 0),
            channels=1,
            attrs={"scale": 0.25},
        )
        prob = stored.astype(np.float32) / np.float32(255)
        del stored

        start = time.perf_counter()
        post, _, scores = baseline_extract(prob, vectors, 0.25, VOXEL_SIZE, THRESHOLD)
        baseline = time.perf_counter() - start
        del vectors
        print(f"baseline (scipy, in memory): {baseline:7.2f} s, {len(post)} synapses")
        if args.nms:
            start = time.perf_counter()
            centres, _ = baseline_nms(prob, VOXEL_SIZE, 40.0, NMS_THRESHOLD)
            nms_baseline = time.perf_counter() - start
            print(
                f"nms baseline (scipy maximum_filter, in memory): {nms_baseline:7.2f} s, "
                f"{len(centres)} maxima"
            )
            start = time.perf_counter()
            nms = extract_synapses(
                store, Path(tmp) / "n.parquet", mode="nms", threshold=NMS_THRESHOLD, progress=False
            )
            nms_time = time.perf_counter() - start
            print(
                f"synful extract --mode nms:   {nms_time:7.2f} s, {len(nms)} synapses, "
                f"speed-up {nms_baseline / nms_time:.2f}x"
            )
        del prob

        start = time.perf_counter()
        ours = extract_synapses(store, Path(tmp) / "a.parquet", threshold=THRESHOLD, progress=False)
        whole = time.perf_counter() - start
        print(
            f"synful extract, one block:   {whole:7.2f} s, {len(ours)} synapses, "
            f"speed-up {baseline / whole:.2f}x"
        )
        start = time.perf_counter()
        blocks = extract_synapses(
            store,
            Path(tmp) / "b.parquet",
            threshold=THRESHOLD,
            block_shape=block_shape,
            progress=False,
        )
        blockwise = time.perf_counter() - start
        print(
            f"synful extract, blocks {block_shape}: {blockwise:7.2f} s, {len(blocks)} synapses, "
            f"speed-up {baseline / blockwise:.2f}x"
        )
        same_scores = np.allclose(np.sort(scores), np.sort(ours["score"].to_numpy()))
        print(
            f"same components and sum scores as the baseline: {len(post) == len(ours) and same_scores}"
        )
        merged = ours.merge(blocks, on="id", how="outer", indicator=True)
        differ = int((merged["_merge"] != "both").sum()) + int(
            (merged["score_x"] != merged["score_y"]).sum()
        )
        print(
            f"blockwise table equals whole-volume table: {ours.equals(blocks)} "
            f"({differ} rows differ: components larger than the 120 nm context)"
        )


if __name__ == "__main__":
    main()
