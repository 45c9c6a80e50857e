"""Fundus degradation model: how cataracts, small pupils and poor illumination spoil a photo.

Applied in this order to a clean ``(H, W, 3)`` image in ``[0, 1]`` inside its FOV:

1. uneven illumination: a smooth random gain field and rim darkening (vignetting);
2. haze: a cataract-like veil, ``I t + (1 - t) (G_s * I) * veil``, with a low-pass copy of
   the image and a spatially varying transmission ``t``;
3. defocus blur (Gaussian, width relative to the FOV diameter);
4. colour cast (per-channel gains);
5. sensor noise (signal-dependent Gaussian);
6. JPEG compression.

Lengths scale with the FOV diameter, so the same severity looks alike at any resolution.

References:
    Shen et al., "Modeling and Enhancing Low-Quality Retinal Fundus Images", IEEE TMI 2020
    (Cofe-Net); Li et al., "Restoration of Cataract Fundus Images via Unsupervised Domain
    Adaptation", ISBI 2021 (cataract veil model).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from domains.fundus.fov import fov_diameter


@dataclass(frozen=True)
class DegradeParams:
    """Parameters drawn for one degradation (recorded in summaries and tests)."""

    illum_gain: float
    rim_dark: float
    haze: float
    blur_px: float
    cast: tuple[float, float, float]
    noise: float
    jpeg_quality: int


def draw_params(severity: float, diameter: float, rng: np.random.Generator) -> DegradeParams:
    """Random parameters at ``severity`` in ``[0, 1]`` (0: almost clean, 1: very poor)."""
    s = float(np.clip(severity, 0.0, 1.0))
    jitter = lambda: float(rng.uniform(0.75, 1.25))  # noqa: E731
    cast = tuple(float(1.0 + s * 0.18 * g) for g in rng.uniform(-1, 1, 3))
    return DegradeParams(
        illum_gain=0.45 * s * jitter(),
        rim_dark=0.55 * s * jitter(),
        haze=0.55 * s * jitter(),
        blur_px=s * diameter / 450.0 * jitter(),
        cast=(cast[0], cast[1], cast[2]),
        noise=0.025 * s * jitter(),
        jpeg_quality=round(92 - 55 * s),
    )


def illumination_field(shape: tuple[int, int], fov: np.ndarray, p: DegradeParams,
                       rng: np.random.Generator) -> np.ndarray:
    """Smooth multiplicative gain ``(H, W)``: a dark off-centre lobe and a darker rim."""
    h, w = shape
    cy, cx = ndimage.center_of_mass(fov)
    radius = fov_diameter(fov) / 2
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot(yy - cy, xx - cx) / radius
    angle = rng.uniform(0, 2 * np.pi)
    oy, ox = cy + 0.6 * radius * np.sin(angle), cx + 0.6 * radius * np.cos(angle)
    lobe = np.exp(-(((yy - oy) ** 2 + (xx - ox) ** 2) / (2 * (0.6 * radius) ** 2)))
    gain = (1 - p.illum_gain * lobe) * (1 - p.rim_dark * np.clip(r, 0, 1.2) ** 3)
    return np.clip(gain, 0.05, 1.0).astype(np.float32)


def add_haze(img: np.ndarray, fov: np.ndarray, p: DegradeParams,
             rng: np.random.Generator) -> np.ndarray:
    """Cataract-like veil: blend with a heavily low-passed, brightened copy."""
    sigma = fov_diameter(fov) / 20
    low = masked_blur(img, fov, sigma)
    veil = np.clip(low * 1.15 + 0.12, 0, 1)
    t_map = ndimage.gaussian_filter(rng.standard_normal(fov.shape[:2]).astype(np.float32),
                                    sigma * 2)
    t_map = t_map / (np.abs(t_map).max() + 1e-8)
    haze = np.clip(p.haze * (1 + 0.4 * t_map), 0, 0.9)[..., None]
    return img * (1 - haze) + veil * haze


def masked_blur(img: np.ndarray, fov: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur ``(H, W, C)`` inside the FOV only (normalized convolution), at 1/4 size."""
    f = 4 if sigma > 8 else 1
    small = img[::f, ::f] * fov[::f, ::f, None]
    weight = ndimage.gaussian_filter(fov[::f, ::f].astype(np.float32), sigma / f)
    out = np.stack([ndimage.gaussian_filter(small[..., c], sigma / f)
                    for c in range(img.shape[2])], -1) / np.maximum(weight, 1e-3)[..., None]
    if f > 1:
        zoom = (img.shape[0] / out.shape[0], img.shape[1] / out.shape[1], 1)
        out = ndimage.zoom(out, zoom, order=1)[: img.shape[0], : img.shape[1]]
    return out.astype(np.float32)


def jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode ``(H, W, 3)`` ``[0, 1]`` as 8-bit JPEG (4:2:0) at ``quality``."""
    buf = io.BytesIO()
    Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)).save(
        buf, format="JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf), dtype=np.float32) / 255.0


def degrade_fundus(clean: np.ndarray, fov: np.ndarray, severity: float,
                   rng: np.random.Generator) -> tuple[np.ndarray, DegradeParams]:
    """Degrade a clean fundus image inside its FOV; outside pixels are left as they were.

    Args:
        clean: ``(H, W, 3)`` float32 in ``[0, 1]``.
        fov: ``(H, W)`` bool.
        severity: 0 (mild) to 1 (very poor).
        rng: random generator (the result is a pure function of its state).

    Returns:
        The degraded ``(H, W, 3)`` float32 image in ``[0, 1]`` and the parameters drawn.
    """
    p = draw_params(severity, fov_diameter(fov), rng)
    img = clean * illumination_field(fov.shape, fov, p, rng)[..., None]
    img = add_haze(img, fov, p, rng)
    if p.blur_px > 0.3:
        img = ndimage.gaussian_filter(img, (p.blur_px, p.blur_px, 0))
    img = img * np.asarray(p.cast, np.float32)
    img = img + rng.standard_normal(img.shape).astype(np.float32) * p.noise * np.sqrt(
        np.clip(img, 0.02, 1))
    img = jpeg_roundtrip(img, p.jpeg_quality)
    out = np.where(fov[..., None], img, clean)
    return out.astype(np.float32), p
