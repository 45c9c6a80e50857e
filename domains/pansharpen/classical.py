"""Classical pansharpening: Brovey, generalized IHS, GSA, PCA and MTF-GLP.

Every method works on float arrays: ``ms`` ``(C, H, W)`` already resampled onto the PAN grid
and ``pan`` ``(H, W)``, both in the same linear units (DN or reflectance). To run window by
window on rasters of any size, a method is split in two: :func:`fit` estimates its global
statistics (means, standard deviations, regression weights, injection gains, principal axes) once
on a sample, and :func:`apply` sharpens any window with them. The convenience functions
(:func:`brovey`, ...) do both on a whole image.

References:
    Vivone et al., "A critical comparison among pansharpening algorithms", IEEE TGRS 53(5), 2015
    (the formulations followed here, as in its MATLAB toolbox).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from suite.degradations.mtf import mtf_filter, mtf_radius
from suite.errors import ShapeError, UsageError

METHODS = ("brovey", "ihs", "gsa", "pca", "mtf-glp")
EPS = 1e-6


@dataclass(frozen=True)
class SharpenModel:
    """Global statistics of one method, fitted by :func:`fit` and used by :func:`apply`.

    Attributes:
        method: one of :data:`METHODS`.
        ratio: PAN/MS resolution ratio.
        gains_mtf: per-band MTF gains at Nyquist (MTF-GLP and GSA low-pass).
        weights: ``(C + 1,)`` intensity weights and intercept: ``I = sum w_k ms_k + w_C``.
        inject: ``(C,)`` injection gains of the detail.
        ms_mean: ``(C,)`` band means.
        pan_mean: PAN mean.
        pan_scale: ``(C,)`` or ``(1,)`` factor equalizing the PAN to the component it replaces.
        target_mean: mean of the component the PAN replaces (intensity, PC1, or band).
        axes: ``(C, C)`` principal axes (PCA) as columns, first the component replaced.
        injection: ``"regression"`` or ``"hpm"`` (MTF-GLP).
    """

    method: str
    ratio: int
    gains_mtf: np.ndarray
    weights: np.ndarray
    inject: np.ndarray
    ms_mean: np.ndarray
    pan_mean: float
    pan_scale: np.ndarray
    target_mean: np.ndarray
    axes: np.ndarray = field(default_factory=lambda: np.eye(1))
    injection: str = "regression"

    @property
    def halo(self) -> int:
        """Context (PAN pixels) a window needs for exact filtering at its edges."""
        return mtf_radius(self.gains_mtf, self.ratio) if self.method == "mtf-glp" else 0


def _flat(ms: np.ndarray, pan: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(C, N)`` and ``(N,)`` float64 views of the finite pixels."""
    x = ms.reshape(ms.shape[0], -1).astype(np.float64)
    p = pan.reshape(-1).astype(np.float64)
    ok = np.isfinite(p) & np.isfinite(x).all(axis=0)
    return x[:, ok], p[ok]


def _equalize(target: np.ndarray, pan: np.ndarray) -> tuple[np.ndarray, float]:
    """Scale and mean that match the PAN's mean/std to ``target``'s (``(N,)`` arrays)."""
    return np.array([target.std() / max(pan.std(), EPS)]), float(target.mean())


def _fit_component(method: str, x: np.ndarray, p_lp: np.ndarray) -> tuple[np.ndarray, ...]:
    """Intensity weights, injection gains and axes of the CS methods on ``(C, N)`` pixels."""
    c = x.shape[0]
    axes = np.eye(c)
    if method in ("brovey", "ihs"):
        weights = np.append(np.full(c, 1.0 / c), 0.0)
        inject = np.ones(c)
    elif method == "gsa":
        design = np.vstack([x, np.ones_like(p_lp)]).T
        weights = np.linalg.lstsq(design, p_lp, rcond=None)[0]
        intensity = weights[:c] @ x + weights[c]
        cov = np.cov(np.vstack([x, intensity]))
        inject = cov[:c, c] / max(cov[c, c], EPS)
    else:  # pca
        _, vecs = np.linalg.eigh(np.cov(x))
        axes = vecs[:, ::-1] * np.sign(vecs[:, ::-1].sum(axis=0, keepdims=True) + EPS)
        weights = np.append(axes[:, 0], -axes[:, 0] @ x.mean(axis=1))
        inject = axes[:, 0].copy()
    return weights, inject, axes


