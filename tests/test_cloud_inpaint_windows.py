"""cloud-inpaint on scenes too large to hold whole: filled window by window around a coarse
global prior, it must match the whole-scene fill, copy clear pixels, and treat nodata as unknown.

The window size and the whole-scene limit are lowered here so that small scenes take the
window-by-window path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

import domains.cloud_inpaint.windows as windows
from domains.cloud_inpaint.clouds import make_clouds
from domains.cloud_inpaint.masks import detect_clouds
from domains.cloud_inpaint.net import ResidualInpainter
from domains.cloud_inpaint.pipeline import read_scene
from suite.weights import save_weights

Cli = Callable[..., tuple[int, str, str]]
pytestmark = pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")


def _write(path: Path, data: np.ndarray, nodata: float | None = None) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
                       count=data.shape[0], dtype=data.dtype, crs=CRS.from_epsg(32633),
                       transform=from_origin(465180, 5080250, 10, 10), nodata=nodata) as dst:
        dst.write(data)
    return path


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read()


def _scene(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A uint16 scene with large-scale gradients (what a far cloud edge carries) and texture."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    rng = np.random.default_rng(seed)
    bands = [np.sin(4 * yy) + 2 * xx, np.cos(3 * xx) * yy + yy, xx * yy + 0.5 * np.sin(6 * xx)]
    data = np.stack(bands) * 1500 + 3000 + rng.normal(0, 40, (3, h, w))
    return data.astype(np.uint16)


def _untrained(tmp_path: Path) -> Path:
    """A residual model with its last convolution at zero: exactly its prior (the smooth fill)."""
    return save_weights(tmp_path / "w.safetensors", ResidualInpainter(5, 8, 2),
                        {"domain": "cloud-inpaint", "architecture": "cloud_residual_inpainter",
                         "arguments": {"in_channels": 5, "features": 8, "num_blocks": 2},
                         "normalization": {}, "training": {}, "validation": {}})


@pytest.fixture
def small_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(windows, "WHOLE_SCENE_PIXELS", 300 * 300)
    monkeypatch.setattr(windows, "WINDOW", 256)
    monkeypatch.setattr(windows, "HALO", 32)
    monkeypatch.setattr(windows, "COARSE_SIDE", 64)


def _psnr(a: np.ndarray, b: np.ndarray, span: float) -> float:
    return float(10 * np.log10(span**2 / np.mean((a - b) ** 2)))


@pytest.mark.usefixtures("small_windows")
def test_a_large_scene_filled_by_windows_matches_the_whole_scene_fill(
        run_cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Clouds span the window borders, and one bank is wider than a window and its context:
    anchored by the coarse prior, the windows' fills join as if the scene were filled whole."""
    clear = _scene(420, 380)
    mask = make_clouds((420, 380), 0.2, np.random.default_rng(4)).mask
    mask[120:400] = True  # windows below row 256 see clear pixels only at the bottom
    cloudy = _write(tmp_path / "cloudy.tif", np.where(mask, 9000, clear).astype(np.uint16))
    mask_path = _write(tmp_path / "m.tif", mask[None].astype(np.uint8))
    weights = _untrained(tmp_path)
    outs = {}
    for name, limit in (("windows", 300 * 300), ("whole", 10**9)):
        monkeypatch.setattr(windows, "WHOLE_SCENE_PIXELS", limit)
        out = tmp_path / f"{name}.tif"
        code, _, err = run_cli("enhance", "cloud-inpaint", cloudy, "-o", out, "--mask",
                               mask_path, "--weights", weights)
        assert code == 0, err
        assert ("window by window" in err) == (name == "windows")
        outs[name] = _read(out).astype(float)
    src = _read(cloudy)
    assert np.array_equal(outs["windows"][:, ~mask], src[:, ~mask])
    span = float(clear.max() - clear.min())
    agree = _psnr(outs["windows"][:, mask], outs["whole"][:, mask], span)
    truth = [_psnr(outs[k][:, mask], clear[:, mask].astype(float), span) for k in outs]
    assert agree > 45.0, agree
    assert abs(truth[0] - truth[1]) < 0.1, truth


