"""Fundus domain: FOV, degradation, baselines, vessel losses, tiling, CLI and bad inputs."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from domains.fundus.classical import BASELINES
from domains.fundus.config import FundusConfig, ModelConfig
from domains.fundus.degrade import degrade_fundus
from domains.fundus.fov import estimate_fov
from domains.fundus.losses import fundus_loss, soft_cldice, soft_vesselness, vessel_weighted_l1
from domains.fundus.metrics import fundus_metrics
from domains.fundus.model import model_arguments, restore
from domains.fundus.synthetic import synthetic_fundus
from domains.fundus.vessels import vessel_auc, vessel_mask, vesselness
from suite.errors import InputError
from suite.models import create_model
from suite.weights import save_weights

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data" / "fundus" / "retina_700.png"
Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture(scope="module")
def retina() -> tuple[np.ndarray, np.ndarray]:
    """The bundled CC0 retina at 350 px (RGB [0, 1]) and its estimated FOV."""
    img = np.asarray(Image.open(SAMPLE).resize((350, 350)), np.float32) / 255
    return img, estimate_fov(img)


@pytest.fixture(scope="module")
def small_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fundus") / "retina.png"
    Image.open(SAMPLE).resize((256, 256)).save(path)
    return path


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained small network with a full card: tests the pipeline, not the quality."""
    cfg = FundusConfig()
    cfg.model.channels = [4, 8]
    args = model_arguments(cfg)
    card = {"domain": "fundus", "architecture": "unet", "arguments": args,
            "normalization": {}, "training": {}, "validation": {},
            "inference": {"patch": 96, "overlap": 16, "halo": 8}}
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    return save_weights(path, create_model("unet", **args), card)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------- FOV


def test_fov_is_the_disc(retina: tuple[np.ndarray, np.ndarray]) -> None:
    _, fov = retina
    assert 0.6 < fov.mean() < 0.85
    assert fov[175, 175] and not fov[2, 2] and not fov[-3, -3]


def test_fov_refuses_non_fundus_images() -> None:
    rng = np.random.default_rng(0)
    noise = rng.uniform(0, 1, (200, 200, 3)).astype(np.float32)
    grey_square = np.zeros((200, 200, 3), np.float32)
    grey_square[20:180, 30:120] = 0.7  # bright, but a rectangle covering too little
    grey_square[100:180, 120:180] = 0.7
    for img in (noise, grey_square):
        with pytest.raises(InputError, match="no field of view"):
            estimate_fov(img, "x.png")


def _scene(region: np.ndarray) -> np.ndarray:
    """A textured bright region on a black surround."""
    rng = np.random.default_rng(1)
    img = np.zeros((*region.shape, 3), np.float32)
    img[region] = rng.uniform(0.45, 0.75, (int(region.sum()), 3))
    return img


def test_fov_refuses_a_satellite_collar_and_keeps_cut_or_resized_discs() -> None:
    yy, xx = np.mgrid[:300, :400].astype(np.float32)
    u, v = xx - 200, yy - 150
    collar = (np.abs(u + v) < 170) & (np.abs(u - v) < 170)  # a rotated scene's valid region
    with pytest.raises(InputError, match="not round"):
        estimate_fov(_scene(collar), "scene.tif")
    cut_disc = (np.hypot(u, v) < 165) & (np.abs(v) < 105)  # dark bands above and below
    resized = np.hypot(u / 1.4, v) < 120  # a round disc resized to another aspect ratio
    for region in (cut_disc, resized):
        fov = estimate_fov(_scene(region), "photo.png")
        assert (fov & region).sum() / region.sum() > 0.95


# ----------------------------------------------------------------- degradation


def test_degradation_keeps_outside_and_grows_with_severity(
    retina: tuple[np.ndarray, np.ndarray],
) -> None:
    img, fov = retina
    errors = []
    for severity in (0.2, 0.6, 1.0):
        low, _ = degrade_fundus(img, fov, severity, np.random.default_rng(3))
        assert np.array_equal(low[~fov], img[~fov])
        assert low.dtype == np.float32 and 0 <= low.min() and low.max() <= 1
        errors.append(float(np.abs(low - img)[fov].mean()))
    assert errors[0] < errors[1] < errors[2]
    again, _ = degrade_fundus(img, fov, 0.6, np.random.default_rng(3))
    other, _ = degrade_fundus(img, fov, 0.6, np.random.default_rng(4))
    assert np.array_equal(again, degrade_fundus(img, fov, 0.6, np.random.default_rng(3))[0])
    assert not np.array_equal(again, other)


