"""Reading a fundus photograph: RGB in ``[0, 1]``, its FOV, and writing results back."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from domains.fundus.fov import estimate_fov, read_fov, read_mask
from suite.errors import InputError
from suite.io.photo import PHOTO_FORMATS, Photo, read_photo, write_photo

FORMATS = PHOTO_FORMATS


@dataclass
class FundusPhoto:
    """A photograph as the domain uses it.

    Attributes:
        rgb: ``(H, W, 3)`` float32 in ``[0, 1]`` (values / (2^bits - 1)).
        fov: ``(H, W)`` bool field of view.
        photo: the file as read (dtype, metadata; alpha is written back unchanged).
    """

    rgb: np.ndarray
    fov: np.ndarray
    photo: Photo


def read_fundus(path: Path, fov_path: Path | None) -> FundusPhoto:
    """Read a colour fundus photograph and its FOV (from ``fov_path`` or estimated).

    Raises:
        InputError: corrupt file, not colour (grayscale needs RGB), or no FOV found.
    """
    photo = read_photo(path)
    channels = photo.data.shape[2]
    if channels < 3:
        raise InputError(path, f"{photo.meta.mode} image has no colour; fundus restoration "
                         "needs an RGB photograph (3 channels, or 4 with alpha)")
    rgb = photo.data[..., :3].astype(np.float32) / photo.meta.full_scale  # alpha kept aside
    shape = (rgb.shape[0], rgb.shape[1])
    fov = (read_fov(fov_path, shape, photo.meta.orientation) if fov_path is not None
           else estimate_fov(rgb, path))
    return FundusPhoto(rgb, fov, photo)


def read_label_mask(path: Path, shape: tuple[int, ...], orientation: int | None = None
                    ) -> np.ndarray:
    """A vessel label mask (:func:`domains.fundus.fov.read_mask`) of the photograph's
    ``shape``, drawn on it as shown (its EXIF ``orientation``).

    Raises:
        InputError: unreadable, or not the photograph's size.
    """
    return read_mask(path, shape, "vessel label mask", orientation)


def check_output_format(output: Path, src: FundusPhoto, path: Path) -> None:
    """Refuse, before any work, a DICOM output (``.dcm``) of a photo that is not DICOM, and a
    JPEG output of a photo with an alpha channel.

    Raises:
        InputError: names the input ``path``, which lacks the headers or has the alpha.
    """
    fmt = FORMATS.get(output.suffix.lower())
    if fmt == "DICOM" and src.photo.meta.dataset is None:
        raise InputError(path, "DICOM output needs a DICOM input (its patient and study "
                               "headers); give an output ending in .png, .jpg or .tif")
    if fmt == "JPEG" and src.photo.data.shape[2] == 4:
        raise InputError(path, "has an alpha channel, which JPEG cannot store; give an output "
                               "ending in .png or .tif")


def write_like(output: Path, rgb: np.ndarray, src: FundusPhoto, description: str,
               derivation: str) -> Path:
    """Write ``rgb`` ``[0, 1]`` with the source's bit depth, alpha, ICC/EXIF and pixel density.

    The format follows the output suffix (PNG, JPEG, TIFF, DICOM ``.dcm``); 16 bits are kept
    where the format can store them (TIFF, DICOM), else reduced to 8 bits. A DICOM output is a
    derived instance of a DICOM source (``description`` and ``derivation`` label it).
    """
    meta = src.photo.meta
    fmt = FORMATS.get(output.suffix.lower(), meta.format)
    depth = meta.bit_depth if fmt in ("TIFF", "DICOM") else 8
    if depth < meta.bit_depth:  # documented, but a user should not find it out later
        print(f"note: the {meta.bit_depth}-bit photograph is written with 8 bits as {fmt}; "
              f"name the output .tif to keep {meta.bit_depth} bits", file=sys.stderr)
    # 12 bits stored stay 12 in a 16-bit DICOM or TIFF (a TIFF has no tag to say so)
    top = meta.full_scale if depth == meta.bit_depth else float(2**depth - 1)
    data = _quantize(rgb, depth, top)
    if src.photo.data.shape[2] == 4:
        alpha = src.photo.data[..., 3:]
        alpha = alpha if depth == meta.bit_depth else (alpha >> 8).astype(np.uint8)
        data = np.concatenate([data, alpha], axis=2)
    # Everything else (ICC profile, EXIF, pixel density, DICOM header) travels unchanged.
    out_meta = dataclasses.replace(meta, format=fmt, bit_depth=depth, path=None)
    return write_photo(output, data, out_meta, description, derivation)


def _quantize(rgb: np.ndarray, depth: int, top: float) -> np.ndarray:
    dtype = np.uint16 if depth == 16 else np.uint8
    return (np.clip(rgb, 0, 1) * top + 0.5).astype(dtype)
