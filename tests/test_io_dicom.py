"""DICOM series I/O on real data: reading, derived-series round trips and every refusal."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from suite.errors import InputError
from suite.io.volume import Volume, read_volume, write_volume
from tests import fixtures_dicom as fx
from tests.conftest import SAMPLE_CT

SERIES = [
    ("ct/totalsegmentator_ct_dicom", (512, 512, 20), "CT"),
    ("mri/seg3d_siemens_mr_dicom", (640, 640, 16), "MR"),
    ("mri/vs_seg_t1_mprage_dicom", (512, 512, 16), "MR"),  # implicit VR
    ("mri/dicom2nifti_hitachi_shoulder_mr", (64, 64, 4), "MR"),  # implicit VR, oblique
    ("ct/pydicom_CT_small.dcm", (128, 128, 1), "CT"),
    ("mri/pydicom_MR_small.dcm", (64, 64, 1), "MR"),
]


@pytest.fixture(scope="module")
def ct() -> Volume:
    fx.require_data()
    return read_volume(fx.CT_DICOM)


def _assert_refused(path: Path, *words: str) -> None:
    with pytest.raises(InputError) as info:
        read_volume(path)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize(("rel", "shape", "modality"), SERIES)
def test_every_sample_series_reads(rel: str, shape: tuple[int, ...], modality: str) -> None:
    vol = read_volume(fx.require_data() / rel)
    assert vol.data.shape == shape and vol.data.dtype == np.float32
    assert vol.meta.modality == modality and vol.meta.source_format == "dicom"
    assert vol.meta.datasets is not None and len(vol.meta.datasets) == shape[2]
    assert all("PixelData" not in ds for ds in vol.meta.datasets)
    np.testing.assert_allclose(vol.meta.spacing, np.linalg.norm(vol.meta.affine[:3, :3], axis=0))


def test_ct_geometry_and_hu(ct: Volume) -> None:
    first = ct.meta.datasets[0]  # type: ignore[index]
    x, y, z = (float(v) for v in first.ImagePositionPatient)
    np.testing.assert_allclose(ct.meta.affine[:3, 3], [-x, -y, z])  # LPS -> RAS
    np.testing.assert_allclose(ct.meta.spacing, (0.9765625, 0.9765625, 2.0))
    assert ct.data.min() == -1024.0  # RescaleIntercept applied to the JPEG 2000 pixels
    zs = [float(ds.ImagePositionPatient[2]) for ds in ct.meta.datasets]  # type: ignore[union-attr]
    assert np.all(np.diff(zs) > 0)


def _world_mismatch(ours: Volume, other: np.ndarray, other_affine: np.ndarray) -> float:
    """Largest |value| difference between voxels of ``other`` and ours at the same world point."""
    idx = np.stack(np.meshgrid(*(np.arange(0, n, 7) for n in other.shape), indexing="ij"), -1)
    idx = idx.reshape(-1, 3).astype(float)
    world = np.c_[idx, np.ones(len(idx))] @ other_affine.T
    mine = world @ np.linalg.inv(ours.meta.affine).T
    assert np.abs(mine[:, :3] - np.round(mine[:, :3])).max() < 1e-3  # the same voxel centres
    ijk = np.round(mine[:, :3]).astype(int)
    theirs = other[tuple(idx.astype(int).T)]
    return float(np.abs(ours.data[tuple(ijk.T)] - theirs).max())


@pytest.mark.parametrize(
    "rel", ["ct/totalsegmentator_ct_dicom", "mri/dicom2nifti_hitachi_shoulder_mr"]
)
def test_affine_agrees_with_monai_pydicom_reader(rel: str) -> None:
    monai_transforms = pytest.importorskip("monai.transforms")
    path = fx.require_data() / rel
    img = monai_transforms.LoadImage(reader="PydicomReader", image_only=True)(str(path))
    diff = _world_mismatch(read_volume(path), np.asarray(img), np.asarray(img.affine, dtype=float))
    assert diff <= 0.5


def _check_derived(out: Path, src: Volume) -> None:
    files = sorted(out.iterdir())
    assert [f.name for f in files][:2] == ["IM00001.dcm", "IM00002.dcm"]
    written = [pydicom.dcmread(f) for f in files]
    source = src.meta.datasets
    assert source is not None
    series = {str(ds.SeriesInstanceUID) for ds in written}
    assert len(series) == 1 and series.pop() != src.meta.series_uid
    assert {str(ds.SOPInstanceUID) for ds in written}.isdisjoint(
        {str(ds.get("SOPInstanceUID")) for ds in source}
    )
    studies = {str(ds.StudyInstanceUID) for ds in written}
    assert len(studies) == 1 and studies.pop()  # the source's, or one made for a source without
    for ds, orig in zip(written, source, strict=True):
        assert ds.PatientID == orig.PatientID
        assert ds.StudyInstanceUID == orig.StudyInstanceUID or not orig.StudyInstanceUID
        assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.SamplesPerPixel) == (16, 16, 15, 1)
        assert ds.PhotometricInterpretation == "MONOCHROME2"
        assert ds.ImagePositionPatient == orig.ImagePositionPatient
        assert ds.DerivationDescription == "test derivation"
        assert str(ds.SeriesDescription).endswith("denoised")
        assert ds.get("WindowCenter") == orig.get("WindowCenter")


def test_dicom_to_dicom_round_trip(ct: Volume, tmp_path: Path) -> None:
    before = fx.tree_hash(fx.CT_DICOM)
    out = write_volume(tmp_path / "derived", ct.data, ct.meta, "denoised", "test derivation")
    back = read_volume(out)
    np.testing.assert_allclose(back.meta.affine, ct.meta.affine, atol=1e-3)
    assert np.abs(back.data - ct.data).max() <= 0.5
    _check_derived(out, ct)
    assert fx.tree_hash(fx.CT_DICOM) == before


def test_dicom_round_trip_of_float_values_uses_rescale(ct: Volume, tmp_path: Path) -> None:
    data = ct.data[:, :, :3] * 1.37 + 0.25  # non-integer values, range beyond the source
    meta = dataclasses.replace(ct.meta, datasets=ct.meta.datasets[:3])  # type: ignore[index]
    back = read_volume(write_volume(tmp_path / "f", data, meta, "denoised", "test derivation"))
    assert np.abs(back.data - data).max() <= 0.5


def test_dicom_to_nifti_round_trip(ct: Volume, tmp_path: Path) -> None:
    out = write_volume(tmp_path / "ct.nii.gz", ct.data, ct.meta, "denoised", "test derivation")
    back = read_volume(out)
    np.testing.assert_allclose(back.meta.affine, ct.meta.affine, atol=1e-3)
    assert np.abs(back.data - ct.data).max() <= 0.5
    header = back.meta.nifti_header
    assert header is not None
    assert int(header["sform_code"]) == 1 and int(header["qform_code"]) == 1
    assert header.get_xyzt_units()[0] == "mm"


def test_implicit_vr_oblique_round_trip(tmp_path: Path) -> None:
    src = read_volume(fx.require_data() / "mri/dicom2nifti_hitachi_shoulder_mr")
    out = write_volume(tmp_path / "d", src.data, src.meta, "denoised", "test derivation")
    back = read_volume(out)
    np.testing.assert_allclose(back.meta.affine, src.meta.affine, atol=1e-3)
    np.testing.assert_array_equal(back.data, src.data)
    _check_derived(out, src)


@pytest.mark.parametrize(
    "name", ["MR_small_jpeg_ls_lossless.dcm", "MR_small_bigendian.dcm", "MR_small_expb.dcm"]
)
def test_jpeg_ls_and_big_endian_series_decode(name: str, tmp_path: Path) -> None:
    """JPEG-LS lossless (pylibjpeg-libjpeg) and big-endian slices stacked into a series."""
    fx.require_data()
    reference = read_volume(fx.DATA / "mri/pydicom_MR_small.dcm")
    src = Path(get_testdata_file(name))  # pydicom wheel test file (MIT)
    vol = read_volume(fx.series_from_single(src, tmp_path / "series", n=3, step=0.8))
    assert vol.data.shape == (64, 64, 3)
    for k in range(3):
        np.testing.assert_array_equal(vol.data[:, :, k], reference.data[:, :, 0])
    np.testing.assert_allclose(vol.meta.spacing, (0.3125, 0.3125, 0.8), atol=1e-4)


def test_recursive_and_series_choice(tmp_path: Path) -> None:
    fx.require_data()
    folder, mr_uid = fx.make_two_series(tmp_path / "two")
    _assert_refused(folder, "2 series", mr_uid, "My Special Series For Testing", "3 slices")
    assert read_volume(folder, series_uid=mr_uid).data.shape == (640, 640, 3)
    nested = tmp_path / "outer"
    nested.mkdir()
    folder.rename(nested / "inner")
    with pytest.raises(InputError, match="no DICOM files"):
        read_volume(nested)
    assert read_volume(nested, series_uid=mr_uid, recursive=True).data.shape[2] == 3


def test_empty_folder(tmp_path: Path) -> None:
    _assert_refused(tmp_path, "no DICOM files")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "notes.txt").write_text("x")
    with pytest.raises(InputError) as info:
        read_volume(tmp_path)
    assert "sub-folders" not in str(info.value)  # the hint only when there is DICOM below


def test_cd_export_layout_hints_and_reads_with_recursive(tmp_path: Path, run_cli) -> None:
    sample = Path(__file__).resolve().parents[1] / "sample_data/ct/abdomen_ct_dicom"
    export = tmp_path / "cd"
    (export / "DICOM").mkdir(parents=True)
    shutil.copytree(sample, export / "DICOM" / "S0001")
    out = tmp_path / "out.nii.gz"
    code, _, err = run_cli("enhance", "ct-denoise", export, "-o", out, "--quiet")
    assert code == 2 and "sub-folders hold some" in err and "--recursive" in err
    assert not out.exists()
    code, _, err = run_cli("enhance", "ct-denoise", export, "-o", out, "--recursive", "--quiet")
    assert code == 0, err
    assert out.is_file()
    code, listing, err = run_cli("info", export, "--recursive")  # the hint's flag works here too
    assert code == 0 and '"shape": [' in listing, err
    (export / "DICOMDIR").write_bytes(b"\0" * 128 + b"DICM")
    code, _, err = run_cli("info", export / "DICOMDIR")
    assert code == 2 and "DICOMDIR index" in err and "--recursive" in err


def test_folder_of_non_dicom_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an image\n" * 20)
    (tmp_path / "noise.bin").write_bytes(np.random.default_rng(0).bytes(4096))
    _assert_refused(tmp_path, "no DICOM files")


def test_non_dicom_files_beside_a_series_are_skipped(tmp_path: Path) -> None:
    fx.require_data()
    fx.copy_series(fx.CT_DICOM, tmp_path, 3)
    (tmp_path / "README.txt").write_text("exported by a viewer\n")
    assert read_volume(tmp_path).data.shape == (512, 512, 3)


@pytest.mark.parametrize(
    ("maker", "words"),
    [
        (fx.make_missing_slice, ("missing slices", "gap of 4.000 mm")),
        (fx.make_duplicate_slice, ("duplicate slice positions", "twin.dcm")),
        (fx.make_uneven_spacing, ("uneven slice spacing",)),
        (fx.make_tilted, ("gantry tilt",)),
        (fx.make_mixed_sizes, ("mixed image sizes",)),
        (fx.make_mixed_orientations, ("mixed orientations",)),
    ],
)
def test_bad_series_is_refused(maker: object, words: tuple[str, ...], tmp_path: Path) -> None:
    fx.require_data()
    folder = maker(tmp_path / "bad")  # type: ignore[operator]
    before = fx.tree_hash(folder)
    _assert_refused(folder, *words)
    assert fx.tree_hash(folder) == before


def test_truncated_file_is_named(tmp_path: Path) -> None:
    fx.require_data()
    bad = fx.make_truncated(tmp_path / "bad")
    with pytest.raises(InputError) as info:
        read_volume(bad.parent)
    assert info.value.path == bad and "truncated" in str(info.value)


def test_dicom_output_needs_dicom_input(tmp_path: Path) -> None:
    vol = read_volume(fx.require_data() / "mri/nibabel_anatomical.nii")
    with pytest.raises(InputError, match="DICOM output needs a DICOM input"):
        write_volume(tmp_path / "series", vol.data, vol.meta, "x", "y")
    assert list(tmp_path.iterdir()) == []


def test_output_in_missing_folder(ct: Volume, tmp_path: Path) -> None:
    target = tmp_path / "missing" / "out"
    with pytest.raises(InputError, match="does not exist"):
        write_volume(target, ct.data, ct.meta, "x", "y")


def test_output_under_a_file_is_refused(ct: Volume, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(InputError) as info:
        write_volume(blocker / "out.nii.gz", ct.data, ct.meta, "x", "y")
    assert str(blocker) in str(info.value)


def test_output_in_read_only_folder(ct: Volume, tmp_path: Path, read_only) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    read_only(ro)
    with pytest.raises(InputError, match="not writable"):
        write_volume(ro / "out", ct.data, ct.meta, "x", "y")
    assert not list(ro.iterdir())


def test_output_equal_to_input_is_refused(tmp_path: Path) -> None:
    fx.require_data()
    folder = tmp_path / "src"
    fx.copy_series(fx.CT_DICOM, folder, 3)
    vol = read_volume(folder)
    before = fx.tree_hash(folder)
    for target in (folder, folder / "inside"):
        with pytest.raises(InputError, match="input"):
            write_volume(target, vol.data, vol.meta, "x", "y")
    assert fx.tree_hash(folder) == before


def test_failed_write_leaves_nothing(ct: Volume, tmp_path: Path) -> None:
    bad = ct.data.copy()
    bad[0, 0, 5] = np.nan
    with pytest.raises(InputError, match="NaN"):
        write_volume(tmp_path / "out", bad, ct.meta, "x", "y")
    with pytest.raises(InputError, match="not a 3D volume"):
        write_volume(tmp_path / "out", ct.data[:, :, 0], ct.meta, "x", "y")
    rotated = np.array(ct.meta.affine)
    rotated[:3, :2] = rotated[:3, [1, 0]]
    with pytest.raises(InputError, match="rotated"):
        write_volume(tmp_path / "out", ct.data, dataclasses.replace(ct.meta, affine=rotated),
                     "x", "y")
    assert list(tmp_path.iterdir()) == []


def test_series_on_a_finer_grid_round_trips(ct: Volume, tmp_path: Path) -> None:
    """Super-resolution output: twice the slices at half the step, half the pixels in i."""
    data = np.repeat(ct.data[::2], 1, axis=0)
    data = np.repeat(data, 2, axis=2)
    affine = np.array(ct.meta.affine)
    affine[:3, 0] *= 2.0
    affine[:3, 2] *= 0.5
    meta = dataclasses.replace(ct.meta, affine=affine)
    out = write_volume(tmp_path / "fine", data, meta, "x2", "test")
    back = read_volume(out)
    assert back.data.shape == data.shape
    assert np.abs(back.meta.affine - affine).max() < 1e-3
    assert np.abs(back.data - data).max() <= 0.5
    first = pydicom.dcmread(sorted(out.iterdir())[0])
    source = ct.meta.datasets[0]
    assert first.StudyInstanceUID == (source.StudyInstanceUID or first.StudyInstanceUID) != ""
    assert first.PatientID == source.PatientID
    assert float(first.SliceThickness) == pytest.approx(np.linalg.norm(affine[:3, 2]))
    assert int(first.Columns) == data.shape[0]


def test_failure_mid_write_removes_partial_series(
    ct: Volume, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    original = pydicom.Dataset.save_as

    def failing(self: pydicom.Dataset, *args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pydicom.Dataset, "save_as", failing)
    with pytest.raises(OSError, match="disk full"):
        write_volume(tmp_path / "out", ct.data, ct.meta, "x", "y")
    assert list(tmp_path.iterdir()) == []


def _add_scout(folder: Path, localizer: bool, own_series: bool) -> None:
    """A coronal topogram beside the axial slices, as CD exports and PACS downloads have it."""
    first = fx.sorted_slices(folder)[0]
    scout = folder / "scout.dcm"
    shutil.copy(first, scout)

    def change(ds: pydicom.Dataset) -> None:
        ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
        ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER" if localizer else "AXIAL"]
        ds.SOPInstanceUID = generate_uid()
        if own_series:
            ds.SeriesInstanceUID, ds.SeriesNumber = generate_uid(), 1
            ds.SeriesDescription = "Topogram"

    fx.edit(scout, change)


@pytest.mark.parametrize("own_series", [False, True])
def test_localizer_beside_the_slices_is_skipped(
    own_series: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "series"
    shutil.copytree(SAMPLE_CT, folder)
    _add_scout(folder, localizer=True, own_series=own_series)
    vol = read_volume(folder)
    assert vol.data.shape == (512, 512, 8)
    assert "skipped 1 localizer" in capsys.readouterr().err


def test_series_chosen_by_number_and_listed_by_it(tmp_path: Path) -> None:
    folder = tmp_path / "series"
    shutil.copytree(SAMPLE_CT, folder)
    _add_scout(folder, localizer=False, own_series=True)  # not marked: the user must choose
    _assert_refused(folder, "2 series", "--series", "number 1, UID", "'Topogram' (1 slices)")
    assert read_volume(folder, series_uid="1").data.shape == (512, 512, 1)
    assert read_volume(folder, series_uid=1).data.shape == (512, 512, 1)  # a script's int
    with pytest.raises(InputError, match="single volume; there is no volume 1"):
        read_volume(folder, series_uid=1, volume=1)
    with pytest.raises(InputError, match="no series with SeriesInstanceUID or number 7"):
        read_volume(folder, series_uid="7")


def test_two_acquisitions_in_one_series_are_named(tmp_path: Path) -> None:
    """Repeated scans at the same positions: the message says which attribute splits them."""
    folder = tmp_path / "series"
    shutil.copytree(SAMPLE_CT, folder)
    for file in fx.sorted_slices(folder)[:2]:
        again = folder / f"again_{file.name}"
        shutil.copy(file, again)

        def second(ds: pydicom.Dataset) -> None:
            ds.AcquisitionNumber, ds.SOPInstanceUID = 2, generate_uid()

        fx.edit(again, second)
    _assert_refused(folder, "duplicate slice positions", "differ in AcquisitionNumber",
                    "several volumes")


def _two_echoes(folder: Path) -> None:
    """Every slice of the sample series again as a second echo with other pixel values."""
    for file in fx.sorted_slices(folder):
        again = folder / f"echo2_{file.name}"
        shutil.copy(file, again)

        def second(ds: pydicom.Dataset) -> None:
            ds.EchoNumbers, ds.SOPInstanceUID = 2, generate_uid()
            ds.RescaleIntercept = float(ds.RescaleIntercept) + 100

        fx.edit(again, second)
        fx.edit(file, lambda ds: setattr(ds, "EchoNumbers", 1))


def test_multi_echo_series_needs_a_chosen_volume(tmp_path: Path) -> None:
    folder = tmp_path / "series"
    shutil.copytree(SAMPLE_CT, folder)
    _two_echoes(folder)
    _assert_refused(folder, "2 volumes at the same slice positions (EchoNumbers 1, 2)",
                    "choose one with --volume 0..1")
    first, second = read_volume(folder, volume=0), read_volume(folder, volume=1)
    np.testing.assert_allclose(second.data - first.data, 100.0)
    assert {int(ds.EchoNumbers) for ds in second.meta.datasets} == {2}
    with pytest.raises(InputError, match=r"--volume 2 is out of range 0\.\.1"):
        read_volume(folder, volume=2)


def test_convert_and_ct_enhance_take_volume(tmp_path: Path, run_cli) -> None:
    folder = tmp_path / "series"
    shutil.copytree(SAMPLE_CT, folder)
    _two_echoes(folder)
    out = tmp_path / "out.nii.gz"
    code, _, err = run_cli("convert", folder, "-o", out)
    assert code == 2 and "--volume 0..1" in err and err.count("\n") == 1 and not out.exists()
    assert run_cli("convert", folder, "-o", out, "--volume", "1")[0] == 0
    assert read_volume(out).data.shape == (512, 512, 8)
    code, _, err = run_cli("degrade", "ct-denoise", folder, "-o", tmp_path / "low.nii.gz",
                           "--volume", "5", "--quiet")
    assert code == 2 and "--volume 5 is out of range 0..1" in err


def test_info_lists_what_a_folder_holds(tmp_path: Path, run_cli) -> None:
    """``suite info`` on a folder of several series or volumes lists them instead of failing."""
    import json

    folder = tmp_path / "series"
    shutil.copytree(SAMPLE_CT, folder)
    _two_echoes(folder)
    _add_scout(folder, localizer=False, own_series=True)
    code, out, _ = run_cli("info", folder)
    assert code == 0
    series = json.loads(out)["series"]
    assert [(s["series_number"], s["images"], s["volumes"]) for s in series] == [
        (None, 16, {"EchoNumbers": ["1", "2"]}), ("1", 1, 1)]


def test_a_source_without_a_study_uid_gets_one_for_the_whole_derived_series(
        tmp_path: Path, run_cli) -> None:
    """The bundled anonymised series has an empty StudyInstanceUID, a required attribute; the
    derived series kept it empty."""
    src = Path(__file__).resolve().parents[1] / "sample_data" / "ct" / "abdomen_ct_dicom"
    assert not any(str(pydicom.dcmread(f, stop_before_pixels=True).StudyInstanceUID)
                   for f in src.iterdir())
    out = tmp_path / "series"
    assert run_cli("convert", src, "-o", out, "--quiet")[0] == 0
    studies = {str(pydicom.dcmread(f, stop_before_pixels=True).StudyInstanceUID)
               for f in out.iterdir()}
    assert len(studies) == 1 and len(studies.pop()) > 10


def _rewritten_series(tmp_path: Path, change) -> Path:  # type: ignore[no-untyped-def]
    """The sample CT series, each slice passed through ``change(ds)`` and written again."""
    folder = tmp_path / "src"
    folder.mkdir()
    for k, path in enumerate(sorted(SAMPLE_CT.iterdir())):  # bundled: runs without ../shared
        ds = pydicom.dcmread(path)
        kwargs = change(ds) or {}
        pydicom.dcmwrite(folder / f"s{k}.dcm", ds, **kwargs)
    return folder


def test_a_big_endian_series_is_written_little_endian(tmp_path: Path) -> None:
    """Any DICOM output of a big-endian series was an internal error, after all the work."""
    from pydicom.uid import ExplicitVRBigEndian

    def big_endian(ds: pydicom.Dataset) -> dict:
        pixels = ds.pixel_array.astype(">i2" if ds.PixelRepresentation else ">u2")
        ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
        ds.PixelData = pixels.tobytes()
        return {"little_endian": False, "implicit_vr": False, "force_encoding": True}

    src = read_volume(_rewritten_series(tmp_path, big_endian))
    back = read_volume(write_volume(tmp_path / "out", src.data, src.meta, "d", "test"))
    np.testing.assert_array_equal(back.data, src.data)
    assert str(pydicom.dcmread(next((tmp_path / "out").iterdir())).file_meta.TransferSyntaxUID
               ) == pydicom.uid.ExplicitVRLittleEndian


def test_tags_that_read_the_stored_values_are_restated(tmp_path: Path) -> None:
    """A modality LUT, a real-world value mapping and the padding value were copied as they
    were onto re-encoded pixels (values converted twice, quantities off by the new slope);
    MONOCHROME1 became MONOCHROME2, showing the series inverted."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    def quantitative(ds: pydicom.Dataset) -> None:
        mapping = Dataset()
        mapping.RealWorldValueSlope, mapping.RealWorldValueIntercept = 0.25, 3.0
        mapping.LUTLabel = "test"
        ds.RealWorldValueMappingSequence = Sequence([mapping])
        ds.add_new(0x00280120, "SS" if ds.PixelRepresentation else "US", 0)
        ds.PhotometricInterpretation = "MONOCHROME1"

    folder = _rewritten_series(tmp_path, quantitative)
    first = pydicom.dcmread(sorted(folder.iterdir())[0])
    src = read_volume(folder)
    data = src.data * 1.37 + 0.25  # non-integer: re-encoded with a new slope and intercept
    out = write_volume(tmp_path / "out", data, src.meta, "d", "test")
    ds = pydicom.dcmread(sorted(out.iterdir())[0])
    stored = ds.pixel_array.astype(float)
    value = stored * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    mapping = ds.RealWorldValueMappingSequence[0]
    rwv = stored * mapping.RealWorldValueSlope + mapping.RealWorldValueIntercept
    old_stored = (value - float(first.RescaleIntercept)) / float(first.RescaleSlope)
    np.testing.assert_allclose(rwv, old_stored * 0.25 + 3.0, atol=1e-6 + 0.25 * 1.37)
    pad_value = int(ds.PixelPaddingValue) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    expected_pad = 0 * float(first.RescaleSlope) + float(first.RescaleIntercept)
    assert abs(pad_value - expected_pad) <= float(ds.RescaleSlope)
    assert ds.PhotometricInterpretation == "MONOCHROME1" and "ModalityLUTSequence" not in ds


