"""The sat-sr enhance / evaluate / demo steps (read, check, run, write)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from domains.sat_sr import nets as _nets  # noqa: F401  (registers dsen2, espcn_residual)
from domains.sat_sr.adapt import AdaptConfig
from domains.sat_sr.degrade import check_scale, degrade_raster
from domains.sat_sr.metrics import sr_metrics, to_reflectance
from domains.sat_sr.sentinel2 import S2_SCHEME, enhance_s2
from domains.sat_sr.sr import (
    WEIGHTS_DIR,
    enhance_raster,
    gan_weights,
    load_sr,
    shipped_weights,
)
from suite.domain import DemoItem
from suite.errors import InputError, UsageError
from suite.io.raster import check_same_grid, read_raster_meta, read_window, stacked_bands
from suite.sample import sample_data_dir
from suite.viz import save_png
from suite.weights import load_model


def enhance(inputs: list[Path], output: Path, options: argparse.Namespace) -> dict[str, Any]:
    """Dispatch to Sentinel-2 mode or single-raster SR; refuse what neither can take."""
    gan = getattr(options, "gan", False)
    if gan and options.sentinel2:
        raise UsageError("--gan applies to the single-raster default network, not --sentinel2")
    if gan and options.model != "default":
        raise UsageError(f"--gan fine-tunes the default network; not --model {options.model}")
    runtime = getattr(options, "runtime", "torch")
    if options.sentinel2 and runtime != "torch":
        raise UsageError(f"--sentinel2 adapts its network to the scene, so it needs --runtime "
                         f"torch, not {runtime}")
    if options.sentinel2:
        return enhance_sentinel2(inputs, output, options)
    scale = check_scale(options.scale)
    if gan:
        weights = options.weights or gan_weights(scale)
    else:
        weights = options.weights or shipped_weights(options.model, scale)
    model, tiling = load_sr(weights, scale, options.trust_checkpoint, runtime,
                            getattr(options, "device", "auto"))
    with stacked_bands(inputs) as raster:  # band files (one per band) read as one raster
        return enhance_raster(raster, output, model, scale, tiling,
                              progress=not getattr(options, "quiet", False),
                              cog=bool(getattr(options, "cog", False)))


def enhance_sentinel2(inputs: list[Path], output: Path, options: argparse.Namespace
                      ) -> dict[str, Any]:
    """Sentinel-2 mode: the guided network (adapted to the scene) or the classical method."""
    method = getattr(options, "s2_method", "network")
    if method not in ("network", "classical"):
        raise UsageError(f"--s2-method must be network or classical, got {method!r}")
    steps = getattr(options, "s2_adapt_steps", None)
    if steps is not None and steps < 0:
        raise UsageError(f"--s2-adapt-steps must be >= 0, got {steps}")
    path = options.weights or WEIGHTS_DIR / "s2_dsen2.safetensors"
    adapt_cfg = AdaptConfig(steps=steps if steps is not None else 100)

    def load() -> Any:
        nonlocal adapt_cfg
        if method == "classical":
            return None
        model, card = load_model(path, trust=options.trust_checkpoint,
                                 device=getattr(options, "device", "auto"))
        if card.get("normalization", {}).get("scheme") != S2_SCHEME:
            raise InputError(path, "these Sentinel-2 weights predate the guided scheme "
                             f"({S2_SCHEME}); retrain with `suite train sat-sr`")
        known = {k: v for k, v in card.get("adaptation", {}).items()
                 if k in ("steps", "lr", "patch", "batch")}
        adapt_cfg = AdaptConfig(**{**known, **({"steps": steps} if steps is not None else {})})
        return model

    return enhance_s2(inputs, output, load, options.s2_offset, lambda: adapt_cfg,
                      progress=not getattr(options, "quiet", False),
                      cog=bool(getattr(options, "cog", False)))


def evaluate_rasters(pred: Path, ref: Path, scale: int = 2) -> dict[str, float]:
    """Metrics of ``pred`` against ``ref`` on the same grid, in reflectance when known."""
    p, r = read_raster_meta(pred), read_raster_meta(ref)
    if (p.count, p.width, p.height) != (r.count, r.width, r.height):
        raise InputError(pred, f"{p.count}x{p.height}x{p.width} differs from the reference "
                         f"{r.count}x{r.height}x{r.width}")
    check_same_grid(pred, p, r, "the prediction")
    valid = ~np.ma.getmaskarray(read_window(ref, None, masked=True)).any(axis=0)
    return sr_metrics(to_reflectance(read_window(pred, None), p),
                      to_reflectance(read_window(ref, None), r), valid, border=2 * scale)


def run_demo(out_dir: Path) -> list[DemoItem]:
    """Wald-degrade the bundled Landsat 8 excerpt by 2 and super-resolve it back."""
    src = sample_data_dir() / "sat" / "landsat8_LC80200392015216_excerpt.tif"
    low, sr = out_dir / "low_x2.tif", out_dir / "sr_x2.tif"
    degrade_raster(src, low, 2)
    model, tiling = load_sr(shipped_weights("default", 2), 2)
    enhance_raster(low, sr, model, 2, tiling)
    bicubic = _bicubic(low, read_raster_meta(src))
    ref = to_reflectance(read_window(src, None), read_raster_meta(src))
    out = to_reflectance(read_window(sr, None), read_raster_meta(sr))
    metrics = {f"bicubic_{k}": v for k, v in sr_metrics(bicubic, ref, None, 4).items()}
    metrics |= {f"default_{k}": v for k, v in sr_metrics(out, ref, None, 4).items()}
    rgb = [2, 1, 0]
    lo, hi = np.percentile(ref[rgb], [1, 99])
    pics = [save_png(out_dir / f"{n}.png", np.moveaxis(a[rgb], 0, -1), lo, hi)
            for n, a in (("bicubic", bicubic), ("super_resolved", out), ("reference", ref))]
    return [DemoItem("Landsat 8 OLI excerpt (30 m), Wald-degraded to 60 m and restored x2",
                     pics[0], pics[1], metrics, reference_png=pics[2],
                     note="True colour (B4, B3, B2). Before: bicubic from 60 m. Metrics on "
                     "TOA reflectance, all 4 bands, 4-pixel border crop; PSNR/SSIM per band "
                     "with the reference band's range, averaged; SAM in degrees. The scene "
                     "is held out of training.")]


def _bicubic(low: Path, ref_meta: Any) -> np.ndarray:
    """Bicubic x2 of a low-resolution raster in reflectance (PyTorch, align_corners False)."""
    from domains.sat_sr.sentinel2 import upsample2

    meta = read_raster_meta(low)
    up = upsample2(to_reflectance(read_window(low, None), meta))
    return up[:, : ref_meta.height, : ref_meta.width]
