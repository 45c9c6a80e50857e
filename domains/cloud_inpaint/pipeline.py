"""The cloud-inpaint enhance / degrade / evaluate / demo steps (read, check, fill, write)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.warp import Resampling, reproject
from torch import nn

from domains.cloud_inpaint.clouds import apply_clouds, cloud_brightness, make_clouds
from domains.cloud_inpaint.fill import SMOOTH_SWEEPS
from domains.cloud_inpaint.inpaint import (
    Filler,
    biharmonic_fill,
    matched_reference,
    mean_fill,
    model_filler,
)
from domains.cloud_inpaint.masks import (
    detect_clouds,
    dilate,
    mask_from_file,
    mask_from_qa,
)
from domains.cloud_inpaint.metrics import masked_metrics
from domains.cloud_inpaint.windows import (
    WindowFill,
    biharmonic_window_fill,
    enhance_by_windows,
    fills_by_windows,
    mean_window_fill,
    model_window_fill,
)
from suite.domain import DemoItem
from suite.errors import InputError, UsageError
from suite.io.atomic import side_output
from suite.io.raster import (
    RasterMeta,
    check_same_grid,
    denormalize,
    detect_normalization,
    normalize,
    read_raster_meta,
    read_valid_mask,
    read_window,
    write_raster_windows,
)
from suite.sample import sample_data_dir
from suite.viz import save_png
from suite.weights import load_model


@dataclass
class Scene:
    """A raster in memory: stored values, normalized values, validity and metadata."""

    path: Path
    meta: RasterMeta
    stored: np.ndarray
    values: np.ndarray
    valid: np.ndarray


def read_scene(path: Path) -> Scene:
    """Read a whole raster and normalize it (suite convention, see ``suite.io.raster``)."""
    meta = read_raster_meta(path)
    stored = read_window(path, None)
    norm = detect_normalization(meta, float(stored.max()))
    # NaN pixels are invalid (read_valid_mask) and are never filled, but a filler reads around
    # the clouds: a NaN there would spread into the filled pixels, so it reads 0, as nodata does
    values = np.nan_to_num(normalize(stored, norm), nan=0.0, posinf=0.0, neginf=0.0)
    return Scene(path, meta, stored, values, read_valid_mask(path, data=stored))


def scene_mask(scene: Scene, options: argparse.Namespace) -> tuple[np.ndarray, str]:
    """The pixels to fill, and where they came from (mask file, QA band or detector)."""
    return choose_mask(scene.path, scene.meta, scene.valid, options,
                       lambda: detect_clouds(scene.values, scene.valid))


def choose_mask(path: Path, meta: RasterMeta, valid: np.ndarray, options: argparse.Namespace,
                detect: Callable[[], np.ndarray]) -> tuple[np.ndarray, str]:
    """The mask from ``--mask``, ``--qa`` or else ``detect()``, dilated, on valid pixels only;
    refused when it leaves nothing clear to fill from."""
    if getattr(options, "mask", None) is not None:
        mask, source = mask_from_file(options.mask, meta), f"mask {options.mask.name}"
    elif getattr(options, "qa", None) is not None:
        mask = mask_from_qa(options.qa, meta, options.qa_kind, options.qa_confidence)
        source = f"QA {options.qa.name}"
    else:
        mask, source = detect(), "simple detector"
    mask = dilate(mask, getattr(options, "dilate", 0)) & valid
    if mask.any() and not (valid & ~mask).any():
        bad = getattr(options, "mask", None) or getattr(options, "qa", None) or path
        raise InputError(bad, "the mask covers every valid pixel; nothing clear to fill from")
    return mask, source


def read_reference(path: Path, scene: Scene) -> np.ndarray:
    """A clear date on the scene's grid: same CRS and band count, resampled by georeferencing."""
    ref = read_scene(path)
    for meta, named in ((scene.meta, scene.path), (ref.meta, path)):
        if meta.crs is None:  # GCPs alone, or none: the two dates cannot be put on one grid
            raise InputError(named, "has no CRS and transform, so the reference cannot be "
                             "aligned with the image; warp both to one grid first (gdalwarp)")
    if ref.meta.crs != scene.meta.crs:
        raise InputError(path, f"reference CRS {ref.meta.crs} differs from the image's "
                         f"{scene.meta.crs}; reproject it first")
    if ref.meta.count != scene.meta.count:
        raise InputError(path, f"reference has {ref.meta.count} bands, the image "
                         f"{scene.meta.count}; give the same band set")
    out = np.zeros_like(scene.values)
    reproject(ref.values, out, src_transform=ref.meta.transform, src_crs=ref.meta.crs,
              dst_transform=scene.meta.transform, dst_crs=scene.meta.crs,
              resampling=Resampling.bilinear, src_nodata=None, dst_nodata=np.nan)
    if np.isnan(out).mean() > 0.5:
        raise InputError(path, "the reference covers less than half of the image")
    return np.where(np.isnan(out), scene.values, out)


