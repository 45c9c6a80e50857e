"""Cloud and shadow masks: a user's mask raster, a quality band, or a simple detector.

Quality-band conventions (a decoded pixel is masked when any selected flag is set):

- ``landsat-pre`` (pre-collection Landsat 8 ``BQA``, LPGS before 2.7, e.g. LC80200392015216LGN00):
  bits 14-15 cloud confidence, 12-13 cirrus confidence (00 not set, 01 low, 10 medium, 11 high);
  that generation has **no cloud-shadow bits** (bits 6-7 are reserved), so shadows are not masked.
- ``landsat-c1`` (Collection 1 ``BQA``): bit 4 cloud, 5-6 cloud confidence, 7-8 shadow
  confidence, 11-12 cirrus confidence.
- ``landsat-c2`` (Collection 2 ``QA_PIXEL``): bit 1 dilated cloud, 2 cirrus, 3 cloud, 4 shadow.
- ``s2-scl`` (Sentinel-2 L2A scene classification): classes 3 (cloud shadow), 8 (cloud medium
  probability), 9 (cloud high probability), 10 (thin cirrus).

References:
    USGS, "Landsat 8 OLI/TIRS Level-1 Quality Assessment Band" (pre-collection, 2013-2016);
    USGS LSDS-1656 (Collection 1 Level-1 QA) and LSDS-1619 (Collection 2 QA_PIXEL);
    ESA, Sentinel-2 Level-2A Algorithm Theoretical Basis Document (SCL classes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rasterio.transform import Affine
from scipy import ndimage

from suite.errors import InputError, UsageError
from suite.io.raster import RasterMeta, check_same_grid, read_raster_meta, read_window

QA_KINDS = ("auto", "landsat-pre", "landsat-c1", "landsat-c2", "s2-scl")
LEVELS = {"low": 1, "medium": 2, "high": 3}


def _field(qa: np.ndarray, bit: int) -> np.ndarray:
    """Two-bit confidence field starting at ``bit`` (0 not set, 1 low, 2 medium, 3 high)."""
    return (qa.astype(np.uint32) >> bit) & 3


def decode_qa(qa: np.ndarray, kind: str, confidence: str = "high") -> np.ndarray:
    """Cloud/shadow mask ``(H, W)`` bool from a quality band ``(H, W)``.

    Args:
        qa: the quality band values.
        kind: one of :data:`QA_KINDS` except ``"auto"`` (see the module docstring).
        confidence: lowest Landsat confidence counted (``"low"``, ``"medium"``, ``"high"``).
    """
    level = LEVELS[confidence]
    if kind == "landsat-pre":
        return (_field(qa, 14) >= level) | (_field(qa, 12) >= level)
    if kind == "landsat-c1":
        cloud = ((qa.astype(np.uint32) >> 4) & 1).astype(bool) | (_field(qa, 5) >= level)
        return cloud | (_field(qa, 7) >= level) | (_field(qa, 11) >= level)
    if kind == "landsat-c2":
        return ((qa.astype(np.uint32) >> np.array([1, 2, 3, 4])[:, None, None]) & 1).any(0)
    if kind == "s2-scl":
        return np.isin(qa, (3, 8, 9, 10))
    raise UsageError(f"unknown QA kind {kind!r}; choose one of {', '.join(QA_KINDS)}")


def guess_qa_kind(path: Path, meta: RasterMeta) -> str:
    """Product generation from the file name, the MTL file beside it and the dtype."""
    name = path.name.upper()
    if "SCL" in name or meta.dtype == "uint8":
        return "s2-scl"
    if "QA_PIXEL" in name:
        return "landsat-c2"
    for mtl in path.parent.glob("*MTL.txt"):
        text = mtl.read_text(errors="ignore")
        if "COLLECTION_NUMBER = 02" in text:
            return "landsat-c2"
        if "COLLECTION_NUMBER" in text:
            return "landsat-c1"
        return "landsat-pre"
    raise InputError(path, "cannot tell the QA product generation; pass --qa-kind")


def coarse_factor(meta: RasterMeta, image: RasterMeta) -> int:
    """``k`` when ``meta``'s pixels are exactly ``k x k`` image pixels (``k >= 2``) on the same
    CRS and upper-left corner and it covers the image; else 1 (then the grids must be equal).

    Sentinel-2's scene classification comes at 20 m only, beside 10 m bands.
    """
    k = round(meta.transform.a / image.transform.a) if image.transform.a else 0
    aligned = k >= 2 and meta.crs == image.crs and meta.transform.almost_equals(
        image.transform * Affine.scale(k), 1e-6)
    covers = meta.width * k >= image.width > (meta.width - 1) * k and \
        meta.height * k >= image.height > (meta.height - 1) * k
    return k if aligned and covers else 1


def _on_image_grid(path: Path, meta: RasterMeta, image: RasterMeta, what: str) -> np.ndarray:
    """Band 1 of ``path`` on the image grid: as is, or each coarse pixel repeated over the
    ``k x k`` image pixels it covers (flags and classes are copied, never interpolated)."""
    k = coarse_factor(meta, image)
    if k == 1:
        check_same_grid(path, meta, image, what, of="the image")
    values = np.asarray(read_window(path, None)[0])
    if k == 1:
        return values
    return np.repeat(np.repeat(values, k, axis=0), k, axis=1)[: image.height, : image.width]


def mask_from_file(path: Path, image: RasterMeta) -> np.ndarray:
    """A user's mask raster on the image grid (or an aligned coarser one): > 0 is cloud or
    shadow."""
    return _on_image_grid(path, read_raster_meta(path), image, "mask") > 0


def mask_from_qa(path: Path, image: RasterMeta, kind: str = "auto", confidence: str = "high"
                 ) -> np.ndarray:
    """Cloud/shadow mask decoded from a quality band on the image grid (or an aligned coarser
    one, e.g. Sentinel-2's 20 m SCL beside 10 m bands)."""
    meta = read_raster_meta(path)
    values = _on_image_grid(path, meta, image, "QA band")
    if kind == "auto":
        kind = guess_qa_kind(path, meta)
    return decode_qa(values, kind, confidence)


def detect_clouds(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Simple detector for bright, white clouds and the dark shadows near them.

    Cloud: the mean over bands is above ``median + 3 * 1.4826 * MAD`` of the valid pixels and
    the spectrum is flat (band std below 20 % of the band mean, "whiteness"). Shadow: the mean
    is below ``median - 3 * 1.4826 * MAD`` within 30 pixels of a cloud. Coarse by design;
    prefer a QA band or a mask.

    Args:
        image: ``(C, H, W)`` normalized values.
        valid: ``(H, W)`` bool, pixels with data.

    References:
        Zhu & Woodcock, "Object-based cloud and cloud shadow detection in Landsat imagery"
        (Fmask), RSE 2012 (whiteness and shadow-near-cloud ideas, much simplified here).
    """
    levels = detector_levels(image.mean(axis=0)[valid])
    cloud, dark = bright_and_dark(image, valid, levels)
    return with_shadows(cloud, dark)


def detector_levels(means: np.ndarray) -> tuple[float, float]:
    """The detector's cloud and shadow thresholds from the band means of valid pixels (all of
    them, or a regular sample of a scene too large to hold): ``median +- 3 * 1.4826 * MAD``."""
    med = float(np.median(means))
    mad = 1.4826 * float(np.median(np.abs(means - med))) + 1e-6
    return med + 3 * mad, med - 3 * mad


def bright_and_dark(image: np.ndarray, valid: np.ndarray, levels: tuple[float, float]
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Cloud pixels (bright and white) and shadow candidates (dark) of ``image`` ``(C, h, w)``,
    any window of the scene, against the scene's :func:`detector_levels`."""
    mean = image.mean(axis=0)
    white = image.std(axis=0) < 0.2 * np.abs(mean) + 1e-6
    cloud = (mean > levels[0]) & (white | (image.shape[0] < 3)) & valid
    return cloud, (mean < levels[1]) & valid


def with_shadows(cloud: np.ndarray, dark: np.ndarray) -> np.ndarray:
    """Clouds plus the dark pixels within 30 pixels of one (whole-scene masks)."""
    near = ndimage.binary_dilation(cloud, iterations=30) if cloud.any() else cloud
    return np.asarray(cloud | (dark & near))


def dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Grow a mask by ``pixels`` (a disk), covering the soft edges clouds leave."""
    if pixels <= 0:
        return mask
    yy, xx = np.mgrid[-pixels: pixels + 1, -pixels: pixels + 1]
    return np.asarray(ndimage.binary_dilation(mask, structure=xx**2 + yy**2 <= pixels**2))
