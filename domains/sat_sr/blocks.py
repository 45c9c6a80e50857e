"""Window reads with a halo, per-band scaling statistics, and the nodata handling of sat-sr.

Every enhance and degrade run reads its input window by window: a window of the output grid maps
onto an input window, widened by a halo of real neighbours (mirrored only at the raster edge), so
that a window's result does not depend on where the window boundaries fall.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from suite.errors import InputError
from suite.io.raster import RasterMeta, finite

STATS_SIDE = 512
"""Longest side (pixels) of the decimated read that the band statistics are taken from."""


@dataclass(frozen=True)
class BandScale:
    """Invertible per-band map of stored values to model units: ``(x - low) / (high - low)``.

    Attributes:
        low: per-band 1st percentile of valid pixels (stored units).
        high: per-band 99th percentile of valid pixels (stored units).
    """

    low: np.ndarray
    high: np.ndarray

    def forward(self, data: np.ndarray) -> np.ndarray:
        """``(C, h, w)`` stored values -> float32 model units (about [0, 1])."""
        span = np.maximum(self.high - self.low, 1e-6)[:, None, None]
        return ((data.astype(np.float64) - self.low[:, None, None]) / span).astype(np.float32)

    def inverse(self, data: np.ndarray) -> np.ndarray:
        """Model units ``(C, h, w)`` -> stored units (float64; the writer casts)."""
        span = np.maximum(self.high - self.low, 1e-6)[:, None, None]
        return data.astype(np.float64) * span + self.low[:, None, None]


def band_scale(path: Path, meta: RasterMeta) -> BandScale:
    """Percentiles of each band from a decimated read (memory bounded by :data:`STATS_SIDE`).

    Raises:
        InputError: every pixel is nodata.
    """
    factor = max(1, int(np.ceil(max(meta.width, meta.height) / STATS_SIDE)))
    shape = (meta.count, max(1, meta.height // factor), max(1, meta.width // factor))
    with rasterio.open(path) as ds:
        data = ds.read(out_shape=shape, masked=True, resampling=Resampling.nearest)
    valid = ~(np.ma.getmaskarray(data) | ~finite(np.ma.getdata(data))).any(axis=0)
    if not valid.any():
        raise InputError(path, "every pixel is nodata; nothing to super-resolve")
    values = np.ma.getdata(data)[:, valid].astype(np.float64)
    low, high = np.percentile(values, 1, axis=1), np.percentile(values, 99, axis=1)
    return BandScale(low, np.where(high > low, high, low + 1.0))


def read_haloed(path: Path, window: Window, halo: int) -> tuple[np.ndarray, np.ndarray]:
    """Read ``window`` plus ``halo`` pixels on each side; mirror where the raster ends.

    Args:
        path: raster file.
        window: the core window (input pixels), inside the raster.
        halo: context on each side (pixels).

    Returns:
        ``data (C, h + 2 halo, w + 2 halo)`` in the file's dtype and ``valid (same h, w)`` bool,
        both mirrored (``numpy.pad`` ``"symmetric"``, i.e. ``scipy.ndimage`` ``"reflect"``).
    """
    with rasterio.open(path) as ds:
        r0, c0 = int(window.row_off) - halo, int(window.col_off) - halo
        r1, c1 = r0 + int(window.height) + 2 * halo, c0 + int(window.width) + 2 * halo
        rs, cs, re, ce = max(r0, 0), max(c0, 0), min(r1, ds.height), min(c1, ds.width)
        inner = Window(cs, rs, ce - cs, re - rs)
        data = ds.read(window=inner)
        valid = (ds.dataset_mask(window=inner) > 0) & finite(data).all(axis=0)
    pads = ((rs - r0, r1 - re), (cs - c0, c1 - ce))
    return _mirror(data, pads), _mirror(valid[None], pads)[0]


def _mirror(array: np.ndarray, pads: tuple[tuple[int, int], tuple[int, int]]) -> np.ndarray:
    """Pad ``(C, h, w)`` symmetrically; a pad longer than the array mirrors again."""
    out = array
    for axis, (before, after) in zip((1, 2), pads, strict=True):
        while before > 0 or after > 0:
            b, a = min(before, out.shape[axis]), min(after, out.shape[axis])
            width = [(0, 0)] * 3
            width[axis] = (b, a)
            out = np.pad(out, width, mode="symmetric")
            before, after = before - b, after - a
    return out


def fill_invalid(data: np.ndarray, valid: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """Replace invalid pixels of ``(C, h, w)`` by a per-band value so nodata does not ring."""
    if valid.all():
        return data
    return np.where(valid[None], data, fill[:, None, None]).astype(data.dtype)


def output_window(out: Window, scale: int) -> Window:
    """The input window (core, no halo) under an output window of an x``scale`` grid."""
    return Window(int(out.col_off) // scale, int(out.row_off) // scale,
                  -(-int(out.width) // scale), -(-int(out.height) // scale))


def cast_to(values: np.ndarray, dtype: str) -> np.ndarray:
    """Round and clip to an integer ``dtype``; floats are only cast."""
    kind = np.dtype(dtype)
    if np.issubdtype(kind, np.floating):
        return values.astype(kind)
    info = np.iinfo(kind)
    return np.clip(np.rint(values), info.min, info.max).astype(kind)
