"""DICOM series: read a folder into a RAS+ ``Volume`` and write a derived series back.

Slices are ordered by the projection of ImagePositionPatient on the slice normal (never by file
name or InstanceNumber), and a series that cannot be stacked honestly (missing or duplicated
slices, uneven spacing, gantry tilt (positions off the slice normal), mixed orientations or
sizes) is refused with an
:class:`~suite.errors.InputError` that names the folder and the problem. Compressed transfer
syntaxes decode through pydicom's pixel handlers (pylibjpeg plugins for JPEG 2000 / JPEG-LS).
"""

from __future__ import annotations

import copy
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from suite.errors import InputError
from suite.io.atomic import atomic_path, check_output_path
from suite.io.dicom_frames import CLASSIC_SOP_CLASS, frame_headers, frame_values, is_enhanced
from suite.io.volume import Volume, VolumeMeta, is_dicom_file

GAP_FACTOR = 1.5  # a step this many times the median step means slices are missing
SPACING_RTOL = 0.01  # relative tolerance on slice steps before spacing counts as uneven
ORIENTATION_ATOL = 1e-4  # direction cosines printed with ~6 digits differ by this much
TILT_RTOL = 1e-3  # in-plane drift of the positions per mm travelled (about 0.06 degrees)
DUPLICATE_MM = 1e-3  # positions closer than this along the normal are the same slice
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

Header = tuple[Path, Dataset]


def read_dicom_series(
    path: str | Path,
    series_uid: str | None = None,
    recursive: bool = False,
    volume: int | None = None,
) -> Volume:
    """Read one DICOM series from a folder (or one ``.dcm`` file) into a volume.

    Args:
        path: folder of DICOM files (non-DICOM files are skipped) or a single DICOM file.
        series_uid: SeriesInstanceUID to read when the folder holds several series (or its
            SeriesNumber, as viewers show it, when that names exactly one). Localizer images
            (ImageType LOCALIZER) beside other images are skipped, with a note on stderr.
        recursive: also read sub-folders.
        volume: which volume (0-based, in the order of the splitting attribute) of a series
            that holds several at the same slice positions: echoes, repeated acquisitions,
            time points or diffusion weightings.

    Returns:
        Volume with float32 data ``(I, J, K)`` (``i`` along columns, ``j`` along rows, ``k``
        along the sorted slice normal) in rescaled units (HU for CT), and a RAS+ mm affine.

    Raises:
        InputError: no DICOM files, several series and none chosen, an unreadable file, or a
            series that cannot be stacked (the message says which problem).
    """
    root = Path(path)
    if series_uid is not None:  # a script may pass the series number as an int
        series_uid = str(series_uid)
    headers = _select_series(root, _read_headers(root, recursive), series_uid)
    multiframe = _multiframe_file(root, headers)
    if multiframe is not None:
        headers = frame_headers(*headers[0])
    headers = _one_volume(root, headers, volume)
    headers = _sort_and_check(root, headers)
    affine = _affine(headers)
    if multiframe is not None:
        data = frame_values(multiframe, headers)
    else:
        data = _stacked_slices([f for f, _ in headers])
    first = headers[0][1]
    meta = VolumeMeta(
        affine=affine,
        spacing=tuple(float(s) for s in np.linalg.norm(affine[:3, :3], axis=0)),
        source_format="dicom",
        source_path=root,
        datasets=[ds for _, ds in headers],
        modality=str(first.Modality) if "Modality" in first else None,
        series_uid=str(first.SeriesInstanceUID) if "SeriesInstanceUID" in first else None,
    )
    return Volume(data=data, meta=meta)


# --------------------------------------------------------------------------- reading headers


def _candidate_files(root: Path, recursive: bool) -> list[Path]:
    if root.name.upper() == "DICOMDIR":
        raise InputError(root, "is a DICOMDIR index of a CD/PACS export; give the folder it is "
                         "in, with --recursive (and --series if it lists several series)")
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise InputError(root, "does not exist")
    found = root.rglob("*") if recursive else root.iterdir()
    return sorted(p for p in found if p.is_file() and not p.name.startswith("."))


def _looks_like_dicom(path: Path) -> bool:
    """A Part 10 preamble, or a bare dataset that pydicom can parse into an image instance."""
    if is_dicom_file(path):
        return True
    # Files written without a preamble still exist in the wild; parsing random bytes with
    # force=True may warn or raise, and either way the file is simply not ours to read.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
            return "SOPInstanceUID" in ds and "Rows" in ds
        except Exception:
            return False


