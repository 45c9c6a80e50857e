"""GeoTIFF/COG reading and writing window by window, with the metadata that must round-trip.

Arrays are ``(C, H, W)`` exactly as rasterio gives them. The metadata travels beside them as a
:class:`RasterMeta`, whose ``profile`` is the keyword set that writes the file back.

Normalization convention (:func:`detect_normalization`): ``uint8`` is divided by 255; ``uint16``
is divided by 2047 (11-bit), 4095 (12-bit) or 65535, the bit depth taken from the ``NBITS``
image-structure tag when present, else from the largest value seen (<= 2047 -> 11-bit, <= 4095 ->
12-bit); any other integer type by its dtype maximum; float rasters are kept as they are
(reflectance). :func:`denormalize` inverts it exactly for integer data (round, clip, cast).
"""

from __future__ import annotations

import contextlib
import math
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.dtypes import _get_gdal_dtype, typename_fwd
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import RasterioError
from rasterio.rpc import RPC
from rasterio.windows import Window
from tqdm import tqdm

from suite import __version__ as version
from suite.errors import InputError
from suite.io.atomic import atomic_path

BLOCK = 256
"""Tile size (pixels) of every GeoTIFF the suite writes."""

Producer = Callable[[Window], np.ndarray]
"""Callable giving the ``(C, h, w)`` output of one window; a masked array marks nodata pixels."""

GDAL_BATCH_ENV: dict[str, Any] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_CACHEMAX": 512,
    "GDAL_NUM_THREADS": "ALL_CPUS",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.TIFF,.vrt,.jp2",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIPLEX": "YES",
    "VSI_CACHE": "TRUE",
    "GDAL_TIFF_INTERNAL_MASK": "YES",
}
"""GDAL settings recommended for batch reading (rasterio/TorchGeo/rio-tiler practice)."""


