"""Thick-slice acquisition model: slice profile + decimation, in-plane k-space truncation,
Rician noise. ``suite degrade mri-sr`` and the training pairs use the same functions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from domains.mri_sr.geometry import Profile, thick_affine, thick_slices
from domains.mri_sr.sr import intensity_scale


@dataclass(frozen=True)
class Acquisition:
    """What to simulate.

    Attributes:
        scale: new slice thickness / old (> 1).
        axis: slice axis.
        profile: ``"gaussian"`` or ``"box"`` slice profile.
        kspace: fraction of the in-plane k-space kept along each in-plane axis (1 = none).
        noise: Rician noise sigma as a fraction of the input's 99.5th percentile (0 = none).
    """

    scale: float
    axis: int
    profile: Profile = "gaussian"
    kspace: float = 1.0
    noise: float = 0.0


def truncate_kspace(data: np.ndarray, axis: int, keep: float) -> np.ndarray:
    """Zero the outer in-plane k-space (complex result), as a smaller acquisition matrix does.

    Args:
        data: ``(I, J, K)`` real array.
        axis: slice axis (not transformed).
        keep: fraction in ``(0, 1]`` of the centred frequencies kept along each in-plane axis.

    Returns:
        complex128 image of the same shape (ringing at edges, as zero-filled data has).
    """
    axes = tuple(a for a in range(3) if a != axis)
    spectrum = np.fft.fftshift(np.fft.fftn(data, axes=axes), axes=axes)
    for a in axes:
        n = data.shape[a]
        half = max(1, round(n * keep / 2))
        mask = np.zeros(n, bool)
        mask[max(0, n // 2 - half) : n // 2 + half] = True
        shape = [1, 1, 1]
        shape[a] = n
        spectrum = spectrum * mask.reshape(shape)
    return np.fft.ifftn(np.fft.ifftshift(spectrum, axes=axes), axes=axes)


def rician(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of ``image`` plus complex Gaussian noise of std ``sigma`` per channel."""
    noisy = image + rng.normal(0.0, sigma, image.shape) + 1j * rng.normal(0.0, sigma, image.shape)
    return np.abs(noisy)


def acquire(
    data: np.ndarray, affine: np.ndarray, acq: Acquisition, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate a thick-slice acquisition of a high-resolution volume.

    Args:
        data: ``(I, J, K)`` float32 volume.
        affine: its (4, 4) voxel-to-world affine.
        acq: the acquisition to simulate.
        rng: random generator for the noise.

    Returns:
        ``(thick, thick_affine)``: float32 volume with ``floor(n / s)`` slices and its affine
        (spacing times ``s`` along the axis, origin at the centre of the first slab).
    """
    thick: np.ndarray = thick_slices(data, acq.axis, acq.scale, acq.profile)
    if acq.kspace < 1.0:
        thick = truncate_kspace(thick, acq.axis, acq.kspace)
    if acq.noise > 0:
        thick = rician(thick, acq.noise * intensity_scale(data), rng)
    elif np.iscomplexobj(thick):
        thick = np.abs(thick)
    return thick.astype(np.float32), thick_affine(affine, acq.axis, acq.scale)