def _read_headers(root: Path, recursive: bool) -> list[Header]:
    headers: list[Header] = []
    for file in _candidate_files(root, recursive):
        if not _looks_like_dicom(file):
            continue
        try:
            ds = pydicom.dcmread(file, stop_before_pixels=True, force=True)
        except Exception as exc:
            raise InputError(file, f"unreadable DICOM file ({exc})") from exc
        if "PixelData" not in ds and "Rows" not in ds:
            continue  # DICOMDIR, structured reports and other non-image objects
        headers.append((file, ds))
    if not headers:
        hint = ""
        if not recursive and root.is_dir() and _dicom_below(root):
            hint = " directly in this folder, but its sub-folders hold some: give the series " \
                   "folder, or read them all (--recursive)"
        raise InputError(root, "no DICOM files" + hint)
    return headers


def _dicom_below(root: Path, limit: int = 2000) -> bool:
    """Whether a sub-folder of ``root`` holds a DICOM file (within the first ``limit`` files)."""
    files = (p for p in root.rglob("*") if p.is_file() and p.parent != root)
    return any(_looks_like_dicom(p) for _, p in zip(range(limit), files, strict=False))


def list_series(path: str | Path, recursive: bool = False) -> list[dict[str, Any]]:
    """What a DICOM folder holds, one entry per series (localizers beside images skipped):
    number, UID, description, modality, image count, and the volumes of a series that repeats
    its slice positions (the values of the attribute that numbers them for ``volume``)."""
    root = Path(path)
    headers = _without_localizers(root, _read_headers(root, recursive), say=False)
    return [_series_entry(uid, items) for uid, items in _series_groups(headers)]


def _series_entry(uid: str, items: list[Header]) -> dict[str, Any]:
    first = items[0][1]
    name, volumes = _volume_groups(items)
    return {
        "series_number": _series_number(first),
        "series_uid": uid or None,
        "series_description": str(first.get("SeriesDescription", "")),
        "modality": str(first.get("Modality", "")) or None,
        "images": len(items),
        "volumes": {name: [value for value, _ in volumes]} if name else 1,
    }


def _series_groups(headers: list[Header]) -> list[tuple[str, list[Header]]]:
    groups: dict[str, list[Header]] = {}
    for item in headers:
        groups.setdefault(str(item[1].get("SeriesInstanceUID", "")), []).append(item)
    return list(groups.items())


def _select_series(root: Path, headers: list[Header], series_uid: str | None) -> list[Header]:
    groups = dict(_series_groups(_without_localizers(root, headers)))
    if series_uid is not None:
        chosen = groups.get(series_uid) or _by_series_number(groups, series_uid)
        if chosen is None:
            problem = f"no series with SeriesInstanceUID or number {series_uid}; " \
                      f"{_listing(groups)}"
            raise InputError(root, problem)
        return chosen
    if len(groups) > 1:
        problem = f"{len(groups)} series found, choose one with --series UID or number " \
                  f"(series_uid= in Python): {_listing(groups)}"
        raise InputError(root, problem)
    return next(iter(groups.values()))


def _without_localizers(root: Path, headers: list[Header], say: bool = True) -> list[Header]:
    """Drop scout images (ImageType LOCALIZER) when the folder holds other images too.

    CD exports and PACS downloads put the topogram beside the axial slices; it is never part
    of a volume, and other converters (e.g. dcm2niix) skip it as well.
    """
    kept = [h for h in headers if "LOCALIZER" not in _image_type(h[1])]
    if kept and len(kept) < len(headers) and say:
        print(f"note: {root}: skipped {len(headers) - len(kept)} localizer image(s)",
              file=sys.stderr)
    return kept or headers


def _image_type(ds: Dataset) -> list[str]:
    value = ds.get("ImageType", [])
    return [str(v).upper() for v in (value if isinstance(value, MultiValue | list) else [value])]


def _by_series_number(groups: dict[str, list[Header]], number: str) -> list[Header] | None:
    """The one series whose SeriesNumber is ``number``, as PACS viewers show it."""
    found = [items for items in groups.values() if _series_number(items[0][1]) == number.strip()]
    return found[0] if len(found) == 1 else None


