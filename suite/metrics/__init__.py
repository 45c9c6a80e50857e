"""Image quality metrics: full-reference (PSNR, SSIM) and no-reference (NIQE, BRISQUE-feature)."""

from __future__ import annotations

from suite.metrics.image import noise_std_flat, psnr, ssim

__all__ = ["noise_std_flat", "psnr", "ssim"]