def test_degradation_darkens_the_rim_and_blurs(retina: tuple[np.ndarray, np.ndarray]) -> None:
    img, fov = retina
    low, _ = degrade_fundus(img, fov, 1.0, np.random.default_rng(0))
    yy, xx = np.mgrid[:350, :350]
    r = np.hypot(yy - 175, xx - 175)
    rim, centre = fov & (r > 130), fov & (r < 60)
    ratio = low[..., 0] / np.maximum(img[..., 0], 1e-3)
    assert ratio[rim].mean() < ratio[centre].mean()
    grad = lambda a: np.abs(np.diff(a[..., 1], axis=1))[fov[:, 1:]].mean()  # noqa: E731
    assert grad(low) < grad(img)


# ----------------------------------------------------------------- baselines and metrics


def test_baselines_change_inside_only(retina: tuple[np.ndarray, np.ndarray]) -> None:
    img, fov = retina
    low, _ = degrade_fundus(img, fov, 0.6, np.random.default_rng(0))
    for name, method in BASELINES.items():
        out = method(low, fov)
        assert np.array_equal(out[~fov], low[~fov]), name
        assert np.abs(out - low)[fov].mean() > 1e-3, name
        assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1, name


def test_vessel_auc_is_a_rank_statistic() -> None:
    labels = np.array([[True, True, False, False]])
    fov = np.ones_like(labels)
    assert vessel_auc(np.array([[4.0, 3, 2, 1]]), labels, fov) == 1.0
    assert vessel_auc(np.array([[1.0, 2, 3, 4]]), labels, fov) == 0.0
    assert vessel_auc(np.array([[1.0, 1, 1, 1]]), labels, fov) == 0.5


def test_metrics_reward_the_clean_image(retina: tuple[np.ndarray, np.ndarray]) -> None:
    img, fov = retina
    low, _ = degrade_fundus(img, fov, 0.8, np.random.default_rng(0))
    clean, bad = fundus_metrics(img, img, fov), fundus_metrics(low, img, fov)
    assert clean["psnr_fov"] == float("inf") and clean["ssim_fov"] == pytest.approx(1.0)
    assert bad["psnr_fov"] < 35 and bad["ssim_fov"] < 1 and bad["vessel_auc"] < 1


def test_vesselness_finds_synthetic_vessels() -> None:
    img, fov = synthetic_fundus(256, np.random.default_rng(5))
    vmap = vesselness(img, fov)
    mask = vessel_mask(vmap, fov)
    green = img[..., 1]
    assert green[mask].mean() < green[fov & ~mask].mean()  # vessels are the dark ridges
    assert vmap[~fov].max() == 0


# ----------------------------------------------------------------- losses


def test_vessel_weighted_l1_ignores_outside_and_weights_vessels() -> None:
    torch.manual_seed(0)
    target = torch.rand(1, 3, 32, 32)
    fov = torch.zeros(1, 1, 32, 32)
    fov[..., 4:28, 4:28] = 1
    vessel = torch.zeros(1, 1, 32, 32)
    vessel[..., 10:12, :] = 1
    pred = target.clone()
    pred[..., :2, :] += 0.5  # outside the FOV: no loss
    assert float(vessel_weighted_l1(pred, target, fov, vessel, 4.0)) == 0.0
    on_vessel, off_vessel = target.clone(), target.clone()
    on_vessel[..., 10, 8] += 0.3
    off_vessel[..., 20, 8] += 0.3
    assert vessel_weighted_l1(on_vessel, target, fov, vessel, 4.0) > vessel_weighted_l1(
        off_vessel, target, fov, vessel, 4.0)


def test_soft_cldice_prefers_connected_vessels() -> None:
    img, fov_np = synthetic_fundus(128, np.random.default_rng(2))
    rgb = torch.from_numpy(img.transpose(2, 0, 1))[None]
    fov = torch.from_numpy(fov_np.astype(np.float32))[None, None]
    target = soft_vesselness(rgb)
    broken = rgb.clone()
    broken[..., ::8, :] = rgb.mean()  # cut every vessel every 8 rows
    same = float(soft_cldice(target, target, fov))
    pred = broken.requires_grad_(True)
    loss = soft_cldice(soft_vesselness(pred), target, fov)
    assert float(loss.detach()) > same + 0.05
    loss.backward()
    assert pred.grad is not None and float(pred.grad.abs().sum()) > 0