def _series_number(ds: Dataset) -> str | None:
    value = ds.get("SeriesNumber", None)
    return None if value is None or str(value).strip() == "" else str(value).strip()


def _listing(groups: dict[str, list[Header]]) -> str:
    parts = []
    for uid, items in groups.items():
        entry = _series_entry(uid, items)
        label = f"number {entry['series_number']}, " if entry["series_number"] else ""
        desc = entry["series_description"] or "no description"
        parts.append(f"{label}UID {uid or '(none)'} '{desc}' ({len(items)} slices)")
    return "; ".join(parts)


def _multiframe_file(root: Path, headers: list[Header]) -> Path | None:
    """The series' one enhanced multi-frame file, or ``None`` for a classic series.

    Raises:
        InputError: enhanced files mixed with others, or several of them, in one series.
    """
    enhanced = [file for file, ds in headers if is_enhanced(ds)]
    if not enhanced:
        return None
    if len(headers) > 1:
        raise InputError(
            root,
            f"{len(enhanced)} enhanced multi-frame file(s) among {len(headers)} files of one "
            f"series; give one file, e.g. {enhanced[0]}",
        )
    return enhanced[0]


# --------------------------------------------------------------------------- geometry checks


def _cosines(ds: Dataset, file: Path) -> np.ndarray:
    """(2, 3) row and column direction cosines (LPS)."""
    if "ImageOrientationPatient" not in ds or "ImagePositionPatient" not in ds:
        raise InputError(file, "no ImageOrientationPatient/ImagePositionPatient: geometry unknown")
    return np.asarray(ds.ImageOrientationPatient, dtype=np.float64).reshape(2, 3)


def _one_volume(root: Path, headers: list[Header], volume: int | None) -> list[Header]:
    """The slices of one volume, when the series repeats its slice positions (a multi-echo or
    dynamic MR series); a series that does not is returned as it is."""
    name, groups = _volume_groups(headers)
    if name is None:
        if volume:
            raise InputError(root, f"holds a single volume; there is no volume {volume}")
        return headers  # one volume, or duplicates the step check names
    values = ", ".join(value for value, _ in groups)
    what = f"{len(groups)} volumes at the same slice positions ({name} {values})"
    last = len(groups) - 1
    if volume is None:
        raise InputError(root, f"the series holds {what}; choose one with --volume 0..{last}")
    if not 0 <= volume <= last:
        raise InputError(root, f"--volume {volume} is out of range 0..{last} ({what})")
    return groups[volume][1]


def _volume_groups(headers: list[Header]) -> tuple[str | None, list[tuple[str, list[Header]]]]:
    """The attribute that splits a series with repeated positions into volumes, and the
    volumes in its order: the first of ``SPLITTING_ATTRIBUTES`` that gives volumes of distinct
    positions. ``(None, [])`` when positions do not repeat or nothing splits them."""
    if len({_position_key(ds) for _, ds in headers}) == len(headers):
        return None, []
    for name in SPLITTING_ATTRIBUTES:
        groups = _split_by(headers, name)
        if groups is not None:
            return name, groups
    return None, []


def _position_key(ds: Dataset) -> tuple[float, ...]:
    return tuple(round(float(v), 3) for v in ds.get("ImagePositionPatient", []))


def _split_by(headers: list[Header], name: str) -> list[tuple[str, list[Header]]] | None:
    """Headers grouped by ``name``, in its numeric order, if that gives several volumes with
    distinct positions of equal count; else ``None``."""
    if not all(name in ds for _, ds in headers):
        return None
    groups: dict[str, list[Header]] = {}
    for item in headers:
        groups.setdefault(str(item[1].get(name)), []).append(item)
    sizes = {len(g) for g in groups.values()}
    distinct = all(len({_position_key(ds) for _, ds in g}) == len(g) for g in groups.values())
    if len(groups) < 2 or len(sizes) > 1 or not distinct:
        return None
    return sorted(groups.items(), key=lambda item: _as_number(item[0]))


def _as_number(value: str) -> tuple[int, float | str]:
    try:
        return (0, float(value))
    except ValueError:
        return (1, value)