def fit(
    ms: np.ndarray,
    pan: np.ndarray,
    method: str = "mtf-glp",
    ratio: int = 4,
    gains_mtf: np.ndarray | None = None,
    injection: str = "regression",
) -> SharpenModel:
    """Estimate a method's global statistics on ``ms`` ``(C, H, W)`` and ``pan`` ``(H, W)``.

    Args:
        ms: MS resampled onto the PAN grid (a representative sample of the scene).
        pan: PAN on the same grid.
        method: one of :data:`METHODS`.
        ratio: PAN/MS resolution ratio (sets the MTF low-pass).
        gains_mtf: per-band MTF gains at Nyquist; default 0.3 (generic).
        injection: MTF-GLP detail injection, ``"regression"`` (CBD) or ``"hpm"``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    _check_arguments(ms, pan, ratio, injection)
    c = ms.shape[0]
    gains = np.full(c, 0.3) if gains_mtf is None else np.asarray(gains_mtf, dtype=np.float64)
    if method == "mtf-glp":
        return _fit_glp(ms, pan, ratio, gains, injection)
    x, p = _flat(ms, pan)
    p_lp = _flat(ms, mtf_filter(pan, float(np.mean(gains)), ratio))[1] if method == "gsa" else p
    weights, inject, axes = _fit_component(method, x, p_lp)
    intensity = weights[:c] @ x + weights[c]
    scale, target_mean = _equalize(intensity, p)
    return SharpenModel(
        method,
        ratio,
        gains,
        weights,
        inject,
        x.mean(axis=1),
        float(p.mean()),
        scale,
        np.array([target_mean]),
        axes,
        injection,
    )


def _check_arguments(ms: np.ndarray, pan: np.ndarray, ratio: int, injection: str) -> None:
    """Refuse what a script may pass by mistake, before numpy fails on it deep inside."""
    if injection not in ("regression", "hpm"):
        raise UsageError(f"injection must be 'regression' or 'hpm', got {injection!r}")
    if not (isinstance(ratio, int | float | np.number) and float(ratio).is_integer()
            and ratio >= 2):
        raise UsageError(f"ratio must be a whole PAN/MS resolution ratio of 2 or more, "
                         f"got {ratio!r}")
    if np.ndim(ms) != 3 or np.ndim(pan) != 2 or np.shape(ms)[1:] != np.shape(pan):
        raise ShapeError("ms, pan", "(C, H, W) resampled onto the PAN grid, (H, W)",
                         (*np.shape(ms), *np.shape(pan)))


def _fit_glp(
    ms: np.ndarray, pan: np.ndarray, ratio: int, gains: np.ndarray, injection: str
) -> SharpenModel:
    """MTF-GLP statistics: per-band PAN equalization and regression injection gains."""
    x, p = _flat(ms, pan)
    lows = np.stack([_flat(ms, mtf_filter(pan, float(g), ratio))[1] for g in gains])
    scale = x.std(axis=1) / np.maximum(lows.std(axis=1), EPS)
    inject = np.array(
        [np.cov(xk, lk)[0, 1] / max(lk.var(ddof=1), EPS) for xk, lk in zip(x, lows, strict=True)]
    )
    weights = np.zeros(ms.shape[0] + 1)
    return SharpenModel(
        "mtf-glp",
        ratio,
        gains,
        weights,
        inject,
        x.mean(axis=1),
        float(p.mean()),
        scale,
        x.mean(axis=1),
        np.eye(ms.shape[0]),
        injection,
    )


def apply(model: SharpenModel, ms: np.ndarray, pan: np.ndarray) -> np.ndarray:
    """Sharpen ``ms`` ``(C, H, W)`` with ``pan`` ``(H, W)`` using fitted statistics.

    Returns:
        ``(C, H, W)`` float32 in the units of ``ms``.
    """
    ms = np.asarray(ms, dtype=np.float32)
    pan = np.asarray(pan, dtype=np.float32)
    if model.method == "mtf-glp":
        return _apply_glp(model, ms, pan)
    c = ms.shape[0]
    w = model.weights.astype(np.float32)
    intensity = np.tensordot(w[:c], ms, axes=1) + w[c]
    pan_eq = (pan - model.pan_mean) * float(model.pan_scale[0]) + float(model.target_mean[0])
    if model.method == "brovey":
        return ms * (pan_eq / np.maximum(intensity, EPS))[None]
    gains = model.inject.astype(np.float32)[:, None, None]
    return ms + gains * (pan_eq - intensity)[None]


def _apply_glp(model: SharpenModel, ms: np.ndarray, pan: np.ndarray) -> np.ndarray:
    """MTF-GLP: add each band's PAN detail above its MTF low-pass, regression or HPM gains."""
    out = np.empty_like(ms)
    for k, gain in enumerate(model.gains_mtf):
        low = mtf_filter(pan, float(gain), model.ratio)
        if model.injection == "hpm":
            scale, mean = float(model.pan_scale[k]), float(model.target_mean[k])
            pan_eq = (pan - model.pan_mean) * scale + mean
            low_eq = (low - model.pan_mean) * scale + mean
            out[k] = ms[k] * pan_eq / np.maximum(low_eq, EPS)
        else:
            out[k] = ms[k] + float(model.inject[k]) * (pan - low)
    return out


