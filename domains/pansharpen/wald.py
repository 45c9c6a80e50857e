"""Wald-protocol pairs on real scenes: MS and PAN arrays with their transforms, degraded by a ratio.

Everything here is geometric: an array travels with its affine transform, resampling goes
through pixel centres in world coordinates, so the half-PAN-pixel offset of Landsat 8 OLI (or any
offset) is honoured. A reduced-resolution pair made by :func:`reduced_pair` has its PAN on the
MS grid, so the original MS is the pixel-exact reference of the fusion (Wald's protocol).

References:
    Wald, Ranchin, Mangolini, "Fusion of satellite images of different spatial resolutions",
    PE&RS 63(6), 1997.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.windows import Window
from scipy import ndimage

from domains.pansharpen.pairing import PanMsPair, pair_rasters, read_pan
from suite.degradations.mtf import mtf_decimate, mtf_filter, sensor_mtf
from suite.io.raster import read_window


@dataclass(frozen=True)
class Scene:
    """An MS image on its grid and a PAN image on its grid.

    Attributes:
        ms: ``(C, h, w)`` float32, sensor units (DN or reflectance).
        pan: ``(H, W)`` float32, same units.
        ms_transform: affine of ``ms``.
        pan_transform: affine of ``pan``.
        ratio: PAN/MS resolution ratio.
    """

    ms: np.ndarray
    pan: np.ndarray
    ms_transform: Affine
    pan_transform: Affine
    ratio: int


def resample_to_grid(
    image: np.ndarray, src: Affine, shape: tuple[int, int], dst: Affine, order: int = 3
) -> np.ndarray:
    """Resample ``(C, h, w)`` or ``(h, w)`` from grid ``src`` onto ``shape`` pixels of grid ``dst``.

    Pixel centres are mapped through the transforms (north-up grids); cubic spline by default,
    edges repeated. Returns float32.
    """
    img = np.asarray(image, dtype=np.float32)
    bands = img[None] if img.ndim == 2 else img
    x = dst.c + (np.arange(shape[1]) + 0.5) * dst.a
    y = dst.f + (np.arange(shape[0]) + 0.5) * dst.e
    rows, cols = (y - src.f) / src.e - 0.5, (x - src.c) / src.a - 0.5
    grid = np.meshgrid(rows, cols, indexing="ij")
    out = np.stack(
        [ndimage.map_coordinates(b, grid, order=order, mode="nearest") for b in bands]
    ).astype(np.float32)
    return out[0] if img.ndim == 2 else out


def load_scene(
    ms_paths: list[Path], pan_path: Path, ms_cols: tuple[float, float] = (0.0, 1.0),
    nan_invalid: bool = False,
) -> Scene:
    """Read a georeferenced MS/PAN pair whole, optionally a vertical strip of it.

    Args:
        ms_paths: MS files (one multiband or several single-band files on one grid).
        pan_path: PAN file.
        ms_cols: fractions ``(start, stop)`` of the MS width to keep (e.g. ``(0, 2/3)``).
        nan_invalid: pixels without data read as NaN (:func:`region_scene`).
    """
    pair = pair_rasters(ms_paths, pan_path)
    full = ms_window(pair)
    h, w = int(full.height) - 1, int(full.width) - 1
    a, b = int(ms_cols[0] * w), int(ms_cols[1] * w)
    scene = region_scene(pair, Window(int(full.col_off) + a, int(full.row_off), b - a, h),
                         nan_invalid)
    pan = scene.pan[: h * pair.ratio, : (b - a) * pair.ratio]  # exactly the MS footprint's rows
    return Scene(scene.ms, pan, scene.ms_transform, scene.pan_transform, scene.ratio)


def ms_window(pair: PanMsPair) -> Window:
    """MS pixels whose footprint lies inside the output grid."""
    t_out = pair.transform
    c0, r0 = (int(np.ceil(v - 1e-6)) for v in ~pair.ms_meta.transform @ (t_out.c, t_out.f))
    r = pair.ratio
    return Window(c0, r0, pair.shape[1] // r, pair.shape[0] // r)


def region_scene(pair: PanMsPair, win: Window, nan_invalid: bool = False) -> Scene:
    """MS over the MS-pixel window ``win`` and the PAN pixels covering it (boundless reads);
    with ``nan_invalid`` the pixels without data (nodata, masks, outside) read as NaN."""
    ms = np.ma.concatenate(
        [
            read_window(p, win, boundless=True, masked=True,
                        indexes=[bd for i, bd in pair.ms_bands if i == k])
            for k, p in enumerate(pair.ms_paths)
        ]
    ).astype(np.float32)
    ms = ms.filled(np.nan) if nan_invalid else np.ma.getdata(ms)
    ms_t = pair.ms_meta.transform @ Affine.translation(win.col_off, win.row_off)
    pc0, pr0 = (int(np.floor(v + 1e-6)) for v in ~pair.transform @ (ms_t.c, ms_t.f))
    r = pair.ratio
    pan_win = Window(pc0, pr0, int(win.width) * r + 1, int(win.height) * r + 1)
    pan_read = read_pan(pair, pan_win)
    pan = pan_read.filled(np.nan) if nan_invalid else np.ma.getdata(pan_read)
    return Scene(ms, pan.astype(np.float32), ms_t, pair.transform @ Affine.translation(pc0, pr0),
                 r)


def degrade_ms(scene: Scene, factor: int, sensor: str = "generic") -> Scene:
    """Coarsen the MS once more (MTF blur + decimation): e.g. ratio 2 -> 4 for a second case."""
    gains = sensor_mtf(sensor).ms_gains(scene.ms.shape[0])
    ms = mtf_decimate(scene.ms, gains, factor)
    return Scene(
        ms, scene.pan, scene.ms_transform @ Affine.scale(factor), scene.pan_transform,
        scene.ratio * factor,
    )


def reduced_scene(scene: Scene, sensor: str = "generic") -> tuple[Scene, np.ndarray]:
    """Wald reduced-resolution scene and its reference.

    Returns:
        ``(Scene(ms_lr, pan_lr), ref)``: the MS MTF-degraded and decimated by the ratio, the PAN
        MTF-filtered and sampled at MS pixel centres (so the fusion lands on the MS grid), and
        the original MS ``(C, h', w')`` cut to multiples of the ratio.
    """
    r, mtf = scene.ratio, sensor_mtf(sensor)
    c, h, w = scene.ms.shape
    ref = scene.ms[:, : h // r * r, : w // r * r]
    ms_lr = nan_aware(lambda a: mtf_decimate(a, mtf.ms_gains(c), r), ref)
    pan_lr = pan_to_ms_grid(scene, sensor, ref.shape[1:])
    lr = Scene(ms_lr, pan_lr, scene.ms_transform @ Affine.scale(r), scene.ms_transform, r)
    return lr, ref


def reduced_pair(
    scene: Scene, sensor: str = "generic"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wald reduced-resolution inputs and reference, all on the MS grid.

    Returns:
        ``(ms_up (C, h', w'), pan_lr (h', w'), ref (C, h', w'))``: the degraded MS
        cubic-upsampled back onto the MS grid, the degraded PAN and the original MS.
    """
    lr, ref = reduced_scene(scene, sensor)
    ms_up, pan_lr = full_pair(lr)
    return ms_up, pan_lr, ref


