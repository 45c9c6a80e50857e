"""Helpers that make bad (and re-encoded) DICOM series by editing copies of real files.

Nothing here is committed data: every series is copied from ``../shared/data`` (or from the
test files inside the installed pydicom wheel, MIT) into pytest's ``tmp_path`` and edited there.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CT_DICOM = DATA / "ct" / "totalsegmentator_ct_dicom"  # JPEG 2000 lossless, 2 mm steps
MR_DICOM = DATA / "mri" / "seg3d_siemens_mr_dicom"  # explicit VR little endian, 2.5 mm steps


def require_data() -> Path:
    """Skip the calling test when ``../shared/data`` is not beside the repository."""
    if not DATA.is_dir():
        pytest.skip(f"sample data not found at {DATA}")
    return DATA


def tree_hash(path: Path) -> str:
    """SHA-256 over every file name and content under ``path`` (or of one file)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        digest.update(file.name.encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def sorted_slices(folder: Path) -> list[Path]:
    """Files of one series ordered by position along the slice normal."""

    def key(file: Path) -> float:
        ds = pydicom.dcmread(file, stop_before_pixels=True)
        iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
        return float(np.asarray(ds.ImagePositionPatient, dtype=float) @ np.cross(iop[:3], iop[3:]))

    return sorted((p for p in folder.iterdir() if p.is_file()), key=key)


def copy_series(src: Path, dst: Path, n: int = 6) -> list[Path]:
    """Copy the first ``n`` slices (by position) of ``src`` into ``dst``; paths in order."""
    dst.mkdir(parents=True, exist_ok=True)
    out = []
    for i, file in enumerate(sorted_slices(src)[:n]):
        # Names in reverse order, so that sorting by name would give the wrong slice order.
        target = dst / f"slice_{n - i:03d}.dcm"
        shutil.copyfile(file, target)
        out.append(target)
    return out


def edit(file: Path, change: Callable[[pydicom.Dataset], None]) -> None:
    """Read ``file`` with its pixel data, apply ``change`` and write it back in place."""
    ds = pydicom.dcmread(file)
    change(ds)
    ds.save_as(file)


def shift_position(file: Path, offset: tuple[float, float, float]) -> None:
    """Move a slice by ``offset`` millimetres (LPS)."""

    def change(ds: pydicom.Dataset) -> None:
        ds.ImagePositionPatient = [
            float(a) + b for a, b in zip(ds.ImagePositionPatient, offset, strict=True)
        ]

    edit(file, change)


def make_missing_slice(dst: Path) -> Path:
    files = copy_series(CT_DICOM, dst, 6)
    files[3].unlink()
    return dst


def make_duplicate_slice(dst: Path) -> Path:
    files = copy_series(CT_DICOM, dst, 5)
    twin = dst / "twin.dcm"
    shutil.copyfile(files[2], twin)
    edit(twin, lambda ds: setattr(ds, "SOPInstanceUID", generate_uid()))
    return dst


def make_uneven_spacing(dst: Path) -> Path:
    files = copy_series(CT_DICOM, dst, 6)
    for file in files[3:]:
        shift_position(file, (0.0, 0.0, 0.3))  # one step of 2.3 mm among 2 mm steps
    return dst


def make_tilted(dst: Path) -> Path:
    """Positions sheared along y by tan(15 degrees) per mm of z: a tilted gantry."""
    files = copy_series(CT_DICOM, dst, 5)
    for i, file in enumerate(files):
        shift_position(file, (0.0, 2.0 * i * np.tan(np.radians(15.0)), 0.0))
    return dst


def make_tilt_tag(dst: Path) -> Path:
    files = copy_series(CT_DICOM, dst, 4)
    for file in files:
        edit(file, lambda ds: setattr(ds, "GantryDetectorTilt", 12.5))
    return dst


def make_mixed_sizes(dst: Path) -> Path:
    files = copy_series(CT_DICOM, dst, 4)
    edit(files[1], lambda ds: setattr(ds, "Rows", 256))
    return dst


def make_mixed_orientations(dst: Path) -> Path:
    files = copy_series(CT_DICOM, dst, 4)
    edit(files[2], lambda ds: setattr(ds, "ImageOrientationPatient", [1, 0, 0, 0, 0, -1]))
    return dst


def make_two_series(dst: Path) -> tuple[Path, str]:
    """CT slices plus MR slices in one folder; returns the folder and the MR series UID."""
    copy_series(CT_DICOM, dst, 3)
    mr = copy_series(MR_DICOM, dst / "mr_tmp", 3)
    uid = generate_uid()  # the sample MR files carry no SeriesInstanceUID of their own
    for file in mr:
        edit(file, lambda ds: setattr(ds, "SeriesInstanceUID", uid))
        shutil.move(file, dst / f"mr_{file.name}")
    (dst / "mr_tmp").rmdir()
    return dst, uid


def make_truncated(dst: Path) -> Path:
    """A series whose middle file lost the second half of its pixel data; returns that file."""
    files = copy_series(CT_DICOM, dst, 4)
    data = files[2].read_bytes()
    files[2].write_bytes(data[: len(data) * 6 // 10])
    return files[2]


def series_from_single(src: Path, dst: Path, n: int = 3, step: float = 1.0) -> Path:
    """Stack copies of one slice file ``n`` times along its normal, keeping its encoding."""
    dst.mkdir(parents=True, exist_ok=True)
    series_uid = generate_uid()
    for i in range(n):
        ds = pydicom.dcmread(src)
        iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
        normal = np.cross(iop[:3], iop[3:])
        ds.ImagePositionPatient = list(
            np.asarray(ds.ImagePositionPatient, float) + i * step * normal
        )
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(dst / f"{i:03d}.dcm")
    return dst
