"""MRI SR domain: slice-profile geometry, degrade/enhance round trips, refusals, adapt, demo."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

import domains.mri_sr as mri_sr
from domains.mri_sr.geometry import (
    cubic_upsample,
    slice_profile_matrix,
    sr_affine,
    sr_positions,
    thick_affine,
    thick_slices,
)
from domains.mri_sr.metrics import sr_metrics
from domains.mri_sr.train import coarse_copies
from suite.models import create_model
from suite.weights import load_state, save_weights

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data" / "mri" / "stroke_t1_excerpt.nii.gz"
Cli = Callable[..., tuple[int, str, str]]


def _digest(path: Path) -> str:
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    return hashlib.sha256(b"".join(f.read_bytes() for f in files if f.is_file())).hexdigest()


@pytest.fixture
def tiny_weights(tmp_path: Path) -> Path:
    """A small untrained 2D residual U-Net with a card: tests the pipeline, not the quality."""
    args = {"spatial_dims": 2, "in_channels": 1, "out_channels": 1, "channels": [4, 8],
            "residual": True, "backend": "lean"}
    card = {"domain": "mri-sr", "architecture": "unet", "arguments": args,
            "normalization": {}, "training": {}, "validation": {}}
    return save_weights(tmp_path / "tiny.safetensors", create_model("unet", **args), card)


@pytest.fixture
def thick(tmp_path: Path, run_cli: Cli) -> Path:
    """The bundled excerpt degraded to 4 mm slices along axis 2."""
    out = tmp_path / "thick.nii.gz"
    code, _, err = run_cli("degrade", "mri-sr", SAMPLE, "-o", out, "--scale", "4", "--axis", "2")
    assert code == 0, err
    return out


@pytest.mark.parametrize("profile", ["gaussian", "box"])
@pytest.mark.parametrize("scale", [2.0, 2.5, 4.0])
def test_profile_rows_are_normalized_and_centred(profile: str, scale: float) -> None:
    m = slice_profile_matrix(40, scale, profile)  # type: ignore[arg-type]
    assert m.shape == (int(40 // scale), 40)
    np.testing.assert_allclose(m.sum(1), 1.0)
    centres = m @ np.arange(40)
    inner = slice(2, -2)  # rows near the ends lose a little of their Gaussian tail
    expected = np.arange(m.shape[0]) * scale + (scale - 1) / 2
    # a box edge cutting a voxel moves its discrete centroid by < 0.1 voxel
    tol = 1e-3 if profile == "gaussian" or scale % 1 == 0 else 0.1
    np.testing.assert_allclose(centres[inner], expected[inner], atol=tol)


def test_box_profile_at_integer_scale_is_the_slab_mean() -> None:
    x = np.random.default_rng(0).random((3, 4, 16)).astype(np.float32)
    got = thick_slices(x, 2, 4.0, "box")
    np.testing.assert_allclose(got, x.reshape(3, 4, 4, 4).mean(-1), rtol=1e-5)


def test_thin_grid_lands_on_the_original_slices() -> None:
    # thick slab j is centred on j s + (s - 1) / 2, so thin slice k maps back to index k
    for scale in (2.0, 3.0, 4.0):
        hr_index = sr_positions(10, scale) * scale + (scale - 1) / 2
        np.testing.assert_allclose(hr_index, np.arange(round(10 * scale)), atol=1e-9)
    affine = np.diag([0.9, 0.9, 1.0, 1.0])
    affine[:3, 3] = [-40, 12, 7]
    np.testing.assert_allclose(sr_affine(thick_affine(affine, 2, 4.0), 2, 9, 4.0), affine)


def test_cubic_upsample_reproduces_a_linear_ramp() -> None:
    ramp = np.broadcast_to(np.arange(8.0), (2, 3, 8)).astype(np.float32)
    up = cubic_upsample(ramp, 2, 2.0)
    inside = slice(1, -1)  # the two outer thin slices are clamped to the edge
    np.testing.assert_allclose(up[0, 0, inside], sr_positions(8, 2.0)[inside], atol=1e-5)


def test_degrade_writes_thick_slices_with_an_honest_affine(thick: Path, tmp_path: Path,
                                                         run_cli: Cli) -> None:
    src, out = nib.load(SAMPLE), nib.load(thick)
    assert out.shape == (80, 96, 12)
    np.testing.assert_allclose(out.header.get_zooms()[2], 4.0, rtol=1e-5)
    # slab 0 covers source slices 0..3: its centre is source index 1.5
    centre = src.affine @ [0, 0, 1.5, 1]
    np.testing.assert_allclose(out.affine @ [0, 0, 0, 1], centre, atol=1e-4)
    noisy = tmp_path / "noisy.nii.gz"
    before = _digest(SAMPLE)
    code, _, err = run_cli("degrade", "mri-sr", SAMPLE, "-o", noisy, "--scale", "3", "--axis",
                           "2", "--profile", "box", "--kspace", "--noise", "0.03", "--seed", "1")
    assert code == 0, err
    assert _digest(SAMPLE) == before
    clean = thick_slices(np.asarray(src.dataobj, np.float32), 2, 3.0, "box")
    diff = np.asarray(nib.load(noisy).dataobj) - clean
    assert 1.0 < float(diff.std()) < 20.0  # noise and ringing were added, not a new image


def test_enhance_overlays_the_input_and_restores_the_grid(thick: Path, tmp_path: Path,
                                                         tiny_weights: Path,
                                                         run_cli: Cli) -> None:
    out = tmp_path / "sr.nii.gz"
    code, _, err = run_cli("enhance", "mri-sr", thick, "-o", out, "--scale", "4",
                           "--weights", tiny_weights)
    assert code == 0, err
    img, src = nib.load(out), nib.load(SAMPLE)
    assert img.shape == (80, 96, 48)
    np.testing.assert_allclose(img.affine, src.affine, atol=1e-4)
    # first/last thin voxels' outer faces coincide with the thick volume's outer faces
    t = nib.load(thick).affine
    np.testing.assert_allclose(img.affine @ [0, 0, -0.5, 1], t @ [0, 0, -0.5, 1], atol=1e-4)
    np.testing.assert_allclose(img.affine @ [0, 0, 47.5, 1], t @ [0, 0, 11.5, 1], atol=1e-4)
    # a magnitude image has no negative signal: the splines' overshoot is not written
    assert float(np.asarray(nib.load(thick).dataobj).min()) >= 0
    assert float(np.asarray(img.dataobj).min()) >= 0


def test_cubic_fallback_is_labelled(thick: Path, tmp_path: Path, run_cli: Cli,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mri_sr, "WEIGHTS", tmp_path / "none.safetensors")
    code, out, err = run_cli("enhance", "mri-sr", thick, "-o", tmp_path / "c.nii.gz",
                             "--scale", "4")
    assert code == 0 and "CUBIC" in err and "cubic B-spline fallback" in out + err


def test_adapt_runs_within_its_step_budget(thick: Path, tmp_path: Path, tiny_weights: Path,
                                           run_cli: Cli) -> None:
    out = tmp_path / "adapt.nii.gz"
    code, stdout, err = run_cli("enhance", "mri-sr", thick, "-o", out, "--scale", "4",
                                "--weights", tiny_weights, "--adapt", "--adapt-steps", "2")
    assert code == 0, err
    assert "self-adapted" in stdout + err and nib.load(out).shape == (80, 96, 48)


def _nan_volume(tmp_path: Path) -> Path:
    data = np.asarray(nib.load(SAMPLE).dataobj, np.float32)
    data[5, 5, 5] = np.nan
    path = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([1.0, 1.0, 4.0, 1.0])), path)
    return path


def _four_d(tmp_path: Path) -> Path:
    path = tmp_path / "four_d.nii.gz"
    data = np.random.default_rng(0).random((16, 16, 8, 2)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.diag([1.0, 1.0, 4.0, 1.0])), path)
    return path


def _ct_like(tmp_path: Path) -> Path:
    """The MR sample shifted into Hounsfield-like values (air at -1000), thick slices."""
    data = np.asarray(nib.load(SAMPLE).dataobj, np.float32)
    path = tmp_path / "ct_like.nii.gz"
    nib.save(nib.Nifti1Image(data * 4 - 1000, np.diag([1.0, 1.0, 4.0, 1.0])), path)
    return path


@pytest.mark.parametrize("case", ["4d", "scale_low", "scale_huge", "isotropic", "nan", "dicom",
                                  "ct_series", "ct_values"])
def test_bad_inputs_exit_2_with_one_line_and_write_nothing(case: str, thick: Path,
                                                           tmp_path: Path, run_cli: Cli) -> None:
    src, scale, out = thick, "4", tmp_path / "out.nii.gz"
    expect = {"4d": "--volume", "scale_low": "(1, 8]", "scale_huge": "(1, 8]",
              "isotropic": "near-isotropic", "nan": "NaN", "dicom": "needs a DICOM input",
              "ct_series": "modality is CT, not MR", "ct_values": "like air in CT"}[case]
    if case == "4d":
        src = _four_d(tmp_path)
    elif case == "isotropic":
        src = SAMPLE
    elif case == "nan":
        src = _nan_volume(tmp_path)
    elif case == "dicom":
        out = tmp_path / "series_folder"
    elif case == "ct_series":
        src = REPO / "sample_data" / "ct" / "abdomen_ct_dicom"
    elif case == "ct_values":
        src = _ct_like(tmp_path)
    scale = {"scale_low": "0.5", "scale_huge": "100"}.get(case, scale)
    before = _digest(src)
    # an isotropic thin volume is what degrade is for (its own test below)
    for command in ("enhance",) if case == "isotropic" else ("enhance", "degrade"):
        code, _, err = run_cli(command, "mri-sr", src, "-o", out, "--scale", scale)
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1 and expect in err
        assert not out.exists() and _digest(src) == before
        assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []


def test_degrade_thickens_an_isotropic_volume_along_its_head_foot_axis(
        tmp_path: Path, run_cli: Cli) -> None:
    """``suite degrade mri-sr thin.nii.gz`` as the docs give it failed on every isotropic
    thin volume: ``--axis auto`` refused to guess."""
    data = np.asarray(nib.load(SAMPLE).dataobj, np.float32)
    for name, affine, axis in (("axial", np.eye(4), 2),
                               ("sagittal", np.array([[0, 0, 1, 0], [0, 1, 0, 0],
                                                      [1, 0, 0, 0], [0, 0, 0, 1.0]]), 0)):
        src, out = tmp_path / f"{name}.nii.gz", tmp_path / f"{name}_thick.nii.gz"
        nib.save(nib.Nifti1Image(data, affine), src)
        code, _, err = run_cli("degrade", "mri-sr", src, "-o", out, "--scale", "4")
        assert code == 0, err
        assert f"axis={axis}" in err  # the summary line names the axis chosen
        assert nib.load(out).shape[axis] == data.shape[axis] // 4


def test_batch_over_a_folder_of_nifti_volumes(thick: Path, tmp_path: Path, run_cli: Cli,
                                              tiny_weights: Path) -> None:
    """A folder of NIfTI volumes (with a BIDS sidecar) is its volumes, not one DICOM series;
    every item failed before ("no DICOM files", then a check that read the batch's folder)."""
    folder = tmp_path / "anat"
    folder.mkdir()
    for name in ("sub-01_T1w.nii.gz", "sub-02_T1w.nii.gz"):
        shutil.copy(thick, folder / name)
    (folder / "sub-01_T1w.json").write_text("{}")
    out = tmp_path / "out"
    code, _, err = run_cli("batch", "mri-sr", folder, "-o", out, "--scale", "4", "--axis", "2",
                           "--weights", tiny_weights, "--workers", "1", "--quiet")
    assert code == 0, err
    for name in ("sub-01_T1w.nii.gz", "sub-02_T1w.nii.gz"):
        assert nib.load(out / name).shape[2] == 4 * nib.load(thick).shape[2]


def test_force_runs_on_ct_like_values(tmp_path: Path, run_cli: Cli, tiny_weights: Path) -> None:
    out = tmp_path / "forced.nii.gz"
    code, _, err = run_cli("enhance", "mri-sr", _ct_like(tmp_path), "-o", out, "--scale", "2",
                           "--weights", tiny_weights, "--force")
    assert code == 0, err
    assert nib.load(out).shape == (80, 96, 96)


def test_4d_with_a_chosen_volume_is_accepted(tmp_path: Path, run_cli: Cli) -> None:
    out = tmp_path / "one.nii.gz"
    code, _, err = run_cli("degrade", "mri-sr", _four_d(tmp_path), "-o", out, "--scale", "2",
                           "--axis", "0", "--volume", "1")
    assert code == 0, err
    assert nib.load(out).shape == (8, 16, 8)


def test_metrics_convention() -> None:
    ref = np.asarray(nib.load(SAMPLE).dataobj, np.float32)
    same = sr_metrics(ref, ref, 2, 4.0)
    assert same["psnr_masked"] == float("inf") and same["ssim3d_bbox"] == pytest.approx(1.0)
    blurred = cubic_upsample(thick_slices(ref, 2, 4.0), 2, 4.0)
    worse = sr_metrics(blurred, ref, 2, 4.0)
    assert worse["psnr_masked"] < 40 and worse["ssim3d_bbox"] < 0.99
    assert worse["hf_error_db"] > same["hf_error_db"]


def test_evaluate_cli(thick: Path, tmp_path: Path, run_cli: Cli) -> None:
    code, out, err = run_cli("evaluate", "mri-sr", "--pred", SAMPLE, "--ref", SAMPLE)
    assert code == 0 and "psnr_masked" in out, err
    code, _, err = run_cli("evaluate", "mri-sr", "--pred", thick, "--ref", SAMPLE)
    assert code == 2 and "affines differ" in err
    # the same array 50 mm away was scored as a perfect match (inf dB)
    src = nib.load(SAMPLE)
    moved = src.affine.copy()
    moved[:3, 3] += 50
    away = tmp_path / "away.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(src.dataobj), moved), away)
    code, out, err = run_cli("evaluate", "mri-sr", "--pred", away, "--ref", SAMPLE)
    assert code == 2 and "away.nii.gz" in err and "grid" in err and out == ""


def test_evaluate_compares_on_the_common_grid(tmp_path: Path, run_cli: Cli) -> None:
    """A restored copy with fewer slices than its reference is scored on the shared voxels."""
    src = nib.load(SAMPLE)
    data = np.asarray(src.dataobj, dtype=np.float32)
    part = tmp_path / "part.nii.gz"  # slices 3..40 of the reference, placed where they lie
    nib.save(nib.Nifti1Image(data[..., 3:41] * 0.9, src.affine @ _shift(3)), part)
    code, _, err = run_cli("evaluate", "mri-sr", "--pred", part, "--ref", SAMPLE,
                             "--json", tmp_path / "m.json")
    assert code == 0, err
    got = json.loads((tmp_path / "m.json").read_text())
    expected = sr_metrics(data[..., 3:41] * 0.9, data[..., 3:41])
    assert got["psnr_masked"] == pytest.approx(expected["psnr_masked"], abs=1e-3)
    shifted = tmp_path / "shifted.nii.gz"  # half a voxel off the grid: refused
    nib.save(nib.Nifti1Image(data[..., 3:41], src.affine @ _shift(3.5)), shifted)
    code, _, err = run_cli("evaluate", "mri-sr", "--pred", shifted, "--ref", SAMPLE)
    assert code == 2 and "grid" in err


def _shift(k: float) -> np.ndarray:
    """Voxel-space translation by ``k`` along axis 2."""
    m = np.eye(4)
    m[2, 3] = k
    return m


def test_demo_makes_pictures_and_metrics(tmp_path: Path) -> None:
    import argparse

    items = mri_sr.DOMAIN.demo(tmp_path, argparse.Namespace())
    assert items and all(p.is_file() for p in (items[0].before_png, items[0].after_png))
    assert items[0].metrics["sr_psnr_masked"] > 20.0


def _thick_dicom_series(tmp_path: Path, thick: Path) -> Path:
    """The thick NIfTI as an MR DICOM series (pydicom's MR_small header as the template)."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    data = np.asarray(nib.load(thick).dataobj, np.float32)
    spacing = nib.load(thick).header.get_zooms()[:3]
    folder = tmp_path / "thick_series"
    folder.mkdir()
    template = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    series = generate_uid()
    for k in range(data.shape[2]):
        ds = template.copy()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SeriesInstanceUID, ds.SOPInstanceUID = series, generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.Columns, ds.Rows = data.shape[0], data.shape[1]
        ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0.0, 0.0, float(spacing[2]) * k]
        ds.SliceThickness = float(spacing[2])
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = np.round(data[:, :, k].T).astype("<i2").tobytes()
        ds.save_as(folder / f"s{k:03d}.dcm", enforce_file_format=True)
    return folder


def test_dicom_series_in_dicom_series_out(thick: Path, tmp_path: Path, run_cli: Cli,
                                          tiny_weights: Path) -> None:
    import pydicom

    from suite.io.volume import read_volume

    series = _thick_dicom_series(tmp_path, thick)
    before = _digest(next(series.iterdir()))
    as_nifti, as_dicom = tmp_path / "sr.nii.gz", tmp_path / "sr_series"
    for out in (as_nifti, as_dicom):
        code, _, err = run_cli("--quiet", "enhance", "mri-sr", series, "-o", out, "--scale", "4",
                               "--weights", tiny_weights)
        assert code == 0, err
    ref, got = read_volume(as_nifti), read_volume(as_dicom)
    slices = len(list(series.iterdir()))
    assert got.data.shape == ref.data.shape and ref.data.shape[2] > 4 * slices - 4
    assert np.abs(got.meta.affine - ref.meta.affine).max() < 1e-3
    step = (ref.data.max() - ref.data.min()) / 65535  # the uint16 rescale step
    assert np.abs(got.data - ref.data).max() <= 0.5 * step + 1e-3
    first = pydicom.dcmread(sorted(as_dicom.iterdir())[0])
    source = pydicom.dcmread(sorted(series.iterdir())[0])
    assert first.StudyInstanceUID == source.StudyInstanceUID and first.Modality == "MR"
    assert float(first.SliceThickness) == pytest.approx(float(source.SliceThickness) / 4)
    assert "DERIVED" in first.ImageType and _digest(next(series.iterdir())) == before



def test_coarse_copies_average_blocks() -> None:
    data = np.arange(5 * 6 * 7, dtype=np.float32).reshape(5, 6, 7)
    same, half = coarse_copies([data], [1, 2])
    assert np.array_equal(same, data)
    assert half.shape == (2, 3, 3)
    assert half[1, 2, 0] == pytest.approx(data[2:4, 4:6, 0:2].mean())


def test_train_fine_tunes_from_init_weights_on_coarse_copies(
        tiny_weights: Path, tmp_path: Path, run_cli: Cli) -> None:
    out = tmp_path / "run"
    code, _, err = run_cli("train", "mri-sr", "--data", SAMPLE, "--out", out, "--quiet",
                           "--set", "train.steps=0", "--set", "model.channels=[4,8]",
                           "--set", f"data.init={tiny_weights}", "--set", "data.coarse=[1,2]",
                           "--device", "cpu")
    assert code == 0, err
    card = json.loads((out / "mri_sr.json").read_text())
    assert card["training"]["init"] == str(tiny_weights)
    assert "block-averaged by [1, 2]" in card["training"]["pairs"]
    # With no steps the saved weights are the init weights, so the init really was loaded.
    saved, start = load_state(out / "mri_sr.safetensors"), load_state(tiny_weights)
    assert saved.keys() == start.keys()
    assert all(torch.equal(saved[k], start[k]) for k in saved)


def test_a_runtime_the_domain_does_not_run_is_refused(thick: Path, tmp_path: Path,
                                                      run_cli: Cli) -> None:
    out = tmp_path / "out.nii.gz"
    code, _, err = run_cli("enhance", "mri-sr", thick, "-o", out, "--runtime", "torch-int8")
    assert code == 2 and "mri-sr runs on torch, torch-bf16 only" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_bf16_runtime_is_close_to_fp32_with_the_shipped_weights(thick: Path, tmp_path: Path,
                                                                run_cli: Cli) -> None:
    outs = {}
    for runtime in ("torch", "torch-bf16"):
        outs[runtime] = tmp_path / f"{runtime}.nii.gz"
        code, _, err = run_cli("enhance", "mri-sr", thick, "-o", outs[runtime], "--scale", "4",
                               "--runtime", runtime, "--quiet")
        assert code == 0, err
    fp32, bf16 = (np.asarray(nib.load(outs[r]).dataobj, np.float32) for r in outs)
    scale = np.percentile(fp32[fp32 > 0], 99.5)
    difference = np.abs(bf16 - fp32) / scale
    assert 0 < difference.mean() < 5e-3 and difference.max() < 0.05


def test_batch_without_a_scale_is_refused_before_it_starts(thick: Path, tmp_path: Path,
                                                            run_cli: Cli) -> None:
    """The cluster started and every item failed on its own with the same message."""
    out = tmp_path / "out"
    for extra in ([], ["--scale", "0.5"]):
        code, _, err = run_cli("batch", "mri-sr", thick, "-o", out, "--quiet", *extra)
        assert code == 2 and "--scale" in err and len(err.strip().splitlines()) == 1
        assert not out.exists()


def test_super_resolve_refuses_what_a_script_may_pass() -> None:
    from domains.mri_sr.sr import super_resolve
    from suite.errors import InputError, ShapeError, UsageError

    data = np.random.default_rng(0).random((8, 8, 6)).astype(np.float32)
    with pytest.raises(UsageError, match="axis must be 0, 1 or 2"):
        super_resolve(None, data, 3, 2.0)
    with pytest.raises(UsageError, match="scale must be above 1"):
        super_resolve(None, data, 2, 0.5)
    with pytest.raises(ShapeError):
        super_resolve(None, data[..., 0], 1, 2.0)
    data[1, 1, 1] = np.inf
    with pytest.raises(InputError, match="1 of 384 voxels are NaN or Inf"):
        super_resolve(None, data, 2, 2.0)
