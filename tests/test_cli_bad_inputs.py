"""Foundation bad inputs through the CLI: exit 2, one line naming the file, nothing written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests import fixtures_dicom as fx


def _empty(dst: Path) -> Path:
    dst.mkdir()
    return dst


def _not_dicom(dst: Path) -> Path:
    dst.mkdir()
    (dst / "notes.txt").write_text("not a DICOM file\n")
    (dst / "image.dcm").write_bytes(b"\x00" * 300)
    return dst


def _two_series(dst: Path) -> Path:
    return fx.make_two_series(dst)[0]


def _nifti(dst: Path, data: np.ndarray) -> Path:
    path = dst.with_suffix(".nii.gz")
    nib.save(nib.Nifti1Image(data.astype(np.float32), np.eye(4)), path)
    return path


def _nan_nifti(dst: Path) -> Path:
    data = np.zeros((8, 8, 4))
    data[2, 2, 2] = np.nan
    data[3, 3, 3] = np.inf
    return _nifti(dst, data)


def _nifti_4d(dst: Path) -> Path:
    return _nifti(dst, np.zeros((8, 8, 4, 3)))


BUNDLED_SERIES = Path(__file__).resolve().parents[1] / "sample_data" / "ct" / "abdomen_ct_dicom"


def _bundled_copy(dst: Path) -> list[Path]:
    dst.mkdir()
    files = []
    for src in sorted(BUNDLED_SERIES.iterdir()):
        files.append(dst / src.name)
        files[-1].write_bytes(src.read_bytes())
    return files


def _no_pixel_spacing(dst: Path) -> Path:
    """It was read as 1 mm pixels; ImagerPixelSpacing (at the detector) is not the same."""
    for file in _bundled_copy(dst):
        def change(ds):  # type: ignore[no-untyped-def]
            ds.ImagerPixelSpacing = ds.PixelSpacing
            del ds.PixelSpacing
        fx.edit(file, change)
    return dst


def _mixed_pixel_spacing(dst: Path) -> Path:
    """The first slice's spacing was used for every slice."""
    files = _bundled_copy(dst)
    fx.edit(files[3], lambda ds: setattr(ds, "PixelSpacing", [0.8, 0.8]))
    return dst


CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "no pixel spacing": (_no_pixel_spacing, "no PixelSpacing"),
    "mixed pixel spacing": (_mixed_pixel_spacing, "mixed pixel spacing"),
    "empty folder": (_empty, "no DICOM"),
    "non-DICOM files": (_not_dicom, "no DICOM"),
    "two series": (_two_series, "series"),
    "missing slice": (fx.make_missing_slice, "missing"),
    "duplicate slice": (fx.make_duplicate_slice, "duplicate"),
    "uneven spacing": (fx.make_uneven_spacing, "uneven"),
    "gantry tilt": (fx.make_tilted, "tilt"),
    "truncated file": (fx.make_truncated, ""),
    "NaN/Inf NIfTI": (_nan_nifti, "NaN or Inf"),
    "4D NIfTI": (_nifti_4d, "4D"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_convert_refuses_bad_input(case: str, tmp_path: Path, run_cli) -> None:
    if case not in ("empty folder", "non-DICOM files", "NaN/Inf NIfTI", "4D NIfTI",
                    "no pixel spacing", "mixed pixel spacing"):
        fx.require_data()
    maker, words = CASES[case]
    src = maker(tmp_path / "input")
    before = fx.tree_hash(src)
    out = tmp_path / "out.nii.gz"
    code, _, err = run_cli("convert", src, "-o", out)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1
    assert str(tmp_path) in err and words.lower() in err.lower()
    assert not out.exists() and not list(tmp_path.glob(".out*"))
    assert fx.tree_hash(src) == before


def test_output_in_missing_folder(tmp_path: Path, run_cli) -> None:
    src = _nifti(tmp_path / "ok", np.zeros((8, 8, 4)))
    code, _, err = run_cli("convert", src, "-o", tmp_path / "nope" / "out.nii.gz")
    assert code == 2 and "does not exist" in err


def test_output_equal_to_input(tmp_path: Path, run_cli) -> None:
    src = _nifti(tmp_path / "ok", np.zeros((8, 8, 4)))
    before = fx.tree_hash(src)
    code, _, err = run_cli("convert", src, "-o", src)
    assert code == 2 and "input" in err
    assert fx.tree_hash(src) == before


def test_output_under_a_read_only_folder(tmp_path: Path, run_cli, read_only) -> None:
    src = _nifti(tmp_path / "ok", np.zeros((8, 8, 4)))
    locked = tmp_path / "locked"
    locked.mkdir()
    read_only(locked)
    code, _, err = run_cli("convert", src, "-o", locked / "out.nii.gz")
    assert code == 2 and "not writable" in err
    assert not list(locked.iterdir())


RASTER = Path(__file__).resolve().parents[1] / "sample_data" / "sat" / (
    "landsat8_LC80200392015216_excerpt.tif")


@pytest.mark.parametrize(("command", "name"), [
    (("enhance", "sat-sr"), "out.png"), (("degrade", "sat-sr"), "out"),
    (("enhance", "cloud-inpaint"), "out.jp2"), (("degrade", "cloud-inpaint"), "out.jpg"),
])
def test_a_raster_output_must_be_named_tif(tmp_path: Path, run_cli, command: tuple[str, str],
                                           name: str) -> None:
    """A GeoTIFF was written to any name given, e.g. ``out.png``, which no viewer opens."""
    out = tmp_path / name
    code, _, err = run_cli(*command, RASTER, "-o", out, "--quiet")
    assert code == 2 and err.strip().endswith("writes GeoTIFF; name the output .tif or .tiff")
    assert len(err.strip().splitlines()) == 1 and not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_batch_names_a_raster_output_tif_whatever_the_input() -> None:
    from suite.plugins import get_domain

    sat = get_domain("sat-sr")
    assert sat.batch_output_name(Path("scene.png")) == "scene.tif"
    assert sat.batch_output_name(Path("scene.TIF")) == "scene.TIF"
    assert get_domain("cloud-inpaint").batch_output_name(Path("b.jp2")) == "b.tif"
    # a multi-frame CT file is written as a series folder, which a ".dcm" name would refuse
    assert get_domain("ct-denoise").batch_output_name(Path("enhanced.dcm")) == "enhanced"
    assert get_domain("ct-denoise").batch_output_name(Path("v.nii.gz")) == "v.nii.gz"


def test_a_dicomdir_file_names_the_way_to_read_its_export(tmp_path: Path, run_cli) -> None:
    index = tmp_path / "DICOMDIR"
    index.write_bytes(b"\0" * 128 + b"DICM")
    code, _, err = run_cli("enhance", "ct-denoise", index, "-o", tmp_path / "o.nii.gz")
    assert code == 2 and "DICOMDIR index" in err and "--recursive" in err
    assert not (tmp_path / "o.nii.gz").exists()
