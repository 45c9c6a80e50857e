"""Filling a scene too large to hold whole: window by window, around a coarse global prior.

Whole-scene filling (:func:`domains.cloud_inpaint.pipeline.enhance_raster`) holds the scene, the
network's planes and the prior's pyramid in float32 at once, several times the scene's size. Above
:data:`WHOLE_SCENE_PIXELS` the scene is filled window by window instead, and memory is bounded by
a window plus one byte per scene pixel for each of the mask and the valid-pixel map:

1. one pass by windows reads the valid-pixel map, the largest value (for the normalization) and,
   for the detector, a regular sample of the band means that sets its thresholds;
2. the mask (a file, a QA band, or the detector window by window) is held whole;
3. a second pass gathers each band's mean and standard deviation over the clear pixels (the
   whole-scene filler's standardization) and the clear pixels' sums over cells of ``f x f``
   pixels, ``f`` a power of two that keeps the coarse grid within :data:`COARSE_SIDE`;
4. the smooth fill of that coarse grid is the global prior: it carries a hole's real edges in
   from outside any window, as the whole-scene prior does;
5. each :data:`WINDOW`-pixel window with a pixel to fill is read with :data:`HALO` pixels of
   context on each side. Holes that run through the context's outer edge (inside the scene) are
   pinned there to the coarse prior, so that the window's own smooth fill is anchored to the far
   edges of the hole rather than reflected at a cut through a cloud; the network then runs on the
   window with that prior, and the window's centre is written.

Outside the mask every pixel is copied bit for bit, as in whole-scene filling.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rasterio.windows import Window
from scipy import ndimage
from skimage.restoration import inpaint_biharmonic
from torch import nn

from domains.cloud_inpaint.fill import smooth_fill
from domains.cloud_inpaint.inpaint import band_inputs, band_planes, run_generator
from domains.cloud_inpaint.masks import bright_and_dark, detector_levels, with_shadows
from domains.cloud_inpaint.net import ResidualInpainter
from suite.io.raster import (
    Normalization,
    RasterMeta,
    denormalize,
    detect_normalization,
    finite,
    inner_slices,
    iter_windows,
    normalize,
    read_valid_mask,
    read_window,
    write_raster_windows,
)

WHOLE_SCENE_PIXELS = 2048 * 2048  # larger scenes are filled window by window
WINDOW = 1024  # side of the windows filled and written (a multiple of the writer's 256 tiles)
HALO = 64  # context read on each side of a window (the network's tiles need 32)
COARSE_SIDE = 512  # longest side of the coarse grid of the global prior
PIN = 2  # width of the context's outer edge pinned to the coarse prior
DETECTOR_SAMPLE = 4_000_000  # band means sampled for the detector's thresholds

# (z, hole, pinned) -> filled z: a window's standardized bands ``(C, h, w)``, the pixels to fill
# (clouds and nodata), and those of them pinned to the coarse prior (their value is in ``z``)
WindowFill = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def fills_by_windows(meta: RasterMeta) -> bool:
    """Whether the scene is too large to fill whole."""
    return meta.width * meta.height > WHOLE_SCENE_PIXELS


@dataclass
class Scan:
    """What the first pass learns of a scene: valid pixels, normalization, detector sample."""

    valid: np.ndarray
    norm: Normalization
    means: np.ndarray  # band means of a regular sample of valid pixels (normalized)


def scan(path: Path, meta: RasterMeta) -> Scan:
    """First pass: the valid-pixel map, the normalization and the detector's sample."""
    valid = np.zeros((meta.height, meta.width), dtype=bool)
    stride = max(1, math.isqrt(meta.width * meta.height // DETECTOR_SAMPLE))
    top, samples = -math.inf, []
    for _, win in iter_windows(meta.width, meta.height, WINDOW):
        block = read_window(path, win)
        ok = read_valid_mask(path, win, data=block)
        valid[_rows(win), _cols(win)] = ok
        if ok.any():
            top = max(top, float(np.nanmax(np.where(finite(block), block, -np.inf))))
        sample = _on_stride(win, stride)
        means = block[:, sample[0], sample[1]].astype(np.float64).mean(0)
        samples.append(means[ok[sample[0], sample[1]]])
    norm = detect_normalization(meta, top if math.isfinite(top) else None)
    return Scan(valid, norm, (np.concatenate(samples) / norm.scale).astype(np.float32))


def detect(path: Path, meta: RasterMeta, seen: Scan) -> np.ndarray:
    """The simple detector (:func:`domains.cloud_inpaint.masks.detect_clouds`) window by window,
    its thresholds from the scan's sample."""
    if seen.means.size == 0:
        return np.zeros_like(seen.valid)
    levels = detector_levels(seen.means)
    cloud, dark = np.zeros_like(seen.valid), np.zeros_like(seen.valid)
    for _, win in iter_windows(meta.width, meta.height, WINDOW):
        rows, cols = _rows(win), _cols(win)
        values = _values(path, win, seen.norm)
        cloud[rows, cols], dark[rows, cols] = bright_and_dark(values, seen.valid[rows, cols],
                                                              levels)
    return with_shadows(cloud, dark)


@dataclass
class Prior:
    """Per-band standardization over clear pixels, and the coarse smooth fill in its units."""

    mean: np.ndarray  # (C, 1, 1)
    std: np.ndarray  # (C, 1, 1)
    cell: int  # coarse cell side f (pixels)
    coarse: np.ndarray  # (C, ceil(H / f), ceil(W / f)) standardized


def global_prior(path: Path, meta: RasterMeta, seen: Scan, hole: np.ndarray,
                 sweeps: int) -> Prior:
    """Second pass: clear-pixel statistics and cell sums, then the coarse smooth fill."""
    cell = 1 << max(0, math.ceil(math.log2(max(meta.width, meta.height) / COARSE_SIDE)))
    shape = (meta.count, -(-meta.height // cell), -(-meta.width // cell))
    sums, counts = np.zeros(shape), np.zeros(shape[1:])
    total, square, n = np.zeros(meta.count), np.zeros(meta.count), 0
    for _, win in iter_windows(meta.width, meta.height, WINDOW):
        clear = ~hole[_rows(win), _cols(win)]
        values = _values(path, win, seen.norm).astype(np.float64)
        pix = values[:, clear]
        total, square, n = total + pix.sum(1), square + (pix**2).sum(1), n + pix.shape[1]
        r, c = int(win.row_off) // cell, int(win.col_off) // cell
        cells = _cell_sums(values * clear, cell)
        sums[:, r: r + cells.shape[1], c: c + cells.shape[2]] = cells
        counts[r: r + cells.shape[1], c: c + cells.shape[2]] = _cell_sums(clear[None], cell)[0]
    mean = total / n
    std = np.maximum(np.sqrt(np.maximum(square / n - mean**2, 0.0)), 1e-6)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(counts > 0, (sums / counts - mean[:, None, None]) / std[:, None, None], 0.0)
    empty = torch.from_numpy((counts == 0).astype(np.float32))[None, None]
    coarse = smooth_fill(torch.from_numpy(z.astype(np.float32))[None], empty, sweeps)[0]
    return Prior(mean[:, None, None].astype(np.float32), std[:, None, None].astype(np.float32),
                 cell, coarse.numpy())


def write_filled(path: Path, output: Path, meta: RasterMeta, seen: Scan, mask: np.ndarray,
                 prior: Prior | None, fill: WindowFill, progress: bool) -> int:
    """Last pass: write the output window by window, filling the windows with masked pixels;
    returns the number of windows filled."""
    filled = 0

    def produce(win: Window) -> np.ma.MaskedArray:
        nonlocal filled
        rows, cols = _rows(win), _cols(win)
        valid = seen.valid[rows, cols]
        if prior is None or not mask[rows, cols].any():
            block = read_window(path, win)
        else:
            block = _filled_window(path, meta, win, seen, mask, prior, fill)
            filled += 1
        return np.ma.MaskedArray(block, mask=np.broadcast_to(~valid, block.shape))

    write_raster_windows(output, meta, produce, window_size=WINDOW, progress=progress)
    return filled


def _filled_window(path: Path, meta: RasterMeta, inner: Window, seen: Scan, mask: np.ndarray,
                   prior: Prior, fill: WindowFill) -> np.ndarray:
    """The stored values of ``inner`` with its masked pixels filled from a window with halo."""
    outer = _with_halo(inner, meta)
    rows, cols = _rows(outer), _cols(outer)
    stored = read_window(path, outer)
    z = (_values(path, outer, seen.norm, stored) - prior.mean) / prior.std
    hole = mask[rows, cols] | ~seen.valid[rows, cols]
    pinned = hole & _cut_edge(outer, meta)
    if pinned.any():
        z[:, pinned] = _coarse_at(prior, outer, pinned)
    values = fill(z.astype(np.float32), hole, pinned) * prior.std + prior.mean
    keep = inner_slices(outer, inner)
    out = stored[:, keep[0], keep[1]].copy()
    write = mask[_rows(inner), _cols(inner)]
    out[:, write] = denormalize(values[:, keep[0], keep[1]], seen.norm)[:, write]
    return out


def _cut_edge(outer: Window, meta: RasterMeta) -> np.ndarray:
    """The outer :data:`PIN` pixels of a window, on the sides where it cuts through the scene."""
    h, w = int(outer.height), int(outer.width)
    edge = np.zeros((h, w), dtype=bool)
    if outer.row_off > 0:
        edge[:PIN] = True
    if outer.row_off + h < meta.height:
        edge[-PIN:] = True
    if outer.col_off > 0:
        edge[:, :PIN] = True
    if outer.col_off + w < meta.width:
        edge[:, -PIN:] = True
    return edge


def _coarse_at(prior: Prior, win: Window, where: np.ndarray) -> np.ndarray:
    """The coarse prior ``(C, n)``, bilinearly interpolated at the centres of the ``where``
    pixels of ``win`` (only the pinned edge is needed, not the whole window)."""
    rows, cols = np.nonzero(where)
    r = (rows + int(win.row_off) + 0.5) / prior.cell - 0.5
    c = (cols + int(win.col_off) + 0.5) / prior.cell - 0.5
    return np.stack([ndimage.map_coordinates(band, [r, c], order=1, mode="nearest")
                     for band in prior.coarse])


def model_window_fill(model: nn.Module) -> WindowFill:
    """The residual network on a window, its prior the window's smooth fill anchored at the
    pinned pixels (legacy generators take no prior)."""
    model.eval()

    def fill(z: np.ndarray, hole: np.ndarray, pinned: np.ndarray) -> np.ndarray:
        if not isinstance(model, ResidualInpainter):
            return run_generator(model, band_inputs(z, hole))
        t = torch.from_numpy(z)[None]
        with torch.no_grad():
            prior = smooth_fill(t, _plane(hole & ~pinned), model.prior_sweeps)
            planes = band_planes(t, _plane(hole), prior=prior).numpy()
        return _composite(z, hole, run_generator(model, planes))

    return fill


def biharmonic_window_fill(z: np.ndarray, hole: np.ndarray, pinned: np.ndarray) -> np.ndarray:
    """scikit-image's biharmonic inpainting of a window, the pinned pixels as known values."""
    out = inpaint_biharmonic(np.moveaxis(z, 0, -1).astype(np.float64), hole & ~pinned,
                             channel_axis=-1)
    return _composite(z, hole, np.moveaxis(out, -1, 0))


def mean_window_fill(z: np.ndarray, hole: np.ndarray, pinned: np.ndarray) -> np.ndarray:
    """Each band's mean over the scene's clear pixels: 0 in standardized units."""
    return _composite(z, hole, np.zeros_like(z))


def enhance_by_windows(path: Path, output: Path, meta: RasterMeta, options: argparse.Namespace,
                       choose_mask: Callable[..., tuple[np.ndarray, str]],
                       fill: WindowFill, sweeps: int) -> tuple[np.ndarray, str, str]:
    """Fill a large scene window by window (the module docstring's passes); returns the mask,
    where it came from, and how many windows were filled."""
    seen = scan(path, meta)
    mask, source = choose_mask(path, meta, seen.valid, options, lambda: detect(path, meta, seen))
    prior = global_prior(path, meta, seen, mask | ~seen.valid, sweeps) if mask.any() else None
    progress = not getattr(options, "quiet", True)
    filled = write_filled(path, output, meta, seen, mask, prior, fill, progress)
    total = len(list(iter_windows(meta.width, meta.height, WINDOW)))
    return mask, source, f"window by window: {filled} of {total} windows of {WINDOW} pixels"


def _composite(z: np.ndarray, hole: np.ndarray, filled: np.ndarray) -> np.ndarray:
    return np.where(hole[None], filled, z).astype(np.float32)


def _plane(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a.astype(np.float32))[None, None]


def _values(path: Path, win: Window, norm: Normalization,
            stored: np.ndarray | None = None) -> np.ndarray:
    """Normalized values of a window, NaN read as 0 (as :func:`pipeline.read_scene` does)."""
    data = read_window(path, win) if stored is None else stored
    return np.nan_to_num(normalize(data, norm), nan=0.0, posinf=0.0, neginf=0.0)


def _with_halo(inner: Window, meta: RasterMeta) -> Window:
    r0, c0 = max(int(inner.row_off) - HALO, 0), max(int(inner.col_off) - HALO, 0)
    r1 = min(int(inner.row_off + inner.height) + HALO, meta.height)
    c1 = min(int(inner.col_off + inner.width) + HALO, meta.width)
    return Window(c0, r0, c1 - c0, r1 - r0)


def _rows(win: Window) -> slice:
    return slice(int(win.row_off), int(win.row_off + win.height))


def _cols(win: Window) -> slice:
    return slice(int(win.col_off), int(win.col_off + win.width))


def _on_stride(win: Window, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices, inside a window, of the scene's pixels on a regular grid of ``stride``."""
    r0, c0 = int(win.row_off), int(win.col_off)
    rows = np.arange(-r0 % stride, int(win.height), stride)
    cols = np.arange(-c0 % stride, int(win.width), stride)
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    return rr.ravel(), cc.ravel()


def _cell_sums(a: np.ndarray, cell: int) -> np.ndarray:
    """Sums of ``(C, h, w)`` over ``cell x cell`` blocks (the last ones partial)."""
    c, h, w = a.shape
    ph, pw = -h % cell, -w % cell
    padded = np.pad(a, ((0, 0), (0, ph), (0, pw)))
    return padded.reshape(c, (h + ph) // cell, cell, (w + pw) // cell, cell).sum((2, 4))
