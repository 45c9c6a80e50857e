"""MRI SR quality under one stated convention (normalized intensities, head mask, 3D SSIM)."""

from __future__ import annotations

import numpy as np

from domains.mri_sr.sr import intensity_scale
from suite.metrics import psnr, ssim

MASK_LEVEL = 0.05  # head/brain mask: reference above 5 % of its 99.5th percentile


def convention() -> str:
    """The convention behind :func:`sr_metrics`, for cards and reports."""
    return (
        "pred and ref divided by the ref's 99.5th percentile of non-zero voxels and clipped to "
        "[0, 1] (data range 1); PSNR over the mask ref > 0.05; SSIM 3D (Gaussian sigma 1.5) "
        "over the mask's bounding box; hf_error_db = 10 log10 of the error energy over the "
        "ref energy at through-plane frequencies above the thick-slice Nyquist 0.5 / s "
        "cycles per voxel (bounding box, lower is better)"
    )


def _normalized(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = intensity_scale(ref)
    p, r = np.clip(pred / s, 0.0, 1.0), np.clip(ref / s, 0.0, 1.0)
    return p, r, r > MASK_LEVEL


def _bbox(mask: np.ndarray) -> tuple[slice, ...]:
    idx = np.argwhere(mask)
    if idx.size == 0:
        return tuple(slice(None) for _ in mask.shape)
    lo, hi = idx.min(0), idx.max(0) + 1
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


def hf_error_db(pred: np.ndarray, ref: np.ndarray, axis: int, scale: float) -> float:
    """Relative error energy (dB) at through-plane frequencies above ``0.5 / scale``."""
    freqs = np.abs(np.fft.fftfreq(ref.shape[axis]))
    band = freqs > 0.5 / scale
    err = np.fft.fft(pred - ref, axis=axis)
    ref_f = np.fft.fft(ref, axis=axis)
    num = float(np.sum(np.abs(np.compress(band, err, axis=axis)) ** 2))
    den = float(np.sum(np.abs(np.compress(band, ref_f, axis=axis)) ** 2))
    return float(10.0 * np.log10(max(num, 1e-20) / max(den, 1e-20)))


def sr_metrics(
    pred: np.ndarray, ref: np.ndarray, axis: int | None = None, scale: float | None = None
) -> dict[str, float]:
    """PSNR, SSIM (and the high-frequency error when ``axis``/``scale`` are known).

    Args:
        pred: ``(I, J, K)`` super-resolved volume, scanner units.
        ref: same grid, the high-resolution reference.
        axis: the through-plane axis, for ``hf_error_db``.
        scale: the through-plane factor, for ``hf_error_db``.

    Returns:
        ``psnr_masked``, ``ssim3d_bbox`` and optionally ``hf_error_db`` (see :func:`convention`).
    """
    p, r, mask = _normalized(pred, ref)
    box = _bbox(mask)
    out = {
        "psnr_masked": psnr(p[mask], r[mask], data_range=1.0),
        "ssim3d_bbox": ssim(p[box], r[box], data_range=1.0),
    }
    if axis is not None and scale is not None:
        out["hf_error_db"] = hf_error_db(p[box], r[box], axis, scale)
    return out
