"""No-reference quality: NIQE and a BRISQUE-feature distance, with parameters fitted here.

Both scores use the 36 natural-scene-statistics features of BRISQUE/NIQE: at two scales, the
generalized Gaussian fit (shape, variance) of the MSCN coefficients and the asymmetric
generalized Gaussian fits (shape, mean, left and right variance) of their products with the
horizontal, vertical and two diagonal neighbours.

The pristine models in ``data/niqe_pristine.npz`` are NOT the published ones (Mittal et al.'s
``modelparameters.mat`` and BRISQUE's libsvm model were not copied): they are fitted by
``benchmarks/fit_niqe.py`` on CC0 / public-domain photos shipped with scikit-image. Absolute
values therefore differ from published NIQE/BRISQUE numbers; use them to compare images
processed by different methods under the same convention (lower is better for both).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter
from scipy.special import gamma

from suite.errors import ShapeError

_GRID = np.arange(0.2, 10.0, 0.001)
_R_GGD = gamma(1 / _GRID) * gamma(3 / _GRID) / gamma(2 / _GRID) ** 2
_R_AGGD = gamma(2 / _GRID) ** 2 / (gamma(1 / _GRID) * gamma(3 / _GRID))
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


def to_luminance(image: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    """``(H, W)`` or ``(H, W, 3)`` image -> float64 ``(H, W)`` luminance scaled to ``[0, 255]``.

    RGB uses the ITU-R BT.601 weights of MATLAB's ``rgb2gray``.
    """
    img = np.asarray(image, dtype=np.float64) * (255.0 / data_range)
    if img.ndim == 3 and img.shape[-1] == 3:
        img = img @ np.array([0.2989, 0.5870, 0.1140])
    if img.ndim != 2:
        raise ShapeError("image", "(H, W) or (H, W, 3)", img.shape)
    return img


def mscn(image: np.ndarray, sigma: float = 7 / 6) -> tuple[np.ndarray, np.ndarray]:
    """Mean-subtracted contrast-normalized coefficients and the local deviation map.

    Args:
        image: ``(H, W)`` luminance in ``[0, 255]``.
        sigma: Gaussian sigma of the 7x7 local window.

    Returns:
        ``(mscn, sigma_map)``, both ``(H, W)``.
    """
    kw = {"sigma": sigma, "truncate": 3.0 / sigma, "mode": "nearest"}
    mu = gaussian_filter(image, **kw)
    sd = np.sqrt(np.abs(gaussian_filter(image * image, **kw) - mu * mu))
    return (image - mu) / (sd + 1.0), sd


def ggd_fit(x: np.ndarray) -> tuple[float, float]:
    """Moment-matching generalized Gaussian fit: ``(shape alpha, variance)``."""
    var = float(np.mean(x * x))
    rho = var / max(float(np.mean(np.abs(x))) ** 2, 1e-12)
    return float(_GRID[np.argmin(np.abs(_R_GGD - rho))]), var


def aggd_fit(x: np.ndarray) -> tuple[float, float, float, float]:
    """Asymmetric generalized Gaussian fit: ``(alpha, mean, left variance, right variance)``."""
    left, right = x[x < 0], x[x > 0]
    lstd = float(np.sqrt(np.mean(left * left))) if left.size else 1e-6
    rstd = float(np.sqrt(np.mean(right * right))) if right.size else 1e-6
    g = lstd / max(rstd, 1e-12)
    rhat = float(np.mean(np.abs(x))) ** 2 / max(float(np.mean(x * x)), 1e-12)
    rnorm = rhat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    a = float(_GRID[np.argmin(np.abs(_R_AGGD - rnorm))])
    mean = (rstd - lstd) * gamma(2 / a) / gamma(1 / a) * np.sqrt(gamma(1 / a) / gamma(3 / a))
    return a, float(mean), lstd**2, rstd**2


def nss_features(coeffs: np.ndarray) -> np.ndarray:
    """18 features of one MSCN map (or patch): GGD fit plus AGGD fits of 4 neighbour products.

    Neighbours are taken by circular shift within the map, as in the reference NIQE code.
    """
    feats = list(ggd_fit(coeffs))
    for shift in _SHIFTS:
        feats += aggd_fit(coeffs * np.roll(coeffs, shift, axis=(0, 1)))
    return np.asarray(feats)


def half_scale(image: np.ndarray) -> np.ndarray:
    """Bicubic, antialiased 0.5x resize (close to MATLAB ``imresize(I, 0.5)``)."""
    t = torch.from_numpy(np.ascontiguousarray(image))[None, None]
    out = F.interpolate(t, scale_factor=0.5, mode="bicubic", antialias=True, align_corners=False)
    return out[0, 0].numpy()


def _patch_grid(a: np.ndarray, p: int) -> list[np.ndarray]:
    """Non-overlapping ``p x p`` patches of ``a`` in row-major order (remainder dropped)."""
    return [
        a[i : i + p, j : j + p]
        for i in range(0, a.shape[0] - p + 1, p)
        for j in range(0, a.shape[1] - p + 1, p)
    ]


def niqe_patch_features(
    lum: np.ndarray, patch_size: int = 96, sharp_only: bool = False, threshold: float = 0.75
) -> np.ndarray:
    """36 features per ``patch_size`` patch (18 at full and 18 at half resolution).

    Args:
        lum: ``(H, W)`` luminance in ``[0, 255]`` with at least two patches.
        patch_size: even patch side at full resolution.
        sharp_only: keep patches whose mean local deviation exceeds ``threshold`` times the
            sharpest patch's (used when fitting the pristine model).
        threshold: sharpness fraction for ``sharp_only``.

    Returns:
        ``(N, 36)`` features.
    """
    h, w = (s // patch_size * patch_size for s in lum.shape)
    if (h // patch_size) * (w // patch_size) < 2:
        raise ShapeError("image", f"at least two {patch_size}x{patch_size} patches", lum.shape)
    lum = lum[:h, :w]
    full, sd = mscn(lum)
    half, _ = mscn(half_scale(lum))
    f1 = [nss_features(q) for q in _patch_grid(full, patch_size)]
    f2 = [nss_features(q) for q in _patch_grid(half, patch_size // 2)]
    feats = np.hstack([np.asarray(f1), np.asarray(f2)])
    if sharp_only:
        sharp = np.array([q.mean() for q in _patch_grid(sd, patch_size)])
        feats = feats[sharp > threshold * sharp.max()]
    return feats


def brisque_features(lum: np.ndarray) -> np.ndarray:
    """The 36 BRISQUE features of a whole ``(H, W)`` luminance image in ``[0, 255]``.

    References:
        Mittal, Moorthy, Bovik, "No-Reference Image Quality Assessment in the Spatial
        Domain", IEEE TIP 2012.
    """
    if min(lum.shape) < 16:
        raise ShapeError("image", "(H, W) with H, W >= 16", lum.shape)
    return np.concatenate([nss_features(mscn(lum)[0]), nss_features(mscn(half_scale(lum))[0])])


@dataclass(frozen=True)
class PristineModel:
    """Multivariate Gaussians of pristine features: NIQE patches and BRISQUE whole crops."""

    niqe_mu: np.ndarray
    niqe_cov: np.ndarray
    brisque_mu: np.ndarray
    brisque_cov: np.ndarray
    patch_size: int


@lru_cache(maxsize=1)
def load_pristine_model() -> PristineModel:
    """The fitted model shipped in ``suite/metrics/data/niqe_pristine.npz``."""
    with (files("suite.metrics.data") / "niqe_pristine.npz").open("rb") as fh:
        d = np.load(fh)
        return PristineModel(
            d["niqe_mu"], d["niqe_cov"], d["brisque_mu"], d["brisque_cov"], int(d["patch_size"])
        )


def mvg_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """``sqrt((mu1 - mu2)^T pinv((cov1 + cov2) / 2) (mu1 - mu2))``."""
    d = mu1 - mu2
    return float(np.sqrt(max(float(d @ np.linalg.pinv((cov1 + cov2) / 2) @ d), 0.0)))


def niqe(image: np.ndarray, data_range: float = 255.0, model: PristineModel | None = None) -> float:
    """Natural Image Quality Evaluator: distance of the image's patch-feature Gaussian to the
    pristine one (lower is better).

    Args:
        image: ``(H, W)`` or ``(H, W, 3)``, at least two 96x96 patches.
        data_range: range of the input values (255 for uint8, 1.0 for [0, 1] floats; for CT
            window the HU first and pass the window width).
        model: pristine model; defaults to the fitted one shipped with the package.

    References:
        Mittal, Soundararajan, Bovik, "Making a 'Completely Blind' Image Quality Analyzer",
        IEEE SPL 2013. Parameters fitted by ``benchmarks/fit_niqe.py``, not the published ones.
    """
    m = model or load_pristine_model()
    feats = niqe_patch_features(to_luminance(image, data_range), m.patch_size)
    return mvg_distance(m.niqe_mu, m.niqe_cov, feats.mean(axis=0), np.cov(feats, rowvar=False))


def brisque_distance(
    image: np.ndarray, data_range: float = 255.0, model: PristineModel | None = None
) -> float:
    """BRISQUE-feature NIQE-style score (lower is better); NOT the original BRISQUE SVR.

    The 36 BRISQUE features of the whole image are compared, by Mahalanobis distance, with a
    Gaussian fitted to the same features of pristine crops. The original BRISQUE regresses
    human opinion scores with a trained SVR, which cannot be fitted without those scores.

    Args:
        image: ``(H, W)`` or ``(H, W, 3)``, at least 16x16.
        data_range: range of the input values.
        model: pristine model; defaults to the shipped one.

    References:
        Mittal, Moorthy, Bovik, "No-Reference Image Quality Assessment in the Spatial
        Domain", IEEE TIP 2012 (features only).
    """
    m = model or load_pristine_model()
    f = brisque_features(to_luminance(image, data_range))
    return mvg_distance(m.brisque_mu, m.brisque_cov, f, m.brisque_cov)
