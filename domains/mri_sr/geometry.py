"""Through-plane geometry: slice profiles, thick-slice sampling and the affines that go with them.

Index convention along the slice axis (high-resolution voxel units): a thick slice ``j`` made at
factor ``s`` covers high-resolution slices ``[j s, (j + 1) s)``, so its centre is
``j s + (s - 1) / 2``. Super-resolution of ``N`` slices at factor ``s`` puts ``round(N s)`` thin
slices at input positions ``-1/2 + (k + 1/2) / s``: the thin slices tile exactly the extent of
the thick ones, so output and input overlay in any viewer, and degrade-then-enhance returns the
original grid.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.interpolate import make_interp_spline
from scipy.special import ndtr

Profile = Literal["gaussian", "box"]
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


def slice_profile_matrix(n_hr: int, scale: float, profile: Profile = "gaussian") -> np.ndarray:
    """Weights that average thin slices into thick ones.

    Args:
        n_hr: number of high-resolution slices.
        scale: thick/thin thickness ratio (> 1, non-integer allowed).
        profile: ``"gaussian"``: each thin voxel integrated under a Gaussian of FWHM
            ``sqrt(s^2 - 1)`` thin voxels, which convolved with the thin slice's own ~1-voxel
            profile gives a thick slice of FWHM ``s``; ``"box"``: the exact overlap of each thin
            voxel with the thick slab ``[j s, (j + 1) s)``.

    Returns:
        ``(floor(n_hr / s), n_hr)`` float64 matrix with rows summing to 1.
    """
    n_lr = int(np.floor(n_hr / scale + 1e-9))
    centres = np.arange(n_lr) * scale + (scale - 1.0) / 2.0
    lo = np.arange(n_hr)[None, :] - 0.5 - centres[:, None]
    hi = lo + 1.0
    if profile == "box":
        w = np.clip(np.minimum(hi, scale / 2) - np.maximum(lo, -scale / 2), 0.0, None)
    else:
        sigma = max(np.sqrt(max(scale**2 - 1.0, 0.0)), 1e-3) / FWHM_PER_SIGMA
        w = ndtr(hi / sigma) - ndtr(lo / sigma)
    return w / w.sum(axis=1, keepdims=True)


def thick_slices(
    data: np.ndarray, axis: int, scale: float, profile: Profile = "gaussian"
) -> np.ndarray:
    """Blur ``data`` along ``axis`` with the slice profile and keep one slice per thick slab.

    Args:
        data: ``(I, J, K)`` float array.
        axis: the slice axis.
        scale: thickness ratio ``s``.
        profile: ``"gaussian"`` or ``"box"`` (see :func:`slice_profile_matrix`).

    Returns:
        float32 array with ``floor(n / s)`` slices along ``axis``.
    """
    m = slice_profile_matrix(data.shape[axis], scale, profile)
    moved = np.moveaxis(np.asarray(data, dtype=np.float64), axis, 0)
    out = np.tensordot(m, moved, axes=1)
    return np.moveaxis(out, 0, axis).astype(np.float32)


def resampled_affine(affine: np.ndarray, axis: int, step: float, offset: float) -> np.ndarray:
    """Affine of a grid whose slice ``k`` sits at input index ``offset + k * step`` on ``axis``.

    Args:
        affine: (4, 4) voxel-to-world affine of the input.
        axis: the resampled voxel axis.
        step: new slice step in input voxels (``s`` for thick slices, ``1 / s`` for SR).
        offset: input index of the new slice 0.

    Returns:
        (4, 4) float64 affine: spacing along ``axis`` times ``step``, origin moved by ``offset``.
    """
    t = np.eye(4)
    t[axis, axis] = step
    t[axis, 3] = offset
    return np.asarray(affine, dtype=np.float64) @ t


def thick_affine(affine: np.ndarray, axis: int, scale: float) -> np.ndarray:
    """Affine of :func:`thick_slices` output: slab centres at ``j s + (s - 1) / 2``."""
    return resampled_affine(affine, axis, scale, (scale - 1.0) / 2.0)


def sr_positions(n: int, scale: float) -> np.ndarray:
    """Input indices of the ``round(n s)`` thin slices that tile ``n`` thick ones."""
    count = round(n * scale)
    return -0.5 + (np.arange(count) + 0.5) / scale


def sr_affine(affine: np.ndarray, axis: int, n: int, scale: float) -> np.ndarray:
    """Affine of the super-resolved grid (spacing / s, origin shifted by ``-(s - 1) / 2s``)."""
    return resampled_affine(affine, axis, 1.0 / scale, float(sr_positions(n, scale)[0]))


def cubic_upsample(data: np.ndarray, axis: int, scale: float) -> np.ndarray:
    """Cubic B-spline interpolation along ``axis`` onto the :func:`sr_positions` grid.

    Positions outside the first and last slice centres take the edge value (no extrapolation).

    Args:
        data: ``(I, J, K)`` array with at least 4 slices along ``axis``.
        axis: the slice axis.
        scale: through-plane factor ``s``.

    Returns:
        float32 array with ``round(n s)`` slices along ``axis``.
    """
    n = data.shape[axis]
    spline = make_interp_spline(np.arange(n), np.asarray(data, np.float64), k=3, axis=axis)
    out = spline(np.clip(sr_positions(n, scale), 0.0, n - 1.0))
    return np.asarray(out, dtype=np.float32)
