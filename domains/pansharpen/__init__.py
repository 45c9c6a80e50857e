"""Pansharpening domain: fuse a multispectral raster with its panchromatic band (GeoTIFF in/out).

``suite enhance pansharpen MS.tif [MORE_MS_BANDS.tif ...] --pan PAN.tif -o OUT.tif
--method mtf-glp --sensor landsat8`` pairs the rasters by georeferencing, registers the MS bands
to the PAN (sub-pixel), fits the method's global statistics on a sample of the scene and writes
the sharpened MS at PAN resolution window by window (memory stays flat as the scene grows).
"""

from __future__ import annotations

import argparse
import math
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.warp import reproject
from rasterio.windows import Window

from domains.pansharpen import classical, deep
from domains.pansharpen.pairing import PanMsPair, pair_rasters, read_pan, upsample_ms
from domains.pansharpen.registration import (
    DEFAULT_THRESHOLD,
    Registration,
    register_windows,
)
from domains.pansharpen.wald import (
    Scene,
    crop_valid,
    load_scene,
    ms_window,
    reduced_scene,
    region_scene,
)
from suite.degradations.mtf import SENSORS, sensor_mtf
from suite.domain import DemoItem, Domain
from suite.errors import InputError, UsageError
from suite.io.atomic import side_output
from suite.io.raster import RasterMeta, read_raster_meta, read_window, write_raster_windows

CLASSICAL = classical.METHODS
SAMPLE_TILE = 512
"""Side (PAN pixels) of the windows sampled to fit a method's global statistics."""
SAMPLE_GRID = 4
"""Up to ``SAMPLE_GRID x SAMPLE_GRID`` windows are sampled across the scene."""
ADAPT_SIDE = 512
"""Side (MS pixels) of the central region the deep method adapts on."""
REGISTRATION_SIDE = 2048
"""Side (PAN pixels) of each window used to estimate band shifts."""
REGISTRATION_GRID = 3
"""Registration windows per axis when the scene is larger than one window."""
MIN_REGISTRATION_SIDE = 8
"""MS pixels a side below which a scene is not registered (too little to correlate)."""