def test_fundus_loss_without_vessel_terms_is_masked_l1() -> None:
    torch.manual_seed(1)
    pred, target = torch.rand(2, 3, 16, 16), torch.rand(2, 5, 16, 16)
    target[:, 3] = 1.0
    plain = fundus_loss(pred, target, 0.0, 0.0)
    assert float(plain) == pytest.approx(float((pred - target[:, :3]).abs().mean()), rel=1e-5)
    assert float(fundus_loss(pred, target, 4.0, 0.05)) > float(plain)


def test_ridge_term_sees_blurred_vessels_not_a_brightness_offset() -> None:
    img, fov_np = synthetic_fundus(128, np.random.default_rng(3))
    rgb = torch.from_numpy(img.transpose(2, 0, 1))[None]
    fov = torch.from_numpy(fov_np.astype(np.float32))[None, None]
    target = torch.cat([rgb, fov, torch.zeros_like(fov)], dim=1)

    def ridge_part(pred: torch.Tensor) -> float:
        return float(fundus_loss(pred, target, 0.0, 0.0, ridge=1.0)
                     - fundus_loss(pred, target, 0.0, 0.0))

    blurred = torch.nn.functional.avg_pool2d(rgb, 5, 1, 2, count_include_pad=False)
    assert ridge_part(rgb + 0.05) == pytest.approx(0.0, abs=1e-4)
    assert ridge_part(blurred) > 0.01


# ----------------------------------------------------------------- model and tiling


def test_tiled_restoration_has_no_seams(tiny_weights: Path,
                                        retina: tuple[np.ndarray, np.ndarray]) -> None:
    from suite.weights import load_model

    net, _ = load_model(tiny_weights)
    img, fov = retina
    img, fov = img[:224, :224], fov[:224, :224]
    whole = restore(net, img, fov, ModelConfig(patch=224, overlap=0, halo=0))
    tiled = restore(net, img, fov, ModelConfig(patch=64, overlap=16, halo=16))
    # image borders differ (zero context vs the network's own zero padding); seams would
    # sit in the interior, at the tile boundaries (every 48 px)
    inner = np.zeros_like(fov)
    inner[16:-16, 16:-16] = True
    assert np.abs(whole - tiled)[fov & inner].max() < 1e-4
    assert np.array_equal(tiled[~fov], img[~fov])


# ----------------------------------------------------------------- CLI


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif"])
def test_enhance_cli_formats(run_cli: Cli, tmp_path: Path, small_png: Path, tiny_weights: Path,
                             suffix: str) -> None:
    src = tmp_path / f"in{suffix}"
    Image.open(small_png).save(src, dpi=(300, 300))  # cameras record their pixel density
    before = _digest(src)
    out = tmp_path / f"out{suffix}"
    code, _, err = run_cli("enhance", "fundus", src, "-o", out, "--weights", tiny_weights,
                           "--quiet")
    assert code == 0, err
    assert _digest(src) == before
    with Image.open(out) as im:
        result, fmt, dpi = np.asarray(im), im.format, im.info.get("dpi")
    assert result.shape == (256, 256, 3) and result.dtype == np.uint8
    assert fmt == {".png": "PNG", ".jpg": "JPEG", ".tif": "TIFF"}[suffix]
    assert dpi == pytest.approx((300, 300), abs=0.01)


def test_enhance_keeps_16_bit_tiff_and_outside_pixels(run_cli: Cli, tmp_path: Path,
                                                      small_png: Path, tiny_weights: Path) -> None:
    data = (np.asarray(Image.open(small_png), np.uint16) * 257).astype(np.uint16)
    src, out = tmp_path / "in16.tif", tmp_path / "out16.tif"
    tifffile.imwrite(src, data, photometric="rgb")
    fov = estimate_fov(data.astype(np.float32) / 65535)
    code, _, err = run_cli("enhance", "fundus", src, "-o", out, "--weights", tiny_weights)
    assert code == 0, err
    result = tifffile.imread(out)
    assert result.dtype == np.uint16 and result.shape == data.shape
    assert np.array_equal(result[~fov], data[~fov])
    assert "8 bits" not in err
    code, _, err = run_cli("enhance", "fundus", src, "-o", tmp_path / "out8.png", "--weights",
                           tiny_weights, "--quiet")  # said when it happens, not found later
    assert code == 0 and "16-bit photograph is written with 8 bits as PNG" in err


