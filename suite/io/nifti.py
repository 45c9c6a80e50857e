"""NIfTI volumes through nibabel: read 3D volumes with their header, write float32, affine kept.

Dtype policy: volumes are read as float32 with ``scl_slope``/``scl_inter`` applied and are
always written as float32 (slope 1, intercept 0), so no value is rounded or clipped on output.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from suite.errors import InputError
from suite.io.atomic import atomic_path, check_output_path
from suite.io.volume import Volume, VolumeMeta

SCANNER_CODE = 1  # NIfTI xform code "scanner anat": world coordinates of the scanner (DICOM)


def read_nifti(path: str | Path, allow_4d: bool = False) -> Volume:
    """Read a NIfTI-1/2 file as a float32 volume.

    Args:
        path: ``.nii`` or ``.nii.gz`` file.
        allow_4d: return a 4D volume ``(I, J, K, T)`` instead of refusing it.

    Returns:
        Volume with ``data`` float32 ``(I, J, K)`` (scaling applied), ``meta.affine`` the image
        affine (sform if set, else qform) in RAS+ mm (a header in metres or microns is
        converted, and kept saying millimetres), and the header kept.

    Raises:
        InputError: unreadable file, a 4D volume without ``allow_4d``, or NaN/Inf voxels.
    """
    p = Path(path)
    try:
        with _loadable(p) as name:
            img = nib.load(name)
            if not isinstance(img, nib.Nifti1Pair):  # the images and NIfTI-2 are subclasses
                raise AnalyzeError(type(img).__name__)
            data = _squeeze_trailing(np.asarray(img.get_fdata(dtype=np.float32)))
    except AnalyzeError as exc:
        raise InputError(p, f"is an Analyze 7.5 image ({exc}), which records no orientation; "
                         "convert it to NIfTI with a known orientation first") from exc
    except Exception as exc:
        raise InputError(p, f"unreadable NIfTI file ({exc})") from exc
    if data.ndim == 4 and not allow_4d:
        last = data.shape[3] - 1
        raise InputError(p, f"4D volume (shape {data.shape}); choose one with --volume 0..{last}")
    if data.ndim > 4:
        raise InputError(p, f"{data.ndim}D data (shape {data.shape}) is not a volume")
    bad = int(np.count_nonzero(~np.isfinite(data)))
    if bad:
        raise InputError(p, f"{bad} of {data.size} voxels are NaN or Inf")
    affine, header = affine_mm(img)
    meta = VolumeMeta(
        affine=affine,
        spacing=tuple(float(s) for s in np.linalg.norm(affine[:3, :3], axis=0)),
        source_format="nifti",
        source_path=p,
        nifti_header=header,
    )
    return Volume(data=data, meta=meta)


def affine_mm(img: Any) -> tuple[np.ndarray, Any]:
    """The image's affine (sform if set, else qform) in millimetres, and a copy of its header
    that says so: a header in metres or microns is converted (the suite works in mm)."""
    affine = np.asarray(img.affine, dtype=np.float64)
    header = img.header.copy()
    space, time = header.get_xyzt_units()
    to_mm = {"meter": 1000.0, "micron": 0.001}.get(space)
    if to_mm is not None:
        affine = np.vstack([affine[:3] * to_mm, affine[3:]])
        header.set_xyzt_units("mm", time)
    return affine, header


class AnalyzeError(TypeError):
    """An Analyze 7.5 image where a NIfTI one was expected."""


@contextlib.contextmanager
def _loadable(path: Path) -> Iterator[Path]:
    """A name nibabel reads ``path`` by: a gzip-compressed file named ``.nii`` (a renamed
    download) is read through a ``.nii.gz`` link, since nibabel picks the codec by suffix."""
    with open(path, "rb") as fh:
        gzipped = fh.read(2) == b"\x1f\x8b"
    if not (gzipped and path.name.lower().endswith(".nii")):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="suite-nii-") as folder:
        link = Path(folder) / (path.name + ".gz")
        link.symlink_to(path.resolve())
        yield link


def _squeeze_trailing(data: np.ndarray) -> np.ndarray:
    """Drop singleton axes after the third (a ``(I, J, K, 1)`` file is a 3D volume)."""
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        data = data[..., np.newaxis]
    return data


def write_nifti(
    path: str | Path,
    data: np.ndarray,
    meta: VolumeMeta,
    description: str = "",
    derivation: str = "",
) -> Path:
    """Write a float32 NIfTI with the source affine, xform codes and units.

    Args:
        path: ``.nii`` or ``.nii.gz`` output (replaced atomically).
        data: array ``(I, J, K)`` (or ``(I, J, K, T)``) on the grid of ``meta.affine``.
        meta: source metadata; a NIfTI source lends its header (codes, units, intent), a DICOM
            source gets scanner-coordinate codes and millimetre units.
        description: stored in the header's ``descrip`` field (80 bytes at most).
        derivation: appended to ``descrip`` when it fits.

    Returns:
        The absolute output path.

    Raises:
        InputError: the output path is unusable, or NaN or infinite values (a file the suite
            and most tools would refuse to read back), as the DICOM writer refuses them.
    """
    out = check_output_path(path, [meta.source_path])
    bad = int(np.count_nonzero(~np.isfinite(np.asarray(data))))
    if bad:
        raise InputError(out, f"{bad} voxels are NaN or Inf; not written")
    header = _output_header(meta)
    img = nib.Nifti1Image(np.asarray(data, dtype=np.float32), meta.affine, header=header)
    sform_code, qform_code = _xform_codes(meta)
    img.set_sform(meta.affine, code=sform_code)
    img.set_qform(_own_qform(meta), code=qform_code)
    img.set_data_dtype(np.float32)
    img.header.set_slope_inter(1.0, 0.0)
    img.header["descrip"] = "; ".join(s for s in (description, derivation) if s)[:79].encode()
    _set_provenance(img.header, meta, "; ".join(s for s in (description, derivation) if s))
    with atomic_path(out) as tmp:
        nib.save(img, tmp)
    return out


PROVENANCE_KEY = "enhance_suite_provenance"
COMMENT_CODE = 6  # NIfTI-1 header extension code "comment": free text, here JSON
DICOM_PROVENANCE_TAGS = (
    "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID", "Modality", "Manufacturer",
    "ManufacturerModelName", "BodyPartExamined", "StudyDate", "SeriesDate", "SeriesNumber",
    "SeriesDescription", "ProtocolName", "SliceThickness", "KVP", "XRayTubeCurrent",
    "ConvolutionKernel", "MagneticFieldStrength", "RepetitionTime", "EchoTime", "FlipAngle",
    "SequenceName", "ImageType",
)
"""Source tags carried into a NIfTI made from DICOM. The UIDs link the file back to its series;
direct identifiers (patient name, ID, birth date) are left out, because NIfTI files are shared."""


def provenance(header: nib.Nifti1Header) -> dict[str, Any] | None:
    """The suite's provenance record in a NIfTI header (source DICOM tags, derivations), if any.

    It is stored as JSON in a "comment" header extension, so it travels inside the file and
    through every later step that keeps the header.
    """
    for ext in header.extensions:
        if ext.get_code() == COMMENT_CODE:
            try:
                record = json.loads(ext.get_content())
            except (ValueError, UnicodeDecodeError):
                continue
            if isinstance(record, dict) and PROVENANCE_KEY in record:
                return dict(record[PROVENANCE_KEY])
    return None


def _set_provenance(header: nib.Nifti1Header, meta: VolumeMeta, derivation: str) -> None:
    """Carry the source's record (or start one from its DICOM headers) plus this derivation."""
    record = provenance(header) or _dicom_record(meta)
    if derivation:
        record.setdefault("derivations", []).append(derivation)
    kept = [e for e in header.extensions if not (
        e.get_code() == COMMENT_CODE and PROVENANCE_KEY.encode() in e.get_content())]
    header.extensions.clear()
    header.extensions.extend(kept)
    content = json.dumps({PROVENANCE_KEY: record}, default=str).encode()
    header.extensions.append(nib.nifti1.Nifti1Extension(COMMENT_CODE, content))


