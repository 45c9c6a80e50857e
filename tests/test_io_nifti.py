"""NIfTI I/O on real volumes: reading, float32 round trips with the affine and units kept."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from suite.errors import InputError
from suite.io.volume import read_volume, write_volume
from tests import fixtures_dicom as fx

VOLUMES = [
    "ct/totalsegmentator_ct.nii.gz",
    "mri/totalsegmentator_mr_sm.nii.gz",
    "mri/nibabel_anatomical.nii",  # big-endian int16
    "mri/dipy_aniso_vox.nii.gz",
    "mri/dipy_S0_10slices.nii.gz",  # (128, 128, 10, 1): a 3D volume
    "mri/vrd_stroke_T1.nii.gz",
    "mri/vrd_stroke_T2.nii.gz",
    "mri/vrd_stroke_FLAIR.nii.gz",
    "mri/vrd_seg3D_MR.nii.gz",  # 8-bit with scl_slope
    "mri/niivue_MR_Gd.nii.gz",
]


@pytest.mark.parametrize("rel", VOLUMES)
def test_every_sample_volume_reads(rel: str) -> None:
    path = fx.require_data() / rel
    vol = read_volume(path)
    img = nib.load(path)
    assert vol.data.ndim == 3 and vol.data.dtype == np.float32
    assert vol.meta.source_format == "nifti" and vol.meta.nifti_header is not None
    np.testing.assert_array_equal(vol.meta.affine, img.affine)
    np.testing.assert_allclose(
        vol.data, np.squeeze(img.get_fdata()).reshape(vol.data.shape), rtol=1e-6
    )


@pytest.mark.parametrize("rel", ["mri/vrd_seg3D_MR.nii.gz", "mri/nibabel_anatomical.nii"])
def test_nifti_round_trip_keeps_affine_codes_units(rel: str, tmp_path: Path) -> None:
    src_path = fx.require_data() / rel
    before = fx.tree_hash(src_path)
    src = read_volume(src_path)
    out = write_volume(tmp_path / "out.nii.gz", src.data, src.meta, "denoised", "test")
    back = read_volume(out)
    np.testing.assert_allclose(back.meta.affine, src.meta.affine, atol=1e-5)
    np.testing.assert_array_equal(back.data, src.data)
    h_in, h_out = src.meta.nifti_header, back.meta.nifti_header
    assert h_in is not None and h_out is not None
    assert h_out.get_xyzt_units() == h_in.get_xyzt_units()
    for code in ("sform_code", "qform_code"):
        assert int(h_out[code]) == (int(h_in[code]) or 1)
    assert h_out.get_data_dtype().str[1:] == "f4"  # float32 (source byte order kept)
    assert fx.tree_hash(src_path) == before


def _save(path: Path, data: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 3.0, 1.0])), path)
    return path


def test_nan_and_inf_are_refused(tmp_path: Path) -> None:
    data = np.zeros((4, 5, 6), np.float32)
    data[0, 0, 0], data[1, 1, 1], data[2, 2, 2] = np.nan, np.inf, -np.inf
    path = _save(tmp_path / "bad.nii.gz", data)
    with pytest.raises(InputError) as info:
        read_volume(path)
    assert str(path) in str(info.value) and "3 of 120 voxels are NaN or Inf" in str(info.value)


def test_4d_is_refused_unless_allowed() -> None:
    path = fx.require_data() / "mri/nibabel_example4d.nii.gz"
    with pytest.raises(InputError) as info:
        read_volume(path)
    assert str(path) in str(info.value) and "4D volume" in str(info.value)
    assert "choose one with --volume 0..1" in str(info.value)
    whole = read_volume(path, allow_4d=True).data
    assert whole.shape == (128, 96, 24, 2)
    np.testing.assert_array_equal(read_volume(path, volume=1).data, whole[..., 1])
    with pytest.raises(InputError, match=r"--volume 2 is out of range 0\.\.1"):
        read_volume(path, volume=2)


def test_corrupt_and_unknown_files(tmp_path: Path) -> None:
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(InputError, match="unreadable NIfTI"):
        read_volume(bad)
    other = tmp_path / "volume.mha"
    other.write_text("x")
    with pytest.raises(InputError, match="unknown volume format"):
        read_volume(other)
    with pytest.raises(InputError, match="does not exist"):
        read_volume(tmp_path / "nothing.nii")


def test_output_problems_leave_nothing(tmp_path: Path) -> None:
    src_path = _save(tmp_path / "in.nii", np.ones((3, 3, 3), np.float32))
    vol = read_volume(src_path)
    with pytest.raises(InputError, match="input"):
        write_volume(src_path, vol.data, vol.meta, "x", "y")
    with pytest.raises(InputError, match="does not exist"):
        write_volume(tmp_path / "missing" / "o.nii", vol.data, vol.meta, "x", "y")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.nii"]


def test_dicom_provenance_travels_inside_the_nifti_through_later_steps(tmp_path: Path) -> None:
    from suite.io.nifti import PROVENANCE_KEY, provenance

    series = Path(__file__).resolve().parents[1] / "sample_data" / "ct" / "abdomen_ct_dicom"
    vol = read_volume(series)
    for ds in vol.meta.datasets or []:  # identifiers the record must not copy into a NIfTI
        ds.PatientName, ds.PatientID, ds.SeriesInstanceUID = "Doe^Jane", "MRN-0042", "1.2.3.4"
    first = write_volume(tmp_path / "a.nii.gz", vol.data, vol.meta, "converted", "step one")
    other = nib.nifti1.Nifti1Extension(6, b"a note of another tool")
    img = nib.load(first)
    img.header.extensions.append(other)
    nib.save(img, tmp_path / "b.nii.gz")
    again = read_volume(tmp_path / "b.nii.gz")
    last = write_volume(tmp_path / "c.nii.gz", again.data, again.meta, "denoised", "step two")
    header = nib.load(last).header
    record = provenance(header)
    assert record is not None and record["source_format"] == "dicom"
    assert record["dicom"]["Modality"] == "CT" and record["dicom"]["SeriesInstanceUID"] == "1.2.3.4"
    assert record["derivations"] == ["converted; step one", "denoised; step two"]
    contents = [e.get_content() for e in header.extensions]
    assert b"a note of another tool" in contents  # other tools' extensions are kept
    assert sum(PROVENANCE_KEY.encode() in c for c in contents) == 1  # replaced, not stacked
    assert not any(b"Doe^Jane" in c or b"MRN-0042" in c for c in contents)


def _small_image() -> nib.Nifti1Image:
    data = np.arange(6 * 5 * 4, dtype=np.float32).reshape(6, 5, 4)
    affine = np.diag([0.9, 0.9, 3.0, 1.0])
    affine[:3, 3] = (-10.0, 20.0, 5.0)
    return nib.Nifti1Image(data, affine)


def test_a_gzipped_file_named_nii_and_a_nifti_pair_read_as_nifti(tmp_path: Path) -> None:
    """A renamed download (gzip named ``.nii``) and an SPM-style ``.hdr``/``.img`` pair."""
    img = _small_image()
    nib.save(img, tmp_path / "ref.nii.gz")
    (tmp_path / "renamed.nii").write_bytes((tmp_path / "ref.nii.gz").read_bytes())
    nib.save(nib.Nifti1Pair(img.get_fdata(dtype=np.float32), img.affine), tmp_path / "pair.img")
    ref = read_volume(tmp_path / "ref.nii.gz")
    for name in ("renamed.nii", "pair.hdr", "pair.img"):
        vol = read_volume(tmp_path / name)
        assert np.array_equal(vol.data, ref.data) and np.allclose(vol.meta.affine,
                                                                  ref.meta.affine), name
    out = write_volume(tmp_path / "out.nii.gz", vol.data, vol.meta, "test", "copy")
    # a pair's header became a single file's
    assert nib.load(out).header["magic"] == b"n+1"


def test_an_analyze_image_is_refused_for_its_missing_orientation(tmp_path: Path) -> None:
    img = _small_image()
    nib.save(nib.AnalyzeImage(img.get_fdata(dtype=np.float32), img.affine), tmp_path / "a.img")
    with pytest.raises(InputError, match=r"Analyze 7.5 .*no orientation") as info:
        read_volume(tmp_path / "a.hdr")
    assert "a.hdr" in str(info.value)


def test_a_qform_apart_from_the_sform_keeps_its_own_space_on_a_new_grid(tmp_path: Path) -> None:
    import dataclasses

    sform = np.diag([1.0, 1.0, 2.0, 1.0])
    sform[:3, 3] = (-10.0, -20.0, -5.0)
    qform = sform.copy()
    qform[0, 3] += 50.0  # e.g. scanner space, where the sform holds an aligned space
    img = nib.Nifti1Image(np.random.default_rng(0).random((6, 5, 4), dtype=np.float32), sform)
    img.set_sform(sform, code=2)
    img.set_qform(qform, code=1)
    nib.save(img, tmp_path / "in.nii.gz")
    vol = read_volume(tmp_path / "in.nii.gz")
    grid_change = np.diag([1.0, 1.0, 0.5, 1.0])  # twice the slices, as mri-sr --scale 2 makes
    grid_change[2, 3] = -0.25
    meta = dataclasses.replace(vol.meta, affine=vol.meta.affine @ grid_change)
    data = np.zeros((6, 5, 8), np.float32)
    out = nib.load(write_volume(tmp_path / "out.nii.gz", data, meta, "test", "test"))
    assert (int(out.header["sform_code"]), int(out.header["qform_code"])) == (2, 1)
    np.testing.assert_allclose(out.header.get_sform(), sform @ grid_change, atol=1e-5)
    np.testing.assert_allclose(out.header.get_qform(), qform @ grid_change, atol=1e-5)


@pytest.mark.parametrize(("codes", "shear"), [((0, 0), False), ((1, 0), True), ((0, 1), False)])
def test_a_code_the_source_left_at_zero_stays_zero(tmp_path: Path, codes: tuple[int, int],
                                                   shear: bool) -> None:
    """Both codes were raised to 1: a sheared sform got a qform 16 mm off it under code 1,
    and a file with no orientation at all came out claiming scanner space."""
    affine = np.diag([0.9, 0.9, 3.0, 1.0])
    affine[:3, 3] = [-20.0, 10.0, 5.0]
    if shear:
        affine[0, 2] = 1.0
    img = nib.Nifti1Image(np.ones((6, 6, 4), np.float32), affine)
    img.set_sform(affine, code=codes[0])
    img.set_qform(affine, code=codes[1])
    src = tmp_path / "src.nii.gz"
    nib.save(img, src)
    vol = read_volume(src)
    out = write_volume(tmp_path / "out.nii.gz", vol.data, vol.meta, "copy", "test")
    back = nib.load(out)
    assert (int(back.header["sform_code"]), int(back.header["qform_code"])) == codes
    np.testing.assert_allclose(back.affine, nib.load(src).affine, atol=1e-4)


def test_a_volume_asked_of_a_3d_nifti_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "v.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)), path)
    assert read_volume(path, volume=0).data.shape == (4, 4, 4)
    with pytest.raises(InputError, match="single 3D volume; there is no volume 2"):
        read_volume(path, volume=2)


def test_a_volume_in_microns_is_read_in_millimetres(tmp_path: Path) -> None:
    """Units other than mm were ignored: 3 micron voxels were taken for 3 mm."""
    img = nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.diag([3.0, 3.0, 3.0, 1.0]))
    img.header.set_xyzt_units("micron")
    nib.save(img, tmp_path / "um.nii.gz")
    vol = read_volume(tmp_path / "um.nii.gz")
    assert vol.meta.spacing == pytest.approx((0.003, 0.003, 0.003))
    out = write_volume(tmp_path / "o.nii.gz", vol.data, vol.meta, "d", "test")
    back = nib.load(out)
    assert back.header.get_xyzt_units()[0] == "mm"
    np.testing.assert_allclose(back.affine, np.diag([0.003, 0.003, 0.003, 1.0]), atol=1e-9)


def test_info_shows_the_grid_every_command_uses(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    """voxel_mm came from pixdim while the commands use the sform: 2 mm shown, 4 mm used."""
    import json

    img = nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.diag([1.0, 1.0, 4.0, 1.0]))
    img.set_qform(np.diag([2.0, 2.0, 2.0, 1.0]), code=2)
    img.set_sform(np.diag([1.0, 1.0, 4.0, 1.0]), code=2)
    img.header.set_zooms((2.0, 2.0, 2.0))
    nib.save(img, tmp_path / "v.nii.gz")
    code, out, err = run_cli("info", tmp_path / "v.nii.gz")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["voxel_mm"] == [1.0, 1.0, 4.0]
    assert shown["affine_ras_mm"][2] == [0.0, 0.0, 4.0, 0.0]


def test_nan_voxels_are_not_written(tmp_path: Path) -> None:
    """The reader refuses NaN voxels; the writer made such files (the DICOM one refused)."""
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)), tmp_path / "v.nii")
    vol = read_volume(tmp_path / "v.nii")
    data = vol.data.copy()
    data[1, 1, 1] = np.nan
    with pytest.raises(InputError, match="1 voxels are NaN or Inf"):
        write_volume(tmp_path / "o.nii.gz", data, vol.meta, "d", "test")
    assert not (tmp_path / "o.nii.gz").exists()
