"""Enhanced (multi-frame) DICOM images, read as a stack of classic slices.

Modern scanners export a whole series as one Enhanced CT or MR instance (or a Legacy Converted
Enhanced one): one file, many frames, with each frame's position, orientation, pixel spacing and
rescale in its functional groups instead of in top-level tags. Here every frame becomes a
classic single-frame header (the file's top-level tags plus that frame's geometry and rescale),
so the series reader's sorting and geometry checks, and the derived-series writer, treat it like
any other series. A derived series written from it is a classic one (CT or MR Image Storage),
one file per slice, each referencing its source frame.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import (
    CTImageStorage,
    EnhancedCTImageStorage,
    EnhancedMRImageStorage,
    EnhancedPETImageStorage,
    LegacyConvertedEnhancedCTImageStorage,
    LegacyConvertedEnhancedMRImageStorage,
    LegacyConvertedEnhancedPETImageStorage,
    MRImageStorage,
    PositronEmissionTomographyImageStorage,
)

from suite.errors import InputError

CLASSIC_SOP_CLASS: dict[str, str] = {
    EnhancedCTImageStorage: CTImageStorage,
    LegacyConvertedEnhancedCTImageStorage: CTImageStorage,
    EnhancedMRImageStorage: MRImageStorage,
    LegacyConvertedEnhancedMRImageStorage: MRImageStorage,
    EnhancedPETImageStorage: PositronEmissionTomographyImageStorage,
    LegacyConvertedEnhancedPETImageStorage: PositronEmissionTomographyImageStorage,
}
"""The single-frame storage class a frame of each enhanced class is written back as."""

# Top-level attributes that describe the multi-frame file as a whole, not one of its frames.
_MULTIFRAME_ONLY = (
    "PerFrameFunctionalGroupsSequence",
    "SharedFunctionalGroupsSequence",
    "NumberOfFrames",
    "DimensionOrganizationSequence",
    "DimensionIndexSequence",
    "DimensionOrganizationType",
    "PixelData",
)
# (functional group sequence, attribute) pairs copied onto each frame's classic header.
_FRAME_ATTRIBUTES = (
    ("PlanePositionSequence", "ImagePositionPatient"),
    ("PlaneOrientationSequence", "ImageOrientationPatient"),
    ("PixelMeasuresSequence", "PixelSpacing"),
    ("PixelMeasuresSequence", "SliceThickness"),
    ("PixelValueTransformationSequence", "RescaleIntercept"),
    ("PixelValueTransformationSequence", "RescaleSlope"),
    ("PixelValueTransformationSequence", "RescaleType"),
    ("FrameVOILUTSequence", "WindowCenter"),
    ("FrameVOILUTSequence", "WindowWidth"),
)

Header = tuple[Path, Dataset]


def is_enhanced(ds: Dataset) -> bool:
    """Whether ``ds`` is a multi-frame image with per-frame functional groups."""
    return "PerFrameFunctionalGroupsSequence" in ds


def frame_headers(file: Path, ds: Dataset) -> list[Header]:
    """One classic header per frame of the enhanced image ``ds`` read from ``file``.

    Each header's path names its frame (``scan.dcm frame 3``) for error messages, and its
    ``ReferencedFrameNumber`` says which frame of the file it is (1-based, as DICOM counts).

    Raises:
        InputError: colour frames, a frame count that disagrees with the functional groups, or
            frames that share slice positions (several stacks, echoes or time points).
    """
    per_frame = ds.PerFrameFunctionalGroupsSequence
    count = int(ds.get("NumberOfFrames", len(per_frame)) or len(per_frame))
    if count != len(per_frame):
        raise InputError(file, f"NumberOfFrames {count} but {len(per_frame)} per-frame groups")
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise InputError(file, "colour frames are not slices of a volume")
    base = copy.deepcopy(ds)
    for keyword in _MULTIFRAME_ONLY:
        if keyword in base:
            delattr(base, keyword)
    groups = ds.get("SharedFunctionalGroupsSequence")
    shared = groups[0] if groups else None
    headers = []
    for number, group in enumerate(per_frame, start=1):
        frame = copy.deepcopy(base)
        for macro, keyword in _FRAME_ATTRIBUTES:
            value = _group_value(group, macro, keyword, shared)
            if value is not None:
                setattr(frame, keyword, value)
        frame.ReferencedFrameNumber = number
        headers.append((file.with_name(f"{file.name} frame {number}"), frame))
    _check_one_stack(file, headers)
    return headers


def _group_value(group: Dataset, macro: str, keyword: str, shared: Dataset | None) -> object:
    """``keyword`` from the frame's own ``macro``, else from the shared one, else ``None``."""
    for where in (group, shared):
        if where is not None and where.get(macro):
            item = where[macro][0]
            if keyword in item:
                return item[keyword].value
    return None


def _check_one_stack(file: Path, headers: list[Header]) -> None:
    positions = {
        tuple(np.round(np.asarray(ds.ImagePositionPatient, dtype=float), 3))
        for _, ds in headers
        if "ImagePositionPatient" in ds
    }
    if positions and len(positions) < len(headers):
        raise InputError(
            file,
            f"{len(headers)} frames at {len(positions)} slice positions: several stacks, echoes "
            "or time points in one file; only one 3D stack per file can be read",
        )


def frame_values(file: Path, headers: list[Header]) -> np.ndarray:
    """Rescaled float32 values ``(I, J, K)`` of the frames of ``file``, in the order of ``headers``.

    Raises:
        InputError: the pixel data cannot be decoded.
    """
    try:
        pixels = pydicom.dcmread(file, force=True).pixel_array
    except Exception as exc:
        problem = f"cannot decode pixel data, file truncated or corrupt ({exc})"
        raise InputError(file, problem) from exc
    pixels = pixels.reshape(-1, *pixels.shape[-2:])  # one frame decodes without its frame axis
    out = np.empty((pixels.shape[2], pixels.shape[1], len(headers)), dtype=np.float32)
    for k, (_, ds) in enumerate(headers):
        slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
        intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
        out[:, :, k] = (pixels[int(ds.ReferencedFrameNumber) - 1] * slope + intercept).T
    return out
