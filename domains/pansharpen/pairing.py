"""Pair a multispectral (MS) raster with its panchromatic (PAN) raster by georeferencing.

The MS may be one multiband file or several single-band files on the same grid (Landsat style).
The output grid is the PAN grid cut to the pixels that lie fully inside both footprints; MS
values are resampled onto it through the real transforms (pixel centres), so a sub-pixel offset
between the grids, like the half PAN pixel of Landsat 8 OLI, is honoured rather than ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.windows import Window
from scipy import ndimage

from suite.errors import InputError
from suite.io.raster import (
    RasterMeta,
    check_same_values,
    read_raster_meta,
    read_window,
    refuse_paletted,
    refuse_repeated,
)

_TOL = 1e-6
SPLINE_MARGIN = 8
"""MS pixels read around a window so that the cubic spline prefilter sees enough context."""


@dataclass(frozen=True)
class PanMsPair:
    """A checked MS/PAN pair and the output grid.

    Attributes:
        ms_paths: MS files, bands stacked in this order.
        pan_path: PAN file (one band).
        ms_meta: metadata of the first MS file (grid shared by all).
        pan_meta: metadata of the PAN file.
        ms_bands: ``(file index, 1-based band)`` of every MS band in output order.
        ratio: integer PAN/MS resolution ratio.
        window: PAN pixels of the output (intersection of the footprints).
    """

    ms_paths: tuple[Path, ...]
    pan_path: Path
    ms_meta: RasterMeta
    pan_meta: RasterMeta
    ms_bands: tuple[tuple[int, int], ...]
    ratio: int
    window: Window

    @property
    def transform(self) -> Affine:
        """Transform of the output grid (PAN resolution)."""
        return self.pan_meta.transform @ Affine.translation(
            self.window.col_off, self.window.row_off
        )

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)`` of the output grid."""
        return int(self.window.height), int(self.window.width)

    @property
    def band_count(self) -> int:
        """Number of MS bands."""
        return len(self.ms_bands)


def _check_grid(meta: RasterMeta, path: Path) -> None:
    """Refuse rotated or ungeoreferenced rasters."""
    t = meta.transform
    if meta.crs is None and (meta.gcps or meta.rpcs is not None):
        raise InputError(path, "is georeferenced by GCPs or RPCs, not a grid; pansharpening "
                         "pairs MS and PAN on a north-up grid, so warp it first (gdalwarp)")
    if meta.crs is None:
        raise InputError(path, "has no CRS; pansharpening pairs MS and PAN by georeferencing")
    if abs(t.b) > _TOL or abs(t.d) > _TOL or t.e >= 0:
        raise InputError(path, "is rotated or not north-up; warp it to a north-up grid first")


def _ms_metas(ms_paths: list[Path]) -> list[RasterMeta]:
    """Read and check the MS files: same CRS, transform, size, data type and nodata."""
    refuse_repeated(ms_paths)
    metas = [read_raster_meta(p) for p in ms_paths]
    for meta, path in zip(metas, ms_paths, strict=True):
        refuse_paletted(meta, path)
    first = metas[0]
    _check_grid(first, ms_paths[0])
    for meta, path in zip(metas[1:], ms_paths[1:], strict=True):
        same = meta.crs == first.crs and meta.transform.almost_equals(first.transform)
        if not same or (meta.width, meta.height) != (first.width, first.height):
            raise InputError(path, f"is not on the grid of {ms_paths[0]} (MS bands must share it)")
        check_same_values(path, meta, ms_paths[0], first)
    if len(_data_bands(metas)) < 2:
        raise InputError(ms_paths[0], "has 1 band; the MS image needs at least 2 bands")
    return metas


def _data_bands(metas: list[RasterMeta]) -> tuple[tuple[int, int], ...]:
    """``(file index, 1-based band)`` of the MS bands in order; an alpha band is not one (it
    is the file's mask, which every read already applies)."""
    return tuple((i, b) for i, m in enumerate(metas) for b in range(1, m.count + 1)
                 if b != m.alpha)