def test_enhance_accepts_a_fov_file_and_rgba(run_cli: Cli, tmp_path: Path, small_png: Path,
                                             tiny_weights: Path) -> None:
    rgb = np.asarray(Image.open(small_png))
    mask = np.zeros((256, 256), np.uint8)
    mask[64:192, 64:192] = 255
    Image.fromarray(mask).save(tmp_path / "fov.png")
    rgba = np.concatenate([rgb, np.full((256, 256, 1), 200, np.uint8)], axis=2)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    out = tmp_path / "out.png"
    code, _, err = run_cli("enhance", "fundus", tmp_path / "rgba.png", "-o", out,
                           "--fov", tmp_path / "fov.png", "--weights", tiny_weights)
    assert code == 0, err
    result = np.asarray(Image.open(out))
    assert result.shape == (256, 256, 4) and (result[..., 3] == 200).all()
    assert np.array_equal(result[mask == 0, :3], rgb[mask == 0])


def test_degrade_cli_severity_and_seed(run_cli: Cli, tmp_path: Path, small_png: Path) -> None:
    outs = [tmp_path / f"d{i}.png" for i in range(3)]
    for out, (sev, seed) in zip(outs, [(0.3, 1), (0.3, 1), (0.9, 1)], strict=True):
        code, _, err = run_cli("degrade", "fundus", small_png, "-o", out, "--severity", str(sev),
                               "--seed", str(seed))
        assert code == 0, err
    assert _digest(outs[0]) == _digest(outs[1]) != _digest(outs[2])
    code, _, err = run_cli("degrade", "fundus", small_png, "-o", tmp_path / "x.png",
                           "--severity", "1.5")
    assert code == 2 and not (tmp_path / "x.png").exists()


def test_evaluate_cli(run_cli: Cli, tmp_path: Path, small_png: Path) -> None:
    low = tmp_path / "low.png"
    assert run_cli("degrade", "fundus", small_png, "-o", low, "--severity", "0.7")[0] == 0
    code, out, err = run_cli("evaluate", "fundus", "--pred", low, "--ref", small_png)
    assert code == 0, err
    assert "psnr_fov" in out and "psnr_vessel" in out and "vessel_auc" in out


def _bad_inputs(tmp_path: Path, small_png: Path) -> dict[str, tuple[Path, str]]:
    grey = tmp_path / "grey.png"
    Image.open(small_png).convert("L").save(grey)
    photo = tmp_path / "photo.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(60, 255, (128, 160, 3), dtype=np.uint8)).save(photo)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(small_png.read_bytes()[:3000])
    return {"grey": (grey, "needs an RGB"), "not fundus": (photo, "no field of view"),
            "corrupt": (corrupt, "corrupt")}


@pytest.mark.parametrize("command", ["enhance", "degrade"])
def test_bad_inputs_exit_2_one_line_nothing_written(run_cli: Cli, tmp_path: Path,
                                                    small_png: Path, tiny_weights: Path,
                                                    command: str) -> None:
    extra = ["--weights", str(tiny_weights)] if command == "enhance" else []
    for name, (path, words) in _bad_inputs(tmp_path, small_png).items():
        before = _digest(path)
        out = tmp_path / f"out_{name.replace(' ', '_')}.png"
        code, _, err = run_cli(command, "fundus", path, "-o", out, *extra)
        assert code == 2, (name, err)
        assert len(err.strip().splitlines()) == 1 and words in err and str(path) in err
        assert not out.exists() and _digest(path) == before
        assert not list(tmp_path.glob(".out_*"))


def test_demo(tmp_path: Path) -> None:
    from domains.fundus import DOMAIN

    if DOMAIN.default_weights() is None:
        pytest.skip("no shipped fundus weights")
    items = DOMAIN.demo(tmp_path, None)  # type: ignore[arg-type]
    assert items and items[0].after_png.is_file() and items[0].before_png.is_file()
    m = items[0].metrics
    assert m["restored_psnr_fov"] > m["input_psnr_fov"]