def _dicom_record(meta: VolumeMeta) -> dict[str, Any]:
    """The provenance a source gives: its format and, for DICOM, the tags it has of
    :data:`DICOM_PROVENANCE_TAGS` (first slice). Not its path, which may name the patient."""
    record: dict[str, Any] = {"source_format": meta.source_format}
    if meta.source_format == "dicom" and meta.datasets:
        first = meta.datasets[0]
        tags: dict[str, Any] = {}
        for keyword in DICOM_PROVENANCE_TAGS:
            value = first.get(keyword)
            if value is None or value == "":
                continue
            multiple = isinstance(value, Sequence) and not isinstance(value, (str, bytes))
            tags[keyword] = [str(v) for v in value] if multiple else str(value)
        record["dicom"] = tags
    return record


def _output_header(meta: VolumeMeta) -> nib.Nifti1Header:
    if meta.nifti_header is not None:
        # A NIfTI-2 or Analyze source header converts field by field into NIfTI-1.
        return nib.Nifti1Header.from_header(meta.nifti_header)
    header = nib.Nifti1Header()
    header.set_xyzt_units("mm", "sec")
    return header


def _own_qform(meta: VolumeMeta) -> np.ndarray:
    """The qform for ``meta.affine``'s grid: the source's own qform where it had one apart.

    NIfTI lets the qform (e.g. scanner space) and the sform (e.g. an aligned space) differ, and
    readers that prefer the qform would otherwise find the sform's space under the qform's code.
    The output grid is the source grid changed by ``T = inv(source affine) @ meta.affine`` (an
    identity for denoising, a rescaled slice axis for super-resolution), so the source qform
    gets the same ``T``.
    """
    header = meta.nifti_header
    if header is None or not (int(header["sform_code"]) and int(header["qform_code"])):
        return meta.affine
    sform, qform = header.get_sform(), header.get_qform()
    if np.allclose(sform, qform, atol=1e-4):
        return meta.affine
    grid_change = np.linalg.inv(sform) @ meta.affine
    return np.asarray(qform @ grid_change)


def _xform_codes(meta: VolumeMeta) -> tuple[int, int]:
    """(sform, qform) codes: a NIfTI source's own, else scanner (a DICOM source's world).

    A code the source left at 0 stays 0: raising it would declare real a transform that the
    source never claimed (a sheared sform's shear-free qform approximation, or, with both
    codes 0, the orientation nibabel guesses from the voxel sizes).
    """
    if meta.nifti_header is None:
        return SCANNER_CODE, SCANNER_CODE
    return int(meta.nifti_header["sform_code"]), int(meta.nifti_header["qform_code"])