def _has_valid(path: Path, window: Window | None = None) -> bool:
    """Whether a raster has any valid pixel (dataset mask read at most 1024 pixels a side)."""
    with rasterio.open(path) as ds:
        win = window or Window(0, 0, ds.width, ds.height)
        f = max(1, math.ceil(max(win.width, win.height) / 1024))
        shape = (max(1, int(win.height // f)), max(1, int(win.width // f)))
        return bool(ds.dataset_mask(window=win, out_shape=shape).any())


def _check_valid(pair: PanMsPair) -> None:
    """Refuse a pair whose MS or PAN has no valid pixel in the common footprint."""
    if not _has_valid(pair.pan_path, pair.window):
        raise InputError(pair.pan_path, "has no valid pixel where it overlaps the MS (all nodata)")
    if not any(_has_valid(p) for p in pair.ms_paths):
        raise InputError(pair.ms_paths[0], "has no valid pixel (all nodata)")


def _sample_windows(pair: PanMsPair) -> list[Window]:
    """Windows (output grid) spread over the scene, or the whole scene when it is small."""
    h, w = pair.shape
    if h * w <= (SAMPLE_GRID * SAMPLE_TILE) ** 2:
        return [Window(0, 0, w, h)]
    side_h, side_w = min(SAMPLE_TILE, h), min(SAMPLE_TILE, w)
    rows = np.linspace(0, h - side_h, SAMPLE_GRID).astype(int)
    cols = np.linspace(0, w - side_w, SAMPLE_GRID).astype(int)
    return [Window(int(c), int(r), side_w, side_h) for r in rows for c in cols]


def _read_pair(
    pair: PanMsPair, window: Window, shifts: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MS on the PAN grid, PAN (invalid PAN pixels filled) and validity for one window."""
    ms = upsample_ms(pair, window, shifts)
    pan = read_pan(pair, window)
    valid = ~(np.ma.getmaskarray(ms).any(axis=0) | np.ma.getmaskarray(pan))
    fill = float(pan.mean()) if pan.count() else 0.0
    return np.ma.getdata(ms), np.ma.filled(pan, fill), valid


def _fit(pair: PanMsPair, options: argparse.Namespace, shifts: np.ndarray | None) -> Any:
    """Fit the chosen method on the sample windows (invalid pixels left out)."""
    parts = [_read_pair(pair, win, shifts) for win in _sample_windows(pair)]
    ms = np.concatenate([np.where(v[None], m, np.nan) for m, _, v in parts], axis=2)
    pan = np.concatenate([p for _, p, _ in parts], axis=1)
    gains = sensor_mtf(options.sensor).ms_gains(pair.band_count)
    injection = getattr(options, "injection", "regression")
    return classical.fit(ms, pan, options.method, pair.ratio, gains, injection)


def _pan_on_ms_grid(pair: PanMsPair, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """MS bands and the PAN averaged onto their grid, over an MS-pixel window; NaN where either
    has no data (registration leaves those pixels out)."""
    ms_t = pair.ms_meta.transform @ rasterio.Affine.translation(window.col_off, window.row_off)
    ms = np.ma.concatenate(
        [
            read_window(p, window, boundless=True, masked=True,
                        indexes=[b for i, b in pair.ms_bands if i == k])
            for k, p in enumerate(pair.ms_paths)
        ]
    ).astype(np.float32).filled(np.nan)
    pan_lr = np.full(ms.shape[1:], np.nan, dtype=np.float32)
    with rasterio.open(pair.pan_path) as src:
        reproject(
            rasterio.band(src, 1),
            pan_lr,
            dst_transform=ms_t,
            dst_crs=src.crs,
            dst_nodata=np.nan,
            resampling=Resampling.average,
        )
    return ms, pan_lr


def _registration_windows(pair: PanMsPair) -> list[Window]:
    """Up to 3 x 3 MS-pixel windows (REGISTRATION_SIDE PAN pixels at most) across the scene."""
    full = ms_window(pair)
    h, w = int(full.height), int(full.width)
    side = min(REGISTRATION_SIDE // pair.ratio, h, w)
    n = 1 if 2 * side > max(h, w) else REGISTRATION_GRID
    rows = np.linspace(0, h - side, n).astype(int) + int(full.row_off)
    cols = np.linspace(0, w - side, n).astype(int) + int(full.col_off)
    return [Window(int(c), int(r), side, side) for r in rows for c in cols]


def _registration(pair: PanMsPair, options: argparse.Namespace) -> Registration | None:
    """Estimate band shifts on clear pixels of several windows (``--register auto``)."""
    if getattr(options, "register", "auto") == "off":
        return None
    windows = _registration_windows(pair)
    if min(int(windows[0].height), int(windows[0].width)) < MIN_REGISTRATION_SIDE:
        c = len(pair.ms_bands)  # a strip a few pixels high has nothing to correlate
        return Registration(np.zeros((c, 2)), np.full(c, np.nan), False, None, 0,
                            "too small to register")
    blocks = [_pan_on_ms_grid(pair, win) for win in windows]
    threshold = float(getattr(options, "register_threshold", DEFAULT_THRESHOLD))
    return register_windows(blocks, threshold)


def _output_meta(pair: PanMsPair) -> RasterMeta:
    """Output metadata: MS dtype, nodata, scales and band names on the PAN output grid."""
    metas = [read_raster_meta(p) for p in pair.ms_paths]
    names = []
    for index, band in pair.ms_bands:
        desc = metas[index].descriptions[band - 1]
        stem = pair.ms_paths[index].stem
        names.append(desc or (stem if metas[index].count == 1 else f"{stem}_b{band}"))
    scales = tuple(metas[i].scales[b - 1] for i, b in pair.ms_bands)
    offsets = tuple(metas[i].offsets[b - 1] for i, b in pair.ms_bands)
    # each band keeps its own file's band tags (a WAVELENGTH per band); of the files' dataset
    # tags, only those all of them share describe the stack (not the first file's BAND=B2)
    band_tags = tuple(metas[i].band_tags[b - 1] if metas[i].band_tags else {}
                      for i, b in pair.ms_bands)
    shared = {k: v for k, v in metas[0].metadata.items()
              if all(m.metadata.get(k) == v for m in metas[1:])}
    h, w = pair.shape
    return pair.ms_meta.updated(
        count=pair.band_count,
        height=h,
        width=w,
        transform=pair.transform,
        descriptions=tuple(names),
        scales=scales,
        offsets=offsets,
        band_tags=band_tags,
        metadata=shared,
        path=None,
    )


def _degrade_pair(inputs: list[Path], output: Path, options: argparse.Namespace
                  ) -> dict[str, Any]:
    """Wald's reduced-resolution protocol as files, so it runs from the command line.

    ``output``: the MS, MTF-blurred (sensor gains) and decimated by the ratio; beside the
    named output, ``NAME_pan.tif``: the PAN MTF-filtered and sampled on the MS grid (the
    degraded pair's PAN) and ``NAME_ref.tif``: the original MS on that grid (the reference
    a fusion of the degraded pair is scored against).
    """
    if getattr(options, "pan", None) is None:
        raise UsageError("degrade pansharpen needs --pan PAN.tif")
    pan_path = side_output(options.output, "pan", options)
    ref_path = side_output(options.output, "ref", options)
    sensor = getattr(options, "sensor", "generic")
    pair = pair_rasters(list(inputs), options.pan)
    _check_valid(pair)
    full = ms_window(pair)
    if min(int(full.height), int(full.width)) <= pair.ratio:
        raise InputError(inputs[0], f"covers {int(full.height)} x {int(full.width)} MS pixels "
                         f"of the PAN; degrading by {pair.ratio} needs more than {pair.ratio} "
                         "a side")
    lr, ref = reduced_scene(load_scene(list(inputs), options.pan, nan_invalid=True), sensor)
    ms_meta = _output_meta(pair)
    dtype, pan_dtype = ms_meta.dtype, pair.pan_meta.dtype
    pan_meta = pair.pan_meta.updated(
        height=ref.shape[1], width=ref.shape[2], transform=lr.pan_transform, path=None)
    ref_meta = ms_meta.updated(height=ref.shape[1], width=ref.shape[2],
                               transform=lr.pan_transform)
    low_meta = ms_meta.updated(height=lr.ms.shape[1], width=lr.ms.shape[2],
                               transform=lr.ms_transform)
    write_raster_windows(ref_path, ref_meta, _array_producer(ref, dtype))
    write_raster_windows(pan_path, pan_meta, _array_producer(lr.pan[None], pan_dtype))
    write_raster_windows(output, low_meta, _array_producer(lr.ms, dtype))
    return {"ratio": lr.ratio, "sensor": sensor, "pan": str(pan_path), "reference": str(ref_path)}


def _array_producer(values: np.ndarray, dtype: str) -> Any:
    """The windows of an in-memory ``(C, H, W)`` float array in ``dtype``, for
    :func:`write_raster_windows`; a pixel with NaN in any band is written as nodata."""
    def produce(win: Window) -> np.ma.MaskedArray:
        rows = slice(int(win.row_off), int(win.row_off + win.height))
        cols = slice(int(win.col_off), int(win.col_off + win.width))
        block = values[:, rows, cols]
        invalid = np.broadcast_to(~np.isfinite(block).all(axis=0), block.shape)
        return np.ma.MaskedArray(_to_dtype(np.nan_to_num(block), dtype), mask=invalid)

    return produce


def _to_dtype(values: np.ndarray, dtype: str) -> np.ndarray:
    """Round and clip to an integer dtype's range, or cast a float dtype."""
    dt = np.dtype(dtype)
    if np.issubdtype(dt, np.floating):
        return values.astype(dt)
    info = np.iinfo(dt)
    return np.clip(np.rint(values), info.min, info.max).astype(dt)


def _producer(pair: PanMsPair, model: Any, shifts: np.ndarray | None, dtype: str) -> Any:
    """Closure that sharpens one output window (with the method's halo).

    ``model`` is a classical :class:`~domains.pansharpen.classical.SharpenModel` or anything
    with ``halo`` and ``apply(ms_up, pan)`` (the deep method).
    """
    h, w = pair.shape
    halo = model.halo
    sharpen = model.apply if hasattr(model, "apply") else partial(classical.apply, model)

    def produce(win: Window) -> np.ma.MaskedArray:
        c0, r0 = max(int(win.col_off) - halo, 0), max(int(win.row_off) - halo, 0)
        c1 = min(int(win.col_off + win.width) + halo, w)
        r1 = min(int(win.row_off + win.height) + halo, h)
        ms, pan, valid = _read_pair(pair, Window(c0, r0, c1 - c0, r1 - r0), shifts)
        out = sharpen(ms, pan)
        rs = slice(int(win.row_off) - r0, int(win.row_off) - r0 + int(win.height))
        cs = slice(int(win.col_off) - c0, int(win.col_off) - c0 + int(win.width))
        data = _to_dtype(out[:, rs, cs], dtype)
        mask = np.broadcast_to(~valid[rs, cs], data.shape)
        return np.ma.MaskedArray(data, mask=mask)

    return produce


def _adapt_window(pair: PanMsPair) -> Window:
    """Central MS-pixel window (at most ADAPT_SIDE a side) used for target adaptation."""
    full = ms_window(pair)
    h, w = min(int(full.height), ADAPT_SIDE), min(int(full.width), ADAPT_SIDE)
    if min(h, w) < 4 * pair.ratio:
        raise InputError(
            pair.ms_paths[0],
            f"is {int(full.height)}x{int(full.width)} MS pixels; the deep method needs at least "
            f"{4 * pair.ratio} a side (use a classical --method)",
        )
    r0 = int(full.row_off) + (int(full.height) - h) // 2
    c0 = int(full.col_off) + (int(full.width) - w) // 2
    return Window(c0, r0, w, h)


def _valid_part(pair: PanMsPair, scene: Scene) -> Scene:
    """The adaptation region cut to pixels with data: nodata fed to the standardization and the
    Wald pair would spread NaN (or a nodata value's pull) through every output pixel."""
    if np.isfinite(scene.ms).all() and np.isfinite(scene.pan).all():
        return scene
    part = crop_valid(scene, finite=True)
    if min(part.ms.shape[1:]) < 4 * pair.ratio:
        raise InputError(pair.ms_paths[0], "has too little data without nodata around its centre "
                         "for the deep method's adaptation; use a classical --method")
    return part


def _deep_model(pair: PanMsPair, options: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """Load the network, standardize on a central region, adapt on its Wald pair."""
    model, card = deep.load(
        getattr(options, "weights", None), bool(getattr(options, "trust_checkpoint", False)),
        getattr(options, "device", "auto"),
    )
    adapt_cfg = card.get("adaptation", {})
    steps = getattr(options, "adapt_steps", None)
    steps = int(adapt_cfg.get("steps", 100) if steps is None else steps)
    trained = card.get("training", {}).get("recipe", {}).get("data", {}).get("ratios", [])
    if steps <= 0 and trained and pair.ratio not in trained:
        raise UsageError(
            f"the weights were trained for ratios {trained}, the input's ratio is {pair.ratio}: "
            "use target adaptation (--adapt-steps > 0) or a classical --method"
        )
    scene = _valid_part(pair, region_scene(pair, _adapt_window(pair), nan_invalid=True))
    norm = deep.fit_norm(scene.ms, scene.pan)
    tuned = deep.adapt_on_scene(model, scene, options.sensor, norm, adapt_cfg, steps,
                                progress=not getattr(options, "quiet", False))
    return deep.DeepSharpener(tuned, norm), {"adapt_steps": steps, "norm": norm.report()}


def _add_fusion_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``enhance`` and ``batch``."""
    parser.add_argument(
        "--method",
        choices=("deep", *CLASSICAL),
        default="deep",
        help="deep (default: band-shared CNN with target adaptation) or a classical one",
    )
    parser.add_argument(
        "--adapt-steps",
        type=int,
        default=None,
        help="target-adaptation steps of the deep method (default: the card's; 300 for the "
        "shipped weights, about 40 s on 2 cores; 0 turns adaptation off)",
    )
    parser.add_argument("--sensor", default="generic", help=f"MTF gains: {', '.join(SENSORS)}")
    parser.add_argument(
        "--register",
        choices=("auto", "off"),
        default="auto",
        help="estimate and correct sub-pixel band shifts",
    )
    parser.add_argument("--cog", action="store_true", help="write a Cloud-Optimized GeoTIFF")


class PansharpenDomain(Domain):
    """Fuse MS and PAN rasters: the deep method (default, adapted per scene) or a classical one."""

    name: ClassVar[str] = "pansharpen"
    task: ClassVar[str] = "fuse a multispectral raster with its panchromatic band"
    # "folder": in ``suite batch`` each folder is one scene (its MS band files and its PAN).
    input_kinds: ClassVar[tuple[str, ...]] = ("raster", "folder")
    output_suffixes = (".tif", ".tiff")
    output_format = "GeoTIFF"

    def batch_output_name(self, item: Path) -> str:
        """``SCENE_pansharpened.tif`` for a scene folder or an MS file."""
        return f"{item.stem if item.is_file() else item.name}_pansharpened.tif"

    def batch_inputs(self, source: Path, options: argparse.Namespace) -> tuple[list[Path], Any]:
        """One batch item (a scene folder) as ``enhance`` inputs: MS band files and ``--pan``."""
        pans = sorted(source.glob(options.pan_glob))
        ms = sorted(p for p in source.glob(options.ms_glob) if p not in pans)
        if len(pans) != 1:
            raise InputError(
                source, f"expected one PAN file matching {options.pan_glob!r}, found {len(pans)}"
            )
        if not ms:
            raise InputError(source, f"no MS band file matches {options.ms_glob!r}")
        return ms, argparse.Namespace(**vars(options), pan=pans[0])

    def default_weights(self) -> Path | None:
        """The shipped weights, trained by ``default.yaml`` (see the model card)."""
        from domains.pansharpen.deep import WEIGHTS

        return WEIGHTS if WEIGHTS.is_file() else None

    def train(self, options: argparse.Namespace) -> Path:
        """Wald-protocol training on real MS/PAN scenes (``--data`` folders)."""
        from domains.pansharpen.train import train

        return train(options)

    def add_arguments(self, command: str, parser: argparse.ArgumentParser) -> None:
        """``enhance``/``batch``: fusion options; ``degrade``: ``--pan --sensor``; ``evaluate``:
        ``--ratio --pan --ms --sensor``."""
        if command in ("enhance", "degrade"):
            parser.add_argument("--pan", type=Path, help="panchromatic GeoTIFF (one band)")
        if command == "degrade":
            parser.add_argument("--sensor", default="generic",
                                help=f"MTF gains of the blur: {', '.join(SENSORS)}")
        if command == "batch":
            parser.add_argument(
                "--pan-glob",
                default="*_B8.*",
                help="PAN file in each scene folder (default '*_B8.*')",
            )
            parser.add_argument(
                "--ms-glob",
                default="*_B[2-4].*",
                help="MS band files in each scene folder (default '*_B[2-4].*')",
            )
        if command in ("enhance", "batch"):
            _add_fusion_options(parser)
        if command == "evaluate":
            parser.add_argument(
                "--ratio", type=float, default=4.0, help="PAN/MS resolution ratio for ERGAS"
            )
            parser.add_argument(
                "--pan", type=Path, help="full-resolution protocol (QNR): the PAN the fusion used"
            )
            parser.add_argument(
                "--ms", type=Path, help="full-resolution protocol: the MS input (default --ref)"
            )
            parser.add_argument(
                "--sensor", default="generic", help="MTF gains for the D_s PAN low-pass"
            )

    def calibration_patches(self, count: int) -> list[Any]:
        """Model inputs (int8 calibration, export checks): 64x64 crops of the bundled Landsat 8
        excerpt at reduced resolution (Wald), standardized per scene, (C + 1, 64, 64)."""
        from domains.pansharpen.deep import wald_arrays
        from domains.pansharpen.wald import load_scene
        from suite.export import calibration_crops
        from suite.sample import sample_data_dir

        folder = sample_data_dir() / "pansharpen"
        scene = load_scene([folder / "l8_ms_b2-b5.tif"], folder / "l8_pan_b8.tif")
        inputs, _ = wald_arrays(scene, "landsat8")
        return calibration_crops([inputs], (64, 64), count)

    def demo(self, out_dir: Path, options: argparse.Namespace) -> list[DemoItem]:
        """Wald reduced-resolution demo on the bundled Landsat 8 excerpt."""
        from domains.pansharpen.pipeline import run_demo

        return run_demo(out_dir)

    def degrade(
        self, inputs: list[Path], output: Path, options: argparse.Namespace
    ) -> dict[str, Any]:
        """Wald reduced-resolution MS, PAN and reference files of an MS/PAN pair."""
        return _degrade_pair(inputs, output, options)

    def enhance(
        self, inputs: list[Path], output: Path, options: argparse.Namespace
    ) -> dict[str, Any]:
        """Pansharpen MS ``inputs`` with ``options.pan``; write ``output`` at PAN resolution."""
        method = getattr(options, "method", "deep")
        if getattr(options, "pan", None) is None:
            raise UsageError("pansharpen needs --pan PAN.tif")
        options.method, options.sensor = method, getattr(options, "sensor", "generic")
        pair = pair_rasters(list(inputs), options.pan)
        _check_valid(pair)
        reg = _registration(pair, options)
        shifts = reg.shifts if reg is not None and reg.corrected else None
        extra: dict[str, Any] = {}
        if method == "deep":
            model, extra = _deep_model(pair, options)
        else:
            model = _fit(pair, options, shifts)
        meta = _output_meta(pair)
        write_raster_windows(
            output,
            meta,
            _producer(pair, model, shifts, meta.dtype),
            cog=bool(getattr(options, "cog", False)),
        )
        return {
            "method": method,
            "sensor": options.sensor,
            "ratio": pair.ratio,
            "bands": list(meta.descriptions),
            "shape": list(pair.shape),
            "registration": None if reg is None else reg.report(),
            **extra,
        }

    def evaluate(self, pred: Path, ref: Path, options: argparse.Namespace) -> dict[str, float]:
        """Reduced resolution (SAM, ERGAS, Q, Q2n, sCC against ``ref`` on the same grid), or
        with ``--pan`` full resolution (QNR, D_lambda, D_s given the MS ``--ms``/``ref``)."""
        from domains.pansharpen.pipeline import evaluate

        return evaluate(pred, ref, options)


DOMAIN = PansharpenDomain()
