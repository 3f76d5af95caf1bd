"""Speed and memory of ``synful convert`` against a whole-volume copy measured in the same run.

Writes a CREMI-like HDF5 file (gzip, chunks 8 x 256 x 256, like the CREMI files) with a padded
raw and a smaller label volume, then converts it twice:

1. ``convert_cremi``: z-slabs of one chunk row, into zarr v3 (zstd), plus the synapse table.
2. The baseline: read each volume whole (``dataset[...]``) and write it whole into the same
   zarr layout, the simplest correct converter.

Prints wall seconds, process CPU seconds and the peak of traced Python/numpy allocations
(tracemalloc) of each, and the ratios. The streamed converter's peak stays near one slab while
the baseline's grows with the volume.

Usage: python benchmarks/bench_convert.py [--raw 64 1024 1024] [--labels 40 640 640]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import zarr

from synful.convert import DEFAULT_CHUNKS, convert_cremi
from synful.io.zarr_array import create_volume


def write_sample(path: Path, raw_shape, label_shape, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    offset = [(r - s) // 2 * v for r, s, v in zip(raw_shape, label_shape, (40, 4, 4))]
    with h5py.File(path, "w") as f:
        for key, shape, dtype, attrs in (
            ("volumes/raw", raw_shape, np.uint8, {}),
            ("volumes/labels/neuron_ids", label_shape, np.uint64, {"offset": offset}),
        ):
            ds = f.create_dataset(key, shape, dtype, chunks=(8, 256, 256), compression="gzip")
            for z in range(0, shape[0], 8):
                n = min(8, shape[0] - z)
                ds[z : z + n] = rng.integers(0, 200, (n,) + tuple(shape[1:])).astype(dtype)
            ds.attrs["resolution"] = [40.0, 4.0, 4.0]
            for name, value in attrs.items():
                ds.attrs[name] = np.asarray(value, float)


def whole_volume_copy(hdf: Path, store: Path) -> None:
    group = zarr.open_group(str(store), mode="w")
    with h5py.File(hdf, "r") as f:
        for name, key in (("raw", "volumes/raw"), ("neuron_ids", "volumes/labels/neuron_ids")):
            data = f[key][...]
            offset = f[key].attrs.get("offset", (0, 0, 0))
            volume = create_volume(
                group,
                name,
                shape=data.shape,
                dtype=data.dtype,
                voxel_size=(40, 4, 4),
                offset=[int(o) for o in offset],
                chunks=DEFAULT_CHUNKS,
            )
            volume[volume.roi] = data


def measure(function, *args) -> tuple[float, float, int]:
    tracemalloc.start()
    wall, cpu = time.perf_counter(), time.process_time()
    function(*args)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return wall, cpu, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", nargs=3, type=int, default=[64, 1024, 1024])
    parser.add_argument("--labels", nargs=3, type=int, default=[40, 640, 640])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_sample(tmp / "s.hdf", args.raw, args.labels)
        volume_mb = (np.prod(args.raw) + 8 * np.prod(args.labels)) / 2**20
        print(
            f"raw {tuple(args.raw)} uint8 + labels {tuple(args.labels)} uint64 = {volume_mb:.0f} MiB"
        )
        streamed = measure(convert_cremi, tmp / "s.hdf", tmp / "a.zarr", tmp / "a.parquet")
        baseline = measure(whole_volume_copy, tmp / "s.hdf", tmp / "b.zarr")
        a, b = zarr.open_group(str(tmp / "a.zarr")), zarr.open_group(str(tmp / "b.zarr"))
        for name in ("raw", "neuron_ids"):
            assert np.array_equal(a[name][...], b[name][...]), name
    print(f"{'':22s}{'wall s':>9s}{'cpu s':>9s}{'peak MiB':>10s}")
    for label, (wall, cpu, peak) in (
        ("convert (z-slabs)", streamed),
        ("whole-volume copy", baseline),
    ):
        print(f"{label:22s}{wall:9.2f}{cpu:9.2f}{peak / 2**20:10.1f}")
    print(
        f"ratio convert/baseline: wall {streamed[0] / baseline[0]:.2f}, "
        f"cpu {streamed[1] / baseline[1]:.2f}, peak memory {streamed[2] / baseline[2]:.3f}"
    )


if __name__ == "__main__":
    main()