def test_train_cli_writes_weights_with_a_card(run_cli: Cli, tmp_path: Path,
                                               small_png: Path) -> None:
    import json

    out = tmp_path / "run"
    code, _, err = run_cli("train", "fundus", "--data", small_png, "--out", out, "--quiet",
                           "--set", "train.steps=2", "--set", "train.batch_size=2",
                           "--set", "data.severities=[0.5]", "--set", "data.synthetic=1",
                           "--set", "data.synthetic_size=128", "--set", "model.channels=[4,8]")
    assert code == 0, err
    card = json.loads((out / "fundus.json").read_text())
    assert "suite train fundus" in card["training"]["command"]
    assert card["training"]["data"] == [str(small_png)] and "seconds" in card["training"]
    assert "val_psnr_fov" in card["validation"]["metrics"]
    code, _, err = run_cli("enhance", "fundus", small_png, "-o", tmp_path / "e.png",
                           "--weights", out / "fundus.safetensors")
    assert code == 0, err


def test_bf16_runtime_is_close_to_fp32_with_the_shipped_weights(run_cli: Cli, tmp_path: Path,
                                                                small_png: Path) -> None:
    outs = {}
    for runtime in ("torch", "torch-bf16"):
        outs[runtime] = tmp_path / f"{runtime}.png"
        code, _, err = run_cli("enhance", "fundus", small_png, "-o", outs[runtime],
                               "--runtime", runtime, "--quiet")
        assert code == 0, err
    fp32, bf16 = (np.asarray(Image.open(outs[r]), np.float32) for r in outs)
    restored = np.abs(fp32 - np.asarray(Image.open(small_png), np.float32)).mean()
    difference = np.abs(bf16 - fp32)
    assert restored > 1 and difference.mean() < 0.5 and difference.max() <= 8


def test_training_data_folders_stand_for_their_photographs(tmp_path: Path) -> None:
    from domains.fundus.train import photo_files

    (tmp_path / "photos").mkdir()
    for name in ("b.png", "a.JPG", ".hidden.png", "notes.txt"):
        (tmp_path / "photos" / name).write_bytes(b"x")
    single = tmp_path / "c.tif"
    assert photo_files([tmp_path / "photos", single]) == [
        tmp_path / "photos" / "a.JPG", tmp_path / "photos" / "b.png", single]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no photographs") as info:
        photo_files([tmp_path / "empty"])
    assert str(tmp_path / "empty") in str(info.value)


def test_vessel_label_masks_replace_the_vesselness_in_training_targets(tmp_path: Path) -> None:
    from domains.fundus.config import FundusConfig
    from domains.fundus.train import training_pairs

    photo = tmp_path / "eye.png"
    Image.open(SAMPLE).resize((256, 256)).save(photo)
    labels = np.zeros((256, 256), np.uint8)
    labels[100:110, 20:120] = 255
    (tmp_path / "labels").mkdir()
    Image.fromarray(labels).save(tmp_path / "labels" / "eye.png")
    cfg = FundusConfig()
    cfg.data.synthetic, cfg.data.severities, cfg.data.region = 0, [0.5], "all"
    _, plain = training_pairs([photo], cfg)
    cfg.data.vessel_labels = tmp_path / "labels"
    _, labelled = training_pairs([photo], cfg)
    np.testing.assert_array_equal(labelled[0][4], labels > 0)
    np.testing.assert_array_equal(labelled[0][:4], plain[0][:4])
    assert not np.array_equal(plain[0][4], labelled[0][4])
    cfg.data.vessel_labels = tmp_path / "none"
    (tmp_path / "none").mkdir()
    with pytest.raises(InputError, match=r"0 vessel label masks named eye\.\*"):
        training_pairs([photo], cfg)