def _sort_and_check(root: Path, headers: list[Header]) -> list[Header]:
    """Sort slices along the normal and refuse any series that cannot be stacked honestly."""
    _check_uniform(root, headers)
    cos = _cosines(headers[0][1], headers[0][0])
    normal = np.cross(cos[0], cos[1])
    pos = np.array([np.asarray(ds.ImagePositionPatient, dtype=np.float64) for _, ds in headers])
    order = np.argsort(pos @ normal, kind="stable")
    headers = [headers[i] for i in order]
    pos = pos[order]
    if len(headers) > 1:
        _check_steps(root, headers, pos, normal)
    return headers


def _check_uniform(root: Path, headers: list[Header]) -> None:
    # GantryDetectorTilt alone is not refused: a tilted stack is caught by its positions
    # drifting off the slice normal (_check_steps); a tilt-corrected series keeps the tag
    sizes = {(int(ds.Rows), int(ds.Columns)) for _, ds in headers}
    if len(sizes) > 1:
        raise InputError(root, f"mixed image sizes (Rows, Columns) {sorted(sizes)} in one series")
    cos0 = _cosines(headers[0][1], headers[0][0])
    spacing0 = _pixel_spacing(headers[0][0], headers[0][1])
    for file, ds in headers:
        if not np.allclose(_pixel_spacing(file, ds), spacing0, rtol=0, atol=1e-4):
            raise InputError(root, f"mixed pixel spacing: {file.name} has "
                                   f"{list(_pixel_spacing(file, ds))} mm, {headers[0][0].name} "
                                   f"{list(spacing0)} mm")
        if not np.allclose(_cosines(ds, file), cos0, atol=ORIENTATION_ATOL):
            first = headers[0][0].name
            raise InputError(root, f"mixed orientations: {file.name} differs from {first}")
        if int(ds.get("NumberOfFrames", 1) or 1) > 1 or int(ds.get("SamplesPerPixel", 1)) != 1:
            raise InputError(
                file,
                "multi-frame (without per-frame geometry) or colour DICOM is not a slice of a "
                "volume series",
            )


# Attributes that tell the images of one position apart in a series that is really several
# volumes: echoes, repeated acquisitions, time points, diffusion weightings.
SPLITTING_ATTRIBUTES = ("EchoNumbers", "EchoTime", "AcquisitionNumber",
                        "TemporalPositionIdentifier", "TriggerTime", "DiffusionBValue")


def _why_duplicated(a: Dataset, b: Dataset) -> str:
    """A hint naming the attribute in which two images at one position differ, if any."""
    uid = _instance_uid(a)
    if uid and uid == _instance_uid(b):
        return (f" (the same instance twice, SOPInstanceUID {uid}: a copy of one file, as PACS "
                "exports sometimes hold; remove one)")
    for name in SPLITTING_ATTRIBUTES:
        if name in a and name in b and str(a.get(name)) != str(b.get(name)):
            return (f" (they differ in {name}, {a.get(name)} vs {b.get(name)}: the series holds "
                    "several volumes; split it by that attribute first, e.g. with dcm2niix)")
    return ""


def _instance_uid(ds: Dataset) -> str:
    """SOPInstanceUID, or the file meta's copy (anonymisers sometimes leave only that)."""
    meta = getattr(ds, "file_meta", None) or FileMetaDataset()
    return str(ds.get("SOPInstanceUID") or meta.get("MediaStorageSOPInstanceUID") or "")


def _check_steps(root: Path, headers: list[Header], pos: np.ndarray, normal: np.ndarray) -> None:
    steps = np.diff(pos @ normal)
    names = [f.name for f, _ in headers]
    dup = np.flatnonzero(steps < DUPLICATE_MM)
    if dup.size:
        i = int(dup[0])
        problem = f"duplicate slice positions: {names[i]} and {names[i + 1]}"
        raise InputError(root, problem + _why_duplicated(headers[i][1], headers[i + 1][1]))
    travel = pos[-1] - pos[0]
    drift = np.linalg.norm(travel - (travel @ normal) * normal)
    if drift > TILT_RTOL * np.linalg.norm(travel) + 1e-4:
        problem = f"gantry tilt: slice positions drift {drift:.3f} mm off the slice normal"
        raise InputError(root, problem)
    median = float(np.median(steps))
    gap = np.flatnonzero(steps > GAP_FACTOR * median)
    if gap.size:
        i = int(gap[0])
        raise InputError(
            root,
            f"missing slices: gap of {steps[i]:.3f} mm between {names[i]} and {names[i + 1]} "
            f"(median step {median:.3f} mm)",
        )
    worst = float(np.max(np.abs(steps - median)) / median)
    if worst > SPACING_RTOL:
        raise InputError(
            root, f"uneven slice spacing: steps {steps.min():.3f} to {steps.max():.3f} mm"
        )


