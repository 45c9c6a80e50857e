"""Photos (PNG, JPEG, TIFF, DICOM): ``(H, W, C)`` arrays in the file's own dtype, written back
alike.

PNG and JPEG go through Pillow. TIFF goes through tifffile (a dependency of scikit-image),
because Pillow decodes 16-bit colour TIFF to 8 bits; compressions that tifffile leaves to the
optional imagecodecs package (LZW, JPEG) are decoded by GDAL through rasterio instead.
Pillow also reduces 16-bit colour PNG to 8 bits, so such files are refused rather than
silently losing half their bits; 16-bit greyscale PNG is read exactly (Pillow mode ``I;16``).

DICOM photographs (ophthalmic photography from fundus cameras, secondary captures) are read
through pydicom, YBR JPEG decoded to RGB; one is written back as a derived instance of a new
series (patient and study kept, uncompressed RGB or grey), and only from a DICOM source, which
holds the headers it needs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import tifffile
from PIL import Image

from suite.errors import InputError, ShapeError
from suite.io.atomic import atomic_path, check_output_path
from suite.io.volume import is_dicom_file

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}  # channel count -> mode of the array
PHOTO_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF",
                 ".dcm": "DICOM"}  # output suffix -> the format written
PILLOW_8BIT = {"L", "LA", "RGB", "RGBA"}
PILLOW_16BIT = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
TIFF_ICC_TAG = 34675
ORIENTATION_TAG = 274  # EXIF and TIFF Orientation: how the stored pixels are turned for display
X_RESOLUTION_TAG = 282  # EXIF XResolution
JPEG_QUALITY = 95
# Descriptive TIFF tags, numbered alike in EXIF's first IFD: ImageDescription, Make, Model,
# Software, DateTime, Artist, Copyright
DESCRIPTIVE_TAGS = (270, 271, 272, 305, 306, 315, 33432)


@dataclass
class PhotoMeta:
    """What is needed to write a photo back as it was read.

    Attributes:
        format: ``"PNG"``, ``"JPEG"``, ``"TIFF"`` or ``"DICOM"``.
        bit_depth: bits per sample, 8 or 16.
        mode: layout of the array's channels: ``"L"``, ``"LA"``, ``"RGB"`` or ``"RGBA"``.
        size: ``(width, height)`` in pixels.
        path: the source file.
        icc_profile: embedded ICC colour profile, if any.
        exif: raw EXIF block, if any (PNG and JPEG).
        dataset: the source DICOM header without its pixels (DICOM only).
        dpi: pixel density ``(x, y)`` in dots per inch, if the file records one (PNG pHYs,
            JPEG JFIF density, TIFF resolution tags).
        orientation: the EXIF/TIFF Orientation (2 to 8) of pixels stored turned or mirrored
            (a camera held upright), written back in every format; ``None`` for 1 or none.
        bits_stored: DICOM BitsStored below the 16 bits allocated (12-bit cameras): the values'
            full scale is ``2**bits_stored - 1``, not 65535; ``None`` otherwise.
        described: the descriptive tags of a TIFF source (:data:`DESCRIPTIVE_TAGS`: camera,
            date, description...), by tag number, written back to a TIFF output and, in a new
            EXIF block, to PNG and JPEG ones (an EXIF source keeps its own block whole).
    """

    format: str
    bit_depth: int
    mode: str
    size: tuple[int, int]
    path: Path | None = None
    icc_profile: bytes | None = None
    exif: bytes | None = None
    dataset: Dataset | None = None
    dpi: tuple[float, float] | None = None
    orientation: int | None = None
    bits_stored: int | None = None
    described: dict[int, str] = field(default_factory=dict)

    @property
    def full_scale(self) -> float:
        """The largest value a sample can hold: 255, 65535, or 4095 for 12 bits stored."""
        return float(2 ** (self.bits_stored or self.bit_depth) - 1)


@dataclass
class Photo:
    """A photo: ``data`` is ``(H, W, C)`` uint8 or uint16, C in 1..4, with its ``meta``."""

    data: np.ndarray
    meta: PhotoMeta


def read_photo(path: str | Path) -> Photo:
    """Read a PNG, JPEG, TIFF or DICOM photo without changing its bit depth.

    Args:
        path: the image file.

    Returns:
        Photo with ``data`` ``(H, W, C)`` uint8 (8-bit files) or uint16 (16-bit files).

    Raises:
        InputError: missing, corrupt or unsupported file (the message says which).
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "does not exist or is not a file")
    if is_dicom_file(p):
        return _read_dicom(p)
    try:
        # Pillow's format probes warn (e.g. "Corrupt EXIF data" on a DICOM file) before the
        # error that is reported as one line; the warning would be a second, confusing line.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
            im = Image.open(p)
        with im:
            fmt = str(im.format)
            if fmt == "TIFF":
                return _read_tiff(p)
            if fmt not in ("PNG", "JPEG"):
                raise InputError(
                    p, f"unsupported photo format {fmt}; expected PNG, JPEG, TIFF or DICOM")
            return _read_pillow(p, im)
    except InputError:
        raise
    except Exception as exc:  # decoders raise zlib, struct, OS... errors on corrupt data
        raise InputError(p, f"corrupt or unreadable image ({exc})") from exc