def _ratio(ms: RasterMeta, pan: RasterMeta, ms_path: Path, pan_path: Path) -> int:
    """Integer PAN/MS ratio from the pixel sizes, or an :class:`InputError`."""
    rx, ry = ms.res[0] / pan.res[0], ms.res[1] / pan.res[1]
    if rx < 1 - _TOL or ry < 1 - _TOL:
        raise InputError(
            pan_path, f"PAN pixel {pan.res} is coarser than MS pixel {ms.res} (inputs swapped?)"
        )
    if abs(rx - ry) > 1e-4 or abs(rx - round(rx)) > 1e-4 or round(rx) < 2:
        raise InputError(
            pan_path,
            f"resolution ratio MS/PAN is {rx:.4g} x {ry:.4g}; it must be one integer >= 2 "
            f"(MS {ms_path} pixel {ms.res}, PAN pixel {pan.res})",
        )
    return round(rx)


def _intersection(ms: RasterMeta, pan: RasterMeta, pan_path: Path) -> Window:
    """PAN pixels lying fully inside both footprints."""
    left = max(ms.bounds[0], pan.bounds[0])
    bottom = max(ms.bounds[1], pan.bounds[1])
    right = min(ms.bounds[2], pan.bounds[2])
    top = min(ms.bounds[3], pan.bounds[3])
    inv = ~pan.transform
    c0, r0 = inv @ (left, top)
    c1, r1 = inv @ (right, bottom)
    c0, r0 = math.ceil(c0 - 1e-6), math.ceil(r0 - 1e-6)
    c1, r1 = math.floor(c1 + 1e-6), math.floor(r1 + 1e-6)
    if c1 - c0 < 1 or r1 - r0 < 1:
        raise InputError(pan_path, "does not overlap the MS image (disjoint footprints)")
    return Window(c0, r0, c1 - c0, r1 - r0)


def pair_rasters(ms_paths: list[Path] | list[str], pan_path: Path | str) -> PanMsPair:
    """Check an MS/PAN pair and compute the output grid.

    Raises:
        InputError: naming the file, for a non-raster, a 1-band MS, a multiband PAN, a CRS
            mismatch, a non-integer or inverted ratio, or disjoint footprints.
    """
    ms_list, pan = [Path(p) for p in ms_paths], Path(pan_path)
    metas = _ms_metas(ms_list)
    pan_meta = read_raster_meta(pan)
    pan_bands = pan_meta.count - (pan_meta.alpha is not None)  # an alpha band is its mask
    if pan_bands != 1 or pan_meta.alpha == 1:
        raise InputError(pan, f"has {pan_bands} bands; the PAN image must have 1 band")
    _check_grid(pan_meta, pan)
    if pan_meta.crs != metas[0].crs:
        raise InputError(
            pan, f"CRS {pan_meta.crs} differs from the MS CRS {metas[0].crs} of {ms_list[0]}"
        )
    ratio = _ratio(metas[0], pan_meta, ms_list[0], pan)
    window = _intersection(metas[0], pan_meta, pan)
    bands = _data_bands(metas)
    return PanMsPair(tuple(ms_list), pan, metas[0], pan_meta, bands, ratio, window)


