"""Image quality metrics: full-reference (PSNR, SSIM) and no-reference (NIQE, BRISQUE-feature)."""

from __future__ import annotations

from suite.metrics.image import noise_std_flat, psnr, ssim
from suite.metrics.noref import brisque_distance, brisque_features, niqe

__all__ = ["brisque_distance", "brisque_features", "niqe", "noise_std_flat", "psnr", "ssim"]
