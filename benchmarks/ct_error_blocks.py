"""Where a CT network's error lives: a 2x2x2 block pattern, or fine-scale noise left in place?

A space-to-depth network unfolds each 2x2x2 block from one position's features; if that left a
block pattern, the error would have extra energy at the Nyquist frequency of each axis. For
each network and noise level this prints the error RMSE (HU, all tissue, 32 pixels and 4 slices
in from the edges), the share of the error energy in the band around Nyquist on each axis (the
error times (-1)^i, averaged over 8 voxels along the axis), and the share that deviates from
its 2x2x2 block mean. Same volume, slices and noise seed as ``bench_ct_quality.py``.

Usage:
    python benchmarks/ct_error_blocks.py --weights W [W ...]   # omit W: the shipped weights
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from bench_ct_quality import LEVELS_HU, SHARED, _central, denoise, load_ct_model, simulate_low_dose
from scipy.ndimage import convolve1d


def nyquist_shares(err: np.ndarray) -> list[float]:
    """Per axis: energy of the error's band around the Nyquist frequency over the total."""
    total = float((err**2).mean())
    shares = []
    for axis in range(3):
        shape = [1, 1, 1]
        shape[axis] = -1
        sign = ((-1.0) ** np.arange(err.shape[axis])).reshape(shape)
        band = convolve1d(err * sign, np.full(8, 1 / 8), axis=axis)
        shares.append(float((band**2).mean()) / total)
    return shares


def within_block_share(err: np.ndarray) -> float:
    """Energy of the error's deviation from its 2x2x2 block means over the total."""
    e = err[tuple(slice(0, n // 2 * 2) for n in err.shape)]
    blocks = e.reshape(e.shape[0] // 2, 2, e.shape[1] // 2, 2, e.shape[2] // 2, 2)
    within = blocks - blocks.mean(axis=(1, 3, 5), keepdims=True)
    return float((within**2).mean() / (e**2).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, nargs="*", default=[None])
    parser.add_argument("--volume", type=Path, default=SHARED / "ct" / "totalsegmentator_ct.nii.gz")
    args = parser.parse_args()
    torch.set_num_threads(2)
    ref, pixel_mm = _central(args.volume, 24)
    print("| weights | added noise (HU) | error RMSE (HU) | Nyquist share x / y / z | "
          "within-block share |\n|---|---|---|---|---|")
    for weights in args.weights:
        model, tiling = load_ct_model(weights, runtime="torch", device="cpu")
        name = "shipped" if weights is None else str(weights)
        for level in LEVELS_HU:
            low = simulate_low_dose(ref, pixel_mm, 2, noise_hu=level, seed=7)
            err = (denoise(model, low.noisy, tiling) - ref)[32:-32, 32:-32, 4:-4]
            shares = " / ".join(f"{v:.3f}" for v in nyquist_shares(err))
            print(f"| {name} | {low.added_noise_hu:.1f} | {np.sqrt((err**2).mean()):.1f} | "
                  f"{shares} | {within_block_share(err):.3f} |")


if __name__ == "__main__":
    main()
