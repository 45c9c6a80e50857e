"""Wald-protocol degradation of a GeoTIFF, window by window: MTF blur, decimation, noise.

Each band is low-passed by the Gaussian whose response at the coarse grid's Nyquist frequency
equals the sensor's MTF gain, then sampled at the centre of each ``scale x scale`` block
(:func:`suite.degradations.mtf.mtf_decimate`); the transform becomes
``transform @ Affine.scale(scale)`` (same upper-left corner, pixels ``scale`` times larger), so
the coarse pixels cover exactly the footprint of the fine blocks they summarise.

References:
    Wald, Ranchin, Mangolini, PE&RS 63(6), 1997; Aiazzi et al., PE&RS 72(5), 2006.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rasterio.windows import Window

from domains.sat_sr.blocks import BandScale, band_scale, cast_to, fill_invalid, read_haloed
from suite.degradations.mtf import mtf_decimate, mtf_radius, sensor_mtf
from suite.errors import InputError, UsageError
from suite.io.raster import RasterMeta, read_raster_meta, write_raster_windows

SCALES = (2, 4)


def check_scale(scale: int) -> int:
    """Refuse a scale other than 2 or 4 (the factors the shipped models are trained for)."""
    if scale not in SCALES:
        raise UsageError(f"--scale must be 2 or 4, got {scale}")
    return scale


def lr_meta(meta: RasterMeta, scale: int) -> RasterMeta:
    """Coarse-grid metadata: ``floor(size / scale)`` pixels, pixel size times ``scale``."""
    return meta.resampled(1.0 / scale, meta.width // scale, meta.height // scale)


class WaldProducer:
    """Producer of coarse windows: read the fine block with a halo, filter, decimate, add noise.

    Args:
        path: fine raster.
        meta: its metadata.
        scale: decimation factor.
        gains: MTF gain at Nyquist per band.
        noise: Gaussian noise std as a fraction of each band's 1-99 % percentile span.
        seed: base seed; each window draws from ``(seed, row, col)`` so reruns are identical.
    """

    def __init__(self, path: Path, meta: RasterMeta, scale: int, gains: np.ndarray,
                 noise: float, seed: int) -> None:
        self.path, self.meta, self.scale, self.gains = path, meta, scale, gains
        self.noise, self.seed = noise, seed
        self.halo = -(-mtf_radius(gains, scale) // scale) * scale
        self.norm: BandScale = band_scale(path, meta)

    def __call__(self, window: Window) -> np.ndarray:
        s, h = self.scale, self.halo // self.scale
        core = Window(int(window.col_off) * s, int(window.row_off) * s,
                      int(window.width) * s, int(window.height) * s)
        data, valid = read_haloed(self.path, core, self.halo)
        fill = (self.norm.low + self.norm.high) / 2
        low = mtf_decimate(fill_invalid(data.astype(np.float64), valid, fill), self.gains, s)
        low = low[:, h:h + int(window.height), h:h + int(window.width)].astype(np.float64)
        if self.noise > 0:
            rng = np.random.default_rng([self.seed, int(window.row_off), int(window.col_off)])
            span = (self.norm.high - self.norm.low)[:, None, None]
            low += rng.normal(0.0, 1.0, low.shape) * self.noise * span
        bad = _block_any(~valid, s)[h:h + int(window.height), h:h + int(window.width)]
        mask = np.broadcast_to(bad, low.shape)
        return np.ma.MaskedArray(cast_to(low, self.meta.dtype), mask=mask)


def _block_any(mask: np.ndarray, s: int) -> np.ndarray:
    """``(H, W)`` bool -> ``(H // s, W // s)``: True where any pixel of the block is True."""
    h, w = mask.shape[0] // s, mask.shape[1] // s
    return np.asarray(mask[: h * s, : w * s].reshape(h, s, w, s).any(axis=(1, 3)))


def degrade_raster(path: Path, output: Path, scale: int, sensor: str = "generic",
                   noise: float = 0.0, seed: int = 0) -> dict[str, Any]:
    """Write the Wald-degraded copy of ``path`` to ``output`` (already a temporary path).

    Raises:
        UsageError: a scale other than 2 or 4, a negative noise, or an unknown sensor.
        InputError: the raster is unreadable, too small, or nodata only.
    """
    check_scale(scale)
    if noise < 0:
        raise UsageError(f"--noise must be >= 0, got {noise}")
    meta = read_raster_meta(path)
    if meta.width < scale or meta.height < scale:
        raise InputError(path, f"{meta.width}x{meta.height} pixels is smaller than x{scale}")
    gains = sensor_mtf(sensor).ms_gains(meta.count)
    producer = WaldProducer(path, meta, scale, gains, noise, seed)
    out = lr_meta(meta, scale)
    write_raster_windows(output, out, producer)
    return {"width": out.width, "height": out.height, "mtf_gain": float(gains.mean())}
