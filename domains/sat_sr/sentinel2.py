"""Sentinel-2 mode: B5, B6, B7, B8A, B11, B12 (20 m) to 10 m, guided by B2, B3, B4, B8 (10 m).

The band files are read as a set: each file is one band, named by the ``B02``/``B8A`` token in
its file name (or its band description). The 10 m files must share one grid; the 20 m files
must share the grid with pixels exactly twice as large and the same upper-left corner.

Reflectance is ``(DN + offset) / 10000`` with ``offset = -1000`` for processing baseline 04.00
and later (January 2022 on) and 0 before. The offset is taken, in this order, from
``--s2-offset``, a ``BOA_ADD_OFFSET``/``RADIO_ADD_OFFSET`` or ``PROCESSING_BASELINE`` tag of the
files, or the product's ``MTD_MSIL*.xml`` (beside them, or at the root of the ``*.SAFE`` product
they are in); with none of these the older convention (0) is used. A ``*.SAFE`` folder itself is
an input too: each band is taken from its native-resolution file in the granule.

References:
    Lanaras et al., ISPRS J. Photogramm. 146, 2018 (DSen2, the reduced-resolution protocol).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from rasterio.windows import Window
from torch import nn

from domains.sat_sr.adapt import AdaptConfig, adapt_to_scene
from domains.sat_sr.blocks import cast_to, read_haloed
from domains.sat_sr.guided import (
    SceneNorm,
    fit_gains,
    inject,
    network_input,
    upsample_to,
)
from domains.sat_sr.guided import upsample2 as upsample2  # re-exported (bicubic x2)
from suite.engine.tiling import TileConfig, tiled_inference
from suite.errors import InputError, UsageError
from suite.io.raster import RasterMeta, read_raster_meta, read_window, write_raster_windows

GUIDES = ("B02", "B03", "B04", "B08")
TARGETS = ("B05", "B06", "B07", "B8A", "B11", "B12")
KNOWN = (*GUIDES, *TARGETS, "B01", "B09", "B10")
S2_SCHEME = "guided-residual-v2"
"""Card tag of networks that correct the classical estimate in per-scene standardized units."""
BAND_SUFFIXES = (".tif", ".tiff", ".jp2")
_RESOLUTION = re.compile(r"_(10m|20m|60m)$")
_TOKEN = re.compile(r"(?:^|[^A-Za-z0-9])(B\d{1,2}A?)(?=$|[^A-Za-z0-9])", re.IGNORECASE)


@dataclass(frozen=True)
class BandSet:
    """The ten bands of one Sentinel-2 scene, by name, with their grids checked."""

    paths: dict[str, Path]
    guide_meta: RasterMeta
    target_meta: RasterMeta
    offset: float

    def guide_paths(self) -> list[Path]:
        """Files of B02, B03, B04, B08 in that order."""
        return [self.paths[b] for b in GUIDES]

    def target_paths(self) -> list[Path]:
        """Files of B05, B06, B07, B8A, B11, B12 in that order."""
        return [self.paths[b] for b in TARGETS]


def band_name(path: Path) -> str:
    """Canonical band name (``B02``, ``B8A``) from a file name or its band description.

    Raises:
        InputError: no band token, or one that is not a Sentinel-2 band.
    """
    name = _band_token(path.stem) or _band_token(read_raster_meta(path).descriptions[0] or "")
    if name is None:
        raise InputError(path, "no Sentinel-2 band name (B02 ... B12, B8A) in the file name")
    if name not in KNOWN:
        raise InputError(path, f"unknown Sentinel-2 band {name!r}; expected B01-B12 or B8A")
    return name


def _band_token(text: str) -> str | None:
    """The last band token of ``text`` as a canonical name (``b2`` -> ``B02``), or ``None``."""
    found = _TOKEN.findall(text)
    if not found:
        return None
    raw = found[-1].upper()
    return raw if raw.endswith("A") else f"B{int(raw[1:]):02d}"


def collect_bands(inputs: list[Path], offset: str = "auto") -> BandSet:
    """Name the input files, check that the ten bands are there on consistent grids.

    Args:
        inputs: band files, or one folder holding them.
        offset: ``"auto"`` or a DN offset added before dividing by 10000 (e.g. ``-1000``).
    """
    files = _folder_bands(inputs[0]) if len(inputs) == 1 and inputs[0].is_dir() else list(inputs)
    paths: dict[str, Path] = {}
    for path in files:
        name = band_name(path)
        if name in paths:
            raise InputError(path, f"band {name} is given twice (also {paths[name].name})")
        paths[name] = path
    missing = [b for b in (*GUIDES, *TARGETS) if b not in paths]
    if missing:
        raise InputError(inputs[0], f"Sentinel-2 mode needs bands {', '.join(missing)} too")
    guide, target = _check_grids(paths)
    return BandSet(paths, guide, target, resolve_offset(paths, offset))


def _folder_bands(folder: Path) -> list[Path]:
    """The band files of a folder: its own raster files or, for a Sentinel-2 product folder
    (``*.SAFE``, holding ``GRANULE/``), each band's file at its native resolution.

    An L2A product keeps each band at several resolutions (``R10m/..._B02_10m.jp2`` and
    ``R20m/..._B02_20m.jp2``); the 10 m bands are taken from the 10 m files and the 20 m bands
    from the 20 m ones. Files that are not bands (TCI, SCL, AOT, WVP) are passed over.
    """
    own = sorted(p for p in folder.glob("*") if p.suffix.lower() in BAND_SUFFIXES)
    if own or not (folder / "GRANULE").is_dir():
        return own
    images = sorted(p for p in folder.glob("GRANULE/*/IMG_DATA/**/*")
                    if p.suffix.lower() in BAND_SUFFIXES)
    granules = sorted({p.relative_to(folder).parts[1] for p in images})
    if len(granules) > 1:
        raise InputError(folder, f"{len(granules)} granules ({', '.join(granules)}); give the "
                                 "band files of one")
    chosen: dict[str, Path] = {}
    for path in images:
        name = _band_token(path.stem)
        resolution = _RESOLUTION.search(path.stem)
        native = "10m" if name in GUIDES else "20m"
        if name in (*GUIDES, *TARGETS) and (resolution is None or resolution[1] == native):
            chosen[str(name)] = path  # L1C: one file per band; L2A: the native one
    return list(chosen.values())


def _check_grids(paths: dict[str, Path]) -> tuple[RasterMeta, RasterMeta]:
    """The guide and target grids; refuse any band off its group's grid."""
    guide = read_raster_meta(paths[GUIDES[0]])
    target = read_raster_meta(paths[TARGETS[0]])
    for names, ref in ((GUIDES, guide), (TARGETS, target)):
        for b in names:
            m = read_raster_meta(paths[b])
            if (m.width, m.height, m.crs) != (ref.width, ref.height, ref.crs) or \
                    not m.transform.almost_equals(ref.transform) or m.count != 1:
                raise InputError(paths[b], f"band {b} is not on the grid of "
                                 f"{paths[names[0]].name} (one band, same size, CRS, transform)")
    ratio = target.res[0] / guide.res[0]
    corner = np.allclose(target.transform.c, guide.transform.c) and np.allclose(
        target.transform.f, guide.transform.f)
    if not np.isclose(ratio, 2.0) or (target.width * 2, target.height * 2) != (
            guide.width, guide.height) or not corner or target.crs != guide.crs:
        raise InputError(paths[TARGETS[0]], "the 20 m bands must cover the 10 m grid exactly "
                         f"with pixels twice as large (ratio {ratio:.3g}, sizes "
                         f"{target.width}x{target.height} vs {guide.width}x{guide.height})")
    return guide, target


