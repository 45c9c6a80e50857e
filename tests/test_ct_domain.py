"""CT domain: low-dose simulation, refusals, enhance round trip with metadata, evaluate."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch

from domains.ct_denoise.lowdose import simulate_low_dose, soft_tissue_mask
from domains.ct_denoise.metrics import ct_metrics
from domains.ct_denoise.volumes import denoise, to_axial
from suite.errors import InputError, UsageError
from suite.io.volume import read_volume
from suite.models import create_model
from suite.weights import save_weights

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data" / "ct" / "abdomen_ct_dicom"


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def sample_hu() -> np.ndarray:
    """The central 256x256 of the bundled slices: the body, at a quarter of the cost."""
    return np.ascontiguousarray(read_volume(SAMPLE).data[128:384, 128:384])


@pytest.fixture
def tiny_weights(tmp_path: Path) -> Path:
    """A small untrained residual U-Net with a full card: the pipeline, not the quality."""
    args = {"spatial_dims": 3, "in_channels": 1, "out_channels": 1, "channels": [4, 8],
            "residual": True, "backend": "lean"}
    card = {"domain": "ct-denoise", "architecture": "unet", "arguments": args,
            "normalization": {"input": "HU / 1000"}, "training": {}, "validation": {},
            "inference": {"patch": [64, 64, 8], "overlap": [8, 8, 2]}}
    torch.manual_seed(0)  # unseeded, the int8 test's error bound failed for some draws
    return save_weights(tmp_path / "tiny.safetensors", create_model("unet", **args), card)


def test_teacher_targets_blend_the_teachers_output_with_the_clean_volume(
        tiny_weights: Path) -> None:
    from domains.ct_denoise.pipeline import load_ct_model
    from domains.ct_denoise.train import teacher_targets

    rng = np.random.default_rng(0)
    clean = [rng.normal(0, 0.1, (1, 64, 64, 8)).astype(np.float32)]
    noisy = [c + rng.normal(0, 0.05, c.shape).astype(np.float32) for c in clean]
    model, tiling = load_ct_model(tiny_weights, device="cpu")
    taught = denoise(model, noisy[0][0] * 1000, tiling)[None] / 1000
    assert not np.allclose(taught, clean[0], atol=1e-3)
    for mix, expected in ((0.0, clean[0]), (1.0, taught), (0.25, 0.25 * taught + 0.75 * clean[0])):
        out = teacher_targets(noisy, clean, tiny_weights, mix, "cpu")
        np.testing.assert_allclose(out[0], expected, atol=1e-6)
    with pytest.raises(UsageError, match="teacher_mix"):
        teacher_targets(noisy, clean, tiny_weights, 1.5, "cpu")


def test_simulated_noise_hits_the_requested_level(sample_hu: np.ndarray) -> None:
    vol = sample_hu[:, :, 3:5]
    for target in (35.0, 75.0):
        result = simulate_low_dose(vol, 0.977, 2, noise_hu=target, seed=1)
        assert abs(result.added_noise_hu - target) / target < 0.15
    low = simulate_low_dose(vol, 0.977, 2, noise_hu=35.0, seed=1)
    high = simulate_low_dose(vol, 0.977, 2, noise_hu=75.0, seed=1)
    assert high.photons < low.photons


def test_simulation_adds_noise_only_and_keeps_air_and_mean(sample_hu: np.ndarray) -> None:
    vol = sample_hu[:, :, 4:5]
    result = simulate_low_dose(vol, 0.977, 2, noise_hu=50.0, seed=3)
    mask = soft_tissue_mask(vol[..., 0])
    diff = (result.noisy - vol)[..., 0][mask]
    assert abs(float(diff.mean())) < 5.0  # zero-mean noise, no bias in soft tissue
    assert result.noisy.shape == vol.shape and result.noisy.dtype == np.float32


def test_lower_dose_gives_more_noise(sample_hu: np.ndarray) -> None:
    vol = sample_hu[:, :, 4:5]
    half = simulate_low_dose(vol, 0.977, 2, dose=0.5, seed=0).added_noise_hu
    tenth = simulate_low_dose(vol, 0.977, 2, dose=0.1, seed=0).added_noise_hu
    assert tenth > 2.0 * half


def test_metrics_convention(sample_hu: np.ndarray) -> None:
    ref = sample_hu[:, :, :3]
    noisy = ref + np.random.default_rng(0).normal(0, 40, ref.shape).astype(np.float32)
    clean = ct_metrics(ref, ref)
    worse = ct_metrics(noisy, ref)
    assert clean["psnr_soft"] == float("inf") and clean["ssim_soft"] == pytest.approx(1.0)
    assert worse["psnr_soft"] < worse["psnr_wide"]
    assert worse["noise_hu"] == pytest.approx(40, rel=0.1)


def test_enhance_dicom_to_dicom_keeps_headers(run_cli, tmp_path: Path, tiny_weights: Path) -> None:
    before = _digest(SAMPLE)
    out = tmp_path / "denoised"
    code, _, err = run_cli("--quiet", "enhance", "ct-denoise", SAMPLE, "-o", out,
                           "--weights", tiny_weights)
    assert code == 0, err
    assert _digest(SAMPLE) == before
    src = read_volume(SAMPLE)
    got = read_volume(out)
    assert np.abs(got.meta.affine - src.meta.affine).max() < 1e-3
    first = pydicom.dcmread(sorted(out.iterdir())[0])
    ref = pydicom.dcmread(sorted(SAMPLE.iterdir())[0])
    # the source's study, or one made for the series when the source has none
    assert first.StudyInstanceUID == (ref.StudyInstanceUID or first.StudyInstanceUID) != ""
    assert first.SeriesInstanceUID != ref.SeriesInstanceUID
    assert "DERIVED" in first.ImageType


def test_enhance_to_nifti_and_evaluate(run_cli, tmp_path: Path, tiny_weights: Path) -> None:
    out = tmp_path / "d.nii.gz"
    code, _, err = run_cli("--quiet", "enhance", "ct-denoise", SAMPLE, "-o", out,
                           "--weights", tiny_weights)
    assert code == 0, err
    ref = tmp_path / "ref.nii.gz"
    assert run_cli("--quiet", "convert", SAMPLE, "-o", ref)[0] == 0
    code, text, _ = run_cli("evaluate", "ct-denoise", "--pred", out, "--ref", ref,
                            "--json", tmp_path / "m.json")
    assert code == 0 and "psnr_soft" in text and (tmp_path / "m.json").is_file()


def test_degrade_writes_a_noisier_series(run_cli, tmp_path: Path) -> None:
    out = tmp_path / "low.nii.gz"
    code, _, err = run_cli("--quiet", "degrade", "ct-denoise", SAMPLE, "-o", out,
                           "--noise-hu", "60", "--seed", "2")
    assert code == 0, err
    low = read_volume(out).data
    ref = read_volume(SAMPLE).data
    assert 40 < ct_metrics(low, ref)["noise_hu"] < 80


def _nifti(path: Path, data: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data.astype(np.float32), np.diag([1.0, 1.0, 2.0, 1.0])), path)
    return path


@pytest.mark.parametrize(("kind", "message"), [
    ("unit", "not Hounsfield units"),
    ("flat2d", "3D CT volume"),
    ("raw", "without the -1024 HU rescale intercept"),
])
def test_bad_inputs_exit_2_and_write_nothing(run_cli, tmp_path: Path, tiny_weights: Path,
                                             kind: str, message: str) -> None:
    rng = np.random.default_rng(0)
    data = {"unit": rng.random((32, 32, 8)),
            "flat2d": rng.random((32, 32, 1)) * 2000 - 1000,
            # A HU volume whose conversion dropped the intercept: air 0, soft tissue ~1064.
            "raw": np.where(rng.random((32, 32, 8)) < 0.3, 0.0, 1064.0) + rng.normal(0, 20, (
                32, 32, 8))}[kind]
    src = _nifti(tmp_path / f"{kind}.nii.gz", data)
    out = tmp_path / "out.nii.gz"
    code, _, err = run_cli("enhance", "ct-denoise", src, "-o", out, "--weights", tiny_weights)
    assert code == 2 and message in err and str(src) in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_mr_series_is_refused_unless_forced(run_cli, tmp_path: Path, tiny_weights: Path,
                                            shared_data: Path) -> None:
    mr = shared_data / "mri" / "seg3d_siemens_mr_dicom"
    out = tmp_path / "out.nii.gz"
    code, _, err = run_cli("enhance", "ct-denoise", mr, "-o", out, "--weights", tiny_weights)
    assert code == 2 and "modality is MR" in err and "--force" in err
    assert not out.exists()


def test_missing_slice_is_refused(run_cli, tmp_path: Path, tiny_weights: Path) -> None:
    series = tmp_path / "gap"
    series.mkdir()
    for i, f in enumerate(sorted(SAMPLE.iterdir())):
        if i != 3:
            (series / f.name).write_bytes(f.read_bytes())
    code, _, err = run_cli("enhance", "ct-denoise", series, "-o", tmp_path / "o.nii.gz",
                           "--weights", tiny_weights)
    assert code == 2 and "missing" in err.lower()


def test_parallel_and_cached_simulation_give_the_same_pairs(tmp_path: Path) -> None:
    from domains.ct_denoise.config import CtConfig
    from domains.ct_denoise.train import Axial, simulated_pairs

    rng = np.random.default_rng(0)
    hu = np.full((48, 48, 2), -1000.0, np.float32)
    hu[8:40, 8:40] = 40 + rng.normal(0, 5, (32, 32, 2))
    volumes = [Axial(hu, 2, 1.0)]
    cfg = CtConfig()
    cfg.data.noise_levels_hu, cfg.data.realizations = [30.0, 60.0], 2
    serial, _ = simulated_pairs(volumes, cfg)
    cfg.data.workers, cfg.data.cache = 2, tmp_path / "cache"
    parallel, _ = simulated_pairs(volumes, cfg)
    assert len(list(cfg.data.cache.glob("*.npy"))) == 4
    cached, _ = simulated_pairs(volumes, cfg)
    for a, b, c in zip(serial, parallel, cached, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    assert not np.array_equal(serial[0], serial[1])  # draws differ



def test_level_weights_follow_each_pair_to_its_noise_level() -> None:
    from domains.ct_denoise.config import CtConfig
    from domains.ct_denoise.train import Axial, level_weights, simulated_pairs, spaced_weights

    rng = np.random.default_rng(0)
    hu = np.full((48, 48, 2), -1000.0, np.float32)
    hu[8:40, 8:40] = 40 + rng.normal(0, 5, (32, 32, 2))
    cfg = CtConfig()
    cfg.data.noise_levels_hu, cfg.data.realizations = [20.0, 80.0], 2
    cfg.data.level_weights = [4.0, 1.0]
    inputs, targets = simulated_pairs([Axial(hu, 2, 1.0), Axial(hu[::-1].copy(), 2, 1.0)], cfg)
    weights = level_weights(cfg, len(inputs))
    assert weights is not None and len(weights) == 8
    noise = [float(np.std(a - b)) for a, b in zip(inputs, targets, strict=True)]
    quiet = [n < np.median(noise) for n in noise]
    assert [w == 4.0 for w in weights] == quiet  # the heavier weight is on the quieter pairs
    assert spaced_weights(weights, [1, 2]) == weights + [w for w in weights for _ in range(2)]
    cfg.data.level_weights = None
    assert level_weights(cfg, len(inputs)) is None


@pytest.mark.parametrize(("settings", "needle"), [
    (["--set", "data.level_weights=[1,2]"], "one weight per noise level"),
    (["--set", "data.level_weights=[1,1,-1,1,1]"], "must be finite, >= 0"),
    (["--set", "data.level_weights=[0,0,0,0,0]"], "not all 0"),
    (["--paired", "--set", "data.level_weights=[1,1,1,1,1]"], "paired training has none"),
    (["--set", "data.attenuation_scales=[]"], "scales in (0, 2]"),
    (["--set", "data.attenuation_scales=[1,0]"], "scales in (0, 2]"),
    (["--set", "data.attenuation_scales=[1,0.5]", "--set", "data.realizations=1"],
     "need data.realizations >= 2"),
    (["--paired", "--set", "data.attenuation_scales=[0.5]"], "paired training has none"),
])
def test_bad_simulation_settings_are_refused_before_any_simulation(run_cli, tmp_path: Path,
                                                                   settings: list[str],
                                                                   needle: str) -> None:
    empty = tmp_path / "series"  # exists, holds nothing: reading it would fail differently
    empty.mkdir()
    code, _, err = run_cli("train", "ct-denoise", "--data", empty, "--set", f"data.val={empty}",
                           *settings, "--out", tmp_path / "run")
    assert code == 2 and needle in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_a_smaller_attenuation_scale_gives_finer_noise_at_the_same_level() -> None:
    from skimage.restoration import estimate_sigma

    from domains.ct_denoise.lowdose import calibrate_photons, slice_noise, soft_tissue_mask

    # a wide water ellipse (36 x 18 cm): its lateral views carry far fewer counts than the rest
    x, y = np.mgrid[:128, :128]
    body = ((x - 64) / 60.0) ** 2 + ((y - 64) / 30.0) ** 2 < 1
    hu = np.where(body, 40.0, -1000.0)
    mask = soft_tissue_mask(hu)
    finest = {}
    for scale in (1.0, 0.5):
        photons = calibrate_photons(hu, 3.0, 50.0, attenuation_scale=scale)
        noise = slice_noise(hu, 3.0, photons, np.random.default_rng(1), scale)
        assert abs(noise[mask].std() - 50.0) < 5.0  # the level is what was asked for
        finest[scale] = estimate_sigma(noise[8:120, 38:90]) / noise[mask].std()  # the body
    assert finest[0.5] > 1.2 * finest[1.0], finest  # 0.39 -> 0.55 for this draw


def test_attenuation_scales_cycle_over_draws_and_keep_the_cache_of_scale_one(
        tmp_path: Path) -> None:
    from domains.ct_denoise.config import CtConfig
    from domains.ct_denoise.train import Axial, simulated_pairs

    rng = np.random.default_rng(0)
    hu = np.full((48, 48, 2), -1000.0, np.float32)
    hu[8:40, 8:40] = 40 + rng.normal(0, 5, (32, 32, 2))
    cfg = CtConfig()
    cfg.data.noise_levels_hu, cfg.data.realizations = [30.0], 2
    cfg.data.cache = tmp_path / "cache"
    plain, _ = simulated_pairs([Axial(hu, 2, 1.0)], cfg)
    cfg.data.attenuation_scales = [1.0, 0.5]
    mixed, _ = simulated_pairs([Axial(hu, 2, 1.0)], cfg)
    np.testing.assert_array_equal(mixed[0], plain[0])  # draw 0 keeps scale 1
    assert not np.array_equal(mixed[1], plain[1])  # draw 1 takes 0.5
    assert len(list(cfg.data.cache.glob("*.npy"))) == 3  # scale 1's files were reused


def test_spaced_pairs_keep_every_kth_slice_of_both_sides() -> None:
    from domains.ct_denoise.train import spaced_pairs

    noisy = np.arange(2 * 3 * 5, dtype=np.float32).reshape(1, 2, 3, 5)
    clean = -noisy
    inputs, targets = spaced_pairs([noisy], [clean], [1, 2])
    assert [a.shape[-1] for a in inputs] == [5, 3, 2]
    np.testing.assert_array_equal(inputs[0], noisy)
    np.testing.assert_array_equal(inputs[2], noisy[..., 1::2])
    for a, b in zip(inputs, targets, strict=True):
        np.testing.assert_array_equal(a, -b)  # the pair stays aligned

def _monai_with_residual_units(net: torch.nn.Module) -> bool:
    from monai.networks.nets import UNet

    return isinstance(net.net, UNet) and len(net.net.model[0].conv) == 2


def _lean_options(net: torch.nn.Module) -> bool:
    normed = any(isinstance(m, torch.nn.InstanceNorm3d) for m in net.modules())
    return (net.net.head.kernel_size == (3, 3, 3) and net.net.down[0].kernel_size == (3, 3, 3)
            and normed and hasattr(net.net.enc[0], "proj"))


@pytest.mark.parametrize(("settings", "built"), [
    ({"backend": "monai", "channels": [4, 8, 16], "num_res_units": 2}, _monai_with_residual_units),
    ({"channels": [4, 8], "unshuffle": [2, 2, 2], "resample_kernel": 3, "head_kernel": 3,
      "norm_levels": 1, "residual_levels": 1}, _lean_options),
])
def test_recipe_model_options_build_and_reload(tmp_path: Path, settings: dict, built) -> None:
    from domains.ct_denoise.config import CtConfig
    from domains.ct_denoise.train import build_model, model_arguments
    from suite.weights import load_model

    cfg = CtConfig()
    assert "resample_kernel" not in model_arguments(cfg)  # cards written before the option
    for key, value in settings.items():
        setattr(cfg.model, key, value)
    net = build_model(cfg).eval()
    assert built(net)
    path = save_weights(tmp_path / "m.safetensors", net, {
        "architecture": "unet", "arguments": model_arguments(cfg), "normalization": {},
        "training": {}, "validation": {}})
    loaded, _ = load_model(path)
    x = torch.randn(1, 1, 16, 16, 8)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x), net(x))


def test_bad_model_settings_are_refused_before_reading_data(run_cli, tmp_path: Path,
                                                            tiny_weights: Path) -> None:
    base = ("train", "ct-denoise", "--data", SAMPLE, "--out", tmp_path / "run",
            "--set", f"data.val={SAMPLE}")
    code, _, err = run_cli(*base, "--set", "model.backend=keras")
    assert code == 2 and "backend must be 'lean' or 'monai'" in err
    code, _, err = run_cli(*base, "--set", "model.head_kernel=5")
    assert code == 2 and "head_kernel 1 or 3" in err
    # tiny_weights are 3D U-Net weights of other widths than the recipe's
    code, _, err = run_cli(*base, "--set", f"data.init={tiny_weights}")
    assert code == 2 and "do not fit the recipe's model" in err
    assert not (tmp_path / "run").exists()


def test_enhance_on_torch_int8_is_close_to_fp32(run_cli, tmp_path: Path, tiny_weights: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from domains.ct_denoise import DOMAIN

    monkeypatch.setenv("SUITE_CACHE", str(tmp_path / "cache"))
    # The real hook simulates three dose levels on the sample series (about a minute); the
    # pipeline is what is tested here, so calibrate on clean crops of the same series.
    hu = to_axial(read_volume(SAMPLE)).hu / 1000.0
    monkeypatch.setattr(DOMAIN, "calibration_patches",
                        lambda count: [hu[None, :64, :64, :8].astype(np.float32)] * 2)
    fp32, int8 = _enhance_on(run_cli, tmp_path, tiny_weights, ("torch", "torch-int8"))
    assert len(list((tmp_path / "cache" / "int8").glob("*.pt"))) == 1
    assert 0 < np.abs(fp32 - int8).max() < 20  # HU: quantized, and close


def test_enhance_on_torch_bf16_is_close_to_fp32(run_cli, tmp_path: Path,
                                                tiny_weights: Path) -> None:
    fp32, bf16 = _enhance_on(run_cli, tmp_path, tiny_weights, ("torch", "torch-bf16"))
    assert 0 < np.abs(fp32 - bf16).max() < 20  # HU: rounded, and close


def _enhance_on(run_cli, tmp_path: Path, weights: Path, runtimes: tuple[str, ...]
                ) -> list[np.ndarray]:
    """The sample series enhanced on each runtime, as HU arrays."""
    outs = []
    for runtime in runtimes:
        out = tmp_path / f"{runtime}.nii.gz"
        code, _, err = run_cli("--quiet", "enhance", "ct-denoise", SAMPLE, "-o", out,
                               "--weights", weights, "--runtime", runtime)
        assert code == 0, err
        outs.append(nib.load(out).get_fdata())
    return outs


def test_enhance_on_onnxruntime_matches_torch(run_cli, tmp_path: Path, tiny_weights: Path) -> None:
    pytest.importorskip("onnxruntime")
    torch_hu, onnx_hu = _enhance_on(run_cli, tmp_path, tiny_weights, ("torch", "onnxruntime"))
    assert np.abs(torch_hu - onnx_hu).max() < 0.5  # HU


def test_recorrupted_pairs_straddle_the_input(sample_hu: np.ndarray) -> None:
    from domains.ct_denoise.adapt import recorrupted_pairs
    from domains.ct_denoise.config import AdaptConfig

    vol = sample_hu[64:192, 64:192, :4]
    inputs, targets = recorrupted_pairs(vol, 0.977, 40.0, AdaptConfig(draws=2))
    assert len(inputs) == len(targets) == 2
    for x, y in zip(inputs, targets, strict=True):
        np.testing.assert_allclose((x + y)[0] / 2 * 1000, vol, atol=1e-2)  # y + z and y - z
        z = (x - y)[0] / 2 * 1000
        mask = np.stack([soft_tissue_mask(vol[..., k]) for k in range(vol.shape[-1])], -1)
        assert 25 < z[mask].std() < 60  # the requested 40 HU, measured on a small crop
    assert not np.allclose(inputs[0], inputs[1])  # independent draws


def test_enhance_adapt_fine_tunes_on_the_input(run_cli, tmp_path: Path, tiny_weights: Path,
                                               sample_hu: np.ndarray) -> None:
    low = simulate_low_dose(sample_hu[64:192, 64:192], 0.977, 2, noise_hu=40.0, seed=3).noisy
    src = _nifti(tmp_path / "low.nii.gz", low)
    outs = {}
    for name, extra in (("plain", []), ("adapt", ["--adapt", "--adapt-steps", "3"])):
        outs[name] = tmp_path / f"{name}.nii.gz"
        code, _, err = run_cli("enhance", "ct-denoise", src, "-o", outs[name],
                               "--weights", tiny_weights, *extra)
        assert code == 0, err
    assert "adapt_steps=3" in err and "adapt_noise_hu=" in err
    plain, adapted = (nib.load(outs[k]).get_fdata() for k in ("plain", "adapt"))
    assert plain.shape == adapted.shape and not np.allclose(plain, adapted)
    code, _, err = run_cli("enhance", "ct-denoise", src, "-o", tmp_path / "x.nii.gz",
                           "--weights", tiny_weights, "--adapt", "--runtime", "onnxruntime")
    assert code == 2 and "--adapt" in err and not (tmp_path / "x.nii.gz").exists()


def test_batch_takes_adapt_and_records_it(run_cli, tmp_path: Path, tiny_weights: Path,
                                          sample_hu: np.ndarray) -> None:
    import json

    low = simulate_low_dose(sample_hu[64:192, 64:192], 0.977, 2, noise_hu=40.0, seed=4).noisy
    src = _nifti(tmp_path / "low.nii.gz", low)
    out = tmp_path / "out"
    code, _, err = run_cli("batch", "ct-denoise", src, "-o", out, "--weights", tiny_weights,
                           "--adapt", "--adapt-steps", "2", "--workers", "1", "--quiet")
    assert code == 0, err
    manifest = json.loads((out / "batch_manifest.json").read_text())
    assert manifest["options"]["adapt"] is True and manifest["options"]["adapt_steps"] == 2
    assert [e["status"] for e in manifest["items"].values()] == ["ok"]


def test_shipped_card_records_the_two_shipped_recipes() -> None:
    """The default weights' card must say which YAML made each stage, so a user can rerun them."""
    from domains.ct_denoise.config import CtConfig
    from suite.config import load_config, to_dict
    from suite.weights import read_card

    folder = Path(__file__).resolve().parents[1] / "domains" / "ct_denoise"
    training = read_card(folder / "weights" / "ct_denoise.safetensors")["training"]
    run_only = {"val", "cache", "workers", "init"}  # paths and speed knobs, not the recipe
    defaults = to_dict(CtConfig())  # an older card lacks the fields added since, at defaults
    for yaml_name, recipe in (("spacing.yaml", training["recipe"]),
                              ("default.yaml", training["init_training"]["recipe"])):
        shipped = to_dict(load_config(CtConfig, folder / yaml_name, []))
        for section in ("model", "loss", "data", "train"):  # "adapt" is inference, not training
            for key, value in shipped[section].items():
                if (section == "data" and key in run_only) or key in {"device", "progress"}:
                    continue
                recorded = recipe[section].get(key, defaults[section][key])
                assert str(recorded) == str(value), (yaml_name, section, key)


