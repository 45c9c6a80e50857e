"""Refusals of the MRI SR domain: what a through-plane SR cannot honestly be asked to do."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from suite.errors import InputError, UsageError
from suite.io.volume import Volume, is_nifti_path

MAX_SCALE = 8.0
ISOTROPIC_RATIO = 1.2  # largest / smallest spacing below which no axis is "the" slice axis
MIN_SLICES = 4  # a cubic B-spline needs four samples


def check_scale(scale: float | None) -> float:
    """Accept a through-plane factor in ``(1, 8]``.

    Raises:
        UsageError: no factor given, or not a finite number in that range.
    """
    if scale is None:
        raise UsageError("give the through-plane factor with --scale, e.g. --scale 4")
    if not np.isfinite(scale) or scale <= 1.0 or scale > MAX_SCALE:
        raise UsageError(
            f"--scale must be a through-plane factor in (1, {MAX_SCALE:g}], got {scale:g}"
        )
    return float(scale)


def check_volume(vol: Volume) -> None:
    """Refuse a 4D series, NaN/Inf voxels and a constant volume, naming the file."""
    path = vol.meta.source_path
    if vol.data.ndim != 3:
        raise InputError(path, f"a 3D volume is needed, got shape {vol.data.shape}")
    bad = int(np.count_nonzero(~np.isfinite(vol.data)))
    if bad:
        raise InputError(path, f"{bad} of {vol.data.size} voxels are NaN or Inf")
    if float(vol.data.max()) == float(vol.data.min()):
        raise InputError(path, "the volume is constant: nothing to super-resolve")


def check_mr(vol: Volume, force: bool = False) -> None:
    """Refuse what is clearly not MRI: a DICOM modality other than MR, or CT's Hounsfield units.

    The network was trained on MR intensities; on a CT it runs, and silently returns a volume
    no one should read. ``force`` lets a user who knows better go on.

    Raises:
        InputError: another DICOM modality, or values reaching down to air's -1000 HU.
    """
    if force:
        return
    path = vol.meta.source_path
    modality = vol.meta.modality
    if modality is not None and modality != "MR":
        raise InputError(path, f"modality is {modality}, not MR: this domain expects MR "
                         "intensities (pass --force to run it anyway)")
    if float(np.percentile(vol.data, 1)) < -500:
        raise InputError(path, "values reach below -500 (1st percentile), like air in CT "
                         "Hounsfield units, not MRI (pass --force to run it anyway)")


def pick_axis(vol: Volume, axis: str, thin_input: bool = False) -> int:
    """The slice axis: as given, or with ``auto`` the one with the largest spacing.

    Args:
        vol: the volume.
        axis: ``auto``, ``0``, ``1`` or ``2``.
        thin_input: the volume is a thin-slice input to thicken (``suite degrade``), usually
            isotropic: ``auto`` then takes the voxel axis nearest the head-foot direction, the
            slice axis of an axial acquisition, where there is no largest spacing.

    Raises:
        InputError: ``auto`` on a near-isotropic volume to enhance (no honest choice), or too
            few slices.
    """
    spacing = np.asarray(vol.meta.spacing[:3], dtype=float)
    if axis == "auto" and thin_input and spacing.max() / spacing.min() < ISOTROPIC_RATIO:
        directions = vol.meta.affine[:3, :3] / np.linalg.norm(vol.meta.affine[:3, :3], axis=0)
        chosen = int(np.argmax(np.abs(directions[2])))
    elif axis == "auto":
        if spacing.max() / spacing.min() < ISOTROPIC_RATIO:
            raise InputError(
                vol.meta.source_path,
                f"voxels are near-isotropic ({_mm(spacing)} mm), so --axis auto cannot tell "
                "the slice axis; pass --axis 0, 1 or 2",
            )
        chosen = int(np.argmax(spacing))
    else:
        chosen = int(axis)
    if vol.data.shape[chosen] < MIN_SLICES:
        raise InputError(
            vol.meta.source_path,
            f"only {vol.data.shape[chosen]} slices along axis {chosen}; need {MIN_SLICES}",
        )
    return chosen


def check_output_kind(output: Path, vol: Volume) -> None:
    """NIfTI output always; a DICOM series folder only from a DICOM input (its headers are
    the templates of the derived series, on the new slice grid)."""
    if not is_nifti_path(output) and vol.meta.source_format != "dicom":
        # named after the input: ``output`` may be a batch item's temporary name
        raise InputError(
            vol.meta.source_path or output,
            "is NIfTI, and a DICOM output needs a DICOM input; name the output .nii or .nii.gz",
        )


def _mm(spacing: np.ndarray) -> str:
    return " x ".join(f"{s:.3g}" for s in spacing)