def resolve_offset(paths: dict[str, Path], option: str) -> float:
    """DN offset from the option, the file tags or an MTD XML beside the files (else 0)."""
    if option != "auto":
        try:
            return float(option)
        except ValueError:
            raise UsageError(f"--s2-offset must be 'auto' or a number, got {option!r}") from None
    tags: dict[str, str] = {}
    for path in paths.values():
        with rasterio.open(path) as ds:
            tags |= {k.upper(): v for k, v in ds.tags().items()}
    for key in ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET"):
        if key in tags:
            return float(tags[key])
    text = _product_xml(next(iter(paths.values())))
    for key in ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET"):  # one value per band, all equal so far
        match = re.search(rf"<{key}\b[^>]*>\s*(-?[\d.]+)\s*<", text)
        if match:
            return float(match.group(1))
    found = re.search(r"<PROCESSING_BASELINE>([\d.]+)<", text)
    baseline = tags.get("PROCESSING_BASELINE") or (found.group(1) if found else None)
    return -1000.0 if baseline is not None and float(baseline) >= 4.0 else 0.0


def _product_xml(band: Path) -> str:
    """Text of the product's ``MTD_MSIL1C.xml``/``MTD_MSIL2A.xml``, or ``""`` if there is none.

    Looked for beside the band file and, for a file inside a ``*.SAFE`` product (where it sits
    in ``GRANULE/*/IMG_DATA/R10m/``), in each folder up to the product's root; never above it,
    so an unrelated product's metadata further up is not picked up.
    """
    folders = [band.parent]
    if any(f.suffix.upper() == ".SAFE" for f in band.parents):
        for folder in band.parent.parents:
            folders.append(folder)
            if folder.suffix.upper() == ".SAFE":
                break
    for folder in folders:
        for xml in sorted(folder.glob("MTD_MSIL*.xml")):
            return xml.read_text(errors="ignore")
    return ""