def _pixel_spacing(file: Path, ds: Dataset) -> tuple[float, float]:
    """(row, column) spacing in mm; a slice without PixelSpacing has no known pixel size."""
    spacing = ds.get("PixelSpacing")
    if not spacing or len(spacing) != 2:
        hint = (" (ImagerPixelSpacing is measured at the detector, not in the patient)"
                if "ImagerPixelSpacing" in ds else "")
        raise InputError(file, f"no PixelSpacing, so the pixel size is unknown{hint}")
    return float(spacing[0]), float(spacing[1])


def _affine(headers: list[Header]) -> np.ndarray:
    """RAS+ affine: i along the row cosine, j along the column cosine, k along the slice step."""
    first = headers[0][1]
    cos = _cosines(first, headers[0][0])
    row_mm, col_mm = _pixel_spacing(headers[0][0], first)
    p0 = np.asarray(first.ImagePositionPatient, dtype=np.float64)
    if len(headers) > 1:
        last = np.asarray(headers[-1][1].ImagePositionPatient, dtype=np.float64)
        step = (last - p0) / (len(headers) - 1)
    else:
        step = np.cross(cos[0], cos[1]) * float(first.get("SliceThickness", 1.0) or 1.0)
    lps = np.eye(4)
    lps[:3, 0] = cos[0] * col_mm
    lps[:3, 1] = cos[1] * row_mm
    lps[:3, 2] = step
    lps[:3, 3] = p0
    return LPS_TO_RAS @ lps


def _stacked_slices(files: list[Path]) -> np.ndarray:
    """``(I, J, K)`` float32, each slice decoded straight into its place: a list of slices
    stacked at the end would hold the series twice at the peak."""
    first = _slice_values(files[0])
    data = np.empty((*first.shape, len(files)), dtype=np.float32)
    data[..., 0] = first
    for k, file in enumerate(files[1:], start=1):
        data[..., k] = _slice_values(file)  # sizes agree: _check_uniform compared Rows/Columns
    return data


def _slice_values(file: Path) -> np.ndarray:
    """Decode one slice into rescaled float32 values ``(I, J)`` = ``(Columns, Rows)``."""
    try:
        ds = pydicom.dcmread(file, force=True)
        values = apply_modality_lut(ds.pixel_array, ds)
    except Exception as exc:
        problem = f"cannot decode pixel data, file truncated or corrupt ({exc})"
        raise InputError(file, problem) from exc
    return np.asarray(values, dtype=np.float32).T


# --------------------------------------------------------------------------- writing


def write_dicom_series(
    path: str | Path, data: np.ndarray, meta: VolumeMeta, description: str, derivation: str
) -> Path:
    """Write ``data`` as a derived DICOM series, one file per slice (``IM00001.dcm``...).

    Patient and study tags, positions and orientation come from the source headers (on another
    grid than the source's, e.g. after super-resolution, each slice copies the nearest source
    header and takes its position, pixel spacing, size and thickness from ``meta.affine``); the
    series gets a new SeriesInstanceUID, new SOPInstanceUIDs, ImageType DERIVED\\SECONDARY, the
    description appended to SeriesDescription and a DerivationDescription. Values are stored
    uncompressed (Explicit VR Little Endian) as 16-bit integers with RescaleSlope/Intercept
    chosen so that they read back within half a unit (0.5 HU) whenever the value range spans
    at most 65535 units.

    Args:
        path: the output folder (replaced atomically).
        data: array ``(I, J, K)`` = ``(Columns, Rows, slices)`` in source units (HU for CT).
        meta: metadata of a volume read from DICOM, with the same grid as ``data``.
        description: suffix for SeriesDescription, e.g. ``"denoised"``.
        derivation: DerivationDescription, e.g. the model and weights used.

    Returns:
        The absolute output folder.

    Raises:
        InputError: the source is not DICOM, the data is not 3D or is rotated against the
            source, values are not finite, or the output path is unusable.
    """
    out = check_output_path(path, [meta.source_path])
    sources = _check_writable(out, data, meta)
    source_affine = _affine([(out, ds) for ds in sources])
    regridded = tuple(data.shape) != _grid(sources) or not np.allclose(
        meta.affine, source_affine, atol=1e-4
    )
    stored, slope, intercept, signed = _encode(out, np.asarray(data))
    series_uid, study_uid = generate_uid(), generate_uid()  # the study's only if it has none
    with atomic_path(out) as tmp:
        tmp.mkdir()
        for k in range(data.shape[2]):
            index = _nearest_source(meta.affine, source_affine, k, len(sources))
            ds = derived_instance(sources[index], series_uid, description, derivation, k + 1,
                                  study_uid)
            if regridded:
                _set_geometry(ds, meta.affine, k, data.shape)
            _set_pixels(ds, stored[:, :, k].T, slope, intercept, signed)
            ds.save_as(tmp / f"IM{k + 1:05d}.dcm", enforce_file_format=True)
    return out