def test_patches_deeper_than_the_subsampled_pairs_are_refused_before_training() -> None:
    from domains.ct_denoise.config import CtConfig
    from domains.ct_denoise.train import Axial, _check_depth
    from suite.errors import UsageError

    volumes = [Axial(np.zeros((32, 32, 21), np.float32), 2, 1.0)]  # half-series of 11 and 10
    cfg = CtConfig()
    cfg.data.slice_steps = [2]
    cfg.train.patch_schedule = [(0, (32, 32, 8))]
    _check_depth(volumes, cfg)  # 8 <= 10: fine
    cfg.train.patch_schedule = [(0, (32, 32, 8)), (100, (32, 32, 16))]
    with pytest.raises(UsageError, match="slice_steps"):
        _check_depth(volumes, cfg)


def test_deep_folded_network_denoises_a_volume_its_patches_do_not_divide() -> None:
    # The tiler used to fit patches to the patch sizes' common divisor (16), which a 4x4x2 fold
    # feeding a 4-level U-Net (32 in-plane) does not divide: validation stopped with a shape error.
    from domains.ct_denoise.config import ModelConfig
    from domains.ct_denoise.volumes import denoise

    net = create_model("unet", spatial_dims=3, channels=[4, 8, 8, 8], residual=True,
                       unshuffle=[4, 4, 2], channels_last=True)
    cfg = ModelConfig(channels=[4, 8, 8, 8], patch=[128, 128, 16], overlap=[16, 16, 4])
    hu = np.random.default_rng(0).normal(40.0, 20.0, (180, 150, 20)).astype(np.float32)
    out = denoise(net, hu, cfg)
    assert out.shape == hu.shape and np.isfinite(out).all()


