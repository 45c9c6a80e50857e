"""The metric convention of sat-sr.

Values are compared in physical units: stored values times the band scale plus the band offset
(GeoTIFF ``scales``/``offsets``, e.g. Landsat TOA reflectance), else the stored values. A
``border``-pixel frame is cropped. PSNR and SSIM are computed per band with the reference
band's ``max - min`` as the data range (SSIM 11x11 Gaussian, sigma 1.5), then averaged over
bands; SAM (degrees) is averaged over valid pixels; RMSE is over all bands and valid pixels.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.metrics import structural_similarity

from suite.io.raster import RasterMeta
from suite.metrics import psnr, ssim
from suite.metrics.spectral import sam


def to_reflectance(data: np.ndarray, meta: RasterMeta) -> np.ndarray:
    """``(C, H, W)`` stored values -> float64 physical values with the band scales/offsets."""
    scales = np.asarray(meta.scales[: data.shape[0]] or (1.0,) * data.shape[0])[:, None, None]
    offsets = np.asarray(meta.offsets[: data.shape[0]] or (0.0,) * data.shape[0])[:, None, None]
    return data.astype(np.float64) * scales + offsets


def sr_metrics(pred: np.ndarray, ref: np.ndarray, valid: np.ndarray | None,
               border: int) -> dict[str, float]:
    """PSNR (dB), SSIM, SAM (degrees) and RMSE of ``(C, H, W)`` arrays, borders cropped."""
    b = slice(border, -border if border else None)
    p, r = pred[:, b, b], ref[:, b, b]
    mask = np.ones(p.shape[1:], bool) if valid is None else valid[b, b]
    ranges = [float(np.ptp(r[c][mask])) or 1.0 for c in range(r.shape[0])]
    return {
        "psnr_db": float(np.mean([psnr(p[c][mask], r[c][mask], rng)
                                  for c, rng in enumerate(ranges)])),
        "ssim": float(np.mean([_ssim(p[c], r[c], rng, mask) for c, rng in enumerate(ranges)])),
        "sam_deg": sam(p, r, mask),
        "rmse": float(np.sqrt(np.mean((p[:, mask] - r[:, mask]) ** 2))),
    }


def _ssim(pred: np.ndarray, ref: np.ndarray, data_range: float, mask: np.ndarray) -> float:
    """SSIM of one band; with pixels without data, the mean of the SSIM map over the positions
    whose whole 11 x 11 window has data (where every pixel has data, the plain mean, which
    skimage takes over the positions a whole window fits)."""
    if mask.all():
        return ssim(pred, ref, data_range)
    fill = float(ref[mask].mean()) if mask.any() else 0.0
    _, smap = structural_similarity(np.where(mask, pred, fill), np.where(mask, ref, fill),
                                    data_range=data_range, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, full=True)
    inner = ndimage.binary_erosion(mask, structure=np.ones((11, 11), bool), border_value=0)
    return float(smap[inner].mean()) if inner.any() else float("nan")