def _grid(sources: Sequence[Dataset]) -> tuple[int, int, int]:
    return int(sources[0].Columns), int(sources[0].Rows), len(sources)


def _check_writable(out: Path, data: np.ndarray, meta: VolumeMeta) -> Sequence[Dataset]:
    """The source headers, if ``data`` can be written as a series derived from them.

    The data may lie on another grid than the source (super-resolution changes the slice count
    or the pixel size), as long as the orientation is the source's: every slice then takes the
    header of the nearest source slice with its geometry rewritten from ``meta.affine``.
    """
    if meta.source_format != "dicom" or not meta.datasets:
        raise InputError(
            out, "DICOM output needs a DICOM input (the source is NIfTI); write .nii.gz instead"
        )
    if data.ndim != 3:
        raise InputError(out, f"data shape {data.shape} is not a 3D volume")
    source_affine = _affine([(out, ds) for ds in meta.datasets])
    if not np.allclose(_directions(meta.affine), _directions(source_affine), atol=1e-4):
        raise InputError(out, "the volume is rotated against the source series; "
                              "write .nii.gz instead")
    return meta.datasets


def _directions(affine: np.ndarray) -> np.ndarray:
    return affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)


def _nearest_source(affine: np.ndarray, source_affine: np.ndarray, k: int, count: int) -> int:
    """Index of the source slice nearest to output slice ``k`` (its header template)."""
    centre = affine @ np.array([0.0, 0.0, float(k), 1.0])
    index = (np.linalg.inv(source_affine) @ centre)[2]
    return int(np.clip(np.round(index), 0, count - 1))


def _set_geometry(ds: Dataset, affine: np.ndarray, k: int, shape: tuple[int, ...]) -> None:
    """Position, spacing and size tags of output slice ``k`` on the grid of ``affine`` (RAS)."""
    lps = LPS_TO_RAS @ affine  # the flip is its own inverse
    col_mm, row_mm, step_mm = (float(v) for v in np.linalg.norm(lps[:3, :3], axis=0))
    position = lps[:3, 3] + k * lps[:3, 2]
    normal = lps[:3, 2] / step_mm
    ds.Columns, ds.Rows = int(shape[0]), int(shape[1])
    source = [float(v) for v in ds.get("PixelSpacing", [0, 0])]
    if not np.allclose([row_mm, col_mm], source, rtol=1e-6):  # the source's own string when
        ds.PixelSpacing = [f"{row_mm:.10g}", f"{col_mm:.10g}"]  # kept: no float noise added
    if "ImagesInAcquisition" in ds:  # the source's count, not this grid's
        del ds.ImagesInAcquisition
    ds.ImagePositionPatient = [f"{v:.10g}" for v in position]
    ds.ImageOrientationPatient = [f"{v:.10g}" for v in
                                  (*(lps[:3, 0] / col_mm), *(lps[:3, 1] / row_mm))]
    ds.SliceThickness = f"{step_mm:.8g}"  # 8 digits: 0.625, not 0.6250000012
    ds.SpacingBetweenSlices = f"{step_mm:.8g}"
    ds.SliceLocation = f"{float(position @ normal):.10g}"