def _read_dicom(path: Path) -> Photo:
    """One DICOM photograph: 8 or 16-bit, grey or colour (YBR decoded to RGB), one frame."""
    import pydicom

    try:
        ds = pydicom.dcmread(path)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        if frames > 1:
            raise InputError(path, f"DICOM with {frames} frames; a photograph is one frame")
        if "PixelData" not in ds:
            raise InputError(path, "DICOM file without an image")
        data = ds.pixel_array
    except InputError:
        raise
    except Exception as exc:
        raise InputError(path, f"corrupt or unreadable DICOM image ({exc})") from exc
    if data.dtype not in (np.uint8, np.uint16) or int(ds.get("SamplesPerPixel", 1)) not in (1, 3):
        kind = ds.get("Modality", "unknown modality")
        raise InputError(path, f"DICOM {kind} image of {data.dtype} samples is not a photograph "
                               "(8 or 16-bit unsigned grey or colour)")
    data = data[..., np.newaxis] if data.ndim == 2 else data
    del ds.PixelData
    allocated = 8 * data.dtype.itemsize
    stored = int(ds.get("BitsStored", allocated) or allocated)
    meta = PhotoMeta("DICOM", allocated, MODES[data.shape[2]], (data.shape[1], data.shape[0]),
                     path, dataset=ds, bits_stored=stored if 8 < stored < allocated else None)
    return Photo(data=np.ascontiguousarray(data), meta=meta)


def _read_pillow(path: Path, im: Image.Image) -> Photo:
    fmt = str(im.format)  # before any convert(), whose copy has no format
    if im.format == "PNG" and im.mode in ("RGB", "RGBA", "LA") and _png_is_16bit(im):
        raise InputError(path, "16-bit colour PNG: Pillow would reduce it to 8 bits (use TIFF)")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode == "1":
        im = im.convert("L")
    im.load()  # decodes now, so truncated data fails here and is reported as corrupt
    if im.mode in PILLOW_16BIT:
        data, depth = _as_uint16(path, np.asarray(im)), 16
    elif im.mode in PILLOW_8BIT:
        data, depth = np.asarray(im, dtype=np.uint8), 8
    else:
        raise InputError(path, f"colour mode {im.mode} is not supported (L, LA, RGB, RGBA)")
    data = data[..., np.newaxis] if data.ndim == 2 else data
    return Photo(data=np.ascontiguousarray(data), meta=_meta(path, fmt, data, depth, im))


def _png_is_16bit(im: Image.Image) -> bool:
    """Pillow keeps the PNG raw mode (e.g. ``RGB;16B``) in the tile before decoding."""
    return any(";16" in str(tile.args) for tile in (getattr(im, "tile", None) or []))


def _as_uint16(path: Path, data: np.ndarray) -> np.ndarray:
    if data.dtype != np.uint16 and (data.min() < 0 or data.max() > 65535):
        raise InputError(path, "32-bit integer image values do not fit 16 bits")
    return data.astype(np.uint16)


