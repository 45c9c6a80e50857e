"""DICOM ophthalmic photographs: read (JPEG YBR as fundus cameras store them), restored into a
derived instance of the same patient and study, and refused where a header is missing."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit, generate_uid

from suite.errors import InputError
from suite.io.photo import read_photo

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "fundus" / "retina_700.png"
OPHTHALMIC_PHOTO_8BIT = "1.2.840.10008.5.1.4.1.1.77.1.5.1"


def _op_dicom(path: Path, frames: int = 1) -> Path:
    """The bundled photograph as an 8-bit Ophthalmic Photography instance, JPEG baseline in
    YBR_FULL_422 (what fundus cameras write), with patient and study headers."""
    rgb = np.asarray(Image.open(SAMPLE).convert("RGB"))
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=90)
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = OPHTHALMIC_PHOTO_8BIT, generate_uid()
    ds.Modality, ds.PatientID, ds.PatientName = "OP", "RETINA-001", "Test^Patient"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SeriesDescription, ds.SeriesNumber = "Colour fundus", 3
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rgb.shape[0], rgb.shape[1], 3
    ds.PhotometricInterpretation, ds.PlanarConfiguration = "YBR_FULL_422", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = encapsulate([buffer.getvalue()] * frames)
    ds["PixelData"].VR = "OB"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(path, enforce_file_format=True)
    return path


def test_ophthalmic_photo_reads_as_rgb(tmp_path: Path) -> None:
    photo = read_photo(_op_dicom(tmp_path / "op.dcm"))
    assert photo.data.shape == (700, 700, 3) and photo.data.dtype == np.uint8
    assert photo.meta.format == "DICOM" and photo.meta.dataset is not None
    rgb = np.asarray(Image.open(SAMPLE).convert("RGB")).astype(int)
    assert np.abs(photo.data.astype(int) - rgb).mean() < 3  # JPEG at quality 90, YBR -> RGB


def test_restored_dicom_is_a_derived_instance_with_the_png_pixels(tmp_path: Path,
                                                                  run_cli) -> None:
    src = _op_dicom(tmp_path / "op.dcm")
    for name in ("out.dcm", "out.png"):
        code, _, err = run_cli("enhance", "fundus", src, "-o", tmp_path / name, "--quiet")
        assert code == 0, err
    out, source = pydicom.dcmread(tmp_path / "out.dcm"), pydicom.dcmread(src)
    assert (out.PatientID, out.StudyInstanceUID) == (source.PatientID, source.StudyInstanceUID)
    assert out.SeriesInstanceUID != source.SeriesInstanceUID
    assert out.SOPInstanceUID != source.SOPInstanceUID
    assert out.SOPClassUID == OPHTHALMIC_PHOTO_8BIT and out.ImageType[0] == "DERIVED"
    assert out.LossyImageCompression == "01"  # the source was JPEG: lossy stays declared
    assert out.PhotometricInterpretation == "RGB" and "fundus" in out.DerivationDescription
    assert out.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    png = np.asarray(Image.open(tmp_path / "out.png"))
    np.testing.assert_array_equal(out.pixel_array, png)


def test_dicom_output_from_a_png_is_refused_before_any_work(tmp_path: Path, run_cli) -> None:
    code, _, err = run_cli("enhance", "fundus", SAMPLE, "-o", tmp_path / "out.dcm")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert str(SAMPLE) in err and "DICOM output needs a DICOM input" in err
    assert list(tmp_path.iterdir()) == []


def test_multi_frame_photo_is_refused(tmp_path: Path) -> None:
    path = _op_dicom(tmp_path / "stereo.dcm", frames=2)
    with pytest.raises(InputError, match="2 frames") as info:
        read_photo(path)
    assert str(path) in str(info.value)


def test_a_12_bit_photo_is_read_and_written_on_its_own_scale(tmp_path: Path, run_cli) -> None:
    """12 bits stored in 16 were read as if 65535 were white: no FOV found, or with --fov an
    output up to 18792 (beyond 12 bits) with the colour wrecked, declared as 16 bits."""
    from pydicom.uid import ExplicitVRLittleEndian

    rgb = np.asarray(Image.open(SAMPLE).convert("RGB").resize((256, 256))).astype(np.uint16) * 16
    ds = pydicom.dcmread(_op_dicom(tmp_path / "op8.dcm"))
    ds.Rows, ds.Columns = rgb.shape[:2]
    ds.PhotometricInterpretation = "RGB"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelData = rgb.astype("<u2").tobytes()
    ds["PixelData"].VR = "OW"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(tmp_path / "op12.dcm", enforce_file_format=True)
    code, _, err = run_cli("degrade", "fundus", tmp_path / "op12.dcm", "-o", tmp_path / "o.dcm",
                           "--severity", "0")
    assert code == 0, err
    out = pydicom.dcmread(tmp_path / "o.dcm")
    assert (out.BitsAllocated, out.BitsStored, out.HighBit) == (16, 12, 11)
    pixels = out.pixel_array.astype(float)
    assert pixels.max() <= 4095
    assert np.abs(pixels.mean(axis=(0, 1)) - rgb.mean(axis=(0, 1))).max() < 0.1 * rgb.mean()


def test_info_reads_a_dicom_photo_as_a_photo(tmp_path: Path, run_cli) -> None:
    """It was taken for a CT or MR series: 'geometry unknown', exit 2."""
    import json

    code, out, err = run_cli("info", _op_dicom(tmp_path / "op.dcm"))
    assert code == 0, err
    shown = json.loads(out)
    assert (shown["format"], shown["mode"], shown["bits"]) == ("DICOM", "RGB", 8)