def _padded(hu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``hu`` with the corners outside the reconstruction circle set to scanner padding."""
    yy, xx = np.mgrid[: hu.shape[0], : hu.shape[1]]
    centre = (hu.shape[0] - 1) / 2
    outside = (yy - centre) ** 2 + (xx - centre) ** 2 > (0.48 * hu.shape[0]) ** 2
    return np.where(outside[..., None], -3024.0, hu).astype(np.float32), outside


def test_scanner_padding_is_kept_and_denoised_like_air(sample_hu: np.ndarray,
                                                       tiny_weights: Path) -> None:
    from domains.ct_denoise.pipeline import load_ct_model

    model, tiling = load_ct_model(tiny_weights)
    padded, outside = _padded(sample_hu)
    as_air = np.where(outside[..., None], -1024.0, padded).astype(np.float32)
    before = padded.copy()
    out = denoise(model, padded, tiling)
    np.testing.assert_array_equal(padded, before)  # the network reads the caller's array
    np.testing.assert_array_equal(out[outside], padded[outside])  # padding comes back as is
    np.testing.assert_array_equal(out[~outside], denoise(model, as_air, tiling)[~outside])


def test_simulated_low_dose_leaves_padding_alone(sample_hu: np.ndarray) -> None:
    padded, outside = _padded(sample_hu[..., :2])
    noisy = simulate_low_dose(padded, 0.98, 2, noise_hu=50.0, seed=0).noisy
    np.testing.assert_array_equal(noisy[outside], padded[outside])
    assert np.abs(noisy[~outside] - padded[~outside]).mean() > 10  # noise was added inside


def _pair_folder(folder: Path, full: np.ndarray, seed: int, low_name: str = "low") -> Path:
    """A pair folder: ``full.nii.gz`` and a simulated ``low`` dose of it (1 mm pixels)."""
    folder.mkdir(parents=True)
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    low = simulate_low_dose(full, 1.0, 2, noise_hu=60.0, seed=seed).noisy
    nib.save(nib.Nifti1Image(full.astype(np.float32), affine), folder / "full.nii.gz")
    nib.save(nib.Nifti1Image(low, affine), folder / f"{low_name}.nii.gz")
    return folder


TINY_RECIPE = ("--set", "model.channels=[4,8]", "--set", "model.patch=[32,32,8]",
               "--set", "model.overlap=[8,8,2]", "--set", "train.steps=2",
               "--set", "train.batch_size=2", "--set", "train.validate_every=2",
               "--set", "train.checkpoint_every=0", "--set", "data.inplane_bins=[1]",
               "--set", "train.patch_schedule=[]")


def test_paired_training_learns_from_real_pairs_and_says_so(run_cli, tmp_path: Path,
                                                             sample_hu: np.ndarray) -> None:
    crop = sample_hu[64:192, 64:192]
    train_pair = _pair_folder(tmp_path / "patient1", crop, seed=1, low_name="quarter_dose")
    val_pair = _pair_folder(tmp_path / "patient2", crop[::-1].copy(), seed=2)
    code, _, err = run_cli("--quiet", "train", "ct-denoise", "--paired", "--data", train_pair,
                           "--set", f"data.val={val_pair}", "--out", tmp_path / "run",
                           *TINY_RECIPE)
    assert code == 0, err
    card = json.loads((tmp_path / "run" / "ct_denoise.json").read_text())
    assert card["training"]["low_dose"].startswith("real low-dose scans")
    assert card["validation"]["convention"].startswith("held-out low/full-dose pair")
    assert card["validation"]["metrics"]["val_psnr_soft"] > 0
    assert "--set data.paired=true" in card["training"]["command"]  # reproduces the run


def test_paired_training_refuses_incomplete_or_mismatched_pairs(run_cli, tmp_path: Path,
                                                               sample_hu: np.ndarray) -> None:
    crop = sample_hu[64:192, 64:192]
    missing = _pair_folder(tmp_path / "a", crop, seed=1)
    (missing / "full.nii.gz").unlink()
    mismatched = _pair_folder(tmp_path / "b", crop, seed=1)
    shifted = np.diag([1.0, 1.0, 2.0, 1.0])
    shifted[2, 3] = 2.0  # the same shape one slice further along: not the same voxels
    nib.save(nib.Nifti1Image(crop.astype(np.float32), shifted), mismatched / "full.nii.gz")
    for folder, needle in ((missing, "expected one full-dose volume"),
                           (mismatched, "not on one grid")):
        code, _, err = run_cli("train", "ct-denoise", "--paired", "--data", folder,
                               "--set", f"data.val={folder}", "--out", tmp_path / "run")
        assert code == 2 and needle in err and str(folder) in err, err
        assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_frequency_loss_weight_in_the_config_is_used() -> None:
    from domains.ct_denoise.config import CtConfig
    from domains.ct_denoise.train import make_loss

    torch.manual_seed(0)
    target = torch.randn(2, 1, 16, 16, 4) * 0.1
    pred = (target + 0.05 * torch.randn_like(target)).requires_grad_()
    cfg = CtConfig()
    plain = make_loss(cfg)(pred, target)
    cfg.loss.frequency = 0.5
    with_fft = make_loss(cfg)(pred, target)
    assert with_fft > plain + 1e-4  # the term is added, not silently ignored
    with_fft.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()


def test_window_l1_weighs_only_voxels_whose_reference_is_soft_tissue() -> None:
    from domains.ct_denoise.config import HU_SCALE, CtConfig
    from domains.ct_denoise.train import make_loss

    target = torch.full((1, 1, 8, 8, 2), 40.0 / HU_SCALE)  # soft tissue
    target[..., 4:, :, :] = -800.0 / HU_SCALE  # lung
    cfg = CtConfig()
    cfg.loss.ssim = 0.0
    err_lung = target.clone()
    err_lung[..., 4:, :, :] += 0.1
    err_tissue = target.clone()
    err_tissue[..., :4, :, :] += 0.1
    plain = [make_loss(cfg)(p, target).item() for p in (err_lung, err_tissue)]
    cfg.loss.window_l1 = 2.0
    weighted = [make_loss(cfg)(p, target).item() for p in (err_lung, err_tissue)]
    assert plain[0] == pytest.approx(plain[1])
    assert weighted[0] == pytest.approx(plain[0])  # lung error: no extra weight
    assert weighted[1] == pytest.approx(3 * plain[1])  # tissue error: 1 + 2 times
    pred = err_tissue.clone().fill_(300.0 / HU_SCALE).requires_grad_()  # pushed out of window
    make_loss(cfg)(pred, target).backward()
    assert pred.grad is not None and pred.grad[..., :4, :, :].abs().min() > 0


def test_noise_channel_networks_get_the_volumes_own_noise_level(sample_hu: np.ndarray) -> None:
    from domains.ct_denoise.config import NOISE_SCALE, CtConfig
    from domains.ct_denoise.lowdose import volume_noise_hu
    from domains.ct_denoise.train import build_model
    from domains.ct_denoise.volumes import with_noise_channel

    cfg = CtConfig()
    cfg.model.channels, cfg.model.unshuffle, cfg.model.noise_channel = [4, 8], [2, 2, 2], True
    cfg.model.patch, cfg.model.overlap = [64, 64, 8], [8, 8, 2]
    net = build_model(cfg).eval()
    seen: list[torch.Tensor] = []

    class Spy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net, self.multiple = net, net.multiple

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x[:, 1])
            return self.net(x)

    clean = sample_hu[..., :8]
    noisy = clean + np.random.default_rng(0).normal(0, 60, clean.shape).astype(np.float32)
    out = denoise(Spy(), noisy, cfg.model)
    level = volume_noise_hu(noisy) / NOISE_SCALE
    assert out.shape == noisy.shape and level > volume_noise_hu(clean) / NOISE_SCALE
    assert len(seen) > 1  # several patches, one level: neighbouring patches agree
    assert all(torch.allclose(s, torch.full_like(s, level)) for s in seen)
    pair = with_noise_channel(noisy[None] / 1000.0)
    assert pair.shape == (2, *noisy.shape) and np.allclose(pair[1], level)


def test_noise_channel_recipe_trains_then_enhances_on_every_runtime_and_adapts(
        run_cli, tmp_path: Path, sample_hu: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnxruntime")
    from domains.ct_denoise import DOMAIN

    crop = sample_hu[64:192, 64:192]
    torch.manual_seed(0)  # the network is built from the global generator (see tiny_weights)
    code, _, err = run_cli("--quiet", "train", "ct-denoise", "--paired", "--data",
                           _pair_folder(tmp_path / "p1", crop, seed=1), "--set",
                           f"data.val={_pair_folder(tmp_path / 'p2', crop[::-1].copy(), seed=2)}",
                           "--out", tmp_path / "run", *TINY_RECIPE, "--set",
                           "model.unshuffle=[2,2,2]", "--set", "model.noise_channel=true")
    assert code == 0, err
    weights = tmp_path / "run" / "ct_denoise.safetensors"
    card = json.loads(weights.with_suffix(".json").read_text())
    assert card["arguments"]["in_channels"] == 2 and card["arguments"]["condition_channels"] == 1
    monkeypatch.setenv("SUITE_CACHE", str(tmp_path / "cache"))
    hu = to_axial(read_volume(SAMPLE)).hu / 1000.0  # clean crops: see the int8 test
    monkeypatch.setattr(DOMAIN, "calibration_patches",
                        lambda count: [hu[None, :64, :64, :8].astype(np.float32)] * 2)
    fp32, *others = _enhance_on(run_cli, tmp_path, weights,
                                ("torch", "torch-bf16", "torch-int8", "onnxruntime"))
    errors = [float(np.abs(fp32 - other).max()) for other in others]
    assert max(errors) < 20, errors  # HU: bf16, int8, ONNX
    code, _, err = run_cli("--quiet", "enhance", "ct-denoise", SAMPLE, "-o",
                           tmp_path / "adapted.nii.gz", "--weights", weights, "--adapt",
                           "--adapt-steps", "2")
    assert code == 0, err


def test_evaluate_refuses_a_reference_that_is_not_ct(run_cli) -> None:
    """HU-window metrics of an MR volume were printed as if they meant something."""
    mr = Path(__file__).resolve().parents[1] / "sample_data" / "mri" / "stroke_t1_excerpt.nii.gz"
    code, out, err = run_cli("evaluate", "ct-denoise", "--pred", mr, "--ref", mr)
    assert code == 2 and "stroke_t1_excerpt.nii.gz" in err and "Hounsfield" in err
    assert len(err.strip().splitlines()) == 1 and out == ""
    code, out, err = run_cli("evaluate", "ct-denoise", "--pred", mr, "--ref", mr, "--force")
    assert code == 0 and "psnr" in out


def test_evaluate_refuses_a_prediction_on_another_grid(run_cli, tmp_path: Path) -> None:
    """Only the shapes were compared: the same voxels flipped, or moved, were scored as a
    poor (or a perfect) denoising."""
    vol = read_volume(SAMPLE)
    ref = tmp_path / "ref.nii.gz"
    nib.save(nib.Nifti1Image(vol.data, vol.meta.affine), ref)
    moved = vol.meta.affine.copy()
    moved[:3, 3] += 20.0
    pred = tmp_path / "pred.nii.gz"
    nib.save(nib.Nifti1Image(vol.data, moved), pred)
    code, out, err = run_cli("evaluate", "ct-denoise", "--pred", pred, "--ref", ref)
    assert code == 2 and "pred.nii.gz" in err and "another voxel grid" in err and out == ""
    code, out, err = run_cli("evaluate", "ct-denoise", "--pred", SAMPLE, "--ref", ref)
    assert code == 0 and "psnr" in out, err  # the DICOM series and its NIfTI copy: one grid


def test_nan_voxels_from_a_script_are_refused_not_spread() -> None:
    """read_nifti refuses NaN files, but a script may hand its own array to denoise."""
    from domains.ct_denoise.config import ModelConfig

    hu = np.full((32, 32, 8), 40.0, np.float32)
    hu[3, 3, 3] = np.nan
    model = create_model("unet", spatial_dims=3, in_channels=1, out_channels=1,
                         channels=[4, 8], residual=True, backend="lean")
    with pytest.raises(InputError, match="1 of 8192 voxels are NaN or Inf"):
        denoise(model, hu, ModelConfig(patch=(32, 32, 8), overlap=(0, 0, 0)))