def _meta(path: Path, fmt: str, data: np.ndarray, depth: int, im: Image.Image) -> PhotoMeta:
    exif = im.info.get("exif")
    return PhotoMeta(
        format=fmt,
        bit_depth=depth,
        mode=MODES[data.shape[2]],
        size=(data.shape[1], data.shape[0]),
        path=path,
        icc_profile=im.info.get("icc_profile") or None,
        exif=exif if isinstance(exif, bytes) and exif else None,
        dpi=_pillow_dpi(im),
        orientation=_orientation(_exif_tag(im, ORIENTATION_TAG)),
    )


def _exif_tag(im: Image.Image, tag: int) -> object:
    """One EXIF tag's value; a malformed EXIF block (common in edited photos) gives ``None``."""
    try:
        return im.getexif().get(tag)
    except (OSError, ValueError, SyntaxError):
        return None


# Stored pixels -> as viewers show them, for each EXIF/TIFF Orientation (ImageOps.exif_transpose)
_TO_DISPLAY = {
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1), 8: lambda a: np.rot90(a, 1),
}
_INVERSE = {2: 2, 3: 3, 4: 4, 5: 5, 6: 8, 7: 7, 8: 6}


def to_display(data: np.ndarray, orientation: int | None) -> np.ndarray:
    """``(H, W, ...)`` stored pixels turned and mirrored as viewers show them."""
    return _TO_DISPLAY[orientation](data) if orientation in _TO_DISPLAY else data


def to_stored(data: np.ndarray, orientation: int | None) -> np.ndarray:
    """Inverse of :func:`to_display`: pixels as seen, back to how a photo with ``orientation``
    stores them."""
    return _TO_DISPLAY[_INVERSE[orientation]](data) if orientation in _INVERSE else data


def _orientation(value: object) -> int | None:
    """An Orientation tag's value if it turns or mirrors the picture (2 to 8), else ``None``."""
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
    return number if 2 <= number <= 8 else None


def _pillow_dpi(im: Image.Image) -> tuple[float, float] | None:
    dpi = im.info.get("dpi")
    if im.format == "JPEG" and not (im.info.get("jfif_unit") in (1, 2)
                                    or _exif_tag(im, X_RESOLUTION_TAG) is not None):
        return None  # Pillow's fallback of 72 dpi for an EXIF block without a resolution
    if not isinstance(dpi, tuple) or len(dpi) != 2 or not all(float(d) > 0 for d in dpi):
        return None
    return float(dpi[0]), float(dpi[1])


def _tiff_dpi(page: tifffile.TiffPage) -> tuple[float, float] | None:
    """XResolution/YResolution per inch; ``None`` without them or with no absolute unit."""
    unit = page.tags.get("ResolutionUnit")
    per_inch = {2: 1.0, 3: 2.54}.get(int(unit.value) if unit is not None else 2)
    xres, yres = page.tags.get("XResolution"), page.tags.get("YResolution")
    if per_inch is None or xres is None or yres is None:
        return None
    x, y = (num / den if den else 0.0 for num, den in (xres.value, yres.value))
    return (x * per_inch, y * per_inch) if x > 0 and y > 0 else None


def _read_tiff(path: Path) -> Photo:
    with tifffile.TiffFile(path) as tif:
        if len(tif.pages) != 1:
            raise InputError(path, f"multi-page TIFF ({len(tif.pages)} pages) is not a photo")
        page = tif.pages[0]
        if not isinstance(page, tifffile.TiffPage):
            raise InputError(path, "TIFF first page is not an image")
        try:
            data = page.asarray()
        except ValueError as err:
            if "imagecodecs" not in str(err):
                raise
            data = _decode_tiff_with_gdal(path)
        else:
            if page.planarconfig == tifffile.PLANARCONFIG.SEPARATE and data.ndim == 3:
                data = np.moveaxis(data, 0, -1)  # stored (C, H, W), photos travel as (H, W, C)
        icc = page.tags.get(TIFF_ICC_TAG)
        icc_bytes = bytes(icc.value) if icc is not None else None
        dpi = _tiff_dpi(page)
        turned = page.tags.get(ORIENTATION_TAG)
        orientation = _orientation(turned.value if turned is not None else None)
        described = {code: str(page.tags[code].value) for code in DESCRIPTIVE_TAGS
                     if code in page.tags and str(page.tags[code].value).strip()}
    if data.dtype not in (np.uint8, np.uint16):
        raise InputError(path, f"TIFF samples of type {data.dtype} are not 8 or 16-bit photos")
    data = data[..., np.newaxis] if data.ndim == 2 else data
    if data.ndim != 3 or data.shape[2] not in MODES:
        raise InputError(path, f"TIFF of shape {data.shape} is not a 1 to 4 channel photo")
    depth = 8 * data.dtype.itemsize
    meta = PhotoMeta("TIFF", depth, MODES[data.shape[2]], (data.shape[1], data.shape[0]), path)
    meta.icc_profile, meta.dpi, meta.orientation = icc_bytes, dpi, orientation
    meta.described = described
    return Photo(data=np.ascontiguousarray(data), meta=meta)