def choose_filler(options: argparse.Namespace, ref: np.ndarray | None) -> tuple[Filler, str]:
    """The filler and its label; with no weights, a clearly labelled classical fallback."""
    method, model, label = filler_choice(options, ref is not None)
    if method == "mean":
        return mean_fill, label
    if model is None:
        if ref is not None:
            return (lambda x, m: matched_reference(ref, x, m)), label
        return biharmonic_fill, label
    progress = not getattr(options, "quiet", True)
    return model_filler(model, ref, progress), label


def filler_choice(options: argparse.Namespace, guided: bool
                  ) -> tuple[str, nn.Module | None, str]:
    """``(method, model or None, label)`` from ``--method`` and ``--weights`` (the shipped
    weights by default); a guided model needs ``--reference`` and only it."""
    from domains.cloud_inpaint import DOMAIN

    method = getattr(options, "method", "model")
    if method == "mean":
        return method, None, "mean fill"
    weights = getattr(options, "weights", None)
    if method == "model" and weights is None:
        weights = DOMAIN.guided_weights() if guided else DOMAIN.default_weights()
    if method == "biharmonic" or weights is None:
        if guided:
            return "biharmonic", None, "histogram-matched reference (no guided weights)"
        label = "biharmonic" if method == "biharmonic" else "biharmonic FALLBACK (no weights)"
        return "biharmonic", None, label
    model, card = load_model(weights, trust=getattr(options, "trust_checkpoint", False),
                             device=getattr(options, "device", "auto"))
    if bool(card.get("guided", False)) != guided:
        need = "--reference" if card.get("guided") else "weights trained with guidance"
        raise UsageError(f"{weights} {'is' if card.get('guided') else 'is not'} a guided model; "
                         f"it needs {need}")
    return "model", model, f"model {Path(weights).name}"


def _producer(stored: np.ndarray, valid: np.ndarray, meta: RasterMeta):  # type: ignore[no-untyped-def]
    """Window producer over an in-memory array, its invalid pixels masked: the writer fills
    them with nodata (or a per-dataset mask) and keeps filled pixels off the nodata value."""

    def produce(window: Any) -> np.ma.MaskedArray:
        rows = slice(int(window.row_off), int(window.row_off + window.height))
        cols = slice(int(window.col_off), int(window.col_off + window.width))
        block = stored[:, rows, cols]
        return np.ma.MaskedArray(block, mask=np.broadcast_to(~valid[rows, cols], block.shape))

    return produce


def write_mask(path: Path, meta: RasterMeta, mask: np.ndarray) -> Path:
    """Write a uint8 mask (codes > 0 masked) on the image grid to ``path`` (the output's side
    file, :func:`suite.io.atomic.side_output`)."""
    out_meta = meta.updated(count=1, dtype="uint8", nodata=None, descriptions=("cloud mask",),
                            scales=(1.0,), offsets=(0.0,))
    data = mask.astype(np.uint8)[None]
    write_raster_windows(path, out_meta, lambda w: _producer(data, np.ones(mask.shape, bool),
                                                             out_meta)(w))
    return path


def enhance_raster(path: Path, output: Path, options: argparse.Namespace) -> dict[str, Any]:
    """Fill clouds and shadows of ``path``; pixels outside the mask are copied bit for bit.

    A scene above :data:`domains.cloud_inpaint.windows.WHOLE_SCENE_PIXELS` is filled window by
    window (:mod:`domains.cloud_inpaint.windows`), unless a reference date needs it whole.
    """
    meta = read_raster_meta(path)
    mask_out = side_output(options.output, "mask", options) if getattr(
        options, "write_mask", False) else None
    if fills_by_windows(meta) and not options.reference:
        return _enhance_large(path, output, meta, options, mask_out)
    scene = read_scene(path)
    mask, source = scene_mask(scene, options)
    ref = read_reference(options.reference, scene) if options.reference else None
    filler, label = choose_filler(options, ref)
    stored = scene.stored.copy()
    if mask.any():
        # nodata pixels are unknown, not a dark clear surface: filled beside the clouds (never
        # written) and left out of the statistics, so a scene's nodata collar does not pull
        # the fill towards its nodata value
        filled = filler(scene.values, mask | ~scene.valid)
        norm = detect_normalization(scene.meta, float(scene.stored.max()))
        stored[:, mask] = denormalize(filled, norm)[:, mask]
    write_raster_windows(output, scene.meta, _producer(stored, scene.valid, scene.meta))
    if mask_out is not None:
        write_mask(mask_out, scene.meta, mask)
    return {"filled_fraction": round(float(mask.mean()), 4), "mask": source, "filler": label}