def test_a_tilt_tag_on_a_regular_stack_reads(tmp_path: Path) -> None:
    """GantryDetectorTilt alone was refused, though the positions (along the slice normal, as
    a tilt-corrected or an oblique Siemens series stores them) describe a regular grid; a real
    tilt is refused by its positions' drift (test_bad_series_is_refused)."""
    fx.require_data()
    tagged = read_volume(fx.make_tilt_tag(tmp_path / "tagged"))
    plain = read_volume(fx.copy_series(fx.CT_DICOM, tmp_path / "plain", 4)[0].parent)
    np.testing.assert_allclose(tagged.meta.affine, plain.meta.affine)
    np.testing.assert_array_equal(tagged.data, plain.data)


def test_a_series_once_lossy_stays_declared_lossy() -> None:
    """Written uncompressed, the pixels of a JPEG baseline source keep what JPEG took away."""
    from suite.io.dicom import derived_instance

    src = pydicom.dcmread(sorted(SAMPLE_CT.iterdir())[0], stop_before_pixels=True)
    assert "LossyImageCompression" not in derived_instance(src, generate_uid(), "d", "t", 1)
    src.file_meta.TransferSyntaxUID = pydicom.uid.JPEGBaseline8Bit
    assert derived_instance(src, generate_uid(), "d", "t", 1).LossyImageCompression == "01"