def _decode_tiff_with_gdal(path: Path) -> np.ndarray:
    """``(H, W[, C])`` pixels of a TIFF whose compression tifffile cannot decode by itself.

    tifffile decodes LZW, JPEG and most other TIFF compressions only through the optional
    ``imagecodecs`` package, which the suite does not install; GDAL (rasterio, a dependency
    already) decodes them all.
    """
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            data = src.read()
    return data[0] if data.shape[0] == 1 else np.moveaxis(data, 0, -1)


def write_photo(
    path: str | Path, data: np.ndarray, meta: PhotoMeta, description: str = "enhanced",
    derivation: str = "enhanced",
) -> Path:
    """Write a photo in the format and bit depth of ``meta`` (JPEG at quality 95, 4:4:4).

    Args:
        path: output file (replaced atomically).
        data: ``(H, W, C)`` (or ``(H, W)``) uint8 for 8-bit or uint16 for 16-bit output.
        meta: metadata of the source photo; its ICC profile, EXIF and pixel density are
            written back.
        description: DICOM only: appended to the SeriesDescription.
        derivation: DICOM only: the DerivationDescription (how the pixels were made).

    Returns:
        The absolute output path.

    Raises:
        ShapeError: ``data`` is not ``(H, W, C)`` with C in 1..4.
        ValueError: ``data`` dtype does not match ``meta.bit_depth``.
        InputError: unusable output path, a suffix of another format (``.png`` for JPEG
            ``meta``), or a layout the format cannot store.
    """
    out = check_output_path(path, [meta.path] if meta.path is not None else [])
    named = PHOTO_FORMATS.get(out.suffix.lower())
    if named is not None and named != meta.format:  # JPEG bytes in a .png name fool viewers
        raise InputError(out, f"the name says {named} but meta.format is {meta.format}; give "
                              f"dataclasses.replace(meta, format={named!r}) or another name")
    arr = _check_data(data, meta)
    if meta.format == "DICOM" and meta.dataset is None:
        raise InputError(out, "DICOM output needs a DICOM input (its patient and study "
                              "headers); write PNG or TIFF instead")
    with atomic_path(out) as tmp:
        if meta.format == "TIFF":
            _write_tiff(tmp, arr, meta)
        elif meta.format == "DICOM":
            _write_dicom(tmp, arr, meta, description, derivation)
        else:
            _write_pillow(out, tmp, arr, meta)
    return out


def _check_data(data: np.ndarray, meta: PhotoMeta) -> np.ndarray:
    arr = np.asarray(data)
    arr = arr[..., np.newaxis] if arr.ndim == 2 else arr
    if arr.ndim != 3 or arr.shape[2] not in MODES:
        raise ShapeError("data", "(H, W, C) with C in 1..4", arr.shape)
    expected = np.uint16 if meta.bit_depth == 16 else np.uint8
    if arr.dtype != expected:
        raise ValueError(f"data dtype {arr.dtype} does not match {meta.bit_depth}-bit output")
    return np.ascontiguousarray(arr)


