"""Fundus image quality inside the FOV (the metric convention of the domain).

Images are ``(H, W, 3)`` float in ``[0, 1]`` (8-bit / 255, 16-bit / 65535), data range 1.

- ``psnr_fov``: PSNR over the FOV pixels, all three channels;
- ``ssim_fov``: SSIM (11-tap Gaussian window, sigma 1.5, per channel) averaged over FOV pixels;
- ``psnr_vessel``: PSNR over vessel pixels (the 12 % of FOV pixels with the highest Sato
  vesselness of the clean reference, or a user's label mask);
- ``vessel_auc``: ROC AUC of the Sato vesselness of the image against those vessel pixels.
"""

from __future__ import annotations

import numpy as np
import torch

from domains.fundus.vessels import vessel_auc, vessel_mask, vesselness
from suite.losses import ssim_map
from suite.metrics import psnr


def ssim_in_mask(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> float:
    """Mean of the per-pixel SSIM map (channels averaged) over ``mask``, data range 1."""
    p = torch.from_numpy(np.ascontiguousarray(pred.transpose(2, 0, 1), np.float64))[None]
    r = torch.from_numpy(np.ascontiguousarray(ref.transpose(2, 0, 1), np.float64))[None]
    smap = _full_ssim_map(p, r)
    return float(smap[torch.from_numpy(mask)].mean())


def _full_ssim_map(p: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """SSIM map ``(H, W)`` padded back to full size by edge replication (channels averaged)."""
    smap = ssim_map(p, r, 1.0).mean(1, keepdim=True)
    pad_h, pad_w = p.shape[2] - smap.shape[2], p.shape[3] - smap.shape[3]
    pads = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
    return torch.nn.functional.pad(smap, pads, mode="replicate")[0, 0]


def fundus_metrics(pred: np.ndarray, ref: np.ndarray, fov: np.ndarray,
                   vessels: np.ndarray | None = None) -> dict[str, float]:
    """Metrics of ``pred`` against ``ref`` under the convention of this module.

    Args:
        pred: ``(H, W, 3)`` in ``[0, 1]``.
        ref: same shape.
        fov: ``(H, W)`` bool.
        vessels: ``(H, W)`` bool vessel pixels; default from the reference's vesselness.
    """
    if vessels is None:
        vessels = vessel_mask(vesselness(ref, fov), fov)
    return {
        "psnr_fov": psnr(pred[fov], ref[fov], data_range=1.0),
        "ssim_fov": ssim_in_mask(pred, ref, fov),
        "psnr_vessel": psnr(pred[vessels], ref[vessels], data_range=1.0),
        "vessel_auc": vessel_auc(vesselness(pred, fov), vessels, fov),
    }