def test_one_file_twice_is_named_as_such(tmp_path: Path) -> None:
    """A PACS export holding one file twice was reported as two slices at one position."""
    fx.require_data()
    files = fx.copy_series(fx.CT_DICOM, tmp_path / "s", 3)
    shutil.copyfile(files[1], tmp_path / "s" / "copy.dcm")
    _assert_refused(tmp_path / "s", "duplicate slice positions", "the same instance twice")


def test_a_regridded_series_keeps_the_source_pixel_spacing_text(tmp_path: Path) -> None:
    """Recomputed from the affine, 2.34375 came out as 2.343749557 (the source's direction
    cosines are not exactly unit length), and ImagesInAcquisition kept the source's count."""
    src = read_volume(fx.require_data() / "mri/dicom2nifti_hitachi_shoulder_mr")
    affine = src.meta.affine.copy()
    affine[:3, 2] /= 2  # twice the slices, as mri-sr --scale 2 writes them
    data = np.repeat(src.data, 2, axis=2)
    meta = dataclasses.replace(src.meta, affine=affine)
    out = write_volume(tmp_path / "sr", data, meta, "sr", "test")
    first = pydicom.dcmread(sorted(out.iterdir())[0])
    source = src.meta.datasets[0]  # type: ignore[index]
    assert list(first.PixelSpacing) == list(source.PixelSpacing)
    assert len(str(first.SliceThickness).replace(".", "").lstrip("0")) <= 8
    assert "ImagesInAcquisition" not in first
