"""cloud-inpaint: masks, synthetic clouds, outside-mask identity, metadata, bad inputs, GAN step."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.transform import from_origin

from domains.cloud_inpaint.clouds import make_clouds
from domains.cloud_inpaint.config import CloudConfig
from domains.cloud_inpaint.curves import draw_curves
from domains.cloud_inpaint.inpaint import match_values
from domains.cloud_inpaint.masks import decode_qa
from domains.cloud_inpaint.train import InpaintGanTrainer, _adam, build_models, make_degrade
from suite.engine.patches import PairedPatchDataset
from suite.engine.train import TrainConfig

REPO = Path(__file__).resolve().parents[1]
CLEAR = REPO / "sample_data" / "cloud" / "s2_clear_eolearn_ref3.tif"
OTHER_DATE = REPO / "sample_data" / "cloud" / "s2_clear_eolearn_ref4.tif"
Cli = Callable[..., tuple[int, str, str]]
# rasterio (this version) multiplies Affine objects with `*` when writing test fixtures
pytestmark = pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")


def _write(path: Path, data: np.ndarray, crs: int = 32633, nodata: float | None = None) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
                       count=data.shape[0], dtype=data.dtype, crs=CRS.from_epsg(crs),
                       transform=from_origin(465180, 5080250, 10, 10), nodata=nodata) as dst:
        dst.write(data)
    return path


def _read(path: Path) -> tuple[np.ndarray, dict]:
    with rasterio.open(path) as ds:
        return ds.read(), dict(ds.profile)


@pytest.mark.parametrize("cover", [0.1, 0.3, 0.5])
def test_synthetic_clouds_hit_the_cover_and_are_seeded(cover: float) -> None:
    a = make_clouds((96, 80), cover, np.random.default_rng(3))
    b = make_clouds((96, 80), cover, np.random.default_rng(3))
    assert abs(a.mask.mean() - cover) < 0.01
    assert np.array_equal(a.codes, b.codes)
    assert {1, 2, 3} <= set(np.unique(a.codes))  # thick, thin and shadow all drawn


def test_pre_collection_bqa_bits() -> None:
    # values seen in the LC80200392015216LGN00 BQA: 20480 clear (low/low), 53248 high cloud,
    # 28672 high cirrus, 36864 medium cloud
    qa = np.array([[20480, 53248, 28672, 36864]], np.uint16)
    assert decode_qa(qa, "landsat-pre", "high").tolist() == [[False, True, True, False]]
    assert decode_qa(qa, "landsat-pre", "medium").tolist() == [[False, True, True, True]]
    scl = np.array([[4, 3, 8, 9, 10, 5]], np.uint8)
    assert decode_qa(scl, "s2-scl").tolist() == [[False, True, True, True, True, False]]
    c2 = np.array([[1 << 6, 1 << 3, 1 << 4]], np.uint16)
    assert decode_qa(c2, "landsat-c2").tolist() == [[False, True, True]]


def test_histogram_matching_maps_onto_target_values() -> None:
    rng = np.random.default_rng(0)
    out = match_values(rng.normal(size=(20, 20)), rng.uniform(5, 6, 1000))
    assert 5 <= out.min() and out.max() <= 6


def test_degrade_then_enhance_keeps_clear_pixels_bit_identical(run_cli: Cli, tmp_path: Path
                                                              ) -> None:
    cloudy, filled = tmp_path / "cloudy.tif", tmp_path / "filled.tif"
    code, _, err = run_cli("degrade", "cloud-inpaint", CLEAR, "-o", cloudy, "--cover", "0.3")
    assert code == 0, err
    mask_path = tmp_path / "cloudy_mask.tif"
    mask = _read(mask_path)[0][0] > 0
    assert abs(mask.mean() - 0.3) < 0.02
    code, _, err = run_cli("enhance", "cloud-inpaint", cloudy, "-o", filled, "--mask", mask_path,
                           "--method", "biharmonic", "--write-mask")
    assert code == 0, err
    (src, p_in), (out, p_out) = _read(cloudy), _read(filled)
    assert np.array_equal(out[:, ~mask], src[:, ~mask])
    assert not np.array_equal(out[:, mask], src[:, mask])
    for key in ("crs", "transform", "dtype", "count", "width", "height", "nodata"):
        assert p_out[key] == p_in[key]
    assert (tmp_path / "filled_mask.tif").is_file()


def test_nodata_pixels_stay_nodata(run_cli: Cli, tmp_path: Path) -> None:
    data = (np.random.default_rng(0).random((3, 40, 40)) * 200 + 20).astype(np.uint8)
    data[:, :, :5] = 0
    image = _write(tmp_path / "img.tif", data, nodata=0)
    mask = np.zeros((1, 40, 40), np.uint8)
    mask[:, 10:20, :] = 1
    m = _write(tmp_path / "m.tif", mask)
    code, _, err = run_cli("enhance", "cloud-inpaint", image, "-o", tmp_path / "o.tif", "--mask", m,
                           "--method", "mean")
    assert code == 0, err
    out = _read(tmp_path / "o.tif")[0]
    assert (out[:, :, :5] == 0).all() and (out[:, 10:20, 5:] > 0).all()


def test_band_files_give_the_same_fill_as_one_stacked_raster(run_cli: Cli,
                                                              tmp_path: Path) -> None:
    data = _read(CLEAR)[0]
    bands = [_write(tmp_path / f"B{k + 1}.tif", data[k:k + 1]) for k in range(data.shape[0])]
    stack = _write(tmp_path / "stack.tif", data)
    mask = np.zeros((1, *data.shape[1:]), np.uint8)
    mask[:, 20:40, 30:60] = 1
    m = _write(tmp_path / "m.tif", mask)
    runs = {"files": bands, "stack": [stack]}
    for name, inputs in runs.items():
        out = tmp_path / f"{name}.o.tif"
        code, _, err = run_cli("enhance", "cloud-inpaint", *inputs, "-o", out,
                               "--mask", m, "--method", "biharmonic")
        assert code == 0, err
    (files, profile), stacked = _read(tmp_path / "files.o.tif"), _read(tmp_path / "stack.o.tif")[0]
    assert np.array_equal(files, stacked) and profile["count"] == data.shape[0]
    with rasterio.open(tmp_path / "files.o.tif") as ds:
        assert ds.descriptions[:2] == ("B1", "B2")  # each band named after its file
    other = _write(tmp_path / "utm34.tif", data[:1], crs=32634)
    code, _, err = run_cli("enhance", "cloud-inpaint", bands[0], other, "-o", tmp_path / "x.tif",
                           "--mask", m)
    assert code == 2 and "utm34.tif" in err and "CRS" in err and not (tmp_path / "x.tif").exists()


def _bad(run_cli: Cli, tmp_path: Path, *extra: str | Path) -> str:
    target = tmp_path / "out.tif"
    before = CLEAR.read_bytes()
    code, _, err = run_cli("enhance", "cloud-inpaint", CLEAR, "-o", target, *extra)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("out*"))
    assert CLEAR.read_bytes() == before
    return err


def test_mask_on_another_grid_is_refused(run_cli: Cli, tmp_path: Path) -> None:
    m = _write(tmp_path / "m.tif", np.ones((1, 50, 50), np.uint8))
    assert "m.tif" in _bad(run_cli, tmp_path, "--mask", m)


def test_batch_writes_each_items_mask_beside_its_output(run_cli: Cli, tmp_path: Path) -> None:
    """``--write-mask`` in a batch wrote every item's mask to one ``OUT_mask.tif`` beside the
    output folder."""
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    for name, src in (("a.tif", CLEAR), ("b.tif", OTHER_DATE)):
        assert run_cli("degrade", "cloud-inpaint", src, "-o", scenes / name, "--quiet")[0] == 0
    out = tmp_path / "out"
    code, _, err = run_cli("batch", "cloud-inpaint", str(scenes / "[ab].tif"), "-o", out,
                           "--write-mask", "--method", "biharmonic", "--workers", "1", "--quiet")
    assert code == 0, err
    assert sorted(p.name for p in out.glob("*.tif")) == ["a.tif", "a_mask.tif", "b.tif",
                                                          "b_mask.tif"]
    assert not (tmp_path / "out_mask.tif").exists()


def test_a_reference_without_a_grid_is_refused(run_cli: Cli, tmp_path: Path) -> None:
    """A reference located by GCPs only cannot be reprojected (it was an internal error)."""
    with rasterio.open(OTHER_DATE) as ds:
        profile, data, t = dict(ds.profile), ds.read(), ds.transform
    gcps = [GroundControlPoint(row=r, col=c, x=(t @ (c, r))[0], y=(t @ (c, r))[1])
            for r, c in ((0, 0), (0, ds.width), (ds.height, 0))]
    profile.update(crs=None, transform=None)
    ref = tmp_path / "swath.tif"
    with rasterio.open(ref, "w", **profile) as dst:
        dst.write(data)
        dst.gcps = (gcps, ds.crs)
    assert "swath.tif: has no CRS and transform" in _bad(run_cli, tmp_path, "--reference", ref)


def _scl(path: Path, shift_px: float = 0.0) -> tuple[Path, np.ndarray]:
    """A Sentinel-2 SCL at twice CLEAR's pixel size over its footprint (51 rows: the odd 101-row
    image ends inside the last one), cloud (9) in one block, shadow (3) in one pixel."""
    with rasterio.open(CLEAR) as ds:
        meta = dict(ds.profile)
    scl = np.full((1, 51, 50), 4, np.uint8)
    scl[0, 10:20, 5:15], scl[0, 50, 49] = 9, 3
    t = meta["transform"]
    meta.update(count=1, dtype="uint8", width=50, height=51, nodata=None, transform=(
        t * rasterio.Affine.translation(shift_px, 0) * rasterio.Affine.scale(2)))
    with rasterio.open(path, "w", **meta) as dst:
        dst.write(scl)
    expected = np.zeros((101, 100), bool)
    expected[20:40, 10:30], expected[100, 98:100] = True, True
    return path, expected


def test_sentinel2_scl_at_20m_is_repeated_onto_10m_bands(run_cli: Cli, tmp_path: Path) -> None:
    scl, expected = _scl(tmp_path / "T33_SCL_20m.tif")
    out = tmp_path / "filled.tif"
    code, _, err = run_cli("enhance", "cloud-inpaint", CLEAR, "-o", out, "--qa", scl,
                           "--method", "mean", "--write-mask", "--quiet")
    assert code == 0, err
    mask, _ = _read(tmp_path / "filled_mask.tif")
    np.testing.assert_array_equal(mask[0] > 0, expected)
    filled, before = _read(out)[0], _read(CLEAR)[0]
    np.testing.assert_array_equal(filled[:, ~expected], before[:, ~expected])


def test_coarse_qa_off_the_image_corner_is_refused(run_cli: Cli, tmp_path: Path) -> None:
    scl, _ = _scl(tmp_path / "T33_SCL_20m.tif", shift_px=1.0)
    assert "T33_SCL_20m.tif" in _bad(run_cli, tmp_path, "--qa", scl)


def test_mask_covering_everything_is_refused(run_cli: Cli, tmp_path: Path) -> None:
    with rasterio.open(CLEAR) as ds:
        profile = dict(ds.profile)
    profile.update(count=1, dtype="uint8")
    with rasterio.open(tmp_path / "all.tif", "w", **profile) as dst:
        dst.write(np.ones((1, profile["height"], profile["width"]), np.uint8))
    assert "every valid pixel" in _bad(run_cli, tmp_path, "--mask", tmp_path / "all.tif")


def test_reference_of_another_crs_or_band_set_is_refused(run_cli: Cli, tmp_path: Path) -> None:
    with rasterio.open(OTHER_DATE) as ds:
        data = ds.read()
    other_crs = _write(tmp_path / "crs.tif", data, crs=32632)
    assert "CRS" in _bad(run_cli, tmp_path, "--reference", other_crs, "--method", "mean")
    three = _write(tmp_path / "bands.tif", data[:3], crs=32633)
    assert "bands" in _bad(run_cli, tmp_path, "--reference", three, "--method", "mean")


def test_gan_step_trains_both_networks_and_curves_are_drawn(tmp_path: Path) -> None:
    cfg = CloudConfig()
    cfg.train = TrainConfig(steps=2, batch_size=2, progress=False, device="cpu", amp=False)
    rng = np.random.default_rng(0)
    data = PairedPatchDataset([rng.random((4, 32, 32)).astype(np.float32)],
                              degrade=make_degrade(cfg), patch_size=32)
    gen, disc = build_models(cfg)
    before = [p.detach().clone() for p in disc.parameters()]
    trainer = InpaintGanTrainer(gen, torch.nn.functional.l1_loss, _adam, data, tmp_path,
                                cfg.train)
    trainer.setup_gan(disc, cfg)
    trainer.fit()
    assert any(not torch.equal(a, b) for a, b in zip(before, disc.parameters(), strict=True))
    png = draw_curves(tmp_path / "curves.png", trainer.history, tmp_path / "log.csv")
    assert png.stat().st_size > 1000 and len(trainer.history) == 2


def test_demo_writes_pictures_and_labels_the_filler(tmp_path: Path) -> None:
    from domains.cloud_inpaint import DOMAIN

    item = DOMAIN.demo(tmp_path, None)[0]  # type: ignore[arg-type]
    assert item.before_png.is_file() and item.after_png.is_file()
    assert "Filler:" in item.note
    assert any(k.startswith("psnr_in_mask") and v > 20 for k, v in item.metrics.items())