def _enhance_large(path: Path, output: Path, meta: RasterMeta, options: argparse.Namespace,
                   mask_out: Path | None) -> dict[str, Any]:
    """:func:`enhance_raster` for a scene too large to hold whole."""
    method, model, label = filler_choice(options, guided=False)
    fill: WindowFill = mean_window_fill if method == "mean" else biharmonic_window_fill
    sweeps = SMOOTH_SWEEPS
    if model is not None:
        fill = model_window_fill(model)
        sweeps = int(getattr(model, "prior_sweeps", SMOOTH_SWEEPS))
    mask, source, note = enhance_by_windows(path, output, meta, options, choose_mask, fill,
                                            sweeps)
    if mask_out is not None:
        write_mask(mask_out, meta, mask)
    return {"filled_fraction": round(float(mask.mean()), 4), "mask": source,
            "filler": f"{label}, {note}"}


def degrade_raster(path: Path, output: Path, options: argparse.Namespace) -> dict[str, Any]:
    """Draw synthetic clouds over a clear raster; the exact mask goes to ``OUTPUT_mask.tif``."""
    cover = float(options.cover)
    if not 0.0 < cover < 1.0:
        raise UsageError(f"--cover must be in (0, 1), got {cover}")
    mask_out = side_output(options.output, "mask", options)
    scene = read_scene(path)
    layer = make_clouds(scene.values.shape[1:], cover, np.random.default_rng(options.seed))
    codes = np.where(scene.valid, layer.codes, 0).astype(np.uint8)
    cloudy = apply_clouds(scene.values, layer, cloud_brightness(scene.values[:, scene.valid]
                                                                [:, :, None]))
    norm = detect_normalization(scene.meta, float(scene.stored.max()))
    stored = np.where(codes[None] > 0, denormalize(cloudy, norm), scene.stored)
    write_raster_windows(output, scene.meta, _producer(stored, scene.valid, scene.meta))
    mask_path = write_mask(mask_out, scene.meta, codes)
    return {"cover": round(float((codes > 0).mean()), 4), "mask": str(mask_path)}


def evaluate_rasters(pred: Path, ref: Path, mask_path: Path | None) -> dict[str, float]:
    """Metrics inside/outside the mask (``--mask``; else the pixels where pred and ref differ)."""
    p, r = read_scene(pred), read_scene(ref)
    check_same_grid(pred, p.meta, r.meta, "the prediction")
    if p.meta.count != r.meta.count:
        raise InputError(pred, f"{p.meta.count} bands, the reference {r.meta.count}")
    if mask_path is not None:
        mask = mask_from_file(mask_path, r.meta)
    else:
        mask = (p.stored != r.stored).any(0)
    return masked_metrics(p.values, r.values, mask)


def run_demo(out_dir: Path) -> list[DemoItem]:
    """Synthetic clouds (30 % cover, seed 0) over the bundled clear Sentinel-2 excerpt, filled."""
    folder = sample_data_dir() / "cloud"
    scene = read_scene(folder / "s2_clear_eolearn_ref3.tif")
    layer = make_clouds(scene.values.shape[1:], 0.3, np.random.default_rng(0))
    cloudy = apply_clouds(scene.values, layer, cloud_brightness(scene.values))
    options = argparse.Namespace(method="model", weights=None, device="cpu")
    filler, label = choose_filler(options, None)
    filled = filler(cloudy, layer.mask)
    rgb = [np.moveaxis(a[[2, 1, 0]], 0, -1) for a in (cloudy, filled, scene.values)]
    hi = float(np.quantile(rgb[2], 0.99))
    pics = [save_png(out_dir / f"cloud_{n}.png", a, 0.0, hi)
            for n, a in zip(("cloudy", "filled", "clear"), rgb, strict=True)]
    metrics = {f"{k} (normalized reflectance, range of the clear image)": v
               for k, v in masked_metrics(filled, scene.values, layer.mask).items()
               if k.endswith("in_mask")}
    note = (f"Filler: {label}. Sentinel-2 B04/B03/B02 true colour; clouds, thin veils and "
            "shadows are synthetic, the mask exact; this scene was not used for training.")
    return [DemoItem("Sentinel-2 excerpt, synthetic clouds at 30 % cover", pics[0], pics[1],
                     metrics, reference_png=pics[2], note=note)]