FIT_SIDE = 1024
"""Longest side (20 m pixels) of the central region the gains, statistics and adaptation use."""


@dataclass
class SceneSharpener:
    """Scene-fitted sharpening: classical gains, band statistics and the (adapted) network.

    Attributes:
        gains: ``(T, G + 1)`` high-pass injection gains (:func:`guided.fit_gains`).
        norm: the scene's band statistics (network units).
        model: network correcting the classical estimate; ``None``: classical only.
    """

    gains: np.ndarray
    norm: SceneNorm
    model: nn.Module | None = None

    def __call__(self, guides: np.ndarray, targets_up: np.ndarray) -> np.ndarray:
        """``guides (G, H, W)`` and bicubic ``targets_up (T, H, W)`` -> ``(T, H, W)``, same unit."""
        base = inject(targets_up, guides, self.gains)
        if self.model is None:
            return base
        return self.norm.untargets(sharpen(self.model, network_input(guides, base, self.norm)))


def fit_scene(guides: np.ndarray, targets: np.ndarray, model: nn.Module | None,
              adapt_cfg: AdaptConfig) -> SceneSharpener:
    """Fit gains and statistics on ``guides (G, 2h, 2w)``, ``targets (T, h, w)``; adapt ``model``.

    Only the given scene is read (its reduced-resolution pair for the adaptation).
    """
    gains = fit_gains(guides, targets)
    norm = SceneNorm.fit(guides, targets)
    if model is not None:
        model = adapt_to_scene(model, guides, targets, adapt_cfg)
    return SceneSharpener(gains, norm, model)