def test_cast_jitter_scales_rgb_and_context_alike_and_keeps_the_target() -> None:
    from domains.fundus.train import flips_and_cast
    from suite.engine.patches import random_flips

    rng = np.random.default_rng(0)
    inputs = rng.uniform(0.1, 1.0, (6, 8, 8)).astype(np.float32)
    target = rng.uniform(0.0, 1.0, (5, 8, 8)).astype(np.float32)
    # jitter 0 is the shipped recipe: the very same patches as the flips alone
    plain = random_flips(inputs, target, np.random.default_rng(3))
    same = flips_and_cast(inputs, target, np.random.default_rng(3), jitter=0.0)
    np.testing.assert_array_equal(same[0], plain[0])
    np.testing.assert_array_equal(same[1], plain[1])
    cast, kept = flips_and_cast(inputs, target, np.random.default_rng(3), jitter=0.2)
    np.testing.assert_array_equal(kept, plain[1])
    gains = (cast / plain[0]).reshape(6, -1)
    np.testing.assert_allclose(gains, gains[:, :1].repeat(64, axis=1), rtol=1e-5)
    np.testing.assert_allclose(gains[:3, 0], gains[3:, 0], rtol=1e-6)
    assert np.all(np.abs(gains[:3, 0] - 1) <= 0.2) and np.ptp(gains[:3, 0]) > 0.01


def test_cast_jitter_out_of_range_is_a_usage_error(run_cli: Cli, tmp_path: Path,
                                                   small_png: Path) -> None:
    code, _, err = run_cli("train", "fundus", "--data", str(small_png), "--out",
                           str(tmp_path / "run"), "--set", "data.cast_jitter=1.5")
    assert code == 2 and "data.cast_jitter" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "fundus.safetensors").exists()


def test_training_twice_with_one_seed_gives_the_same_weights(run_cli: Cli, tmp_path: Path,
                                                              small_png: Path) -> None:
    from safetensors.torch import load_file

    def trained(name: str, seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(len(name))  # a different process state before each run
        out = tmp_path / name
        code, _, err = run_cli("train", "fundus", "--data", small_png, "--out", out, "--quiet",
                               "--set", "train.steps=3", "--set", "train.batch_size=2",
                               "--set", "data.severities=[0.5]", "--set", "data.synthetic=0",
                               "--set", "model.channels=[4,8]", "--set", f"train.seed={seed}")
        assert code == 0, err
        return load_file(out / "fundus.safetensors")

    first, again, other = trained("a", 3), trained("bb", 3), trained("ccc", 4)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_local_contrast_ignores_the_global_level_and_pixels_outside_the_fov() -> None:
    from domains.fundus.losses import local_contrast

    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.uniform(0.2, 0.6, (1, 3, 48, 48)).astype(np.float32))
    fov = torch.zeros(1, 1, 48, 48)
    fov[..., 8:40, 8:40] = 1
    base = local_contrast(image, fov, 6.0)
    shifted = local_contrast(image + 0.1, fov, 6.0)
    assert torch.allclose(base * fov, shifted * fov, atol=1e-5)
    outside = image.clone()
    outside[..., :4, :] = 1.0  # changes only pixels outside the FOV
    assert torch.allclose(local_contrast(outside, fov, 6.0) * fov, base * fov, atol=1e-5)
    flat = local_contrast(torch.full_like(image, 0.4), fov, 6.0)
    assert float((flat * fov).abs().max()) < 1e-5


def test_contrast_term_penalizes_faded_vessels_not_a_global_shift() -> None:
    clean, fov = synthetic_fundus(96, np.random.default_rng(3))
    rgb = torch.from_numpy(clean.transpose(2, 0, 1)[None].copy())
    f = torch.from_numpy(fov[None, None].astype(np.float32))
    vessel = torch.from_numpy(vesselness(clean, fov)[None, None].astype(np.float32))
    target = torch.cat([rgb, f, vessel], 1)
    blurred = torch.nn.functional.avg_pool2d(rgb, 5, 1, 2, count_include_pad=False)

    def term(pred: torch.Tensor) -> float:
        return float(fundus_loss(pred, target, 0.0, 0.0, contrast=1.0)
                     - fundus_loss(pred, target, 0.0, 0.0))

    assert term(rgb + 0.05) < 1e-4  # a global shift costs the term nothing
    assert term(blurred) > 10 * max(term(rgb + 0.05), 1e-6)


