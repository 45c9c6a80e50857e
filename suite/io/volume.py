"""Medical volumes: a float32 array in voxel order ``(I, J, K)`` with its geometry beside it.

``read_volume`` and ``write_volume`` pick the DICOM or NIfTI reader/writer from the path, so a
script never has to care which format a volume came from. See ``docs/CONVENTIONS.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from suite.errors import InputError

if TYPE_CHECKING:
    import nibabel as nib
    from pydicom.dataset import Dataset

NIFTI_SUFFIXES = (".nii", ".nii.gz")


@dataclass
class VolumeMeta:
    """Geometry and provenance of a volume, enough to write it back in its source format.

    Attributes:
        affine: (4, 4) float64 map from voxel ``(i, j, k, 1)`` to RAS+ world millimetres.
        spacing: voxel size along ``i``, ``j``, ``k`` in millimetres (column norms of ``affine``).
        source_format: ``"dicom"`` or ``"nifti"``.
        source_path: the file or folder the volume was read from.
        nifti_header: the source NIfTI header (``None`` for DICOM sources).
        datasets: the source DICOM headers, one per slice, sorted along the slice normal
            (pixel data dropped), or ``None`` for NIfTI sources.
        modality: DICOM Modality (``"CT"``, ``"MR"``...) or ``None`` when unknown.
        series_uid: DICOM SeriesInstanceUID of the source, or ``None``.
    """

    affine: np.ndarray
    spacing: tuple[float, ...]
    source_format: Literal["dicom", "nifti"]
    source_path: Path
    nifti_header: nib.Nifti1Header | None = None
    datasets: list[Dataset] | None = field(default=None, repr=False)
    modality: str | None = None
    series_uid: str | None = None


@dataclass
class Volume:
    """A volume and its metadata.

    Attributes:
        data: float32 array ``(I, J, K)`` (``(I, J, K, T)`` only when read with ``allow_4d``);
            CT in Hounsfield units, other modalities in the scanner's rescaled units.
        meta: geometry and source headers.
    """

    data: np.ndarray
    meta: VolumeMeta


NIFTI_PAIR_SUFFIXES = (".hdr", ".img")
"""Input-only: a NIfTI-1 pair (older SPM pipelines); outputs are single files."""


def is_nifti_path(path: str | Path) -> bool:
    """Whether ``path`` names a NIfTI file by its suffix (``.nii`` or ``.nii.gz``)."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


FILE_SUFFIXES = frozenset(
    ".png .jpg .jpeg .tif .tiff .bmp .gif .dcm .gz .img .hdr .mha .mhd .nrrd .mgz .mgh .npy "
    ".npz .h5 .hdf5 .zip .json .txt .csv".split()
)
"""Suffixes of file formats: an output named so is a file the user expects, never a DICOM
series folder."""


def check_volume_output(path: str | Path) -> None:
    """Refuse an output that names neither NIfTI nor a folder for a DICOM series.

    Raises:
        InputError: ``path`` ends with another file format's suffix (``out.png``, ``out.dcm``).
    """
    p = Path(path)
    if is_nifti_path(p) and p.is_dir():
        raise InputError(p, "is a folder; a NIfTI output is a file")
    if not is_nifti_path(p) and p.suffix.lower() in FILE_SUFFIXES:
        raise InputError(p, f"a volume cannot be written as '{p.suffix}': name a .nii or "
                            ".nii.gz file, or a folder (no suffix) for a DICOM series")


def check_same_volume_grid(path: str | Path, affine: np.ndarray,
                           reference_affine: np.ndarray) -> None:
    """Refuse a volume whose voxels are not the reference's places (affines differ by more
    than 0.01 mm): comparing arrays of different places gives numbers that mean nothing.

    Raises:
        InputError: the affines differ.
    """
    if not np.allclose(affine, reference_affine, rtol=0, atol=1e-2):
        raise InputError(path, "lies on another voxel grid than the reference (their affines "
                               "differ); resample it onto the reference first")


def is_dicom_file(path: str | Path) -> bool:
    """Whether ``path`` is a file with the DICOM Part 10 preamble ("DICM" at byte 128).

    Scanners and PACS exports often name their files ``IM000001`` or by UID, without ``.dcm``,
    so the content decides, not the name.
    """
    p = Path(path)
    if not p.is_file():
        return False
    with p.open("rb") as fh:
        return fh.read(132)[128:132] == b"DICM"


def read_volume(
    path: str | Path,
    series_uid: str | None = None,
    recursive: bool = False,
    allow_4d: bool = False,
    volume: int | None = None,
) -> Volume:
    """Read a DICOM series (folder or file) or a NIfTI volume (``.nii``/``.nii.gz``).

    Args:
        path: a folder of DICOM files, one DICOM file (``.dcm`` or any name with the DICOM
            preamble; a classic one is read as a one-slice series), or a NIfTI file.
        series_uid: which series to read when a folder holds several.
        recursive: also read DICOM files in sub-folders.
        allow_4d: accept a 4D NIfTI and return it as ``(I, J, K, T)``.
        volume: one volume (0-based) of a 4D NIfTI, or of a DICOM series that holds several
            at the same slice positions (echoes, repetitions, time points).

    Returns:
        The volume, float32 ``(I, J, K)`` with a RAS+ millimetre affine.

    Raises:
        InputError: the path is missing, of an unknown kind, or cannot be read honestly.
    """
    # Imported here because the format modules build Volume objects from this module.
    from suite.io.dicom import read_dicom_series
    from suite.io.nifti import read_nifti

    p = Path(path)
    if not p.exists():
        raise InputError(p, "does not exist")
    if is_nifti_path(p) or p.suffix.lower() in NIFTI_PAIR_SUFFIXES:
        vol = read_nifti(p, allow_4d=allow_4d or volume is not None)
        if volume is not None:
            volume = int(volume)
        if vol.data.ndim == 3 and volume:
            raise InputError(p, f"is a single 3D volume; there is no volume {volume}")
        if vol.data.ndim == 4 and volume is not None:
            last = vol.data.shape[3] - 1
            if not 0 <= volume <= last:
                raise InputError(p, f"--volume {volume} is out of range 0..{last}")
            vol = Volume(np.ascontiguousarray(vol.data[..., volume]), vol.meta)
        return vol
    if p.is_dir() or p.suffix.lower() == ".dcm" or is_dicom_file(p):
        return read_dicom_series(p, series_uid=series_uid, recursive=recursive, volume=volume)
    raise InputError(p, "unknown volume format: expected a DICOM folder or file, .nii, .nii.gz "
                     "or a NIfTI .hdr/.img pair")


def write_volume(
    path: str | Path, data: np.ndarray, meta: VolumeMeta, description: str, derivation: str
) -> Path:
    """Write a volume as NIfTI (path ending ``.nii``/``.nii.gz``) or else as a DICOM series folder.

    Args:
        path: the output file (NIfTI) or folder (DICOM series); replaced atomically.
        data: float32-convertible array ``(I, J, K)`` in the units of the source.
        meta: metadata of the source volume; DICOM output needs a DICOM source.
        description: short text appended to the SeriesDescription (NIfTI: ``descrip``).
        derivation: how the data were derived (DICOM DerivationDescription).

    Returns:
        The absolute output path.

    Raises:
        InputError: the output path is unusable, or DICOM output was asked from a NIfTI source.
    """
    from suite.io.dicom import write_dicom_series
    from suite.io.nifti import write_nifti

    if is_nifti_path(path):
        return write_nifti(path, data, meta, description=description, derivation=derivation)
    check_volume_output(path)
    return write_dicom_series(path, data, meta, description=description, derivation=derivation)