def pansharpen(
    ms: np.ndarray,
    pan: np.ndarray,
    method: str = "mtf-glp",
    ratio: int = 4,
    gains_mtf: np.ndarray | None = None,
    injection: str = "regression",
) -> np.ndarray:
    """Fit and apply ``method`` on a whole image; see :func:`fit` for the arguments."""
    return apply(fit(ms, pan, method, ratio, gains_mtf, injection), ms, pan)


def brovey(ms: np.ndarray, pan: np.ndarray) -> np.ndarray:
    """Brovey transform: ``F_k = ms_k * P / I``, ``I`` the band mean, ``P`` equalized to ``I``.

    References:
        Gillespie, Kahle, Walker, "Color enhancement of highly correlated images. II", RSE 22, 1987.
    """
    return pansharpen(ms, pan, "brovey")


def ihs(ms: np.ndarray, pan: np.ndarray) -> np.ndarray:
    """Generalized (fast) IHS: ``F_k = ms_k + (P - I)``, ``I`` the band mean.

    References:
        Tu et al., "A new look at IHS-like image fusion methods", Information Fusion 2(3), 2001.
    """
    return pansharpen(ms, pan, "ihs")


def gsa(
    ms: np.ndarray, pan: np.ndarray, ratio: int = 4, gains_mtf: np.ndarray | None = None
) -> np.ndarray:
    """Gram-Schmidt adaptive: intensity weights by regressing the low-passed PAN on the MS.

    References:
        Aiazzi, Baronti, Selva, "Improving component substitution pansharpening through
        multivariate regression of MS+Pan data", IEEE TGRS 45(10), 2007.
    """
    return pansharpen(ms, pan, "gsa", ratio, gains_mtf)


def pca(ms: np.ndarray, pan: np.ndarray) -> np.ndarray:
    """PCA substitution: the first principal component is replaced by the equalized PAN.

    References:
        Chavez, Kwarteng, "Extracting spectral contrast in Landsat Thematic Mapper image data
        using selective principal component analysis", PE&RS 55(3), 1989.
    """
    return pansharpen(ms, pan, "pca")


def mtf_glp(
    ms: np.ndarray,
    pan: np.ndarray,
    ratio: int = 4,
    gains_mtf: np.ndarray | None = None,
    injection: str = "regression",
) -> np.ndarray:
    """MTF-matched generalized Laplacian pyramid with regression (CBD) or HPM injection.

    Unlike the toolbox, the PAN low-pass is the MTF filter alone (no decimation/interpolation).

    References:
        Aiazzi et al., "MTF-tailored multiscale fusion of high-resolution MS and Pan imagery",
        PE&RS 72(5), 2006.
    """
    return pansharpen(ms, pan, "mtf-glp", ratio, gains_mtf, injection)