def fit_region(bands: BandSet) -> tuple[np.ndarray, np.ndarray]:
    """Reflectance of the central region (at most :data:`FIT_SIDE` 20 m pixels a side)."""
    t = bands.target_meta
    w, h = min(t.width, FIT_SIDE), min(t.height, FIT_SIDE)
    core = Window((t.width - w) // 2, (t.height - h) // 2, w, h)
    fine = Window(2 * core.col_off, 2 * core.row_off, 2 * w, 2 * h)
    guides = np.concatenate([read_window(p, fine) for p in bands.guide_paths()])
    targets = np.concatenate([read_window(p, core) for p in bands.target_paths()])
    return to_reflectance(guides, bands.offset), to_reflectance(targets, bands.offset)


def to_reflectance(dn: np.ndarray, offset: float) -> np.ndarray:
    """DN -> reflectance ``(DN + offset) / 10000`` (float32)."""
    return ((dn.astype(np.float32) + offset) / 10000.0).astype(np.float32)


class S2Producer:
    """Output windows of the sharpened 20 m bands on the 10 m grid (DN, file dtype)."""

    def __init__(self, bands: BandSet, sharpener: Callable[[np.ndarray, np.ndarray], np.ndarray],
                 halo: int = 16) -> None:
        self.bands, self.sharpener, self.halo = bands, sharpener, halo

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Guides and bicubic targets ``(C, h + 2 halo, w + 2 halo)`` (reflectance), validity."""
        h2 = self.halo // 2
        core20 = Window(int(window.col_off) // 2, int(window.row_off) // 2,
                        -(-int(window.width) // 2), -(-int(window.height) // 2))
        guides, valid = zip(*(read_haloed(p, window, self.halo)
                              for p in self.bands.guide_paths()), strict=True)
        lows = [read_haloed(p, core20, h2)[0] for p in self.bands.target_paths()]
        g = to_reflectance(np.concatenate(guides), self.bands.offset)
        up = upsample_to(to_reflectance(np.concatenate(lows), self.bands.offset), g.shape[1:])
        return g, up, np.logical_and.reduce(valid)

    def __call__(self, window: Window) -> np.ndarray:
        guides, up, valid = self.read(window)
        out = self.sharpener(guides, up)
        h = self.halo
        out = out[:, h:h + int(window.height), h:h + int(window.width)]
        dn = out.astype(np.float64) * 10000.0 - self.bands.offset
        mask = ~valid[h:h + int(window.height), h:h + int(window.width)]
        return np.ma.MaskedArray(cast_to(dn, self.bands.target_meta.dtype),
                                 mask=np.broadcast_to(mask, dn.shape))


def sharpen(model: nn.Module, x: np.ndarray, patch: int = 128) -> np.ndarray:
    """Run the network over ``(G + T, H, W)`` with blended tiles -> ``(T, H, W)``."""
    config = TileConfig(patch, 16, 16, batch_size=2, scale=1, pad_mode="replicate")
    x_t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]
    with torch.no_grad():
        return tiled_inference(x_t, model, config)[0].numpy()


def output_meta(bands: BandSet) -> RasterMeta:
    """Six bands on the 10 m grid, the 20 m files' dtype and nodata, bands described."""
    g, t = bands.guide_meta, bands.target_meta
    return g.updated(count=len(TARGETS), dtype=t.dtype, nodata=t.nodata,
                     descriptions=tuple(f"{b} (sharpened to 10 m)" for b in TARGETS),
                     scales=(1.0,) * len(TARGETS), offsets=(0.0,) * len(TARGETS), path=None)


def enhance_s2(inputs: list[Path], output: Path, load: Callable[[], nn.Module | None],
               offset: str = "auto", adapt_cfg: Callable[[], AdaptConfig] = AdaptConfig,
               progress: bool = False, cog: bool = False) -> dict[str, Any]:
    """Write the six sharpened bands to ``output`` (already a temporary path; a Cloud-Optimized
    GeoTIFF with ``cog``).

    ``load`` gives the network (``None``: the classical guided method) once the band set has
    been checked, ``adapt_cfg`` then its adaptation settings; gains, statistics and the
    adaptation come from the scene's central region.
    """
    bands = collect_bands(inputs, offset)
    model = load()
    cfg = adapt_cfg()
    sharpener = fit_scene(*fit_region(bands), model, cfg)
    meta = output_meta(bands)
    write_raster_windows(output, meta, S2Producer(bands, sharpener), cog=cog,
                         progress=progress)
    return {"bands": len(TARGETS), "width": meta.width, "height": meta.height,
            "offset": bands.offset, "method": "classical" if model is None else "network",
            "adapt_steps": cfg.steps if model is not None else 0}