def _encode(out: Path, data: np.ndarray) -> tuple[np.ndarray, float, float, bool]:
    """Choose 16-bit storage ``(stored, slope, intercept, signed)``; value = stored*slope+intercept.

    Integer-valued data that fit int16 (or uint16) are stored exactly with slope 1; anything
    else is mapped linearly onto the full uint16 range, so the error is at most slope/2.
    """
    bad = int(np.count_nonzero(~np.isfinite(data)))
    if bad:
        raise InputError(out, f"{bad} voxels are NaN or Inf; cannot store them in DICOM")
    lo, hi = float(data.min()), float(data.max())
    if np.array_equal(data, np.round(data)):
        if lo >= -32768 and hi <= 32767:
            return data.astype(np.int16), 1.0, 0.0, True
        if lo >= 0 and hi <= 65535:
            return data.astype(np.uint16), 1.0, 0.0, False
    intercept = float(np.floor(lo))
    # DS strings hold 16 characters: round the slope *up* to 8 significant digits so that the
    # written value is exactly the one used here and the range still fits in 65535 steps.
    slope = float(f"{max(hi - intercept, 1e-6) / 65535 * (1 + 1e-7):.8g}")
    stored = np.clip(np.round((data.astype(np.float64) - intercept) / slope), 0, 65535)
    return stored.astype(np.uint16), slope, intercept, False


def derived_instance(
    src: Dataset, series_uid: str, description: str, derivation: str, number: int,
    study_uid: str | None = None,
) -> Dataset:
    """Copy of a source header turned into one instance of a derived series (new instance and
    series UIDs, ImageType DERIVED, a derivation description, a reference to the source); the
    caller sets the pixel data.

    ``study_uid`` stands in for a StudyInstanceUID that the source lacks or left empty (some
    anonymisers do): it is a required attribute, and every instance of the series needs the
    same one (one per series when not given).
    """
    ds = copy.deepcopy(src)
    if ds.original_encoding[1] is False:  # pydicom will not write a big-endian header as
        ds.set_original_encoding(False, True, ds.original_character_set)  # little endian
    if not str(src.get("StudyInstanceUID") or "").strip():
        ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SOPClassUID = _sop_class(src)
    ds.SeriesInstanceUID = series_uid
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceNumber = number
    ds.ImageType = ["DERIVED", "SECONDARY", *list(src.get("ImageType", []))[2:]]
    ds.SeriesDescription = f"{src.get('SeriesDescription', '')} {description}".strip()[:64]
    ds.DerivationDescription = derivation[:1024]
    if "SeriesNumber" in src and src.SeriesNumber is not None:
        ds.SeriesNumber = int(src.SeriesNumber) + 1000  # viewers list series by number
    ref = Dataset()
    ref.ReferencedSOPClassUID = _source_sop_class(src)
    ref.ReferencedSOPInstanceUID = _instance_uid(src)
    if "ReferencedFrameNumber" in ds:  # a frame of an enhanced source: the reference says which
        ref.ReferencedFrameNumber = ds.ReferencedFrameNumber
        del ds.ReferencedFrameNumber
    ds.SourceImageSequence = DicomSequence([ref])
    meta = getattr(src, "file_meta", None) or FileMetaDataset()
    if str(meta.get("TransferSyntaxUID", "")) in LOSSY_SYNTAXES:
        # once lossy, always lossy: written uncompressed, the pixels keep what JPEG took away
        ds.LossyImageCompression = "01"
    ds.file_meta = _file_meta(ds)
    return ds


# Transfer syntaxes that are lossy by name. JPEG 2000 (.91) and HTJ2K (.203) may be either; for
# them the source's own LossyImageCompression, copied with its header, says which.
LOSSY_SYNTAXES = (
    "1.2.840.10008.1.2.4.50",  # JPEG baseline
    "1.2.840.10008.1.2.4.51",  # JPEG extended
    "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
)


def _sop_class(src: Dataset) -> str:
    """SOPClassUID of a derived slice: the source's, or its single-frame class if enhanced."""
    found = _source_sop_class(src)
    if found:
        return CLASSIC_SOP_CLASS.get(found, found)
    return {"CT": CTImageStorage, "MR": MRImageStorage}.get(
        str(src.get("Modality", "")), SecondaryCaptureImageStorage
    )


def _source_sop_class(src: Dataset) -> str:
    """SOPClassUID of the source; anonymisers sometimes leave it only in the file meta."""
    meta = getattr(src, "file_meta", None) or FileMetaDataset()
    return str(src.get("SOPClassUID") or meta.get("MediaStorageSOPClassUID") or "")


