"""Inpainting metrics inside and outside the mask.

Convention: images ``(C, H, W)`` in the raster's normalized units; ``data_range`` is the
reference's max minus min over all bands and pixels (unless given). PSNR and MAE over the
masked (or clear) pixels of all bands; SSIM is the mean of the local SSIM map (Gaussian
window sigma 1.5, 11x11, per band, averaged over bands) over the masked (or clear) pixels
whose window lies inside the image; SAM in degrees over the masked (or clear) pixels.
"""

from __future__ import annotations

import numpy as np
import torch

from suite.losses.ssim import ssim_map
from suite.metrics.spectral import sam

HALF = 5  # 11x11 SSIM window: the valid map starts 5 pixels in


def _region(pred: np.ndarray, ref: np.ndarray, region: np.ndarray, data_range: float,
            smap: np.ndarray) -> dict[str, float]:
    if not region.any():
        return {k: float("nan") for k in ("psnr", "ssim", "sam", "mae")}
    diff = pred[:, region] - ref[:, region]
    mse = float(np.mean(diff**2))
    inner = region[HALF:-HALF, HALF:-HALF]
    return {
        "psnr": float("inf") if mse == 0 else float(10 * np.log10(data_range**2 / mse)),
        "ssim": float(smap[inner].mean()) if inner.any() else float("nan"),
        "sam": sam(pred, ref, mask=region),
        "mae": float(np.mean(np.abs(diff))),
    }


def masked_metrics(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray,
                   data_range: float | None = None) -> dict[str, float]:
    """PSNR (dB), SSIM, SAM (degrees) and MAE inside and outside ``mask`` ``(H, W)``."""
    pred, ref = np.asarray(pred, np.float64), np.asarray(ref, np.float64)
    rng = float(ref.max() - ref.min()) if data_range is None else data_range
    smap = ssim_map(torch.from_numpy(pred)[:, None], torch.from_numpy(ref)[:, None],
                    max(rng, 1e-12))[:, 0].mean(0).numpy()
    out: dict[str, float] = {}
    for name, region in (("in_mask", mask), ("out_mask", ~mask)):
        out |= {f"{k}_{name}": v for k, v in _region(pred, ref, region, rng, smap).items()}
    return out
