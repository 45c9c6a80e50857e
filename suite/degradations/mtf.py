"""Sensor MTF: published gains at Nyquist, MTF-matched Gaussian filters and Wald degradation.

A sensor's modulation transfer function is modelled, as in the pansharpening toolbox of Vivone
et al., by a Gaussian whose frequency response equals the published gain at the Nyquist
frequency of the coarse grid, ``f = 1 / (2 * ratio)`` cycles per fine pixel. Its spatial standard
deviation is therefore ``sigma = ratio * sqrt(-2 ln G) / pi`` fine pixels. Unlike the toolbox we
do not Kaiser-window a 41-tap kernel; we truncate the Gaussian at 4 sigma (response at Nyquist
within 1e-3 of the gain).

Decimation is geometrically centred: a coarse pixel is the filtered value at the centre of the
``ratio x ratio`` block of fine pixels it covers, so the coarse grid's transform is exactly
``fine_transform @ Affine.scale(ratio)`` (for an even ratio the kernel is sampled half a pixel off).

References:
    Aiazzi et al., "MTF-tailored multiscale fusion of high-resolution MS and Pan imagery",
    PE&RS 72(5), 2006. Vivone et al., "A critical comparison among pansharpening algorithms",
    IEEE TGRS 53(5), 2015 (toolbox values below). Wald, Ranchin, Mangolini, "Fusion of satellite
    images of different spatial resolutions", PE&RS 63(6), 1997 (the protocol).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from suite.errors import UsageError


@dataclass(frozen=True)
class SensorMTF:
    """MTF gains at Nyquist of one sensor.

    Attributes:
        ms: gain per multispectral band, in the sensor's band order.
        pan: gain of the panchromatic band.
        source: where the values come from.
    """

    ms: tuple[float, ...]
    pan: float
    source: str

    def ms_gains(self, bands: int) -> np.ndarray:
        """Gains for ``bands`` bands (the first ones, or the mean repeated if more are asked)."""
        gains = np.asarray(self.ms, dtype=np.float64)
        if bands <= gains.size:
            return gains[:bands]
        return np.full(bands, float(gains.mean()))


_TOOLBOX = "Vivone et al. 2015 pansharpening toolbox (MTF.m / MTF_PAN.m)"

SENSORS: dict[str, SensorMTF] = {
    "quickbird": SensorMTF((0.34, 0.32, 0.30, 0.22), 0.15, _TOOLBOX + "; B,G,R,NIR"),
    "ikonos": SensorMTF((0.26, 0.28, 0.29, 0.28), 0.17, _TOOLBOX + "; B,G,R,NIR"),
    "geoeye1": SensorMTF((0.23, 0.23, 0.23, 0.23), 0.16, _TOOLBOX + "; B,G,R,NIR"),
    "worldview2": SensorMTF((0.35,) * 7 + (0.27,), 0.11, _TOOLBOX + "; 8 bands"),
    "worldview3": SensorMTF(
        (0.325, 0.355, 0.360, 0.350, 0.365, 0.360, 0.335, 0.315), 0.14, _TOOLBOX + "; 8 bands"
    ),
    "pleiades": SensorMTF((0.285, 0.285, 0.29, 0.285), 0.15, _TOOLBOX + " (PHR1B); B,G,R,NIR"),
    "landsat8": SensorMTF(
        (0.3,) * 8,
        0.4,
        "PAN 0.4 from Lee et al. 2014 (OLI lunar MTF) as in toolbox MTF_PAN.m; MS: no published "
        "per-band toolbox value, the generic 0.3 is used",
    ),
    "generic": SensorMTF((0.3,) * 8, 0.15, _TOOLBOX + " generic values: 0.3 MS, 0.15 PAN"),
}
"""Published gains by sensor name; aliases are in :data:`ALIASES`."""

ALIASES = {
    "qb": "quickbird",
    "wv2": "worldview2",
    "wv3": "worldview3",
    "ge1": "geoeye1",
    "geoeye-1": "geoeye1",
    "phr": "pleiades",
    "l8": "landsat8",
    "oli": "landsat8",
    "landsat-8": "landsat8",
    "none": "generic",
}


def sensor_mtf(sensor: str) -> SensorMTF:
    """Gains of a sensor by name (case-insensitive, aliases accepted).

    Raises:
        UsageError: unknown sensor.
    """
    key = ALIASES.get(sensor.lower(), sensor.lower())
    if key not in SENSORS:
        raise UsageError(f"unknown sensor {sensor!r}; choose from {', '.join(SENSORS)}")
    return SENSORS[key]


def gaussian_sigma(gain: float, ratio: int) -> float:
    """Spatial sigma (fine pixels) of the Gaussian whose response at ``1/(2 ratio)`` is ``gain``."""
    if not 0.0 < gain < 1.0:
        raise UsageError(f"MTF gain must be in (0, 1), got {gain}")
    return ratio * math.sqrt(-2.0 * math.log(gain)) / math.pi


def mtf_kernel_1d(gain: float, ratio: int, shift: float = 0.0) -> np.ndarray:
    """Odd-length 1-D Gaussian taps (sum 1) centred ``shift`` pixels right of the middle tap."""
    sigma = gaussian_sigma(gain, ratio)
    radius = math.ceil(4.0 * sigma + abs(shift))
    x = np.arange(-radius, radius + 1, dtype=np.float64) - shift
    taps = np.exp(-0.5 * (x / sigma) ** 2)
    return taps / taps.sum()


def mtf_kernel(gain: float, ratio: int) -> np.ndarray:
    """Separable 2-D MTF-matched Gaussian kernel ``(K, K)``, sum 1, for one band."""
    k = mtf_kernel_1d(gain, ratio)
    return np.outer(k, k)


def mtf_radius(gains: np.ndarray | list[float] | float, ratio: int) -> int:
    """Largest kernel half-width (pixels) for these gains: the halo a windowed filter needs."""
    return max(len(mtf_kernel_1d(float(g), ratio, 0.5)) // 2 for g in np.atleast_1d(gains))


def mtf_filter(
    image: np.ndarray, gains: np.ndarray | list[float] | float, ratio: int
) -> np.ndarray:
    """Low-pass ``(H, W)`` or ``(C, H, W)`` with each band's MTF Gaussian (no decimation).

    Edges are mirrored (``reflect``). Returns float32.
    """
    img = np.asarray(image, dtype=np.float32)
    bands = img[None] if img.ndim == 2 else img
    g = np.broadcast_to(np.atleast_1d(np.asarray(gains, dtype=np.float64)), (bands.shape[0],))
    out = np.empty_like(bands)
    for c in range(bands.shape[0]):
        k = mtf_kernel_1d(float(g[c]), ratio).astype(np.float32)
        tmp = ndimage.correlate1d(bands[c], k, axis=0, mode="reflect")
        out[c] = ndimage.correlate1d(tmp, k, axis=1, mode="reflect")
    return out[0] if img.ndim == 2 else out


def mtf_decimate(
    image: np.ndarray, gains: np.ndarray | list[float] | float, ratio: int
) -> np.ndarray:
    """MTF-filter and decimate by ``ratio``, each coarse pixel centred on its fine block.

    Args:
        image: ``(H, W)`` or ``(C, H, W)``; ``H`` and ``W`` are cut to multiples of ``ratio``.
        gains: MTF gain at Nyquist per band (or one for all).
        ratio: integer decimation factor.

    Returns:
        ``(H // ratio, W // ratio)`` or ``(C, H // ratio, W // ratio)`` float32.
    """
    img = np.asarray(image, dtype=np.float32)
    bands = img[None] if img.ndim == 2 else img
    g = np.broadcast_to(np.atleast_1d(np.asarray(gains, dtype=np.float64)), (bands.shape[0],))
    shift = 0.5 if ratio % 2 == 0 else 0.0
    start = (ratio - 1) // 2
    h, w = (bands.shape[1] // ratio) * ratio, (bands.shape[2] // ratio) * ratio
    out = np.empty((bands.shape[0], h // ratio, w // ratio), dtype=np.float32)
    for c in range(bands.shape[0]):
        k = mtf_kernel_1d(float(g[c]), ratio, shift).astype(np.float32)
        tmp = ndimage.correlate1d(bands[c, :h, :w], k, axis=0, mode="reflect")[start::ratio]
        out[c] = ndimage.correlate1d(tmp, k, axis=1, mode="reflect")[:, start::ratio]
    return out[0] if img.ndim == 2 else out


def wald_degrade(
    ms: np.ndarray, pan: np.ndarray, ratio: int, sensor: str = "generic"
) -> tuple[np.ndarray, np.ndarray]:
    """Wald-protocol reduced-resolution pair: blur with the sensor MTF and decimate by ``ratio``.

    Args:
        ms: ``(C, h, w)`` multispectral image (any units, e.g. reflectance or DN).
        pan: ``(H, W)`` panchromatic image with ``H = ratio * h``, ``W = ratio * w``.
        ratio: PAN/MS resolution ratio.
        sensor: name for :func:`sensor_mtf`.

    Returns:
        ``(ms_lr (C, h // ratio, w // ratio), pan_lr (h, w))``, float32; their transforms are the
        originals times ``Affine.scale(ratio)``.

    References:
        Wald et al., PE&RS 63(6), 1997; Vivone et al., IEEE TGRS 53(5), 2015.
    """
    mtf = sensor_mtf(sensor)
    ms_lr = mtf_decimate(ms, mtf.ms_gains(ms.shape[0]), ratio)
    pan_lr = mtf_decimate(pan, mtf.pan, ratio)
    return ms_lr, pan_lr