def full_pair(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Full-resolution inputs on the PAN grid: ``(ms_up (C, H, W), pan (H, W))``."""
    shape = (scene.pan.shape[0], scene.pan.shape[1])
    return resample_to_grid(scene.ms, scene.ms_transform, shape, scene.pan_transform), scene.pan


def pan_to_ms_grid(scene: Scene, sensor: str = "generic",
                   shape: tuple[int, ...] | None = None) -> np.ndarray:
    """The PAN MTF-filtered and sampled on the MS grid (its first ``shape`` pixels, all of it
    by default): QNR's D_s and the Wald pair's PAN. NaN (no data) in the PAN comes out as NaN
    wherever the filter read it."""
    gain, size = sensor_mtf(sensor).pan, tuple(shape or scene.ms.shape[1:])
    return nan_aware(lambda a: resample_to_grid(
        mtf_filter(a, gain, scene.ratio), scene.pan_transform, (size[0], size[1]),
        scene.ms_transform), scene.pan)


def nan_aware(linear: Callable[[np.ndarray], np.ndarray], image: np.ndarray) -> np.ndarray:
    """``linear(image)`` for a linear filter or resampling, with NaN (no data) in ``image``
    coming out as NaN wherever the operation read it, instead of everywhere (a cubic spline's
    prefilter is global). The holes are filled with each band's mean for the operation."""
    valid = np.isfinite(image)
    if valid.all():
        return linear(image)
    bands = image[None] if image.ndim == 2 else image
    ok = valid[None] if image.ndim == 2 else valid
    means = np.array([b[v].mean() if v.any() else 0.0 for b, v in zip(bands, ok, strict=True)])
    filled = np.where(ok, bands, means[:, None, None]).astype(np.float32)
    out = linear(filled[0] if image.ndim == 2 else filled)
    touched = np.abs(linear((~ok[0] if image.ndim == 2 else ~ok).astype(np.float32))) > 1e-3
    return np.where(touched, np.nan, out).astype(np.float32)


def crop_valid(scene: Scene, finite: bool = False) -> Scene:
    """The largest-ish axis-aligned part of ``scene`` free of zero (nodata) MS or PAN pixels,
    or with ``finite`` of NaN ones (:func:`region_scene` with ``nan_invalid``).

    Border rows or columns are trimmed greedily (the one with the most invalid pixels first)
    until no invalid MS pixel remains; the PAN is cut to the same footprint.
    """
    def ok(a: np.ndarray) -> np.ndarray:
        return np.isfinite(a) if finite else a > 0

    valid = ok(scene.ms).all(axis=0) & ok(pan_on_ms(scene))
    r0, r1, c0, c1 = 0, valid.shape[0], 0, valid.shape[1]
    while r1 - r0 > 1 and c1 - c0 > 1 and not valid[r0:r1, c0:c1].all():
        v = valid[r0:r1, c0:c1]
        bad = [(~v[0]).sum(), (~v[-1]).sum(), (~v[:, 0]).sum(), (~v[:, -1]).sum()]
        side = int(np.argmax(bad))
        r0, r1 = r0 + (side == 0), r1 - (side == 1)
        c0, c1 = c0 + (side == 2), c1 - (side == 3)
    r = scene.ratio
    ms_t = scene.ms_transform @ Affine.translation(c0, r0)
    pc, pr = (round(v) for v in ~scene.pan_transform @ (ms_t.c, ms_t.f))
    pan = scene.pan[pr : pr + (r1 - r0) * r, pc : pc + (c1 - c0) * r]
    pan_t = scene.pan_transform @ Affine.translation(pc, pr)
    return Scene(scene.ms[:, r0:r1, c0:c1], pan, ms_t, pan_t, r)


def pan_on_ms(scene: Scene) -> np.ndarray:
    """The PAN sampled (nearest) at MS pixel centres ``(h, w)``."""
    return resample_to_grid(scene.pan, scene.pan_transform, scene.ms.shape[1:],
                            scene.ms_transform, order=0)