def test_a_new_run_into_an_earlier_runs_folder_is_refused(run_cli: Cli, tmp_path: Path,
                                                           small_png: Path) -> None:
    """Without --resume the second run's log interleaved with the first's, and its
    checkpoints were pruned in favour of the old run's later ones."""
    out = tmp_path / "run"
    tiny = ["--set", "train.steps=2", "--set", "train.batch_size=2", "--set",
            "data.severities=[0.5]", "--set", "data.synthetic=0", "--set", "model.channels=[4,8]"]
    code, _, err = run_cli("train", "fundus", "--data", small_png, "--out", out, "--quiet", *tiny)
    assert code == 0, err
    log = (out / "log.csv").read_text()
    code, _, err = run_cli("train", "fundus", "--data", small_png, "--out", out, "--quiet", *tiny)
    assert code == 2 and "holds an earlier run" in err and "--resume" in err
    assert len(err.strip().splitlines()) == 1 and (out / "log.csv").read_text() == log
    code, _, err = run_cli("train", "fundus", "--data", small_png, "--out", out, "--quiet",
                           "--resume", *tiny)
    assert code == 0, err


def test_an_affine_output_scales_and_shifts_the_rgb_input() -> None:
    from domains.fundus.model import forward

    class Fixed(torch.nn.Module):
        def __init__(self, out: torch.Tensor) -> None:
            super().__init__()
            self.out = out

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out.expand(x.shape[0], -1, *x.shape[2:])

    x = torch.rand(2, 6, 8, 8)
    gain_offset = torch.tensor([1.0, 0.0, -0.5, 0.1, 0.0, 0.2]).view(1, 6, 1, 1)
    out = forward(Fixed(gain_offset), x)
    expected = x[:, :3] * torch.tensor([2.0, 1.0, 0.5]).view(1, 3, 1, 1) + torch.tensor(
        [0.1, 0.0, 0.2]).view(1, 3, 1, 1)
    torch.testing.assert_close(out, expected)
    residual = forward(Fixed(gain_offset[:, :3]), x)  # three channels: added to the input
    torch.testing.assert_close(residual, x[:, :3] + gain_offset[:, :3])
    cfg = FundusConfig()
    cfg.model.output = "affine"
    assert model_arguments(cfg)["out_channels"] == 6


def test_evaluate_refuses_a_photo_stored_turned_unlike_the_reference(run_cli: Cli,
                                                                      tmp_path: Path) -> None:
    """A square photograph stored turned (EXIF 6) was scored against an upright reference."""
    ref = tmp_path / "ref.png"
    Image.open(SAMPLE).resize((256, 256)).save(ref)
    exif = Image.Exif()
    exif[274] = 6
    turned = tmp_path / "turned.png"
    Image.fromarray(np.rot90(np.asarray(Image.open(ref)))).save(turned, exif=exif.tobytes())
    code, out, err = run_cli("evaluate", "fundus", "--pred", turned, "--ref", ref)
    assert code == 2 and "turned.png: EXIF orientation 6 differs" in err and out == ""


def test_training_on_a_photo_without_a_fov_gives_training_advice(run_cli: Cli,
                                                                 tmp_path: Path) -> None:
    """train said 'Pass --fov MASK.png', an option train does not have."""
    flat = tmp_path / "flat.png"
    Image.fromarray(np.full((128, 128, 3), 120, np.uint8)).save(flat)
    code, _, err = run_cli("train", "fundus", "--data", flat, "--out", tmp_path / "run",
                           "--quiet")
    assert code == 2 and "flat.png" in err and "--fov" not in err
    assert "fundus photographs only" in err


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baselines_refuse_a_photos_stored_integers(name: str) -> None:
    """uint8 data read as is would put every FOV pixel at 1.0."""
    from suite.errors import UsageError

    img = np.full((64, 64, 3), 120, np.uint8)
    fov = np.zeros((64, 64), bool)
    fov[8:56, 8:56] = True
    with pytest.raises(UsageError, match="float RGB in"):
        BASELINES[name](img, fov)
    out = BASELINES[name](img / 255.0, fov)
    assert out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1