def _file_meta(ds: Dataset) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


def _set_pixels(
    ds: Dataset, rows_cols: np.ndarray, slope: float, intercept: float, signed: bool
) -> None:
    """Store a ``(Rows, Columns)`` 16-bit slice with consistent pixel-module tags.

    Every tag that describes the old stored values is rewritten for the new ones or dropped:
    the padding value is re-encoded, a linear real-world value mapping (and Philips' private
    scale slope) re-expressed, a modality LUT dropped (the new rescale replaces it); a
    MONOCHROME1 source stays MONOCHROME1, so that viewers show it as they showed the source.
    """
    _restate_for_new_storage(ds, slope, intercept, signed)
    for tag in (
        "SmallestImagePixelValue",
        "LargestImagePixelValue",
        "PixelPaddingRangeLimit",
        "PlanarConfiguration",
        "NumberOfFrames",
        "ModalityLUTSequence",
    ):
        if tag in ds:
            del ds[tag]  # their meaning and VR (US/SS) depend on the old storage
    ds.SamplesPerPixel = 1
    if ds.get("PhotometricInterpretation") != "MONOCHROME1":
        ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if signed else 0
    if slope != 1.0 or intercept != 0.0 or "RescaleSlope" in ds or "RescaleIntercept" in ds:
        ds.RescaleSlope = f"{slope:.8g}"
        ds.RescaleIntercept = f"{intercept:.8g}"
    dtype = "<i2" if signed else "<u2"
    ds.PixelData = np.ascontiguousarray(rows_cols, dtype=dtype).tobytes()
    ds["PixelData"].VR = "OW"


PHILIPS_SCALE_SLOPE = (0x2005, 0x100E)  # MR Scale Slope (FL), "Philips MR Imaging DD 001"


def _restate_for_new_storage(ds: Dataset, slope: float, intercept: float, signed: bool) -> None:
    """Rewrite the tags that read the old stored values (``value = stored * old slope + old
    intercept``) so that they mean the same for the new ones."""
    lut = "ModalityLUTSequence" in ds  # stored -> value not linear: nothing to re-express
    old_slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    old_intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    pad = ds.get("PixelPaddingValue")
    if "PixelPaddingValue" in ds:
        del ds.PixelPaddingValue
    if pad is not None and not lut:  # the padding's value, in the new storage
        new = round((int(pad) * old_slope + old_intercept - intercept) / slope)
        low, high = (-32768, 32767) if signed else (0, 65535)
        if low <= new <= high:
            ds.add_new(0x00280120, "SS" if signed else "US", new)
    if "RealWorldValueMappingSequence" in ds:
        _restate_real_world(ds, old_slope, old_intercept, slope, intercept, signed, lut)
    if PHILIPS_SCALE_SLOPE in ds and not lut:
        # Philips' floating-point value is (stored * RS + RI) / (RS * SS): keep it with the new RS
        ds[PHILIPS_SCALE_SLOPE].value = float(ds[PHILIPS_SCALE_SLOPE].value) * old_slope / slope


def _restate_real_world(ds: Dataset, old_slope: float, old_intercept: float, slope: float,
                        intercept: float, signed: bool, lut: bool) -> None:
    """Linear real-world value mappings re-expressed on the new stored values; a mapping by
    LUT, or any behind a modality LUT, cannot be, and is dropped."""
    kept = []
    for item in ds.RealWorldValueMappingSequence:
        if lut or "RealWorldValueLUTData" in item or "RealWorldValueSlope" not in item:
            continue
        m, b = float(item.RealWorldValueSlope), float(item.get("RealWorldValueIntercept", 0.0))
        item.RealWorldValueSlope = m * slope / old_slope
        item.RealWorldValueIntercept = b + m * (intercept - old_intercept) / old_slope
        low, high = (-32768, 32767) if signed else (0, 65535)
        for name, value in (("RealWorldValueFirstValueMapped", low),
                            ("RealWorldValueLastValueMapped", high)):
            if name in item:
                del item[name]
            item.add_new(Tag(name), "SS" if signed else "US", value)
        kept.append(item)
    if kept:
        ds.RealWorldValueMappingSequence = DicomSequence(kept)
    else:
        del ds.RealWorldValueMappingSequence
