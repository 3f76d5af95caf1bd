"""Speed of the synthetic sample generator, against baselines measured in the same run.

1. Neuron labels: the block-candidate power diagram (:func:`synful.synthetic.neurons.power_diagram`
   with its default 6 candidates per 8 x 8 block) against the exact diagram (every neuron
   compared at every voxel) on the same tubes and warps; prints the speed-up and the fraction
   of voxels where the two differ.
2. A whole sample (``synthesize_sample``) timed as a multiple of one baseline pass: drawing
   and Gaussian-filtering white noise over the raw volume (sigma 1 in-plane), the cheapest
   thing a generator of textured volumes does.

Times are process CPU seconds (the machine is shared); set OPENBLAS_NUM_THREADS=1 for one core.

Usage: python benchmarks/bench_synthesize.py [--shape 32 320 320] [--padding 8 96 96] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import ndimage

from synful.synthetic import neurons, synthesize_sample
from synful.synthetic.noise import smooth_noise_upsampled


def cpu_seconds(function, *args, **kwargs):
    start = time.process_time()
    result = function(*args, **kwargs)
    return time.process_time() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", nargs=3, type=int, default=[32, 320, 320])
    parser.add_argument("--padding", nargs=3, type=int, default=[8, 96, 96])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    full = tuple(s + 2 * p for s, p in zip(args.shape, args.padding))

    rng = np.random.default_rng(args.seed)
    centres, weights = neurons.neuron_tubes(rng, full, 60.0)
    warp_y = smooth_noise_upsampled(rng, full, neurons.WARP_SCALES, 4)
    warp_x = smooth_noise_upsampled(rng, full, neurons.WARP_SCALES, 4)
    fast_s, fast = cpu_seconds(neurons.power_diagram, centres, weights, warp_y, warp_x)
    exact_s, exact = cpu_seconds(
        neurons.power_diagram, centres, weights, warp_y, warp_x, candidates=len(weights)
    )
    print(f"volume {full} voxels, {len(weights)} neurons")
    print(
        f"neuron labels: exact {exact_s:.2f} s, block candidates {fast_s:.2f} s: "
        f"{exact_s / fast_s:.1f}x faster, {np.mean(fast != exact):.2e} of voxels differ"
    )

    def baseline():
        noise = np.random.default_rng(0).standard_normal(full, dtype=np.float32)
        return ndimage.gaussian_filter(noise, (0, 1, 1))

    base_s, _ = cpu_seconds(baseline)
    sample_s, sample = cpu_seconds(synthesize_sample, args.seed, args.shape, args.padding)
    pairs = len(sample.annotations.partners)
    print(
        f"whole sample: {sample_s:.2f} s = {sample_s / base_s:.1f}x one filtered-noise pass "
        f"({base_s:.2f} s); {pairs} partner pairs"
    )


if __name__ == "__main__":
    main()