def _write_pillow(out: Path, tmp: Path, arr: np.ndarray, meta: PhotoMeta) -> None:
    channels = arr.shape[2]
    if meta.bit_depth == 16 and (meta.format != "PNG" or channels != 1):
        raise InputError(out, f"Pillow cannot write 16-bit {MODES[channels]} {meta.format}")
    if meta.format == "JPEG" and channels not in (1, 3):
        raise InputError(out, f"JPEG cannot store {MODES[channels]} (no alpha channel)")
    im = Image.fromarray(arr[..., 0] if channels == 1 else arr)
    options: dict[str, object] = {}
    if meta.icc_profile:
        options["icc_profile"] = meta.icc_profile
    if meta.exif:
        options["exif"] = meta.exif
    elif meta.orientation or meta.described:  # from a TIFF source: its tags, in a new EXIF
        exif = Image.Exif()
        exif.update(meta.described)
        if meta.orientation:
            exif[ORIENTATION_TAG] = meta.orientation
        options["exif"] = exif.tobytes()
    if meta.dpi:
        options["dpi"] = meta.dpi
    if meta.format == "JPEG":
        options.update(quality=JPEG_QUALITY, subsampling=0)
    im.save(tmp, format=meta.format, **options)


def _write_dicom(
    tmp: Path, arr: np.ndarray, meta: PhotoMeta, description: str, derivation: str
) -> None:
    """A derived instance of a new series: uncompressed, RGB (or grey) interleaved by pixel."""
    from pydicom.uid import generate_uid

    from suite.io.dicom import derived_instance

    assert meta.dataset is not None  # checked by write_photo
    src = meta.dataset
    channels = arr.shape[2]
    if channels not in (1, 3):
        raise InputError(tmp, f"DICOM output of {MODES[channels]} is not supported (grey or RGB)")
    ds = derived_instance(src, generate_uid(), description, derivation, 1)  # lossy kept
    for tag in ("NumberOfFrames", "SmallestImagePixelValue", "LargestImagePixelValue"):
        if tag in ds:
            delattr(ds, tag)
    ds.Rows, ds.Columns, ds.SamplesPerPixel = arr.shape[0], arr.shape[1], channels
    ds.PhotometricInterpretation = "RGB" if channels == 3 else "MONOCHROME2"
    if channels == 3:
        ds.PlanarConfiguration = 0
    elif "PlanarConfiguration" in ds:
        del ds.PlanarConfiguration
    bits = 8 * arr.dtype.itemsize
    kept = meta.bits_stored if bits == 16 and meta.bits_stored else bits  # 12 bits stay 12
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, kept, kept - 1, 0
    pixels = np.ascontiguousarray(arr[..., 0] if channels == 1 else arr).astype(
        "<u2" if bits == 16 else np.uint8).tobytes()
    ds.PixelData = pixels + b"\0" * (len(pixels) % 2)  # DICOM values have even length
    ds["PixelData"].VR = "OW" if bits == 16 else "OB"
    ds.save_as(tmp, enforce_file_format=True)


def _write_tiff(tmp: Path, arr: np.ndarray, meta: PhotoMeta) -> None:
    channels = arr.shape[2]
    tags = _descriptive(meta)
    extra: list[tuple[int, str, int, str | int, bool]] = [
        (code, "s", 0, text, False) for code, text in tags.items() if code not in (270, 305, 306)]
    if meta.orientation:  # so that a viewer turns the picture as the source's did
        extra.append((ORIENTATION_TAG, "H", 1, meta.orientation, False))
    tifffile.imwrite(
        tmp,
        arr[..., 0] if channels == 1 else arr,
        photometric="rgb" if channels >= 3 else "minisblack",
        extrasamples=("unassalpha",) if channels in (2, 4) else None,
        iccprofile=meta.icc_profile,
        resolution=meta.dpi,
        resolutionunit="INCH" if meta.dpi else None,
        compression="zlib",  # lossless and needs no codec beyond Python's zlib
        description=tags.get(270), metadata=None,  # not tifffile's own JSON description
        software=tags.get(305, False), datetime=tags.get(306),
        extratags=extra,
    )


def _descriptive(meta: PhotoMeta) -> dict[int, str]:
    """The source's descriptive tags: a TIFF's own, or those of a PNG or JPEG's EXIF block."""
    if meta.described or not meta.exif:
        return dict(meta.described)
    exif = Image.Exif()
    try:
        exif.load(meta.exif)
    except Exception:  # a malformed EXIF block (common in edited photos) describes nothing
        return {}
    return {code: str(exif[code]).strip("\x00 ") for code in DESCRIPTIVE_TAGS
            if code in exif and str(exif[code]).strip("\x00 ")}
