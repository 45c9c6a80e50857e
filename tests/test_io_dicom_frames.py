"""Enhanced (multi-frame) DICOM: read like the classic series it was made from, written back as
a classic derived series, and refused where one file holds more than one 3D stack.

The enhanced files are made by highdicom's legacy converter from the bundled classic CT series,
so the reader is checked against an independent producer, not against our own writer.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import CTImageStorage, LegacyConvertedEnhancedCTImageStorage, generate_uid

from suite.errors import InputError
from suite.io.volume import Volume, read_volume, write_volume

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data/ct/abdomen_ct_dicom"


@pytest.fixture(scope="module")
def classic() -> Volume:
    return read_volume(SAMPLE)


def _enhanced(out: Path, change: object = None) -> Path:
    """The bundled series converted to one Legacy Converted Enhanced CT file."""
    hd = pytest.importorskip("highdicom")
    sources = []
    for file in sorted(SAMPLE.iterdir()):
        ds = pydicom.dcmread(file)
        # the anonymised excerpt keeps its SOP class only in the file meta, and no instance UIDs
        ds.SOPClassUID = ds.get("SOPClassUID") or ds.file_meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = generate_uid()
        sources.append(ds)
    image = hd.legacy.LegacyConvertedEnhancedCTImage(
        sources, series_instance_uid=generate_uid(), series_number=99,
        sop_instance_uid=generate_uid(), instance_number=1)
    if callable(change):
        change(image)
    image.save_as(out)
    return out


@pytest.fixture(scope="module")
def enhanced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _enhanced(tmp_path_factory.mktemp("enhanced") / "ct.dcm")


def test_enhanced_file_reads_as_the_classic_series(enhanced: Path, classic: Volume) -> None:
    vol = read_volume(enhanced)
    np.testing.assert_array_equal(vol.data, classic.data)
    np.testing.assert_allclose(vol.meta.affine, classic.meta.affine, atol=1e-6)
    assert vol.meta.modality == "CT" and len(vol.meta.datasets or []) == vol.data.shape[2]
    assert pydicom.dcmread(enhanced).SOPClassUID == LegacyConvertedEnhancedCTImageStorage


def test_enhanced_file_without_extension_reads_by_its_content(
    enhanced: Path, classic: Volume, tmp_path: Path, run_cli
) -> None:
    bare = tmp_path / "IM000001"  # how scanners and PACS exports name their files
    shutil.copy(enhanced, bare)
    np.testing.assert_array_equal(read_volume(bare).data, classic.data)
    code, out, err = run_cli("info", bare)
    assert code == 0, err
    assert '"modality": "CT"' in out and '"shape": [' in out


def test_derived_series_is_classic_and_references_the_frames(
    enhanced: Path, tmp_path: Path
) -> None:
    vol = read_volume(enhanced)
    out = write_volume(tmp_path / "out", vol.data + 10, vol.meta, "test", "test")
    back = read_volume(out)
    np.testing.assert_allclose(back.data, vol.data + 10, atol=0.5)
    np.testing.assert_allclose(back.meta.affine, vol.meta.affine, atol=1e-4)
    source = pydicom.dcmread(enhanced, stop_before_pixels=True)
    frames = []
    for ds in back.meta.datasets or []:
        assert ds.SOPClassUID == CTImageStorage and "ReferencedFrameNumber" not in ds
        ref = ds.SourceImageSequence[0]
        assert ref.ReferencedSOPInstanceUID == source.SOPInstanceUID
        assert ref.ReferencedSOPClassUID == LegacyConvertedEnhancedCTImageStorage
        frames.append(int(ref.ReferencedFrameNumber))
    assert sorted(frames) == list(range(1, source.NumberOfFrames + 1))


def test_a_frames_own_rescale_overrides_the_shared_one(tmp_path: Path, classic: Volume) -> None:
    def own_rescale(image: pydicom.Dataset) -> None:
        shared = image.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence[0]
        mine = copy.deepcopy(shared)
        mine.RescaleIntercept = float(shared.RescaleIntercept) + 24
        image.PerFrameFunctionalGroupsSequence[0].PixelValueTransformationSequence = [mine]

    path = _enhanced(tmp_path / "ct.dcm", own_rescale)
    frame_one = pydicom.dcmread(path).PerFrameFunctionalGroupsSequence[0]
    z = float(frame_one.PlanePositionSequence[0].ImagePositionPatient[2])
    k = int(np.argmin([abs(float(ds.ImagePositionPatient[2]) - z)
                       for ds in classic.meta.datasets or []]))
    diff = read_volume(path).data - classic.data
    assert np.all(diff[:, :, k] == 24)
    assert np.all(np.delete(diff, k, axis=2) == 0)


def test_frames_sharing_positions_are_refused(tmp_path: Path) -> None:
    def two_stacks(image: pydicom.Dataset) -> None:
        groups = image.PerFrameFunctionalGroupsSequence
        groups[1].PlanePositionSequence = copy.deepcopy(groups[0].PlanePositionSequence)

    path = _enhanced(tmp_path / "ct.dcm", two_stacks)
    with pytest.raises(InputError, match="8 frames at 7 slice positions") as info:
        read_volume(path)
    assert str(path) in str(info.value)


def test_enhanced_file_among_classic_slices_is_refused(enhanced: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    shutil.copytree(SAMPLE, folder)
    ds = pydicom.dcmread(enhanced)
    ds.SeriesInstanceUID = pydicom.dcmread(next(folder.iterdir())).SeriesInstanceUID
    ds.save_as(folder / "enhanced.dcm")
    with pytest.raises(InputError, match="1 enhanced multi-frame file"):
        read_volume(folder)


def test_multi_frame_without_per_frame_geometry_is_still_refused() -> None:
    path = Path(get_testdata_file("rtdose.dcm"))  # 15 frames, geometry in a grid offset vector
    with pytest.raises(InputError, match="without per-frame geometry"):
        read_volume(path)


def test_ct_denoise_writes_a_classic_series_from_an_enhanced_file(
    enhanced: Path, tmp_path: Path, run_cli
) -> None:
    code, _, err = run_cli("--quiet", "enhance", "ct-denoise", enhanced, "-o", tmp_path / "out")
    assert code == 0, err
    files = sorted((tmp_path / "out").iterdir())
    assert len(files) == 8
    assert pydicom.dcmread(files[0]).SOPClassUID == CTImageStorage
