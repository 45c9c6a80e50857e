"""The pansharpen domain's evaluate (both protocols) and demo steps."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from domains.pansharpen import classical, deep
from domains.pansharpen.pairing import pair_rasters
from domains.pansharpen.wald import Scene, full_pair, load_scene, pan_to_ms_grid, reduced_scene
from suite.degradations.mtf import sensor_mtf
from suite.domain import DemoItem
from suite.errors import InputError
from suite.io.raster import check_same_grid, read_raster_meta, read_window
from suite.metrics.spectral import ergas, q2n, q_index, qnr, sam, scc
from suite.sample import sample_data_dir
from suite.viz import save_png


def _masked(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Float64 data ``(C, H, W)`` and its per-pixel validity ``(H, W)``."""
    a = read_window(path, None, masked=True).astype(np.float64)
    return np.ma.getdata(a), ~np.ma.getmaskarray(a).any(0)


def reduced_resolution(pred: Path, ref: Path, ratio: float) -> dict[str, float]:
    """SAM, ERGAS, Q, Q2n and sCC of a fusion against the reference MS on the same grid, over
    the pixels valid in both (Q and Q2n: windows and blocks wholly inside them)."""
    check_same_grid(pred, read_raster_meta(pred), read_raster_meta(ref), "the prediction")
    p, pv = _masked(pred)
    r, rv = _masked(ref)
    if p.shape != r.shape:
        raise InputError(pred, f"shape {p.shape} differs from the reference {r.shape}")
    mask = pv & rv
    if not mask.any():
        raise InputError(pred, "has no pixel with data where the reference has data")
    return {
        "sam_deg": sam(p, r, mask),
        f"ergas_ratio{ratio:g}": ergas(p, r, ratio, mask),
        "q_uiqi_win32": q_index(p, r, 32, mask),
        "q2n_block32": q2n(p, r, 32, mask),
        "scc_laplacian": scc(p, r, mask),
    }


def full_resolution(pred: Path, ms: Path, pan: Path, sensor: str) -> dict[str, float]:
    """QNR, D_lambda and D_s (Q on 32x32 blocks) of a fusion given its MS and PAN inputs.

    The fused image must be on the PAN grid of the MS/PAN pair's overlap (what ``enhance``
    writes); the PAN is low-passed with its MTF and sampled on the MS grid for D_s.
    """
    pair = pair_rasters([ms], pan)
    scene = load_scene([ms], pan, nan_invalid=True)
    meta = read_raster_meta(pred)
    if meta.crs != pair.pan_meta.crs or not meta.transform.almost_equals(pair.transform, 1e-6):
        raise InputError(pred, f"is not on the PAN grid of {pan}'s overlap with {ms} (CRS "
                         f"{meta.crs}, transform {tuple(meta.transform)[:6]})")
    fused, fused_valid = _masked(pred)
    if fused.shape[0] != scene.ms.shape[0]:
        raise InputError(pred, f"has {fused.shape[0]} bands, the MS {scene.ms.shape[0]}")
    if fused.shape[1:] != pair.shape:
        raise InputError(pred, f"is {fused.shape[1:]} pixels, the PAN overlap {pair.shape}")
    # the scene's PAN crop starts at this pixel of the fused (output) grid
    col0, row0 = (round(v) for v in ~pair.transform @ (scene.pan_transform.c,
                                                        scene.pan_transform.f))
    h = min(scene.pan.shape[0], fused.shape[1] - row0)
    w = min(scene.pan.shape[1], fused.shape[2] - col0)
    crop = fused[:, row0 : row0 + h, col0 : col0 + w]
    pan_hr, pan_lr = scene.pan[:h, :w], pan_to_ms_grid(scene, sensor)
    # nodata (NaN here) left out at both resolutions; the MTF filter spreads a hole a little
    mask = fused_valid[row0 : row0 + h, col0 : col0 + w] & np.isfinite(pan_hr)
    mask_lr = np.isfinite(scene.ms).all(axis=0) & np.isfinite(pan_lr)
    return qnr(crop, scene.ms, pan_hr, pan_lr, mask=mask, mask_lr=mask_lr)


def evaluate(pred: Path, ref: Path, options: argparse.Namespace) -> dict[str, float]:
    """Reduced resolution against ``ref``, or full resolution when ``--pan`` is given."""
    pan = getattr(options, "pan", None)
    if pan is not None:
        ms = getattr(options, "ms", None) or ref
        return full_resolution(pred, Path(ms), Path(pan), getattr(options, "sensor", "generic"))
    return reduced_resolution(pred, ref, float(getattr(options, "ratio", 4.0)))


def _rgb(ms: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` B4-B3-B2 display in [0, 1] with fixed per-band stretch limits."""
    rgb = ms[[2, 1, 0]].transpose(1, 2, 0)
    return np.clip((rgb - lo[[2, 1, 0]]) / (hi - lo)[[2, 1, 0]], 0, 1)


def _fuse_demo(lr: Scene, sensor: str) -> dict[str, np.ndarray]:
    """Bicubic, MTF-GLP and the adapted deep method on a reduced-resolution scene."""
    ms_up, pan = full_pair(lr)
    gains = sensor_mtf(sensor).ms_gains(lr.ms.shape[0])
    model, card = deep.load()
    norm = deep.fit_norm(lr.ms, lr.pan)
    tuned = deep.adapt_on_scene(model, lr, sensor, norm, card.get("adaptation", {}))
    return {
        "bicubic": ms_up,
        "mtf-glp": classical.pansharpen(ms_up, pan, "mtf-glp", lr.ratio, gains),
        "deep": deep.DeepSharpener(tuned, norm).apply(ms_up, pan),
    }


def run_demo(out_dir: Path) -> list[DemoItem]:
    """Wald reduced-resolution demo on the bundled Landsat 8 excerpt (held out from training)."""
    folder = sample_data_dir() / "pansharpen"
    scene = load_scene([folder / "l8_ms_b2-b5.tif"], folder / "l8_pan_b8.tif")
    lr, ref = reduced_scene(scene, "landsat8")
    fused = _fuse_demo(lr, "landsat8")
    lo, hi = np.percentile(ref, 1, axis=(1, 2)), np.percentile(ref, 99, axis=(1, 2))
    pics = {
        name: save_png(out_dir / f"{name}.png", _rgb(img, lo, hi), 0.0, 1.0)
        for name, img in {**fused, "reference": ref}.items()
    }
    metrics: dict[str, float] = {}
    for name, img in fused.items():
        metrics[f"{name}_sam_deg"] = sam(img, ref)
        metrics[f"{name}_ergas_ratio2"] = ergas(img, ref, 2)
        metrics[f"{name}_q2n_block32"] = q2n(img, ref, 32)
    return [
        DemoItem(
            "Landsat 8 B4-B3-B2, Wald reduced resolution (60 m MS + 30 m PAN -> 30 m)",
            pics["bicubic"],
            pics["deep"],
            metrics,
            reference_png=pics["reference"],
            note="Before: bicubic upsampling; after: deep default with target adaptation; "
            "also written: mtf-glp.png. Metrics against the original 30 m MS over all pixels: "
            "SAM in degrees, ERGAS at ratio 2, Q2n on 32x32 blocks. The excerpt lies in the "
            "part of the scene held out from training.",
        )
    ]