@pytest.mark.usefixtures("small_windows")
def test_the_detector_by_windows_finds_the_whole_scene_mask(tmp_path: Path) -> None:
    data = _scene(520, 400)
    data[:, 100:160, 50:350] = 14000  # a bright, white cloud across a window border
    data[:, 170:200, 60:300] = 600  # its shadow
    path = _write(tmp_path / "s.tif", data)
    scene = read_scene(path)
    meta = scene.meta
    seen = windows.scan(path, meta)
    assert np.array_equal(seen.valid, scene.valid)
    found = windows.detect(path, meta, seen)
    assert found[120, 200] and found[180, 200] and not found[400, 200]
    assert np.array_equal(found, detect_clouds(scene.values, scene.valid))


@pytest.mark.parametrize("limit", [10**9, 300 * 300])
@pytest.mark.usefixtures("small_windows")
def test_nodata_is_not_a_dark_clear_surface_to_fill_from(
        run_cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int) -> None:
    """A scene's nodata collar (0) beside a cloud: the fill must come from the valid pixels."""
    monkeypatch.setattr(windows, "WHOLE_SCENE_PIXELS", limit)
    data = np.full((2, 320, 300), 1000, np.uint16)
    data[:, :, :60] = 0
    image = _write(tmp_path / "img.tif", data, nodata=0)
    cloud = np.zeros((1, 320, 300), np.uint8)
    cloud[:, 100:200, 60:160] = 1
    mask_path = _write(tmp_path / "m.tif", cloud)
    for method in ("mean", "biharmonic"):
        out = tmp_path / f"{method}.tif"
        code, _, err = run_cli("enhance", "cloud-inpaint", image, "-o", out, "--mask",
                               mask_path, "--method", method)
        assert code == 0, err
        filled = _read(out)
        assert (filled[:, :, :60] == 0).all()
        assert np.abs(filled[:, 100:200, 60:160].astype(int) - 1000).max() <= 1, method


@pytest.mark.usefixtures("small_windows")
def test_windows_without_clouds_are_copied_and_the_mask_is_written(
        run_cli: Cli, tmp_path: Path) -> None:
    data = _scene(600, 300)
    image = _write(tmp_path / "img.tif", data)
    cloud = np.zeros((1, 600, 300), np.uint8)
    cloud[:, 20:60, 20:80] = 1
    mask_path = _write(tmp_path / "m.tif", cloud)
    out = tmp_path / "o.tif"
    code, _, err = run_cli("enhance", "cloud-inpaint", image, "-o", out, "--mask",
                           mask_path, "--method", "mean", "--write-mask")
    assert code == 0, err
    assert "window by window: 1 of 6 windows of 256 pixels" in err
    filled = _read(out)
    assert np.array_equal(filled[:, 60:], data[:, 60:])
    assert np.array_equal(_read(tmp_path / "o_mask.tif")[0] > 0, cloud[0] > 0)


def test_a_narrow_strip_is_filled_by_the_network(run_cli: Cli, tmp_path: Path) -> None:
    """Taller than one network tile and narrower than its reflection padding (300 x 50)."""
    data = _scene(300, 50)
    cloud = np.zeros((1, 300, 50), np.uint8)
    cloud[:, 100:150, 10:30] = 1
    image, mask_path = _write(tmp_path / "strip.tif", data), _write(tmp_path / "m.tif", cloud)
    code, _, err = run_cli("enhance", "cloud-inpaint", image, "-o", tmp_path / "o.tif", "--mask",
                           mask_path, "--weights", _untrained(tmp_path))
    assert code == 0, err
    filled = _read(tmp_path / "o.tif")
    assert np.array_equal(filled[:, cloud[0] == 0], data[:, cloud[0] == 0])


def test_an_output_naming_any_file_the_command_reads_is_refused(run_cli: Cli,
                                                               tmp_path: Path) -> None:
    """-o or --json on the mask (or a PAN band, a reference...) would replace that input."""
    data = _scene(64, 64)
    image = _write(tmp_path / "img.tif", data)
    cloud = np.zeros((1, 64, 64), np.uint8)
    cloud[:, 10:20, 10:20] = 1
    mask_path = _write(tmp_path / "m.tif", cloud)
    before = mask_path.read_bytes()
    code, _, err = run_cli("enhance", "cloud-inpaint", image, "-o", mask_path, "--mask",
                           mask_path, "--method", "mean")
    assert code == 2 and "output path is the input" in err
    code, _, err = run_cli("evaluate", "cloud-inpaint", "--pred", image, "--ref", image,
                           "--mask", mask_path, "--json", mask_path)
    assert code == 2 and "output path is the input" in err
    assert mask_path.read_bytes() == before
