"""What ``model.noise_channel`` networks are told: the per-volume noise estimate
(``volume_noise_hu``) on the training pairs and on the held-out benchmark volume.

A conditioned network only helps if the estimate reads the same on both for the same added noise.
This prints, for the clean volumes and per simulated level, the estimate on the training series
(each in-plane bin of the recipe, one draw; the simulation is the recipe's, so ``--cache``
reuses a training run's cache) and on the central 24 slices of the benchmark volume (noise seed
7, as ``bench_ct_quality.py``); then, per ``data.attenuation_scales`` value, how much of the
simulated noise sits at the finest scale on each volume::

    python benchmarks/ct_noise_estimates.py --cache /tmp/ctcache
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from skimage.restoration import estimate_sigma

from domains.ct_denoise.adapt import central_slab
from domains.ct_denoise.config import DEFAULT_YAML, CtConfig
from domains.ct_denoise.lowdose import (
    calibrate_photons,
    line_integrals,
    simulate_low_dose,
    slice_noise,
    soft_tissue_mask,
    volume_noise_hu,
)
from domains.ct_denoise.train import Axial, binned_copies, load_axial, simulated_pairs
from domains.ct_denoise.volumes import to_axial
from suite.config import load_config
from suite.io.volume import read_volume

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "ct"
BENCH_LEVELS = (36.6, 76.7)  # the added noise that bench_ct_quality.py's two doses give


def training_volumes(data: Path) -> list[Axial]:
    """The training series at the shipped recipe's in-plane bins."""
    cfg = load_config(CtConfig, DEFAULT_YAML)
    return binned_copies(load_axial([data]), cfg.data.inplane_bins)


def training_rows(volumes: list[Axial], cache: Path | None) -> list[str]:
    cfg = load_config(CtConfig, DEFAULT_YAML)  # the shipped recipe's noise levels
    cfg.data.realizations, cfg.data.cache, cfg.data.workers = 1, cache, 2
    inputs, _ = simulated_pairs(volumes, cfg)
    levels = cfg.data.noise_levels_hu
    # the clean series first: what the estimate reads before any noise is added
    rows = [f"| training, {vol.pixel_mm:.2f} mm pixels | 0 | {volume_noise_hu(vol.hu):.1f} |"
            for vol in volumes]
    for index, x in enumerate(inputs):
        vol = volumes[index // len(levels)]
        rows.append(f"| training, {vol.pixel_mm:.2f} mm pixels | {levels[index % len(levels)]:.0f}"
                    f" | {volume_noise_hu(x[0] * 1000.0):.1f} |")
    return rows


def benchmark_rows(axial: Axial) -> list[str]:
    clean = central_slab(axial.hu, 24).copy()  # bench_ct_quality.py's slices
    rows = [f"| benchmark, {axial.pixel_mm:.2f} mm pixels | 0 | {volume_noise_hu(clean):.1f} |"]
    for level in (20.0, *BENCH_LEVELS, 100.0):
        noisy = simulate_low_dose(clean, axial.pixel_mm, 2, noise_hu=level, seed=7).noisy
        rows.append(f"| benchmark, {axial.pixel_mm:.2f} mm pixels | {level:g} "
                    f"| {volume_noise_hu(noisy):.1f} |")
    return rows


def finest_fraction(slice_hu: np.ndarray, pixel_mm: float, scale: float) -> float:
    """How much of the added noise sits at the finest scale: the wavelet estimate of the noise
    alone over its standard deviation, in soft tissue (50 HU added, one draw)."""
    photons = calibrate_photons(slice_hu, pixel_mm, 50.0, attenuation_scale=scale)
    noise = slice_noise(slice_hu, pixel_mm, photons, np.random.default_rng(1), scale)
    mask = soft_tissue_mask(slice_hu)
    rows, cols = np.nonzero(mask)
    box = noise[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    return float(estimate_sigma(box) / noise[mask].std())


def texture_rows(volumes: list[Axial], axial: Axial, scales: list[float]) -> list[str]:
    named = [(f"training, {v.pixel_mm:.2f} mm pixels", v) for v in volumes]
    named.append((f"benchmark, {axial.pixel_mm:.2f} mm pixels",
                  Axial(central_slab(axial.hu, 24).copy(), 2, axial.pixel_mm)))
    rows = []
    for name, vol in named:
        middle = np.asarray(vol.hu[..., vol.hu.shape[-1] // 2], dtype=np.float64)
        longest = float(line_integrals(middle, vol.pixel_mm).max())
        cells = " | ".join(f"{finest_fraction(middle, vol.pixel_mm, x):.2f}" for x in scales)
        rows.append(f"| {name} | {longest:.1f} | {cells} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "totalsegmentator_ct_dicom")
    parser.add_argument("--volume", type=Path, default=SHARED / "totalsegmentator_ct.nii.gz")
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.8, 0.65, 0.5],
                        help="attenuation scales of the texture table")
    args = parser.parse_args()
    volumes, axial = training_volumes(args.data), to_axial(read_volume(args.volume))
    print("| volume | added noise (HU, soft tissue) | volume_noise_hu (HU) |")
    print("|---|---|---|")
    for row in training_rows(volumes, args.cache) + benchmark_rows(axial):
        print(row)
    print("\nFinest-scale fraction of the added noise (middle slice, 50 HU, wavelet estimate of "
          "the noise alone / its std in soft tissue), by data.attenuation_scales:\n")
    print(f"| volume | longest line integral | {' | '.join(f'scale {x:g}' for x in args.scales)} |")
    print("|---|---|" + "---|" * len(args.scales))
    for row in texture_rows(volumes, axial, args.scales):
        print(row)


if __name__ == "__main__":
    main()
