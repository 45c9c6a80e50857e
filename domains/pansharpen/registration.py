"""Sub-pixel co-registration of MS bands against the PAN degraded to MS resolution.

Shifts are estimated with phase correlation upsampled 100 times (``1/100`` MS pixel steps) and,
when one exceeds a threshold, corrected: in memory by a Fourier shift (:func:`correct_shifts`), in
the windowed pipeline by offsetting the resampling coordinates
(:func:`domains.pansharpen.pairing.upsample_ms`).

References:
    Guizar-Sicairos, Thurman, Fienup, "Efficient subpixel image registration algorithms",
    Optics Letters 33(2), 2008.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.registration import phase_cross_correlation

DEFAULT_THRESHOLD = 0.1
"""Largest shift (MS pixels) left uncorrected."""


@dataclass(frozen=True)
class Registration:
    """Per-band shifts and whether they are applied.

    Attributes:
        shifts: ``(C, 2)`` ``(dy, dx)`` in MS pixels that move each band onto the PAN
            (``scipy.ndimage.fourier_shift`` convention).
        errors: ``(C,)`` phase-correlation errors (lower is more reliable).
        corrected: True when the largest shift exceeded the threshold.
    """

    shifts: np.ndarray
    errors: np.ndarray
    corrected: bool

    def report(self) -> dict[str, object]:
        """JSON-friendly summary."""
        return {
            "shifts_ms_px": [[round(float(v), 3) for v in s] for s in self.shifts],
            "corrected": self.corrected,
        }


def _prepare(img: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-std float64 with a Hann taper so the borders do not dominate."""
    x = np.asarray(img, dtype=np.float64)
    x = (x - x.mean()) / max(float(x.std()), 1e-12)
    win = np.outer(np.hanning(x.shape[0]), np.hanning(x.shape[1]))
    return x * win


def estimate_shifts(
    ms_lr: np.ndarray, pan_lr: np.ndarray, upsample_factor: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Shift of each MS band relative to the PAN at MS resolution.

    Args:
        ms_lr: ``(C, h, w)`` MS bands.
        pan_lr: ``(h, w)`` PAN degraded onto the MS grid.
        upsample_factor: phase-correlation precision is ``1 / upsample_factor`` pixel.

    Returns:
        ``(shifts (C, 2), errors (C,))``; ``shifts[k]`` is the ``(dy, dx)`` that registers band
        ``k`` onto the PAN.
    """
    ref = _prepare(pan_lr)
    shifts, errors = [], []
    for band in ms_lr:
        shift, error, _ = phase_cross_correlation(
            ref, _prepare(band), upsample_factor=upsample_factor
        )
        shifts.append(shift)
        errors.append(error)
    return np.asarray(shifts, dtype=np.float64), np.asarray(errors, dtype=np.float64)


def register(
    ms_lr: np.ndarray, pan_lr: np.ndarray, threshold: float = DEFAULT_THRESHOLD
) -> Registration:
    """Estimate the shifts and decide whether they need correcting (largest > ``threshold``)."""
    shifts, errors = estimate_shifts(ms_lr, pan_lr)
    corrected = bool(np.abs(shifts).max() > threshold)
    return Registration(shifts, errors, corrected)


def correct_shifts(ms_lr: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Apply ``(C, 2)`` sub-pixel shifts to ``(C, h, w)`` bands by Fourier phase ramps."""
    out = np.empty(ms_lr.shape, dtype=np.float64)
    for k, band in enumerate(np.asarray(ms_lr, dtype=np.float64)):
        spectrum = ndimage.fourier_shift(np.fft.fftn(band), shifts[k])
        out[k] = np.fft.ifftn(spectrum).real
    return out.astype(np.float32)