def test_a_fov_mask_is_read_as_drawn_on_the_photo_as_shown(tmp_path: Path) -> None:
    """A photo stored turned (EXIF Orientation 6) and a mask drawn on it upright, as every
    viewer shows it: the mask was applied to the stored pixels, 90 degrees off."""
    from PIL import Image

    from domains.fundus.fov import read_fov
    from suite.errors import InputError
    from suite.io.photo import to_stored

    shown = np.zeros((60, 40), bool)  # upright view of a 40 x 60 (rows x cols) stored photo
    shown[5:35, 3:30] = True
    Image.fromarray(shown.astype(np.uint8) * 255).save(tmp_path / "m.png")
    fov = read_fov(tmp_path / "m.png", (40, 60), orientation=6)
    assert np.array_equal(fov, to_stored(shown, 6)) and not np.array_equal(fov.T, shown)
    Image.fromarray(to_stored(shown, 6).astype(np.uint8) * 255).save(tmp_path / "stored.png")
    with pytest.raises(InputError, match="60x40 as shown, the photograph 40x60"):
        read_fov(tmp_path / "stored.png", (40, 60), orientation=6)


@pytest.mark.parametrize("kind", ["jpeg", "soft", "alpha", "green", "zero_one"])
def test_a_fov_mask_reads_as_drawn_whatever_its_encoding(tmp_path: Path, kind: str) -> None:
    """Any non-zero value was inside: JPEG noise and soft edges grew the FOV, a mask in the
    alpha channel covered the frame, and a green mask read as empty."""
    from PIL import Image, ImageFilter

    from domains.fundus.fov import read_fov

    yy, xx = np.mgrid[:96, :96]
    disc = (yy - 48) ** 2 + (xx - 48) ** 2 < 36**2
    grey = Image.fromarray(disc.astype(np.uint8) * 255)
    path = tmp_path / ("m.jpg" if kind == "jpeg" else "m.png")
    if kind == "jpeg":
        grey.save(path, quality=60)
    elif kind == "soft":
        grey.filter(ImageFilter.GaussianBlur(2)).save(path)
    elif kind == "alpha":
        rgba = np.full((96, 96, 4), 255, np.uint8)
        rgba[..., 3] = disc * 255
        Image.fromarray(rgba).save(path)
    elif kind == "green":
        rgb = np.zeros((96, 96, 3), np.uint8)
        rgb[..., 1] = disc * 200
        Image.fromarray(rgb).save(path)
    else:
        Image.fromarray(disc.astype(np.uint8)).save(path)
    fov = read_fov(path, (96, 96))
    assert np.mean(fov != disc) < 0.01, np.mean(fov != disc)


def test_outputs_are_checked_before_the_work(tmp_path: Path, run_cli) -> None:
    """A .bmp output got PNG bytes; an alpha photo to .jpg and a folder output failed only
    after the whole restoration."""
    photo = tmp_path / "p.png"
    rgba = np.asarray(Image.open(SAMPLE).resize((128, 128)).convert("RGBA")).copy()
    Image.fromarray(rgba).save(photo)
    (tmp_path / "folder").mkdir()
    for output, message in (("o.bmp", "name the output .png or .jpg"),
                            ("o.jpg", "has an alpha channel, which JPEG cannot store"),
                            ("folder", "name the output")):
        code, _, err = run_cli("degrade", "fundus", photo, "-o", tmp_path / output)
        assert code == 2 and message in err, (output, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "p.png"]


def test_a_palette_photo_keeps_its_format(tmp_path: Path) -> None:
    """Converting a palette PNG to RGB dropped Pillow's format: 'None', a KeyError on writing."""
    from suite.io.photo import read_photo

    Image.open(SAMPLE).resize((64, 64)).convert("P").save(tmp_path / "pal.png")
    assert read_photo(tmp_path / "pal.png").meta.format == "PNG"


def test_an_inverted_fov_mask_is_refused(tmp_path: Path) -> None:
    """It restored the black rim and left the retina untouched, exit 0."""
    from domains.fundus.fov import read_fov
    from suite.errors import InputError

    yy, xx = np.mgrid[:96, :96]
    disc = (yy - 48) ** 2 + (xx - 48) ** 2 < 40**2
    Image.fromarray((~disc).astype(np.uint8) * 255).save(tmp_path / "inv.png")
    with pytest.raises(InputError, match="inverted"):
        read_fov(tmp_path / "inv.png", (96, 96))
    full = np.ones((96, 96), bool)  # a disc that fills the frame is fine
    Image.fromarray(full.astype(np.uint8) * 255).save(tmp_path / "full.png")
    assert read_fov(tmp_path / "full.png", (96, 96)).all()