@dataclass
class RasterMeta:
    """Metadata of a raster; ``profile`` writes the file back with :func:`rasterio.open`.

    Attributes:
        profile: rasterio profile (driver, dtype, nodata, width, height, count, crs, transform,
            tiling, compression).
        descriptions: one band description (or ``None``) per band.
        nodata: nodata value, or ``None`` (a per-dataset mask may still mark invalid pixels).
        scales: per-band scale, physical value = DN * scale + offset.
        offsets: per-band offset.
        crs: coordinate reference system, or ``None`` for an ungeoreferenced raster.
        transform: affine pixel -> CRS coordinates (upper-left corner convention).
        dtype: NumPy dtype name of the stored values.
        path: the file read, or ``None`` for metadata made in memory.
        tags: image-structure tags (e.g. ``NBITS``) used by the normalization.
        metadata: the source's dataset metadata (default domain: e.g. a product's
            ``BOA_ADD_OFFSET`` or acquisition tags), written back to outputs made from it;
            ``AREA_OR_POINT`` and band statistics are not kept (see :data:`NOT_CARRIED`).
        gcps: ground control points of a raster georeferenced by them instead of a transform
            (e.g. a level-1 swath), in GDAL's pixel-corner coordinates.
        gcps_crs: the CRS of the GCPs' map coordinates.
        rpcs: rational polynomial coefficients of a raster that carries them (a very-high-
            resolution level-1 product), or ``None``.
        alpha: the 1-based index of the source's alpha band, or ``None``.
        paletted: whether the source's values index a colour table.
        band_tags: each band's own metadata (e.g. ``WAVELENGTH``), band statistics left out,
            written back to the output band of the same index.
        colorinterp: each band's colour interpretation by name (``"red"``, ``"gray"``,
            ``"undefined"``...): an output is written as RGB only when the source's first three
            bands are red, green and blue.
    """

    profile: dict[str, Any]
    descriptions: tuple[str | None, ...]
    nodata: float | None
    scales: tuple[float, ...]
    offsets: tuple[float, ...]
    crs: CRS | None
    transform: Affine
    dtype: str
    path: Path | None = None
    tags: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    gcps: tuple[GroundControlPoint, ...] = ()
    gcps_crs: CRS | None = None
    rpcs: RPC | None = None
    alpha: int | None = None
    paletted: bool = False
    band_tags: tuple[dict[str, str], ...] = ()
    colorinterp: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        """Number of bands."""
        return int(self.profile["count"])

    @property
    def height(self) -> int:
        """Rows (pixels)."""
        return int(self.profile["height"])

    @property
    def width(self) -> int:
        """Columns (pixels)."""
        return int(self.profile["width"])

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size ``(x, y)`` in CRS units (metres for a projected CRS), both positive: the
        lengths of a pixel's sides, also on a rotated grid."""
        t = self.transform
        return (math.hypot(t.a, t.d), math.hypot(t.b, t.e))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` in CRS units: the box around all four corners, so a
        rotated grid is covered whole."""
        xs, ys = zip(*(self.transform @ corner for corner in (
            (0, 0), (self.width, 0), (0, self.height), (self.width, self.height))), strict=True)
        return (min(xs), min(ys), max(xs), max(ys))

    def updated(self, **changes: Any) -> RasterMeta:
        """Return a copy with fields and the matching profile keys changed.

        Accepted keys: ``count``, ``height``, ``width``, ``dtype``, ``nodata``, ``transform``,
        ``crs``, ``descriptions``, ``scales``, ``offsets``, ``path``.
        """
        profile = dict(self.profile)
        for key in ("count", "height", "width", "dtype", "nodata", "transform", "crs"):
            if key in changes:
                profile[key] = changes[key]
        fields = {k: v for k, v in changes.items() if k not in ("count", "height", "width")}
        return replace(self, profile=profile, **fields)

    def resampled(self, s: float, width: int, height: int) -> RasterMeta:
        """Metadata of the same footprint sampled ``s`` times finer (``s < 1``: coarser) on a
        ``width x height`` grid from the same upper-left corner, whichever way the raster is
        georeferenced: the transform, the GCPs and the RPCs all follow the new pixel size.
        """
        return self.updated(width=width, height=height, path=None,
                            transform=scale_transform(self.transform, s),
                            gcps=tuple(_scale_gcp(g, s) for g in self.gcps),
                            rpcs=None if self.rpcs is None else _scale_rpcs(self.rpcs, s))


def _open(path: str | Path) -> Any:
    """Open ``path`` with rasterio, turning any GDAL failure into an :class:`InputError`."""
    if str(path).lower().endswith(".zip"):
        # GDAL opens some zipped products (a Sentinel-2 .SAFE.zip) as a list of sub-datasets
        # with no bands, which would fail later with a message that says nothing useful
        raise InputError(path, "is a zip archive; unzip it and give the raster inside (for "
                         "sat-sr --sentinel2, the .SAFE folder)")
    try:
        return rasterio.open(path)
    except (RasterioError, OSError) as exc:
        raise InputError(path, f"not a readable raster ({exc})") from exc


NOT_CARRIED = ("AREA_OR_POINT", "STATISTICS_", "TIFFTAG_SOFTWARE", "TIFFTAG_DATETIME")
"""Source metadata not copied to outputs: ``AREA_OR_POINT`` (rasterio's transforms are always
in the area convention, which the output declares), statistics (they change with the pixels)
and the producing software and time (the output's are the suite and now)."""


def _not_carried(key: str) -> bool:
    return key.upper().startswith(NOT_CARRIED)


def read_raster_meta(path: str | Path) -> RasterMeta:
    """Read the metadata of a raster without reading its pixels.

    Raises:
        InputError: the file is missing or is not a raster GDAL can read.
    """
    with _open(path) as ds:
        tags = {k: str(v) for k, v in ds.tags(ns="IMAGE_STRUCTURE").items()}
        metadata = {k: str(v) for k, v in ds.tags().items() if not _not_carried(k)}
        interps = list(ds.colorinterp)
        return RasterMeta(
            profile=dict(ds.profile),
            descriptions=tuple(ds.descriptions),
            nodata=ds.nodata,
            scales=tuple(float(s) for s in ds.scales),
            offsets=tuple(float(o) for o in ds.offsets),
            crs=ds.crs,
            transform=ds.transform,
            dtype=str(ds.dtypes[0]),
            path=Path(path),
            tags=tags,
            metadata=metadata,
            gcps=tuple(ds.gcps[0]),
            gcps_crs=ds.gcps[1],
            rpcs=ds.rpcs,
            alpha=interps.index(ColorInterp.alpha) + 1 if ColorInterp.alpha in interps else None,
            paletted=ColorInterp.palette in interps,
            band_tags=tuple({k: str(v) for k, v in ds.tags(i).items() if not _not_carried(k)}
                            for i in ds.indexes),
            colorinterp=tuple(c.name for c in interps),
        )


@contextlib.contextmanager
def stacked_bands(paths: list[Path]) -> Iterator[Path]:
    """One raster that reads as ``paths``' data bands in order: the file itself when there is
    one, else a temporary VRT over them (no pixel is copied; Landsat delivers one file per band).

    Every file must share the first one's CRS, grid, data type and nodata value; each band keeps
    its description (else the file's name), scale and offset. A single file with an alpha band
    (an RGBA orthomosaic) reads as its other bands with the alpha as their mask, so that no
    domain filters the alpha as if it were data; outputs then carry it as a GDAL mask.

    Raises:
        InputError: a file that is unreadable, paletted (class indices, not measurements), on
            another grid, of another type or nodata, or that carries a mask band (a VRT would
            drop it).
    """
    refuse_repeated(paths)
    metas = [read_raster_meta(p) for p in paths]
    for path, meta in zip(paths, metas, strict=True):
        refuse_paletted(meta, path)
    if len(paths) == 1:
        if metas[0].alpha is None:
            yield paths[0]
            return
        vrt_xml = _without_alpha(paths[0], metas[0], metas[0].alpha)
        with _temporary_vrt(vrt_xml, paths[0].name) as vrt:
            yield vrt
        return
    for path, meta in zip(paths, metas, strict=True):
        _check_stackable(path, meta, paths[0], metas[0])
    sources = [(path, meta, k) for path, meta in zip(paths, metas, strict=True)
               for k in range(meta.count)]
    first = metas[0]
    # only the dataset tags every file shares describe the stack (not the first file's BAND=B2)
    shared = {k: v for k, v in first.metadata.items()
              if all(m.metadata.get(k) == v for m in metas[1:])}
    xml = (
        f'<VRTDataset rasterXSize="{first.width}" rasterYSize="{first.height}">\n'
        + _vrt_georef(first)
        + (f"  {_vrt_metadata(shared)}\n" if shared else "")
        + "".join(_vrt_band(i, *source) for i, source in enumerate(sources, start=1))
        + "</VRTDataset>\n"
    )
    with _temporary_vrt(xml, "+".join(p.name for p in paths)) as vrt:
        yield vrt


@contextlib.contextmanager
def _temporary_vrt(xml: str, name: str) -> Iterator[Path]:
    # written by hand: GDAL's BuildVRT is not exposed by rasterio, and osgeo is not a dependency
    with tempfile.TemporaryDirectory(prefix="suite-stack-") as folder:
        # named after the files, since errors about the stack name the path that was read
        vrt = Path(folder) / (name[:200] + ".vrt")
        vrt.write_text(xml)
        yield vrt


def refuse_repeated(paths: list[Path]) -> None:
    """Refuse a band file given twice (a typo in a list of bands, e.g. ``B4 B3 B3``)."""
    seen: dict[Path, Path] = {}
    for path in paths:
        real = Path(path).resolve()
        if real in seen:
            raise InputError(path, f"is given twice (as {seen[real]} too); each band file once")
        seen[real] = path


def refuse_paletted(meta: RasterMeta, path: Path) -> None:
    """Refuse a paletted raster: its values index a colour table (often land-cover classes), so
    interpolating or filling them would invent classes."""
    if meta.paletted:
        raise InputError(path, "is a paletted raster (values index a colour table, e.g. classes, "
                         "not measurements); expand it to RGB first (gdal_translate -expand rgb)")


def _without_alpha(path: Path, meta: RasterMeta, alpha: int) -> str:
    """VRT of ``path``'s bands but ``alpha``, masked by the alpha band, keeping the source's
    georeferencing (transform, or GCPs), RPCs and dataset metadata."""
    tags = {"": meta.metadata, ' domain="RPC"': meta.rpcs.to_gdal() if meta.rpcs else {}}
    bands = [k for k in range(meta.count) if k != alpha - 1]
    source = escape(str(path.resolve()))
    return (
        f'<VRTDataset rasterXSize="{meta.width}" rasterYSize="{meta.height}">\n'
        + _vrt_georef(meta)
        + "".join(f"  {_vrt_metadata(kv, domain)}\n" for domain, kv in tags.items() if kv)
        + "".join(_vrt_band(i, path, meta, k) for i, k in enumerate(bands, start=1))
        + '  <MaskBand><VRTRasterBand dataType="Byte"><SimpleSource>'
        + f'<SourceFilename relativeToVRT="0">{source}</SourceFilename>'
        + f"<SourceBand>{alpha}</SourceBand></SimpleSource></VRTRasterBand></MaskBand>\n"
        + "</VRTDataset>\n"
    )


def _vrt_georef(meta: RasterMeta) -> str:
    """The VRT lines that locate ``meta``'s raster: CRS and transform, or its GCPs."""
    if meta.gcps:
        wkt = escape(meta.gcps_crs.to_wkt()) if meta.gcps_crs else ""
        points = "".join(f'<GCP Id="{escape(g.id or "")}" Pixel="{g.col!r}" Line="{g.row!r}" '
                         f'X="{g.x!r}" Y="{g.y!r}" Z="{(g.z or 0.0)!r}"/>' for g in meta.gcps)
        return f'  <GCPList Projection="{wkt}">{points}</GCPList>\n'
    t = meta.transform
    return ((f"  <SRS>{escape(meta.crs.to_wkt())}</SRS>\n" if meta.crs else "")
            + f"  <GeoTransform>{t.c!r}, {t.a!r}, {t.b!r}, {t.f!r}, {t.d!r}, {t.e!r}"
            "</GeoTransform>\n")


def check_same_values(path: Path, meta: RasterMeta, ref: Path, first: RasterMeta) -> None:
    """Refuse band files of one image whose data types or nodata values differ: written into the
    first file's type, a float band of reflectance would become zeros in an integer output."""
    nodata_differs = not (meta.nodata == first.nodata or (
        meta.nodata is not None and first.nodata is not None
        and np.isnan(meta.nodata) and np.isnan(first.nodata)))
    if meta.dtype != first.dtype or nodata_differs:
        raise InputError(path, f"data type {meta.dtype} / nodata {meta.nodata} differ from "
                         f"{first.dtype} / {first.nodata} of {ref}")


def _check_stackable(path: Path, meta: RasterMeta, ref: Path, first: RasterMeta) -> None:
    if meta.crs != first.crs:
        raise InputError(path, f"CRS {meta.crs} differs from {first.crs} of {ref}")
    same_grid = meta.transform.almost_equals(first.transform, precision=1e-9 * max(
        1.0, abs(first.transform.a)))
    if (meta.width, meta.height) != (first.width, first.height) or not same_grid:
        raise InputError(path, f"grid {meta.width}x{meta.height} at {tuple(meta.transform)[:6]} "
                         f"differs from {ref}'s; band files must share one grid")
    check_same_values(path, meta, ref, first)
    with _open(path) as ds:
        if meta.nodata is None and any(MaskFlags.per_dataset in flags or MaskFlags.alpha in flags
                                       for flags in ds.mask_flag_enums):
            raise InputError(path, "carries a mask or alpha band, which a band stack would drop; "
                             "stack the bands into one file first")


def _vrt_metadata(tags: dict[str, str], domain: str = "") -> str:
    """A VRT ``<Metadata>`` element (``domain``: e.g. ``' domain="RPC"'``)."""
    items = "".join(f'<MDI key="{escape(k, {chr(34): "&quot;"})}">{escape(str(v))}</MDI>'
                    for k, v in tags.items())
    return f"<Metadata{domain}>{items}</Metadata>"


def _vrt_band(index: int, path: Path, meta: RasterMeta, k: int) -> str:
    """The VRT's band ``index``: band ``k`` (0-based) of the file ``path``."""
    name = (meta.descriptions[k] if k < len(meta.descriptions) else None) or (
        path.stem if meta.count == 1 else f"{path.stem} band {k + 1}")
    typename = typename_fwd[_get_gdal_dtype(meta.dtype)]
    lines = [f'  <VRTRasterBand dataType="{typename}" band="{index}">',
             f"    <Description>{escape(name)}</Description>"]
    if meta.nodata is not None:
        lines.append(f"    <NoDataValue>{meta.nodata!r}</NoDataValue>")
    if k < len(meta.scales) and (meta.scales[k] != 1.0 or meta.offsets[k] != 0.0):
        lines += [f"    <Offset>{meta.offsets[k]!r}</Offset>",
                  f"    <Scale>{meta.scales[k]!r}</Scale>"]
    if k < len(meta.band_tags) and meta.band_tags[k]:  # the band's own tags (a WAVELENGTH)
        lines.append("    " + _vrt_metadata(meta.band_tags[k]))
    lines += ["    <SimpleSource>",
              f'      <SourceFilename relativeToVRT="0">{escape(str(path.resolve()))}'
              "</SourceFilename>",
              f"      <SourceBand>{k + 1}</SourceBand>",
              "    </SimpleSource>",
              "  </VRTRasterBand>\n"]
    return "\n".join(lines)


def _scale_gcp(gcp: GroundControlPoint, s: float) -> GroundControlPoint:
    """The GCP on a grid ``s`` times finer: GCP pixel coordinates are corner-based, so they
    scale about the raster's upper-left corner."""
    return GroundControlPoint(row=gcp.row * s, col=gcp.col * s, x=gcp.x, y=gcp.y, z=gcp.z,
                              id=gcp.id, info=gcp.info)


def _scale_rpcs(rpcs: RPC, s: float) -> RPC:
    """RPCs on a grid ``s`` times finer. RPC line and sample count from the centre of the first
    pixel while GDAL's pixel coordinates count from its corner, so corner = rpc + 0.5 on both
    grids and ``rpc' = s * rpc + (s - 1) / 2``; the ground side is unchanged. Checked against
    GDAL's own RPC transformer in the tests."""
    shift = (s - 1.0) / 2.0
    return _replace_rpc(rpcs, line_off=rpcs.line_off * s + shift,
                        samp_off=rpcs.samp_off * s + shift,
                        line_scale=rpcs.line_scale * s, samp_scale=rpcs.samp_scale * s)


def _replace_rpc(rpcs: RPC, **changes: float) -> RPC:
    """A copy of ``rpcs`` with some fields changed (:class:`RPC` is not a dataclass)."""
    values = rpcs.to_dict()
    values.update(changes)
    return RPC(**values)


def scale_transform(transform: Affine, s: float) -> Affine:
    """Transform of the same footprint sampled ``s`` times finer (pixel size divided by ``s``).

    The upper-left corner stays where it is; ``s < 1`` makes the grid coarser.
    """
    return transform @ Affine.scale(1.0 / s)


def iter_windows(
    width: int, height: int, size: int = BLOCK, halo: int = 0
) -> Iterator[tuple[Window, Window]]:
    """Yield block-aligned windows covering a ``height x width`` raster.

    Args:
        width: raster width (pixels).
        height: raster height (pixels).
        size: window side, a multiple of :data:`BLOCK` to stay aligned with the tiles.
        halo: context (pixels) added on each side, clipped at the raster edges.

    Yields:
        ``(window_with_halo, inner_window)``, both in raster pixel coordinates; use
        :func:`inner_slices` to cut the inner part out of an array read on the outer window.
    """
    for row in range(0, height, size):
        for col in range(0, width, size):
            inner = Window(col, row, min(size, width - col), min(size, height - row))
            c0, r0 = max(col - halo, 0), max(row - halo, 0)
            c1 = min(col + inner.width + halo, width)
            r1 = min(row + inner.height + halo, height)
            yield Window(c0, r0, c1 - c0, r1 - r0), inner


def inner_slices(outer: Window, inner: Window) -> tuple[slice, slice]:
    """Row and column slices of ``inner`` inside an array read on ``outer``."""
    r = int(inner.row_off - outer.row_off)
    c = int(inner.col_off - outer.col_off)
    return slice(r, r + int(inner.height)), slice(c, c + int(inner.width))


def read_window(
    path: str | Path,
    window: Window | None,
    boundless: bool = False,
    indexes: list[int] | None = None,
    masked: bool = False,
) -> np.ndarray:
    """Read ``(C, h, w)`` pixels of ``window``.

    Args:
        path: raster file.
        window: pixel window (``None`` for the whole raster); with ``boundless`` it may reach
            outside the raster, where the nodata value (or 0) is returned and, with ``masked``,
            the pixels are masked.
        boundless: allow windows outside the raster.
        indexes: 1-based bands to read (all by default).
        masked: return a :class:`numpy.ma.MaskedArray` built from the dataset masks; a NaN or
            infinite value is masked too, declared nodata or not.

    Returns:
        The pixels in the file's dtype.
    """
    with _open(path) as ds:
        if boundless and window is not None:
            return _read_boundless(ds, window, indexes, masked)
        data = ds.read(indexes, window=window)
        if not masked:
            return np.asarray(data)
        invalid = (ds.read_masks(indexes, window=window) == 0) | ~finite(data)
        return np.ma.MaskedArray(data, mask=invalid)


def finite(data: np.ndarray) -> np.ndarray:
    """Which values are finite: a NaN or infinity is never a measurement, even in a float raster
    that declares no nodata (GDAL's masks then call it valid, and one NaN fed to a network
    spreads over the whole output)."""
    if not np.issubdtype(data.dtype, np.floating):
        return np.ones(data.shape, dtype=bool)
    return np.isfinite(data)


def _read_boundless(ds: Any, window: Window, indexes: list[int] | None, masked: bool) -> np.ndarray:
    """Read a window that may reach outside ``ds``: outside is nodata (or 0) and masked.

    Done by hand rather than with rasterio's ``boundless`` (a VRT per read, slower).
    """
    count = ds.count if indexes is None else len(indexes)
    h, w = int(window.height), int(window.width)
    fill = ds.nodata if ds.nodata is not None else 0
    data = np.full((count, h, w), fill, dtype=ds.dtypes[0])
    invalid = np.ones((count, h, w), dtype=bool)
    r0, c0 = int(window.row_off), int(window.col_off)
    rs, re = max(r0, 0), min(r0 + h, ds.height)
    cs, ce = max(c0, 0), min(c0 + w, ds.width)
    if re > rs and ce > cs:
        inner = Window(cs, rs, ce - cs, re - rs)
        dst = (slice(None), slice(rs - r0, re - r0), slice(cs - c0, ce - c0))
        data[dst] = ds.read(indexes, window=inner)
        invalid[dst] = (ds.read_masks(indexes, window=inner) == 0) | ~finite(data[dst])
    return np.ma.MaskedArray(data, mask=invalid) if masked else data


def read_valid_mask(
    path: str | Path, window: Window | None = None, boundless: bool = False,
    data: np.ndarray | None = None,
) -> np.ndarray:
    """Per-pixel validity ``(h, w)`` (bool) from the dataset mask (nodata, alpha or mask band)
    and, in a float raster, the values' finiteness (see :func:`finite`); ``data``, the pixels
    of that window when the caller has read them already, saves reading them again."""
    with _open(path) as ds:
        valid = np.asarray(ds.dataset_mask(window=window, boundless=boundless) > 0)
        if np.issubdtype(np.dtype(ds.dtypes[0]), np.floating):
            if data is None:
                data = ds.read(window=window, boundless=boundless)
            valid &= finite(data).all(axis=0)
        return valid


def write_profile(meta: RasterMeta) -> dict[str, Any]:
    """Profile of a tiled (256x256), deflate-compressed GeoTIFF for ``meta``."""
    profile = dict(meta.profile)
    for key in ("blockxsize", "blockysize", "tiled", "compress", "predictor", "interleave"):
        profile.pop(key, None)
    # Set, not copied: a JPEG source's YCbCr is valid only with JPEG compression (the output is
    # deflate), and GDAL's default for 3 or 4 bytes per pixel is RGB with a 4th band as alpha,
    # so a red, green, blue, NIR scene would come back with its NIR band read as transparency.
    rgb = meta.count >= 3 and meta.colorinterp[:3] == ("red", "green", "blue")
    profile["photometric"] = "RGB" if rgb else "MINISBLACK"
    floating = np.issubdtype(np.dtype(meta.dtype), np.floating)
    profile.update(
        driver="GTiff",
        dtype=meta.dtype,
        nodata=meta.nodata,
        crs=meta.crs,
        transform=meta.transform,
        tiled=True,
        blockxsize=BLOCK,
        blockysize=BLOCK,
        compress="deflate",
        predictor=3 if floating else 2,
        interleave="band",
        BIGTIFF="IF_SAFER",
    )
    if meta.gcps:
        # a GeoTIFF holds either a transform or GCPs; the GCPs are set once the file is open
        profile.pop("transform")
        profile["crs"] = None
    return profile


def check_same_grid(path: str | Path, meta: RasterMeta, reference: RasterMeta,
                    what: str = "the raster", of: str = "the reference") -> None:
    """Refuse a raster that is not on ``reference``'s grid: the same size, CRS and transform
    (to a thousandth of a pixel), so that its pixels and the reference's are the same places.

    Args:
        path: the raster checked, named in the message.
        meta: its metadata.
        reference: the metadata of the raster it must match.
        what: the checked raster in the message (``"the prediction"``, ``"QA band"``).
        of: the reference in the message (``"the reference"``, ``"the image"``).

    Raises:
        InputError: the size, the CRS or the transform differs.
    """
    if (meta.height, meta.width) != (reference.height, reference.width):
        raise InputError(path, f"{what} is {meta.height}x{meta.width} pixels, {of} "
                               f"{reference.height}x{reference.width}")
    pixel = min(abs(reference.transform.a), abs(reference.transform.e)) or 1.0
    same = np.allclose(tuple(meta.transform)[:6], tuple(reference.transform)[:6],
                       rtol=0, atol=1e-3 * pixel)
    if meta.crs != reference.crs or not same:
        raise InputError(path, f"{what} lies on another grid than {of} (CRS or transform "
                               "differs)")


def off_nodata(data: np.ndarray, nodata: float) -> np.ndarray:
    """``data`` with every value equal to ``nodata`` moved one step off it.

    A valid pixel that a sharpening or a fill drives to the nodata value (0 in a byte scene,
    after clipping) would read back as missing; one digital number up, or down at the top of
    the range, keeps it valid. Floats move by 1e-5 of the value (at least 1e-5): GDAL reads
    float values within a few ulps of nodata as nodata.
    """
    if np.isnan(nodata):
        return data
    hit = data == nodata
    if not hit.any():
        return data
    if np.issubdtype(data.dtype, np.floating):
        step = nodata + max(abs(nodata), 1.0) * 1e-5
    else:
        step = nodata + 1 if nodata < np.iinfo(data.dtype).max else nodata - 1
    return np.where(hit, np.asarray(step, dtype=data.dtype), data)


def _in_type(block: np.ndarray, dtype: str) -> np.ndarray:
    """Float values for an integer raster rounded and clipped to its range, NaN masked: a plain
    cast wraps them (2550 becomes 246 in a byte raster) and truncates (0.7 becomes 0)."""
    values = np.ma.getdata(block)
    if not (np.issubdtype(values.dtype, np.floating) and np.issubdtype(np.dtype(dtype),
                                                                       np.integer)):
        return block
    info = np.iinfo(np.dtype(dtype))
    invalid = np.ma.getmaskarray(block) | ~np.isfinite(values)
    clipped = np.clip(np.rint(np.nan_to_num(values)), info.min, info.max).astype(dtype)
    masked = isinstance(block, np.ma.MaskedArray) or invalid.any()  # keeps the nodata rule
    return np.ma.MaskedArray(clipped, mask=invalid) if masked else clipped


def _write_window(dst: Any, window: Window, block: np.ndarray, meta: RasterMeta) -> bool:
    """Write one window; return whether the block had masked pixels and no nodata value."""
    if np.ndim(block) == 2:
        block = block[None]
    block = _in_type(block, meta.dtype)
    masked = isinstance(block, np.ma.MaskedArray) and bool(np.ma.is_masked(block))
    data = np.asarray(np.ma.getdata(block), dtype=meta.dtype)
    if isinstance(block, np.ma.MaskedArray) and meta.nodata is not None:
        invalid = np.ma.getmaskarray(block)
        data = np.where(invalid, meta.nodata, off_nodata(data, meta.nodata))
    dst.write(np.asarray(data, dtype=meta.dtype), window=window)
    if masked and meta.nodata is None:
        valid = ~np.ma.getmaskarray(block).any(axis=0)
        dst.write_mask(np.where(valid, 255, 0).astype("uint8"), window=window)
        return True
    return False


def _write_tiled(path: Path, meta: RasterMeta, producer: Producer, size: int,
                 progress: bool = False) -> None:
    """Write ``meta``'s raster to ``path`` window by window (tiled, compressed GeoTIFF)."""
    with (
        rasterio.Env(GDAL_TIFF_INTERNAL_MASK="YES"),
        rasterio.open(path, "w", **write_profile(meta)) as dst,
    ):
        for i, desc in enumerate(meta.descriptions[: meta.count], start=1):
            if desc:
                dst.set_band_description(i, desc)
        if meta.scales:
            dst.scales = meta.scales[: meta.count]
        if meta.offsets:
            dst.offsets = meta.offsets[: meta.count]
        dst.update_tags(**meta.metadata, TIFFTAG_SOFTWARE=f"enhance-suite {version}")
        for i, band in enumerate(meta.band_tags[: meta.count], start=1):
            if band:
                dst.update_tags(i, **band)
        if meta.gcps:
            dst.gcps = (list(meta.gcps), meta.gcps_crs)
        if meta.rpcs is not None:
            dst.rpcs = meta.rpcs
        windows = [w for _, w in iter_windows(meta.width, meta.height, size)]
        for window in tqdm(windows, desc="windows", unit="window", disable=not progress,
                           file=sys.stderr, leave=False):
            _write_window(dst, window, producer(window), meta)


def _to_cog(tiled: Path, target: Path, meta: RasterMeta) -> None:
    """Copy a tiled GeoTIFF to a Cloud-Optimized GeoTIFF (COG driver, else GTiff + overviews)."""
    predictor = write_profile(meta)["predictor"]
    with rasterio.Env() as env:
        has_cog = "COG" in env.drivers()
    if has_cog:
        rasterio.shutil.copy(
            tiled,
            target,
            driver="COG",
            COMPRESS="DEFLATE",
            PREDICTOR=predictor,
            BLOCKSIZE=BLOCK,
            BIGTIFF="IF_SAFER",
        )
        return
    with rasterio.open(tiled, "r+") as ds:
        factors = [2**i for i in range(1, 8) if max(ds.width, ds.height) // 2**i >= BLOCK]
        ds.build_overviews(factors or [2], Resampling.average)
    rasterio.shutil.copy(
        tiled,
        target,
        driver="GTiff",
        TILED=True,
        BLOCKXSIZE=BLOCK,
        BLOCKYSIZE=BLOCK,
        COMPRESS="DEFLATE",
        PREDICTOR=predictor,
        COPY_SRC_OVERVIEWS=True,
    )


def write_raster_windows(
    path: str | Path,
    meta_out: RasterMeta,
    producer: Producer,
    cog: bool = False,
    window_size: int = 2 * BLOCK,
    progress: bool = False,
) -> Path:
    """Write a raster window by window so that memory stays flat as the raster grows.

    The file is a tiled (256x256), deflate-compressed GeoTIFF (predictor 2 for integers, 3 for
    floats) carrying CRS, transform, nodata, band descriptions, dtype and scales/offsets of
    ``meta_out``; with ``cog`` it is converted to a Cloud-Optimized GeoTIFF. Masked pixels of the
    produced blocks become nodata (or, with no nodata value, an internal per-dataset mask).
    The target appears only when complete (:func:`suite.io.atomic.atomic_path`).

    Args:
        path: output ``.tif``.
        meta_out: metadata of the output (``width``, ``height``, ``count`` and ``dtype`` used).
        producer: gives the ``(C, h, w)`` block of a window (in output pixels).
        cog: write a COG.
        window_size: side of the windows asked of ``producer``; a multiple of 256.
        progress: show a progress bar over the windows (a large scene takes hours on a CPU).

    Returns:
        The written path.
    """
    target = Path(path)
    with atomic_path(target) as tmp:
        if not cog:
            _write_tiled(tmp, meta_out, producer, window_size, progress)
        else:
            tiled = tmp.with_name(tmp.stem + ".tiled.tif")
            try:
                _write_tiled(tiled, meta_out, producer, window_size, progress)
                _to_cog(tiled, tmp, meta_out)
            finally:
                tiled.unlink(missing_ok=True)
    return target


@contextlib.contextmanager
def gdal_env(**overrides: Any) -> Iterator[rasterio.Env]:
    """Context with GDAL's recommended settings for batch reading (:data:`GDAL_BATCH_ENV`)."""
    options = {**GDAL_BATCH_ENV, **overrides}
    with rasterio.Env(**options) as env:
        yield env


@dataclass(frozen=True)
class Normalization:
    """Linear map from stored values to floats: ``x_float = x / scale``.

    Attributes:
        kind: ``"uint8"``, ``"uint16-11bit"``, ``"uint16-12bit"``, ``"uint16"``, ``"int"`` or
            ``"float"`` (kept as is, e.g. reflectance).
        scale: divisor (255, 2047, 4095, 65535, the dtype maximum, or 1).
        dtype: dtype name to write back.
    """

    kind: str
    scale: float
    dtype: str


def detect_normalization(meta: RasterMeta, max_value: float | None = None) -> Normalization:
    """Choose the normalization of a raster from its dtype, ``NBITS`` tag or largest value."""
    dtype = np.dtype(meta.dtype)
    if np.issubdtype(dtype, np.floating):
        return Normalization("float", 1.0, meta.dtype)
    if dtype == np.uint8:
        return Normalization("uint8", 255.0, meta.dtype)
    nbits = int(meta.tags.get("NBITS", 0) or 0)
    if dtype == np.uint16:
        if nbits in (11, 12):
            return Normalization(f"uint16-{nbits}bit", float(2**nbits - 1), meta.dtype)
        if nbits == 0 and max_value is not None and max_value <= 4095:
            bits = 11 if max_value <= 2047 else 12
            return Normalization(f"uint16-{bits}bit", float(2**bits - 1), meta.dtype)
        return Normalization("uint16", 65535.0, meta.dtype)
    return Normalization("int", float(np.iinfo(dtype).max), meta.dtype)


def normalize(data: np.ndarray, norm: Normalization) -> np.ndarray:
    """Stored values -> float32 (``data / norm.scale``); any shape."""
    return (np.asarray(data, dtype=np.float64) / norm.scale).astype(np.float32)


def denormalize(data: np.ndarray, norm: Normalization) -> np.ndarray:
    """Inverse of :func:`normalize`: scale back, and round and clip for integer dtypes."""
    values = np.asarray(data, dtype=np.float64) * norm.scale
    dtype = np.dtype(norm.dtype)
    if np.issubdtype(dtype, np.floating):
        return values.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.rint(values), info.min, info.max).astype(dtype)


def window_grid_shape(meta: RasterMeta, size: int = BLOCK) -> tuple[int, int]:
    """Number of ``size`` windows along rows and columns."""
    return math.ceil(meta.height / size), math.ceil(meta.width / size)
