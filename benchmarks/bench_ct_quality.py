"""CT denoising quality on a held-out real volume at two simulated doses, vs classical methods.

Convention (every number): PSNR and SSIM on HU clipped to [-160, 240] (data range 400);
SSIM with an 11x11 Gaussian window (sigma 1.5) averaged over axial slices; the classical
methods run slice by slice in 2D with their parameter tuned on the reference (an oracle, which
favours them). Added noise is simulated in the projection domain (``suite degrade``'s model)
and measured as its std in soft tissue.

The ``--adapt`` row fine-tunes on each noisy input itself (``enhance --adapt``, no reference
involved); its settings were chosen on slices 10-33 (``--start 10 --no-classical``), disjoint
from the central slices of the table.

Usage:
    python benchmarks/bench_ct_quality.py [--volume PATH] [--weights W] [--slices N] [--out MD]
        [--start Z] [--no-classical] [--no-adapt] [--adapt steps=200 lr=2e-4 ...]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.restoration import denoise_nl_means

from domains.ct_denoise.adapt import adapt_model
from domains.ct_denoise.config import AdaptConfig
from domains.ct_denoise.lowdose import simulate_low_dose
from domains.ct_denoise.metrics import ct_metrics
from domains.ct_denoise.pipeline import load_ct_model
from domains.ct_denoise.volumes import denoise, to_axial
from suite.io.volume import read_volume

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
LEVELS_HU = (35.0, 75.0)
Denoiser = Callable[[np.ndarray, float], np.ndarray]


def per_slice(fn: Callable[[np.ndarray, float], np.ndarray]) -> Denoiser:
    """Apply a 2D denoiser to every axial slice of an (X, Y, Z) HU volume."""
    return lambda vol, p: np.stack([fn(vol[..., z], p) for z in range(vol.shape[-1])], -1)


def gaussian(img: np.ndarray, sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter(img, sigma)


def nlm(img: np.ndarray, h: float) -> np.ndarray:
    return denoise_nl_means(img, h=h, patch_size=5, patch_distance=6, fast_mode=True)


def bm3d_slice(img: np.ndarray, sigma: float) -> np.ndarray:
    import bm3d

    return np.asarray(bm3d.bm3d(img, sigma_psd=sigma), dtype=np.float32)


def best(fn: Denoiser, noisy: np.ndarray, ref: np.ndarray, grid: list[float]) -> tuple[float, dict]:
    """Oracle parameter choice: the grid value with the highest soft-window PSNR."""
    scored = [(ct_metrics(fn(noisy, p), ref), p) for p in grid]
    metrics, param = max(scored, key=lambda s: s[0]["psnr_soft"])
    return param, metrics


def _central(volume: Path, slices: int, start: int | None = None) -> tuple[np.ndarray, float]:
    """``slices`` axial slices in HU (central ones unless ``start``), and the pixel size (mm)."""
    axial = to_axial(read_volume(volume))
    z0 = max(0, axial.hu.shape[-1] // 2 - slices // 2) if start is None else start
    return axial.hu[..., z0:z0 + slices], axial.pixel_mm


@dataclass
class Options:
    """What the table includes."""

    classical: bool = True
    adapt: AdaptConfig | None = None
    seed: int = 7
    runtime: str = "torch"
    attenuation_scale: float = 1.0


def run(volume: Path, weights: Path | None, slices: int, start: int | None,
        options: Options) -> list[str]:
    ref, pixel_mm = _central(volume, slices, start)
    model, tiling = load_ct_model(weights, runtime=options.runtime, device="cpu")
    which = "default weights" if weights is None else f"weights {weights.parent.name}"
    runtime = "" if options.runtime == "torch" else f", {options.runtime}"
    label = f"suite ct-denoise ({which}{runtime})"
    rows = ["| added noise (HU, soft tissue) | method | parameter | PSNR [-160,240] dB | SSIM "
            "[-160,240] | residual noise HU | seconds |", "|---|---|---|---|---|---|---|"]
    for level in LEVELS_HU:
        low = simulate_low_dose(ref, pixel_mm, 2, noise_hu=level, seed=options.seed,
                                attenuation_scale=options.attenuation_scale)
        rows += _level_rows(low.noisy, ref, low.added_noise_hu, options.classical)
        start_time = time.time()
        pred = denoise(model, low.noisy, tiling)
        rows.append(_row(low.added_noise_hu, label, "-",
                         ct_metrics(pred, ref), time.time() - start_time))
        if options.adapt is not None:
            start_time = time.time()
            adapted, info = adapt_model(model, low.noisy, pred, pixel_mm, options.adapt, volume,
                                        noise_channel=tiling.noise_channel)
            out = denoise(adapted, low.noisy, tiling)
            rows.append(_row(low.added_noise_hu, f"suite ct-denoise --adapt ({options.adapt.steps}"
                             " steps)", f"noise est. {info['noise_hu']:.1f} HU",
                             ct_metrics(out, ref), time.time() - start_time))
    return rows


def blend_rows(volume: Path, weights: Path | None, slices: int, blends: list[float]) -> list[str]:
    """Soft-window PSNR of ``pred + b * (noisy - pred)`` for each ``b``, at each level."""
    ref, pixel_mm = _central(volume, slices)
    model, tiling = load_ct_model(weights, device="cpu")
    rows = ["| added noise (HU) | blend b | PSNR [-160,240] dB | SSIM [-160,240] |",
            "|---|---|---|---|"]
    for level in LEVELS_HU:
        low = simulate_low_dose(ref, pixel_mm, 2, noise_hu=level, seed=7)
        pred = denoise(model, low.noisy, tiling)
        for b in [0.0, *blends]:
            m = ct_metrics(pred + b * (low.noisy - pred), ref)
            rows.append(f"| {low.added_noise_hu:.1f} | {b:g} | {m['psnr_soft']:.2f} | "
                        f"{m['ssim_soft']:.4f} |")
    return rows


def _level_rows(noisy: np.ndarray, ref: np.ndarray, added: float, classical: bool) -> list[str]:
    methods: list[tuple[str, Denoiser, list[float]]] = [
        ("Gaussian smoothing", per_slice(gaussian), [0.3, 0.4, 0.5, 0.6, 0.75, 1.0, 1.5]),
        ("non-local means (skimage)", per_slice(nlm),
         [x * added for x in (0.6, 0.8, 1.0, 1.2, 1.4, 1.7)]),
        ("BM3D (bm3d package)", per_slice(bm3d_slice),
         [x * added for x in (0.8, 1.0, 1.2, 1.4, 1.7, 2.0, 2.5)]),
    ]
    out = [_row(added, "low-dose input", "-", ct_metrics(noisy, ref), 0.0)]
    for name, fn, grid in methods if classical else []:
        start = time.time()
        param, metrics = best(fn, noisy, ref, grid)
        out.append(_row(added, name, f"{param:.3g}", metrics, (time.time() - start) / len(grid)))
    return out


def _row(level: float, name: str, param: str, m: dict, seconds: float) -> str:
    return (f"| {level:.1f} | {name} | {param} | {m['psnr_soft']:.2f} | {m['ssim_soft']:.4f} | "
            f"{m['noise_hu']:.1f} | {seconds:.1f} |")


def _adapt_config(pairs: list[str]) -> AdaptConfig:
    cfg = AdaptConfig()
    for pair in pairs:
        key, value = pair.split("=", 1)
        setattr(cfg, key, type(getattr(cfg, key))(value))
    return cfg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--volume", type=Path, default=SHARED / "ct" / "totalsegmentator_ct.nii.gz")
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--slices", type=int, default=24, help="central axial slices used")
    parser.add_argument("--start", type=int, help="first slice instead of the central ones")
    parser.add_argument("--no-classical", action="store_true", help="model rows only")
    parser.add_argument("--no-adapt", action="store_true", help="no --adapt row")
    parser.add_argument("--adapt", nargs="+", default=[], metavar="KEY=VALUE",
                        help="--adapt settings other than the defaults, e.g. steps=200 lr=2e-4")
    parser.add_argument("--out", type=Path, help="also write the table here (Markdown)")
    parser.add_argument("--seed", type=int, default=7,
                        help="seed of the simulated noise (the table uses 7; others test how "
                             "much the margins depend on one draw)")
    parser.add_argument("--residual-blend", type=float, nargs="+", metavar="B",
                        help="instead of the table: the model's output plus B times the noise it "
                             "removed, per level (a probe of over-smoothing)")
    parser.add_argument("--runtime", default="torch", choices=["torch", "torch-int8", "torch-bf16"],
                        help="the model row on this runtime (as enhance --runtime); other than "
                             "torch needs --no-adapt")
    parser.add_argument("--attenuation-scale", type=float, default=1.0,
                        help="simulate the noise with the line integrals scaled by this (as "
                             "data.attenuation_scales): above 1 the streakier texture of a more "
                             "attenuating patient, such as the training series, at the same level")
    args = parser.parse_args()
    if args.runtime != "torch" and not args.no_adapt:
        parser.error(f"--runtime {args.runtime} has no --adapt row: add --no-adapt")
    if args.residual_blend:
        print("\n".join(blend_rows(args.volume, args.weights, args.slices, args.residual_blend)))
        return
    adapt = None if args.no_adapt else _adapt_config(args.adapt)
    rows = run(args.volume, args.weights, args.slices, args.start,
               Options(classical=not args.no_classical, adapt=adapt, seed=args.seed,
                       runtime=args.runtime, attenuation_scale=args.attenuation_scale))
    where = "central" if args.start is None else f"from slice {args.start},"
    text = (f"Volume: {args.volume.name}, {where} {args.slices} axial slices, noise seed "
            f"{args.seed}, attenuation scale {args.attenuation_scale:g}; --adapt: {adapt}"
            "\n\n" + "\n".join(rows))
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
