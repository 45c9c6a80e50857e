"""CT image quality under the stated convention (HU windows, slice-averaged 2D SSIM)."""

from __future__ import annotations

import numpy as np

from domains.ct_denoise.lowdose import soft_tissue_mask
from suite.metrics import psnr, ssim

WINDOWS = {"soft": (-160.0, 240.0), "wide": (-1000.0, 1000.0)}


def ct_metrics(pred_hu: np.ndarray, ref_hu: np.ndarray) -> dict[str, float]:
    """PSNR and SSIM in two HU windows, plus the noise std of pred - ref in soft tissue.

    Args:
        pred_hu: (X, Y, Z) HU, Z the axial slice axis.
        ref_hu: same shape.

    Returns:
        ``psnr_soft``/``ssim_soft``: HU clipped to [-160, 240], data range 400;
        ``psnr_wide``/``ssim_wide``: HU clipped to [-1000, 1000], data range 2000; SSIM with an
        11x11 Gaussian window (sigma 1.5) averaged over axial slices; ``noise_hu``: std of
        ``pred - ref`` in soft tissue of the reference (eroded HU in [-100, 200]).
    """
    out: dict[str, float] = {}
    for name, (lo, hi) in WINDOWS.items():
        p, r = np.clip(pred_hu, lo, hi), np.clip(ref_hu, lo, hi)
        out[f"psnr_{name}"] = psnr(p, r, data_range=hi - lo)
        out[f"ssim_{name}"] = ssim(p, r, data_range=hi - lo, slice_axis=2)
    mask = np.stack([soft_tissue_mask(ref_hu[..., z]) for z in range(ref_hu.shape[-1])], -1)
    diff = (pred_hu - ref_hu)[mask]
    out["noise_hu"] = float(diff.std()) if diff.size else float("nan")
    return out
