"""Synthetic clouds over clear images: fractal thick clouds, thin veils and displaced shadows.

The mask is exact: every pixel that a cloud (of any opacity above 2 %) or its shadow touches.
Mask codes: 0 clear, 1 thick cloud (opacity >= 0.9), 2 thin cloud, 3 shadow (> 0 = masked).

References:
    Perlin, "An image synthesizer", SIGGRAPH 1985; fractal clouds as power-law (1/f^beta)
    noise, Voss, "Random fractal forgeries", 1985 (the spectral-synthesis variant used here);
    Enomoto et al., "Filmy Cloud Removal on Satellite Imagery with Multispectral Conditional
    GANs", CVPRW 2017 (synthetic clouds blended over clear scenes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

THICK, THIN, SHADOW = 1, 2, 3


@dataclass
class CloudLayer:
    """One synthetic cloud draw on a ``(H, W)`` grid.

    Attributes:
        opacity: cloud opacity in ``[0, 1]``.
        shadow: shadow strength in ``[0, 1]`` (fraction of light removed).
        codes: uint8 mask codes (0 clear, 1 thick, 2 thin, 3 shadow).
    """

    opacity: np.ndarray
    shadow: np.ndarray
    codes: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """``(H, W)`` bool, cloud or shadow."""
        return self.codes > 0


def fractal_noise(shape: tuple[int, int], rng: np.random.Generator, beta: float = 2.6
                  ) -> np.ndarray:
    """Power-law noise (amplitude ~ 1/f^(beta/2)), standardized to mean 0 and std 1."""
    h, w = shape
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    amp = f ** (-beta / 2)
    amp[0, 0] = 0.0
    phase = rng.standard_normal((h, w // 2 + 1)) + 1j * rng.standard_normal((h, w // 2 + 1))
    field = np.fft.irfft2(amp * phase, s=(h, w))
    return (field - field.mean()) / (field.std() + 1e-12)


def _shift(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Translate ``a`` by ``(dy, dx)`` pixels, zero-filled (no wrap-around)."""
    out = np.zeros_like(a)
    h, w = a.shape
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = a[ys, xs]
    return out


def _layer(field: np.ndarray, thin: np.ndarray, level: float, offset: tuple[int, int]
           ) -> CloudLayer:
    """Opacities and codes for a threshold ``level`` on the cloud field."""
    soft = 0.35
    opacity = np.clip((field - level) / soft, 0.0, 1.0)
    veil = 0.45 * np.clip((thin - level - 0.3) / soft, 0.0, 1.0)
    opacity = np.maximum(opacity, veil)
    shadow = 0.6 * _shift(np.clip((field - level) / soft, 0.0, 1.0), *offset)
    shadow = np.where(opacity > 0.02, 0.0, shadow)
    codes = np.zeros(field.shape, np.uint8)
    codes[shadow > 0.02] = SHADOW
    codes[opacity > 0.02] = THIN
    codes[opacity >= 0.9] = THICK
    return CloudLayer(opacity, shadow, codes)


def make_clouds(shape: tuple[int, int], cover: float, rng: np.random.Generator) -> CloudLayer:
    """Draw clouds and shadows whose mask covers ``cover`` of the grid (within 1 %).

    Args:
        shape: ``(H, W)``.
        cover: masked fraction in ``(0, 1)``.
        rng: the random generator (the only source of randomness).
    """
    field, thin = fractal_noise(shape, rng), fractal_noise(shape, rng, beta=3.0)
    size = max(shape)
    offset = tuple(int(v) for v in rng.integers(-size // 12 - 1, size // 12 + 2, size=2))
    lo, hi = -6.0, 6.0
    for _ in range(30):  # the masked fraction falls monotonically with the threshold
        mid = 0.5 * (lo + hi)
        if _layer(field, thin, mid, offset).mask.mean() > cover:
            lo = mid
        else:
            hi = mid
    return _layer(field, thin, hi, offset)


def apply_clouds(image: np.ndarray, layer: CloudLayer, brightness: np.ndarray) -> np.ndarray:
    """Blend clouds and shadows over a clear ``(C, H, W)`` image (normalized values).

    Args:
        image: clear image.
        layer: opacities and shadow strengths.
        brightness: ``(C,)`` cloud-top value per band (same units as ``image``).
    """
    shaded = image * (1.0 - layer.shadow)
    a = layer.opacity[None]
    return (1.0 - a) * shaded + a * brightness[:, None, None]


def cloud_brightness(image: np.ndarray) -> np.ndarray:
    """Per-band cloud-top value: well above the scene's brightest land (1.3 x its 99.5th pct)."""
    flat = image.reshape(image.shape[0], -1)
    return np.maximum(1.3 * np.quantile(flat, 0.995, axis=1), 1e-3)