def ms_coordinates(pair: PanMsPair, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """Fractional MS pixel indices (row, col) of the centres of output-grid pixels of ``window``.

    Index ``0`` is the centre of MS pixel 0 (so integer values land on MS pixel centres).
    """
    t_out, t_ms = pair.transform, pair.ms_meta.transform
    cols = np.arange(window.col_off, window.col_off + window.width) + 0.5
    rows = np.arange(window.row_off, window.row_off + window.height) + 0.5
    x = t_out.c + cols * t_out.a
    y = t_out.f + rows * t_out.e
    return (y - t_ms.f) / t_ms.e - 0.5, (x - t_ms.c) / t_ms.a - 0.5


def _read_ms_block(pair: PanMsPair, window: Window) -> np.ma.MaskedArray:
    """Read all MS bands on an MS-pixel window (boundless), masked by the dataset masks."""
    blocks = []
    for index, path in enumerate(pair.ms_paths):
        bands = [b for i, b in pair.ms_bands if i == index]
        blocks.append(read_window(path, window, boundless=True, indexes=bands, masked=True))
    return np.ma.concatenate(blocks, axis=0)


def upsample_ms(
    pair: PanMsPair, window: Window, shifts: np.ndarray | None = None, order: int = 3
) -> np.ma.MaskedArray:
    """MS resampled onto the output grid (PAN resolution) for one output window.

    Args:
        pair: the checked pair.
        window: window of the output grid (PAN pixels, relative to ``pair.window``).
        shifts: optional ``(C, 2)`` per-band ``(dy, dx)`` shifts in MS pixels that register each
            band (as returned by :func:`domains.pansharpen.registration.estimate_shifts`).
        order: spline order (3 = cubic, 1 = bilinear).

    Returns:
        ``(C, h, w)`` float32 masked array; a pixel is masked when its nearest MS pixel is.
    """
    rows, cols = ms_coordinates(pair, window)
    r0 = math.floor(rows.min()) - SPLINE_MARGIN
    c0 = math.floor(cols.min()) - SPLINE_MARGIN
    h = math.ceil(rows.max()) + SPLINE_MARGIN + 1 - r0
    w = math.ceil(cols.max()) + SPLINE_MARGIN + 1 - c0
    block = _read_ms_block(pair, Window(c0, r0, w, h))
    invalid = np.ma.getmaskarray(block)
    data = _nearest_valid(np.ma.getdata(block).astype(np.float32), invalid)
    out = np.empty((data.shape[0], rows.size, cols.size), dtype=np.float32)
    mask = np.empty(out.shape, dtype=bool)
    for c in range(data.shape[0]):
        dy, dx = (0.0, 0.0) if shifts is None else (float(shifts[c, 0]), float(shifts[c, 1]))
        grid = np.meshgrid(rows - r0 - dy, cols - c0 - dx, indexing="ij")
        out[c] = ndimage.map_coordinates(data[c], grid, order=order, mode="nearest")
        mask[c] = ndimage.map_coordinates(invalid[c].astype(np.uint8), grid, order=0) > 0
    return np.ma.MaskedArray(out, mask=mask)


def _nearest_valid(data: np.ndarray, invalid: np.ndarray) -> np.ndarray:
    """``(C, h, w)`` with each invalid pixel given its nearest valid pixel's value: the spline
    reads a few pixels around each output pixel, and a nodata value (or a NaN, which would
    spread) next to valid pixels would ring into them."""
    out = data.copy()
    for c in range(data.shape[0]):
        if invalid[c].any() and not invalid[c].all():
            rows, cols = ndimage.distance_transform_edt(invalid[c], return_distances=False,
                                                        return_indices=True)
            out[c] = data[c][rows, cols]
        elif invalid[c].all():
            out[c] = 0.0
    return out


def read_pan(pair: PanMsPair, window: Window) -> np.ma.MaskedArray:
    """PAN ``(h, w)`` float32 of an output window (relative to ``pair.window``), masked."""
    src = Window(
        pair.window.col_off + window.col_off,
        pair.window.row_off + window.row_off,
        window.width,
        window.height,
    )
    pan = read_window(pair.pan_path, src, boundless=True, masked=True)[0]
    return np.ma.MaskedArray(np.ma.getdata(pan).astype(np.float32), mask=np.ma.getmaskarray(pan))


def ms_window(pair: PanMsPair) -> Window:
    """MS pixels covered by the output grid (rounded outwards)."""
    rows, cols = ms_coordinates(pair, Window(0, 0, pair.window.width, pair.window.height))
    r0, c0 = max(math.floor(rows.min()), 0), max(math.floor(cols.min()), 0)
    r1 = min(math.ceil(rows.max()) + 1, pair.ms_meta.height)
    c1 = min(math.ceil(cols.max()) + 1, pair.ms_meta.width)
    return Window(c0, r0, c1 - c0, r1 - r0)
