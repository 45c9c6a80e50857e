"""sat-sr: Wald degradation and SR keep georeferencing; seams; Sentinel-2 sets; refusals."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.control
import torch
from PIL import Image
from rasterio.windows import Window

from domains.sat_sr import nets as _nets  # noqa: F401
from domains.sat_sr.sentinel2 import GUIDES, TARGETS, collect_bands, resolve_offset
from domains.sat_sr.sr import WEIGHTS_DIR, SrProducer, load_sr
from suite.io.raster import read_raster_meta
from suite.models import create_model
from suite.weights import save_weights

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data" / "sat" / "landsat8_LC80200392015216_excerpt.tif"
Cli = Callable[..., tuple[int, str, str]]


def _tiny(tmp: Path, scale: int) -> Path:
    """An untrained single-band EDSR with a full card: tests the pipeline, not the quality."""
    args = {"in_channels": 1, "scale": scale, "features": 8, "num_blocks": 1}
    card = {"architecture": "edsr", "arguments": args, "normalization": {}, "training": {},
            "validation": {}, "inference": {"tiling": {"patch": 64, "overlap": 8, "halo": 8}}}
    torch.manual_seed(scale)  # fixed weights: the seam test compares statistics of the output
    return save_weights(tmp / f"tiny_x{scale}.safetensors", create_model("edsr", **args), card)


def _read(path: Path) -> tuple[np.ndarray, dict[str, object]]:
    with rasterio.open(path) as ds:
        info = {"crs": ds.crs, "transform": ds.transform, "desc": ds.descriptions,
                "dtype": ds.dtypes[0], "nodata": ds.nodata, "mask": ds.dataset_mask() > 0}
        return ds.read(), info


def _one_line_refusal(result: tuple[int, str, str], output: Path) -> str:
    code, _, err = result
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error:")
    assert not output.exists()
    return err


def test_degrade_scales_transform_and_keeps_metadata(run_cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "lo.tif"
    assert run_cli("degrade", "sat-sr", SAMPLE, "-o", out, "--scale", "4", "--quiet")[0] == 0
    src, s_info = _read(SAMPLE)
    low, l_info = _read(out)
    assert low.shape == (4, 64, 64) and l_info["crs"] == s_info["crs"]
    t, u = s_info["transform"], l_info["transform"]
    assert (u.a, u.e, u.c, u.f) == (t.a * 4, t.e * 4, t.c, t.f)  # type: ignore[attr-defined]
    assert l_info["desc"] == s_info["desc"] and l_info["dtype"] == "uint16"
    # A coarse pixel is the centred MTF blur of its block: close to the block mean.
    block_mean = src.astype(float).reshape(4, 64, 4, 64, 4).mean(axis=(2, 4))
    assert np.median(np.abs(low - block_mean) / block_mean) < 0.05


def test_degrade_noise_is_seeded(run_cli: Cli, tmp_path: Path) -> None:
    a, b, c = (tmp_path / f"{n}.tif" for n in "abc")
    for path, seed in ((a, 1), (b, 1), (c, 2)):
        args = ("degrade", "sat-sr", SAMPLE, "-o", path, "--noise", "0.02", "--seed", seed)
        assert run_cli(*args, "--quiet")[0] == 0
    assert np.array_equal(_read(a)[0], _read(b)[0]) and not np.array_equal(_read(a)[0],
                                                                          _read(c)[0])


def test_enhance_keeps_georeferencing_and_nodata(run_cli: Cli, tmp_path: Path,
                                                 shared_data: Path) -> None:
    src = tmp_path / "rgb.tif"  # real Landsat 7 RGB with a nodata collar, cropped for speed
    with rasterio.open(shared_data / "remote" / "rasterio_RGB.byte.tif") as ds:
        window = Window(0, 0, 200, 160)
        profile = dict(ds.profile, width=200, height=160)  # window at the origin
        with rasterio.open(src, "w", **profile) as dst:
            dst.write(ds.read(window=window))
            dst.descriptions = ("red", "green", "blue")
    out = tmp_path / "sr.tif"
    weights = _tiny(tmp_path, 2)
    assert run_cli("enhance", "sat-sr", src, "-o", out, "--weights", weights, "--quiet")[0] == 0
    _, s_info = _read(src)
    data, o_info = _read(out)
    assert data.shape == (3, 320, 400) and o_info["dtype"] == "uint8"
    assert o_info["crs"] == s_info["crs"] and o_info["desc"] == ("red", "green", "blue")
    assert o_info["transform"] == s_info["transform"] @ rasterio.Affine.scale(0.5)
    assert o_info["nodata"] == s_info["nodata"]
    nearest = np.repeat(np.repeat(s_info["mask"], 2, 0), 2, 1)  # type: ignore[arg-type]
    assert np.array_equal(o_info["mask"], nearest) and not nearest.all()


def test_enhance_and_degrade_keep_a_gcp_georeference(run_cli: Cli, tmp_path: Path) -> None:
    """A raster located by GCPs (a level-1 swath: no transform) keeps them on the new grid."""
    src = tmp_path / "swath.tif"
    with rasterio.open(SAMPLE) as ds:
        data, crs, t = ds.read(1, window=Window(0, 0, 64, 48))[None], ds.crs, ds.transform
    gcps = [rasterio.control.GroundControlPoint(row=r, col=c, x=(t @ (c, r))[0],
                                                y=(t @ (c, r))[1], z=0.0)
            for r, c in ((0, 0), (0, 64), (48, 0), (48, 64), (20, 30))]
    with rasterio.open(src, "w", driver="GTiff", width=64, height=48, count=1,
                       dtype="uint16") as dst:
        dst.write(data)
        dst.gcps = (gcps, crs)
    fine, coarse = tmp_path / "fine.tif", tmp_path / "coarse.tif"
    weights = _tiny(tmp_path, 2)
    assert run_cli("enhance", "sat-sr", src, "-o", fine, "--weights", weights, "--quiet")[0] == 0
    assert run_cli("degrade", "sat-sr", src, "-o", coarse, "--scale", "2", "--quiet")[0] == 0
    for path, s in ((fine, 2.0), (coarse, 0.5)):
        with rasterio.open(path) as ds:
            written, gcp_crs = ds.gcps
            assert gcp_crs == crs and ds.crs is None
            assert [(g.row, g.col, g.x, g.y) for g in written] == [
                (g.row * s, g.col * s, g.x, g.y) for g in gcps]


def test_an_alpha_band_is_a_mask_not_a_band_to_enhance(run_cli: Cli, tmp_path: Path) -> None:
    """An RGBA orthomosaic: the RGB bands are enhanced and the alpha becomes the output mask
    (it was enhanced as a fourth band and came back fully opaque)."""
    with rasterio.open(SAMPLE) as ds:
        profile, data = ds.profile, ds.read(window=Window(0, 0, 64, 48))
    rgb = (data[:3] / data[:3].max() * 255).astype(np.uint8)
    alpha = np.full((1, 48, 64), 255, np.uint8)
    alpha[0, :16, :24] = 0
    src, out = tmp_path / "ortho.tif", tmp_path / "sr.tif"
    with rasterio.open(src, "w", **dict(profile, width=64, height=48, count=4, dtype="uint8",
                                         photometric="RGB", alpha="YES")) as dst:
        dst.write(np.concatenate([rgb, alpha]))
    weights = _tiny(tmp_path, 2)
    assert run_cli("enhance", "sat-sr", src, "-o", out, "--weights", weights, "--quiet")[0] == 0
    data_out, info = _read(out)
    assert data_out.shape == (3, 96, 128)
    nearest = np.repeat(np.repeat(alpha[0] > 0, 2, 0), 2, 1)
    assert np.array_equal(info["mask"], nearest)


def test_no_seams_across_windows_on_a_real_raster(run_cli: Cli, tmp_path: Path) -> None:
    """x4 of the real 256-pixel excerpt is written as 2x2 windows of 512 pixels.

    Discontinuity at column j: the jump |x[j+1] - x[j]| minus the mean of the two neighbouring
    jumps, averaged over rows and bands. At the window edge it must be no larger than inside
    the windows; and the windowed result must equal one whole-raster pass (rounding aside).
    """
    out = tmp_path / "sr4.tif"
    weights = _tiny(tmp_path, 4)
    assert run_cli("enhance", "sat-sr", SAMPLE, "-o", out, "--scale", "4", "--weights",
                   weights, "--quiet")[0] == 0
    data = _read(out)[0].astype(np.float64)
    for axis in (2, 1):
        jumps = np.abs(np.diff(data, axis=axis)).mean(axis=(0, 3 - axis))
        excess = jumps[1:-1] - (jumps[:-2] + jumps[2:]) / 2  # excess[k] is the jump k+1|k+2
        inside = np.delete(excess, 510)
        assert excess[510] <= np.percentile(inside, 95)
    model, tiling = load_sr(weights, 4)
    whole = SrProducer(SAMPLE, read_raster_meta(SAMPLE), model, 4, tiling)(Window(0, 0, 1024,
                                                                               1024))
    assert np.abs(np.ma.getdata(whole).astype(np.float64) - data).max() <= 1.0


def test_raster_without_georeferencing_runs_without_notices(run_cli: Cli,
                                                            tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (48, 40, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # the project's pytest settings hide this notice
        code, _, err = run_cli("enhance", "--quiet", "sat-sr", tmp_path / "a.png",
                               "-o", tmp_path / "b.tif", "--scale", "2")
    assert code == 0 and err == "", err
    assert not [w for w in caught if "georeferenc" in type(w.message).__name__.lower()]
    with rasterio.open(tmp_path / "b.tif") as ds:
        assert (ds.width, ds.height, ds.count) == (80, 96, 3)


def test_band_files_are_stacked_in_order(run_cli: Cli, tmp_path: Path) -> None:
    src = REPO / "sample_data" / "sat" / "landsat8_LC80200392015216_excerpt.tif"
    with rasterio.open(src) as ds:
        profile, window = ds.profile, Window(0, 0, 64, 48)
        profile.update(count=1, width=64, height=48)  # the window starts at the origin
        files = []
        for k in (3, 1):
            files.append(tmp_path / f"band{k}.tif")
            with rasterio.open(files[-1], "w", **profile) as dst:
                dst.write(ds.read(k, window=window), 1)
    code, _, err = run_cli("enhance", "--quiet", "sat-sr", *files, "-o", tmp_path / "o.tif",
                           "--scale", "2")
    assert code == 0, err
    with rasterio.open(tmp_path / "o.tif") as out:
        assert out.count == 2 and out.descriptions == ("band3", "band1")
        assert out.crs == profile["crs"] and out.transform.a == profile["transform"].a / 2


def test_bad_scale_and_nodata_only_are_refused(run_cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "x.tif"
    for command in ("enhance", "degrade"):
        _one_line_refusal(run_cli(command, "sat-sr", SAMPLE, "-o", out, "--scale", "3"), out)
    err = _one_line_refusal(run_cli("enhance", "sat-sr", SAMPLE, "-o", out, "--scale", "4",
                                    "--weights", _tiny(tmp_path, 2)), out)
    assert "x2" in err
    empty = tmp_path / "empty.tif"
    profile = {"driver": "GTiff", "width": 32, "height": 32, "count": 2, "dtype": "uint16",
               "nodata": 0, "crs": "EPSG:32616", "transform": rasterio.Affine(30, 0, 0, 0,
                                                                               -30, 0)}
    with rasterio.open(empty, "w", **profile) as dst:
        dst.write(np.zeros((2, 32, 32), np.uint16))
    for args in (("degrade", "sat-sr", empty), ("enhance", "sat-sr", empty, "--weights",
                                                _tiny(tmp_path, 2))):
        err = _one_line_refusal(run_cli(*args, "-o", out), out)
        assert "nodata" in err


def test_s2_band_set_is_named_and_checked(s2_set: Path) -> None:
    bands = collect_bands([s2_set])
    assert set(bands.paths) == {*GUIDES, *TARGETS} and bands.offset == 0.0
    assert bands.guide_meta.width == 2 * bands.target_meta.width


def test_s2_offset_from_metadata_or_option(s2_set: Path) -> None:
    paths = {p.stem[2:]: p for p in s2_set.glob("*.tif")}
    assert resolve_offset(paths, "-1000") == -1000.0
    with rasterio.open(paths["B02"], "r+") as ds:
        ds.update_tags(PROCESSING_BASELINE="04.00")
    assert resolve_offset(paths, "auto") == -1000.0
    with rasterio.open(paths["B02"], "r+") as ds:
        ds.update_tags(PROCESSING_BASELINE="02.14", BOA_ADD_OFFSET="-1000")
    assert resolve_offset(paths, "auto") == -1000.0


def _safe_product(s2_set: Path, root: Path, baseline: str, offset: str | None) -> Path:
    """The band files laid out as an L2A ``.SAFE`` product, with decoys an L2A product has: each
    band also at a coarser resolution, and files that are not bands (TCI, SCL)."""
    import shutil

    safe = root / "S2A_MSIL2A_20171221T112501_N0400_R037_T29RKH_20171221T130000.SAFE"
    img = safe / "GRANULE" / "L2A_T29RKH_A013000_20171221T112501" / "IMG_DATA"
    for res in ("R10m", "R20m", "R60m"):
        (img / res).mkdir(parents=True)
    stem = "T29RKH_20171221T112501"
    for band in GUIDES:
        shutil.copy(s2_set / f"T_{band}.tif", img / "R10m" / f"{stem}_{band}_10m.tif")
        shutil.copy(s2_set / "T_B05.tif", img / "R20m" / f"{stem}_{band}_20m.tif")  # decoy
    for band in TARGETS:
        shutil.copy(s2_set / f"T_{band}.tif", img / "R20m" / f"{stem}_{band}_20m.tif")
        shutil.copy(s2_set / f"T_{band}.tif", img / "R60m" / f"{stem}_{band}_60m.tif")  # decoy
    shutil.copy(s2_set / "T_B02.tif", img / "R10m" / f"{stem}_TCI_10m.tif")
    shutil.copy(s2_set / "T_B05.tif", img / "R20m" / f"{stem}_SCL_20m.tif")
    offsets = "" if offset is None else "".join(
        f'<BOA_ADD_OFFSET band_id="{i}">{offset}</BOA_ADD_OFFSET>' for i in range(13))
    (safe / "MTD_MSIL2A.xml").write_text(
        f"<Level-2A_User_Product><PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>"
        f"<BOA_ADD_OFFSET_VALUES_LIST>{offsets}</BOA_ADD_OFFSET_VALUES_LIST>"
        "</Level-2A_User_Product>")
    return safe


def test_s2_safe_product_gives_native_bands_and_its_offset(s2_set: Path, tmp_path: Path) -> None:
    safe = _safe_product(s2_set, tmp_path, "04.00", "-1000")
    bands = collect_bands([safe])
    assert sorted(bands.paths) == sorted((*GUIDES, *TARGETS))
    for name, path in bands.paths.items():
        assert path.stem.endswith(f"_{name}_{'10m' if name in GUIDES else '20m'}")
    assert bands.offset == -1000.0
    # band files given one by one from inside the product still find its metadata
    assert collect_bands(list(bands.paths.values())).offset == -1000.0


def test_s2_safe_offset_from_the_baseline_and_not_from_above_the_product(
    s2_set: Path, tmp_path: Path
) -> None:
    assert collect_bands([_safe_product(s2_set, tmp_path / "a", "04.00", None)]).offset == -1000
    assert collect_bands([_safe_product(s2_set, tmp_path / "b", "02.14", None)]).offset == 0
    (tmp_path / "MTD_MSIL2A.xml").write_text("<PROCESSING_BASELINE>05.00</PROCESSING_BASELINE>")
    assert collect_bands([s2_set]).offset == 0  # a plain folder: no search upwards


def test_s2_refuses_unknown_bands_and_mismatched_grids(run_cli: Cli, s2_set: Path,
                                                       tmp_path: Path) -> None:
    out = tmp_path / "s2.tif"
    files = sorted(s2_set.glob("*.tif"))
    odd = s2_set / "T_B13.tif"
    shutil.copy(files[0], odd)
    err = _one_line_refusal(run_cli("enhance", "sat-sr", *files, odd, "-o", out,
                                    "--sentinel2"), out)
    assert "B13" in err
    odd.unlink()
    b05 = s2_set / "T_B05.tif"
    with rasterio.open(b05) as ds:
        profile, data = dict(ds.profile, width=50, height=50), ds.read(window=Window(0, 0, 50, 50))
    with rasterio.open(b05, "w", **profile) as dst:
        dst.write(data)
    err = _one_line_refusal(run_cli("enhance", "sat-sr", *files, "-o", out, "--sentinel2"), out)
    assert "B05" in err and "grid" in err


@pytest.mark.skipif(not (WEIGHTS_DIR / "s2_dsen2.safetensors").is_file(),
                    reason="shipped Sentinel-2 weights not installed")
def test_s2_enhance_writes_six_bands_on_the_10m_grid(run_cli: Cli, s2_set: Path,
                                                     tmp_path: Path) -> None:
    out = tmp_path / "s2.tif"
    assert run_cli("enhance", "sat-sr", s2_set, "-o", out, "--sentinel2", "--quiet")[0] == 0
    data, info = _read(out)
    with rasterio.open(s2_set / "T_B02.tif") as g:
        assert data.shape == (6, g.height, g.width) and info["transform"] == g.transform
    assert str(info["desc"][3]).startswith("B8A")


@pytest.mark.skipif(not (WEIGHTS_DIR / "default_x2.safetensors").is_file(),
                    reason="shipped weights not installed")
def test_demo_beats_bicubic(tmp_path: Path) -> None:
    from domains.sat_sr import DOMAIN

    items = DOMAIN.demo(tmp_path, None)  # type: ignore[arg-type]
    assert items[0].after_png.is_file() and items[0].reference_png is not None
    assert items[0].metrics["default_psnr_db"] > items[0].metrics["bicubic_psnr_db"]


def _enhance_each(run_cli: Cli, tmp_path: Path, weights: Path,
                  variants: dict[str, list]) -> dict[str, Path]:
    """The sample enhanced x2 once per named set of extra options; the output paths."""
    outs = {}
    for name, extra in variants.items():
        outs[name] = tmp_path / f"{name}.tif"
        code, _, err = run_cli("--quiet", "enhance", "sat-sr", SAMPLE, "-o", outs[name],
                               "--scale", "2", "--weights", weights, *extra)
        assert code == 0, err
    return outs


def test_enhance_on_onnxruntime_fp32_and_int8(run_cli: Cli, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("SUITE_CACHE", str(tmp_path / "cache"))
    weights = _tiny(tmp_path, 2)
    int8 = tmp_path / "tiny_int8.onnx"
    code, _, err = run_cli("--quiet", "export", "sat-sr", "--weights", weights, "--int8",
                           "--calibration-count", "4", "-o", int8)
    assert code == 0, err  # calibrated on the domain's own sample patches
    outs = _enhance_each(run_cli, tmp_path, weights, {
        "torch": [], "ort": ["--runtime", "onnxruntime"],
        "int8": ["--runtime", "onnxruntime", "--weights", int8]})
    ref, info = _read(outs["torch"])
    ort, ort_info = _read(outs["ort"])
    quant, _ = _read(outs["int8"])
    assert ort_info["crs"] == info["crs"] and ort_info["transform"] == info["transform"]
    span = float(ref.max()) - float(ref.min())
    assert np.abs(ort.astype(float) - ref).max() <= 1  # DN: fp32, rounding only
    assert 0 < np.abs(quant.astype(float) - ref).max() < 0.05 * span
    err = _one_line_refusal(run_cli("enhance", "sat-sr", SAMPLE, "-o", tmp_path / "x.tif",
                                    "--runtime", "torch-int8"), tmp_path / "x.tif")
    assert "sat-sr runs on torch, torch-bf16, onnxruntime only" in err


def test_enhance_on_torch_bf16_keeps_georeference_and_is_close(run_cli: Cli,
                                                               tmp_path: Path) -> None:
    weights = _tiny(tmp_path, 2)
    outs = _enhance_each(run_cli, tmp_path, weights,
                         {"torch": [], "bf16": ["--runtime", "torch-bf16"]})
    ref, info = _read(outs["torch"])
    fast, fast_info = _read(outs["bf16"])
    assert fast_info["crs"] == info["crs"] and fast_info["transform"] == info["transform"]
    span = float(ref.max()) - float(ref.min())
    assert 0 < np.abs(fast.astype(float) - ref).max() < 0.05 * span


def test_calibration_patches_are_model_units() -> None:
    from domains.sat_sr import DOMAIN

    patches = DOMAIN.calibration_patches(5)
    assert len(patches) == 5 and all(p.shape == (1, 64, 64) for p in patches)
    values = np.concatenate([p.ravel() for p in patches])
    assert -0.5 < np.percentile(values, 1) and np.percentile(values, 99) < 1.5


def test_s2_batch_takes_each_scene_folder_as_one_item(run_cli: Cli, s2_set: Path,
                                                      tmp_path: Path) -> None:
    safe = _safe_product(s2_set, tmp_path / "products", "04.00", "-1000")
    out = tmp_path / "out"
    code, _, err = run_cli("batch", "sat-sr", safe, s2_set, "-o", out, "--sentinel2",
                           "--s2-method", "classical", "--workers", "1", "--quiet")
    assert code == 0, err
    names = sorted(p.name for p in out.glob("*.tif"))
    assert names == sorted([f"{safe.name.removesuffix('.SAFE')}_10m.tif", "s2_10m.tif"])
    with rasterio.open(out / "s2_10m.tif") as ds:
        assert ds.count == 6 and ds.width == 2 * rasterio.open(s2_set / "T_B05.tif").width


def test_evaluate_refuses_a_raster_of_another_place(tmp_path: Path, run_cli) -> None:
    """Only the sizes were compared: the reference itself moved 1.2 km scored as perfect."""
    from affine import Affine

    moved = tmp_path / "moved.tif"
    shutil.copy(SAMPLE, moved)
    with rasterio.open(moved, "r+") as ds:
        ds.transform = ds.transform @ Affine.translation(40, 0)
    code, out, err = run_cli("evaluate", "sat-sr", "--pred", moved, "--ref", SAMPLE)
    assert code == 2 and "moved.tif: the prediction lies on another grid" in err and out == ""
    code, out, err = run_cli("evaluate", "sat-sr", "--pred", SAMPLE, "--ref", SAMPLE)
    assert code == 0 and "psnr_db" in out, err


def test_enhance_shows_its_progress_unless_quiet(tmp_path: Path, run_cli) -> None:
    """A large scene ran for hours with nothing on screen until the 'wrote' line."""
    code, _, err = run_cli("enhance", "sat-sr", SAMPLE, "-o", tmp_path / "a.tif", "--scale", "2",
                           "--model", "espcn")
    assert code == 0 and "windows" in err, err
    code, _, err = run_cli("enhance", "sat-sr", SAMPLE, "-o", tmp_path / "b.tif", "--scale", "2",
                           "--model", "espcn", "--quiet")
    assert code == 0 and err == ""


def test_evaluate_ssim_leaves_nan_nodata_out(tmp_path: Path, run_cli) -> None:
    """SSIM was computed over every pixel: one NaN nodata patch made it NaN."""
    with rasterio.open(SAMPLE) as ds:
        profile, data = ds.profile, ds.read().astype(np.float32)
    data[:, 5:9, 5:9] = np.nan
    profile.update(dtype="float32", nodata=np.nan)
    ref, pred = tmp_path / "ref.tif", tmp_path / "pred.tif"
    for path, values in ((ref, data), (pred, data * 1.01)):
        with rasterio.open(path, "w", **profile) as out:
            out.write(values)
    code, out, err = run_cli("evaluate", "sat-sr", "--pred", pred, "--ref", ref)
    assert code == 0, err
    ssim_value = float(out.split("ssim")[1].split()[0])
    assert 0.9 < ssim_value <= 1.0


def test_enhance_writes_a_cloud_optimized_geotiff_when_asked(tmp_path: Path, run_cli) -> None:
    out = tmp_path / "cog.tif"
    code, _, err = run_cli("enhance", "sat-sr", SAMPLE, "-o", out, "--scale", "2", "--model",
                           "espcn", "--cog", "--quiet")
    assert code == 0, err
    with rasterio.open(out) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG" and ds.overviews(1)
