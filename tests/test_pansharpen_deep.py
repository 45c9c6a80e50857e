"""Pansharpening, deep path: network, normalization, adaptation, windowed enhance, evaluate,
robust registration, train smoke run and the refusals of the deep path."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from rasterio.crs import CRS

from domains.pansharpen import DOMAIN, deep
from domains.pansharpen.net import PanDetailNet, parameter_count
from domains.pansharpen.registration import correct_shifts, register_windows
from domains.pansharpen.wald import Scene, full_pair, reduced_scene
from suite.errors import InputError, UsageError
from suite.weights import save_weights

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
L8 = DATA / "remote" / "landsat8_LC80200392015216LGN00"
needs_l8 = pytest.mark.skipif(not (L8 / "l8_B8.tif").exists(), reason="shared data absent")
SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "pansharpen"


def geotiff(path: Path, data: np.ndarray, res: float, nodata: float | None = None,
            names: tuple[str, ...] | None = None) -> Path:
    """A small GeoTIFF with a real CRS (UTM 33N)."""
    with rasterio.open(
        path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
        count=data.shape[0], dtype=str(data.dtype), crs=CRS.from_epsg(32633),
        transform=Affine(res, 0, 500000.0, 0, -res, 4e6), nodata=nodata,
    ) as dst:
        dst.write(data)
        for i, name in enumerate(names or ()):
            dst.set_band_description(i + 1, name)
    return path


def synthetic_pair(tmp_path: Path, ratio: int = 2, side: int = 96, bands: int = 3,
                   dtype: str = "uint16") -> tuple[Path, Path]:
    """Textured MS (``side / ratio`` pixels) and PAN (``side``) whose mean is the PAN."""
    rng = np.random.default_rng(0)
    from scipy import ndimage

    hi = ndimage.gaussian_filter(rng.random((bands, side, side)), (0, 2, 2))
    hi = (hi - hi.min()) / np.ptp(hi) * 180 + 20
    pan = hi.mean(0, keepdims=True)
    ms = hi.reshape(bands, side // ratio, ratio, side // ratio, ratio).mean((2, 4))
    names = tuple(f"band{i}" for i in range(bands))
    return (
        geotiff(tmp_path / "ms.tif", ms.astype(dtype), 10.0 * ratio, nodata=0, names=names),
        geotiff(tmp_path / "pan.tif", pan.astype(dtype), 10.0),
    )


@pytest.fixture
def random_weights(tmp_path: Path) -> Path:
    """A randomly initialised (non-identity) network with a card, for pipeline mechanics."""
    torch.manual_seed(0)
    net = PanDetailNet(width=8, depth=3)
    torch.nn.init.normal_(net.body[-1].weight, std=0.05)
    card = {
        "architecture": "pan_detail_net", "arguments": {"width": 8, "depth": 3, "highpass": 5},
        "normalization": deep.NORMALIZATION, "adaptation": {"steps": 2, "patch": 16, "batch": 2},
        "training": {"recipe": {"data": {"ratios": [2, 4]}}}, "validation": {},
    }
    return save_weights(tmp_path / "w.safetensors", net, card)


def options(pan: Path, weights: Path | None, steps: int | None = 0) -> argparse.Namespace:
    return argparse.Namespace(pan=pan, method="deep", sensor="generic", register="off",
                              weights=weights, adapt_steps=steps, trust_checkpoint=False)


@pytest.mark.parametrize("bands", [2, 4, 8])
def test_network_any_band_count_starts_as_identity(bands: int) -> None:
    net = PanDetailNet()
    x = torch.randn(2, bands + 1, 24, 20)
    out = net(x)
    assert out.shape == (2, bands, 24, 20)
    torch.testing.assert_close(out, x[:, :bands])
    assert 5_000 < parameter_count(net) < 100_000


def test_network_refuses_wrong_shape() -> None:
    with pytest.raises(ValueError, match="expected shape"):
        PanDetailNet()(torch.randn(1, 2, 8, 8))


@pytest.mark.parametrize("scale", [255.0, 2047.0, 65535.0])
def test_normalization_inverts_for_8_11_16_bit(scale: float) -> None:
    rng = np.random.default_rng(1)
    ms = (rng.random((3, 10, 12)) * scale).astype(np.float32)
    pan = (rng.random((10, 12)) * scale).astype(np.float32)
    norm = deep.fit_norm(ms, pan)
    stacked = norm.stack(ms, pan)
    assert abs(float(stacked.mean())) < 1e-4 and abs(float(stacked.std()) - 1) < 1e-3
    np.testing.assert_allclose(norm.unstack(norm.target(ms)), ms, rtol=1e-5, atol=scale * 1e-6)


def test_adaptation_lowers_the_loss_and_leaves_the_model_alone() -> None:
    rng = np.random.default_rng(2)
    target = rng.standard_normal((3, 40, 40)).astype(np.float32)
    pan = target.mean(0, keepdims=True)
    inputs = np.concatenate([target * 0.5, pan])
    net = PanDetailNet(width=8, depth=3)
    before = float(np.abs(deep.run(net, inputs) - target).mean())
    tuned = deep.adapt(net, inputs, target, steps=40, lr=3e-3, patch=24, batch=4)
    after = float(np.abs(deep.run(tuned, inputs) - target).mean())
    assert after < 0.9 * before
    assert float(np.abs(deep.run(net, inputs) - target).mean()) == pytest.approx(before)


def test_local_correlation_and_lowpass_match_their_definitions() -> None:
    from suite.degradations.mtf import mtf_filter, mtf_radius

    rng = np.random.default_rng(4)
    a = torch.from_numpy(rng.standard_normal((1, 2, 32, 32)).astype(np.float32))
    torch.testing.assert_close(deep.local_correlation(a, 3 * a + 1, 9), torch.ones_like(a),
                               atol=1e-3, rtol=0)
    torch.testing.assert_close(deep.local_correlation(a, -a, 9), -torch.ones_like(a),
                               atol=1e-3, rtol=0)
    gains = np.array([0.3, 0.2])
    low = deep.mtf_lowpass(a, deep.mtf_taps(gains, 2))[0].numpy()
    r = mtf_radius(gains, 2)  # the edges are mirrored differently (torch vs scipy)
    expected = mtf_filter(a[0].numpy(), gains, 2)
    np.testing.assert_allclose(low[:, r:-r, r:-r], expected[:, r:-r, r:-r], atol=1e-5)


def test_full_resolution_term_makes_the_fusion_follow_the_pan() -> None:
    """Adapted with the reference-free term, fused bands correlate with the PAN as the MS does."""
    from scipy import ndimage

    rng = np.random.default_rng(5)
    hi = ndimage.gaussian_filter(rng.standard_normal((3, 96, 96)), (0, 1.5, 1.5))
    hi = (hi / hi.std()).astype(np.float32)
    t = Affine(20.0, 0, 0, 0, -20.0, 0)
    ms = hi.reshape(3, 48, 2, 48, 2).mean((2, 4))
    scene = Scene(ms, hi.mean(0), t, t @ Affine.scale(0.5), 2)
    norm = deep.fit_norm(scene.ms, scene.pan)
    full = deep.full_res(scene, "generic", norm)
    net = PanDetailNet(width=8, depth=3)

    def shortfall(model: torch.nn.Module) -> float:
        x = torch.from_numpy(full.inputs)[None]
        with torch.no_grad():
            rho = deep.local_correlation(model(x), x[:, 3:].expand(1, 3, -1, -1), full.window)
        return float(torch.relu(torch.from_numpy(full.floor)[None] - rho).mean())

    cfg = {"lr": 3e-3, "patch": 24, "batch": 4, "full_patch": 32}
    wald = deep.adapt_on_scene(net, scene, "generic", norm, {**cfg, "full_weight": 0.0}, 60)
    both = deep.adapt_on_scene(net, scene, "generic", norm,
                               {**cfg, "full_weight": 1.0, "structure": 10.0}, 60)
    assert shortfall(both) < 0.5 * shortfall(wald)


def test_wald_reduced_scene_geometry() -> None:
    ms = np.random.default_rng(3).random((2, 16, 16)).astype(np.float32)
    pan = np.kron(ms.mean(0), np.ones((2, 2), np.float32))
    t = Affine(20.0, 0, 0, 0, -20.0, 0)
    scene = Scene(ms, pan, t, t @ Affine.scale(0.5), 2)
    lr, ref = reduced_scene(scene)
    assert lr.ms.shape == (2, 8, 8) and lr.pan.shape == (16, 16) and ref.shape == ms.shape
    assert lr.ms_transform == t @ Affine.scale(2) and lr.pan_transform == t
    ms_up, pan_up = full_pair(lr)
    assert ms_up.shape == ref.shape and pan_up.shape == ref.shape[1:]


def test_deep_enhance_round_trip_and_windowing(tmp_path: Path, random_weights: Path) -> None:
    ms, pan = synthetic_pair(tmp_path, side=96)
    out = tmp_path / "out.tif"
    summary = DOMAIN.enhance([ms], out, options(pan, random_weights))
    with rasterio.open(out) as ds, rasterio.open(pan) as p, rasterio.open(ms) as m:
        assert ds.crs == p.crs and ds.transform == p.transform
        assert (ds.res, ds.count, ds.nodata) == (p.res, m.count, m.nodata)
        assert ds.descriptions == m.descriptions and ds.dtypes == m.dtypes
        fused = ds.read().astype(np.float32)
    assert summary["method"] == "deep" and summary["adapt_steps"] == 0
    # the same network on the whole image at once: window seams would show here
    from domains.pansharpen import _read_pair
    from domains.pansharpen.pairing import pair_rasters

    pair = pair_rasters([ms], pan)
    ms_up, pan_a, _ = _read_pair(pair, rasterio.windows.Window(0, 0, 96, 96), None)
    model, _ = deep.load(random_weights)
    norm = deep.Norm(*(np.array(v) if isinstance(v, list) else v
                       for v in summary["norm"].values()))
    whole = np.clip(np.rint(deep.DeepSharpener(model, norm).apply(ms_up, pan_a)), 0, 65535)
    assert np.abs(fused - whole).max() <= 1.0  # rounding of the reported normalization only


def test_small_windows_match_whole_image(tmp_path: Path, random_weights: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import domains.pansharpen as ps

    ms, pan = synthetic_pair(tmp_path, side=96)
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    DOMAIN.enhance([ms], a, options(pan, random_weights))
    original = ps.write_raster_windows
    monkeypatch.setattr(ps, "write_raster_windows",
                        lambda *args, **kw: original(*args, **kw, window_size=32))
    DOMAIN.enhance([ms], b, options(pan, random_weights))
    with rasterio.open(a) as da, rasterio.open(b) as db:
        np.testing.assert_array_equal(da.read(), db.read())


def test_untrained_ratio_needs_adaptation(tmp_path: Path, random_weights: Path) -> None:
    ms, pan = synthetic_pair(tmp_path, ratio=3, side=96)
    with pytest.raises(UsageError, match=r"ratios \[2, 4\].*ratio is 3"):
        DOMAIN.enhance([ms], tmp_path / "x.tif", options(pan, random_weights, steps=0))
    assert not (tmp_path / "x.tif").exists()
    summary = DOMAIN.enhance([ms], tmp_path / "y.tif", options(pan, random_weights, steps=2))
    assert summary["ratio"] == 3 and summary["adapt_steps"] == 2


def test_tiny_scene_and_missing_weights_are_refused(tmp_path: Path, random_weights: Path) -> None:
    ms, pan = synthetic_pair(tmp_path, side=8)
    with pytest.raises(InputError, match="needs at least 8 a side"):
        DOMAIN.enhance([ms], tmp_path / "x.tif", options(pan, random_weights))
    ms, pan = synthetic_pair(tmp_path, side=64)
    with pytest.raises(InputError, match="no pansharpen weights"):
        DOMAIN.enhance([ms], tmp_path / "x.tif", options(pan, tmp_path / "none.safetensors"))


def test_cli_bad_ratio_exit_code(tmp_path: Path, random_weights: Path, run_cli) -> None:
    ms, pan = synthetic_pair(tmp_path, ratio=3, side=96)
    code, _, err = run_cli("enhance", "pansharpen", ms, "--pan", pan, "-o", tmp_path / "o.tif",
                           "--weights", random_weights, "--adapt-steps", "0", "--register", "off")
    assert code == 2 and "ratio is 3" in err and len(err.strip().splitlines()) == 1


def test_evaluate_both_protocols(tmp_path: Path, random_weights: Path, run_cli) -> None:
    ms, pan = synthetic_pair(tmp_path, side=64)
    out = tmp_path / "fused.tif"
    DOMAIN.enhance([ms], out, options(pan, random_weights))
    code, text, _ = run_cli("evaluate", "pansharpen", "--pred", out, "--ref", ms, "--pan", pan)
    assert code == 0 and "qnr" in text and "d_lambda" in text and "d_s" in text
    code, text, _ = run_cli("evaluate", "pansharpen", "--pred", ms, "--ref", ms, "--ratio", "2")
    assert code == 0 and "sam_deg" in text and "ergas_ratio2" in text


def _cloudy_pair(shift_clouds: float, ground_shift: float) -> list[tuple[np.ndarray, ...]]:
    """Windows whose ground is shifted by ``ground_shift`` and bright clouds by more."""
    from scipy import ndimage

    rng = np.random.default_rng(4)
    blocks = []
    for k in range(4):
        ground = ndimage.gaussian_filter(rng.random((128, 128)), 1.5) * 2000 + 100
        clouds = np.zeros((128, 128))
        clouds[80 - 5 * k : 120, 80:120] = 2000.0
        clouds = ndimage.gaussian_filter(clouds, 2)
        pan = ground + clouds
        band = correct_shifts(ground[None], np.array([[ground_shift, 0.0]]))[0]
        band = band + correct_shifts(clouds[None], np.array([[shift_clouds, 0.0]]))[0]
        blocks.append((np.stack([band, band]), pan))
    return blocks


def test_registration_ignores_cloud_parallax() -> None:
    reg = register_windows(_cloudy_pair(shift_clouds=1.5, ground_shift=0.0))
    assert not reg.corrected and np.abs(reg.shifts).max() < 0.1, reg.report()


def test_registration_recovers_ground_shift_under_clouds() -> None:
    reg = register_windows(_cloudy_pair(shift_clouds=1.5, ground_shift=0.4))
    assert reg.corrected and reg.windows >= 4
    np.testing.assert_allclose(reg.shifts[:, 0], -0.4, atol=0.1)


def test_registration_refuses_inconsistent_windows() -> None:
    blocks = _cloudy_pair(0.0, 0.6)[:2] + _cloudy_pair(0.0, -0.6)[:2]
    blocks += _cloudy_pair(0.0, 0.0)[:1]
    reg = register_windows(blocks)
    assert not reg.corrected and "disagree" in reg.reason


@needs_l8
def test_cloudy_landsat_scene_is_not_misregistered() -> None:
    from domains.pansharpen import _registration
    from domains.pansharpen.pairing import pair_rasters

    pair = pair_rasters([L8 / f"l8_B{b}.tif" for b in (2, 3, 4, 5)], L8 / "l8_B8.tif")
    reg = _registration(pair, argparse.Namespace(register="auto"))
    assert reg is not None
    # unmasked, one central window: 1-2 MS px "shifts" from cloud parallax were corrected
    assert not reg.corrected and reg.windows > 1, reg.report()


@pytest.mark.skipif(DOMAIN.default_weights() is None, reason="no shipped weights")
def test_demo_on_sample_excerpt(tmp_path: Path) -> None:
    items = DOMAIN.demo(tmp_path, argparse.Namespace())
    m = items[0].metrics
    assert items[0].after_png.is_file() and items[0].reference_png is not None
    assert m["deep_ergas_ratio2"] < m["bicubic_ergas_ratio2"]


@needs_l8
def test_train_smoke_writes_weights_and_card(tmp_path: Path) -> None:
    args = argparse.Namespace(
        config=None, data=[L8], out=tmp_path / "run", resume=False, quiet=True, device="cpu",
        overrides=["train.steps=2", "train.validate_every=2", "train.checkpoint_every=0",
                   "data.ratios=[2]", "train.batch_size=2"],
    )
    path = DOMAIN.train(args)
    model, card = deep.load(path)
    assert card["training"]["data"] == [str(L8)]
    assert "val_ratio2_l1" in card["validation"]["metrics"]
    assert card["parameters"] == parameter_count(model)


def test_registration_needs_several_clear_tiles() -> None:
    y, x = np.mgrid[0:64, 0:64]
    pan = 1000 + 300 * np.sin(x / 3.0) * np.cos(y / 4.0) + 200 * np.sin((x + 2 * y) / 7.0)
    band = correct_shifts(pan[None], np.array([[0.5, 0.0]]))[0]
    reg = register_windows([(np.stack([band, band]), pan)])
    assert reg.windows == 1 and not reg.corrected and "only 1" in reg.reason, reg.report()
