"""Pansharpening: MTF filters, pairing by georeferencing, registration, methods, the domain."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.warp import reproject
from rasterio.windows import Window
from scipy import ndimage

from domains.pansharpen import DOMAIN, classical
from domains.pansharpen.pairing import ms_coordinates, pair_rasters
from domains.pansharpen.registration import correct_shifts, estimate_shifts
from suite.degradations.mtf import SENSORS, mtf_kernel_1d, sensor_mtf, wald_degrade
from suite.errors import InputError
from suite.metrics.spectral import ergas

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
L8 = DATA / "remote" / "landsat8_LC80200392015216LGN00"
needs_l8 = pytest.mark.skipif(not (L8 / "l8_B8.tif").exists(), reason="shared data absent")


def geotiff(
    path: Path,
    data: np.ndarray,
    res: float,
    x0: float = 500000.0,
    y0: float = 4e6,
    epsg: int = 32633,
    nodata: float | None = None,
) -> Path:
    """Write a small GeoTIFF with a real CRS."""
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=str(data.dtype),
        crs=CRS.from_epsg(epsg),
        transform=Affine(res, 0, x0, 0, -res, y0),
        nodata=nodata,
    ) as dst:
        dst.write(data)
    return path


def options(pan: Path, method: str = "gsa") -> argparse.Namespace:
    return argparse.Namespace(pan=pan, method=method, sensor="generic", register="off")


@pytest.mark.parametrize("sensor", sorted(SENSORS))
def test_mtf_kernel_response_at_nyquist_equals_gain(sensor: str) -> None:
    for ratio in (2, 4):
        for gain in (*sensor_mtf(sensor).ms[:2], sensor_mtf(sensor).pan):
            taps = mtf_kernel_1d(gain, ratio)
            d = np.arange(taps.size) - taps.size // 2
            assert np.sum(taps * np.cos(np.pi * d / ratio)) == pytest.approx(gain, abs=1e-3)


def test_wald_degrade_shapes_and_constant() -> None:
    ms = np.full((4, 40, 48), 3.0, np.float32)
    pan = np.full((160, 192), 5.0, np.float32)
    ms_lr, pan_lr = wald_degrade(ms, pan, 4, "quickbird")
    assert ms_lr.shape == (4, 10, 12) and pan_lr.shape == (40, 48)
    np.testing.assert_allclose(ms_lr, 3.0, rtol=1e-6)
    np.testing.assert_allclose(pan_lr, 5.0, rtol=1e-6)


# ---------------------------------------------------------------- bad inputs


@pytest.fixture
def good(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    ms = geotiff(tmp_path / "ms.tif", rng.integers(1, 1000, (3, 20, 24)).astype("uint16"), 40.0)
    pan = geotiff(tmp_path / "pan.tif", rng.integers(1, 1000, (1, 80, 96)).astype("uint16"), 10.0)
    return ms, pan


def test_good_pair(good: tuple[Path, Path]) -> None:
    pair = pair_rasters([good[0]], good[1])
    assert pair.ratio == 4 and pair.shape == (80, 96) and pair.band_count == 3


@pytest.mark.parametrize(
    ("case", "blame"),
    [
        ("disjoint", "pan"),
        ("crs", "pan"),
        ("one_band", "ms"),
        ("multi_pan", "pan"),
        ("non_integer", "pan"),
        ("inverted", "pan"),
        ("not_raster", "pan"),
    ],
)
def test_bad_pairs_name_the_file(
    tmp_path: Path, good: tuple[Path, Path], case: str, blame: str
) -> None:
    ms, pan = good
    data = np.ones((1, 80, 96), "uint16")
    if case == "disjoint":
        pan = geotiff(tmp_path / "p2.tif", data, 10.0, x0=900000.0)
    elif case == "crs":
        pan = geotiff(tmp_path / "p2.tif", data, 10.0, epsg=32634)
    elif case == "one_band":
        ms = geotiff(tmp_path / "m1.tif", np.ones((1, 20, 24), "uint16"), 40.0)
    elif case == "multi_pan":
        pan = geotiff(tmp_path / "p2.tif", np.ones((2, 80, 96), "uint16"), 10.0)
    elif case == "non_integer":
        pan = geotiff(tmp_path / "p2.tif", data, 16.0)
    elif case == "inverted":
        pan = geotiff(tmp_path / "p2.tif", data, 80.0)
    else:
        pan = tmp_path / "p2.tif"
        pan.write_bytes(b"not a tiff")
    with pytest.raises(InputError) as err:
        DOMAIN.enhance([ms], tmp_path / "out.tif", options(pan))
    target = ms if blame == "ms" else pan
    assert err.value.path == target and str(target) in str(err.value)
    assert not (tmp_path / "out.tif").exists()


def test_an_alpha_band_of_the_ms_is_not_a_band_to_sharpen(tmp_path: Path,
                                                          good: tuple[Path, Path]) -> None:
    rng = np.random.default_rng(1)
    data = rng.integers(1, 1000, (4, 20, 24)).astype("uint16")
    data[3] = 65535
    ms = tmp_path / "rgba.tif"
    with rasterio.open(ms, "w", driver="GTiff", width=24, height=20, count=4, dtype="uint16",
                       crs=CRS.from_epsg(32633), transform=Affine(40.0, 0, 500000.0, 0, -40.0, 4e6),
                       photometric="RGB", alpha="YES") as dst:
        dst.write(data)
    pair = pair_rasters([ms], good[1])
    assert pair.band_count == 3 and pair.ms_bands == ((0, 1), (0, 2), (0, 3))
    pan = tmp_path / "pan_alpha.tif"  # a grey + alpha PAN is one band (it was "has 2 bands")
    with rasterio.open(pan, "w", driver="GTiff", width=96, height=80, count=2, dtype="uint16",
                       crs=CRS.from_epsg(32633), transform=Affine(10.0, 0, 500000.0, 0, -10.0, 4e6),
                       alpha="YES") as dst:
        dst.write(np.stack([np.ones((80, 96), "uint16"), np.full((80, 96), 65535, "uint16")]))
    assert pair_rasters([ms], pan).ratio == 4


def test_gcp_georeferenced_pan_is_refused_with_what_to_do(
    tmp_path: Path, good: tuple[Path, Path]
) -> None:
    pan = tmp_path / "swath_pan.tif"
    gcps = [GroundControlPoint(row=r, col=c, x=500000 + 10 * c, y=4e6 - 10 * r)
            for r, c in ((0, 0), (0, 96), (80, 0), (80, 96))]
    with rasterio.open(pan, "w", driver="GTiff", width=96, height=80, count=1,
                       dtype="uint16") as dst:
        dst.write(np.ones((1, 80, 96), "uint16"))
        dst.gcps = (gcps, CRS.from_epsg(32633))
    with pytest.raises(InputError, match=r"GCPs or RPCs, not a grid.*gdalwarp"):
        DOMAIN.enhance([good[0]], tmp_path / "out.tif", options(pan))
    assert not (tmp_path / "out.tif").exists()


def test_all_nodata_refused(tmp_path: Path, good: tuple[Path, Path]) -> None:
    ms = geotiff(tmp_path / "m0.tif", np.zeros((3, 20, 24), "uint16"), 40.0, nodata=0)
    with pytest.raises(InputError) as err:
        DOMAIN.enhance([ms], tmp_path / "out.tif", options(good[1]))
    assert err.value.path == ms and "nodata" in str(err.value)


def test_synthetic_end_to_end_keeps_metadata_and_masks(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    truth = ndimage.gaussian_filter(rng.random((3, 160, 192)), (0, 2, 2)) * 1000 + 100
    ms_data = truth.reshape(3, 40, 4, 48, 4).mean(axis=(2, 4)).astype("uint16")
    ms_data[:, :2] = 0
    ms = geotiff(tmp_path / "ms.tif", ms_data, 40.0, nodata=0)
    pan = geotiff(tmp_path / "pan.tif", truth.mean(0, keepdims=True).astype("uint16"), 10.0)
    out = tmp_path / "fused.tif"
    for method in classical.METHODS:
        summary = DOMAIN.enhance([ms], out, options(pan, method))
        with rasterio.open(out) as ds, rasterio.open(pan) as p:
            assert ds.crs == p.crs and ds.transform == p.transform and ds.count == 3
            assert ds.nodata == 0 and ds.dtypes[0] == "uint16"
            assert ds.descriptions == ("ms_b1", "ms_b2", "ms_b3")
            valid = ds.dataset_mask() > 0
            assert not valid[:8].any() and valid[12:].all()
            fused = ds.read().astype(float)
        assert summary["ratio"] == 4
        assert np.abs(fused[:, 12:] - truth[:, 12:]).mean() < 60, method


# ---------------------------------------------------------------- real Landsat 8 pair


@needs_l8
def test_landsat_half_pixel_offset_is_honoured() -> None:
    pair = pair_rasters([L8 / "l8_B2.tif", L8 / "l8_B3.tif"], L8 / "l8_B8.tif")
    assert pair.ratio == 2
    rows, cols = ms_coordinates(pair, Window(0, 0, 3, 3))
    np.testing.assert_allclose(cols, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(rows, [0.0, 0.5, 1.0])


@needs_l8
def test_registration_recovers_known_subpixel_shift() -> None:
    with rasterio.open(L8 / "l8_B4.tif") as ds:
        band = ds.read(1, window=Window(100, 100, 256, 256)).astype(np.float64)
    known = np.array([0.3, -0.45])
    moved = correct_shifts(band[None], known[None])[0]
    shifts, _ = estimate_shifts(moved[None, 16:-16, 16:-16], band[16:-16, 16:-16])
    np.testing.assert_allclose(shifts[0], -known, atol=0.1)


def _aligned_pan(ms_meta: rasterio.DatasetReader, pan_path: Path) -> np.ndarray:
    """PAN resampled (cubic) onto the 15 m grid aligned with the MS pixel corners."""
    dst = np.zeros((ms_meta.height * 2, ms_meta.width * 2), np.float32)
    with rasterio.open(pan_path) as src:
        reproject(
            rasterio.band(src, 1),
            dst,
            dst_transform=ms_meta.transform @ Affine.scale(0.5),
            dst_crs=src.crs,
            resampling=Resampling.cubic,
        )
    return dst


@needs_l8
def test_wald_protocol_mtf_glp_and_gsa_beat_bicubic() -> None:
    with rasterio.open(L8 / "l8_B2.tif") as ds:
        pan = _aligned_pan(ds, L8 / "l8_B8.tif")[2:-2, 2:-2]
    ms = np.stack([rasterio.open(L8 / f"l8_B{b}.tif").read(1) for b in (2, 3, 4)])
    ms = ms[:, 1:-1, 1:-1].astype(np.float32)
    ms_lr, pan_lr = wald_degrade(ms, pan, 2, "landsat8")
    ms = ms[:, : ms_lr.shape[1] * 2, : ms_lr.shape[2] * 2]
    pan_lr = pan_lr[: ms.shape[1], : ms.shape[2]]
    grid = (np.arange(ms.shape[1]) + 0.5) / 2 - 0.5, (np.arange(ms.shape[2]) + 0.5) / 2 - 0.5
    coords = np.meshgrid(*grid, indexing="ij")
    up = np.stack([ndimage.map_coordinates(b, coords, order=3, mode="nearest") for b in ms_lr])
    # Clouds move between OLI bands (band-to-band parallax, ~1.5 px for B3 here), so the
    # reference itself disagrees with the PAN over clouds: score on clear pixels (BQA cloud
    # confidence <= low, eroded 3 px; about 59% of the scene).
    with rasterio.open(L8 / "l8_BQA.tif") as ds:
        qa = ds.read(1)[1:-1, 1:-1][: ms.shape[1], : ms.shape[2]]
    clear = ndimage.binary_erosion(((qa >> 14) & 3) <= 1, iterations=3)
    gains = sensor_mtf("landsat8").ms_gains(3)
    base = ergas(up, ms, 2, clear)
    scores = {
        m: ergas(classical.pansharpen(up, pan_lr, m, 2, gains), ms, 2, clear)
        for m in ("mtf-glp", "gsa")
    }
    assert scores["mtf-glp"] < base and scores["gsa"] < base, (base, scores)


def test_degrade_writes_the_wald_pair_and_its_reference_for_the_cli(
    tmp_path: Path, run_cli
) -> None:
    sample = Path(__file__).resolve().parents[1] / "sample_data" / "pansharpen"
    ms, pan = sample / "l8_ms_b2-b5.tif", sample / "l8_pan_b8.tif"
    low = tmp_path / "low.tif"
    code, _, err = run_cli("degrade", "pansharpen", ms, "--pan", pan, "-o", low,
                           "--sensor", "landsat8", "--quiet")
    assert code == 0, err
    with rasterio.open(low) as lo, rasterio.open(tmp_path / "low_pan.tif") as lp, \
            rasterio.open(tmp_path / "low_ref.tif") as ref, rasterio.open(ms) as src:
        assert lo.crs == src.crs and lo.count == ref.count == src.count and lp.count == 1
        assert lo.res == (2 * src.res[0], 2 * src.res[1])  # Landsat 8: PAN/MS ratio 2
        assert lp.res == ref.res == src.res and lp.shape == ref.shape
        assert (lo.width * 2, lo.height * 2) == (ref.width, ref.height)
        assert lo.transform.c == ref.transform.c and lo.transform.f == ref.transform.f
        # the reference is the original MS, pixel for pixel, on its own grid
        col, row = (round(v) for v in ~src.transform @ (ref.transform.c, ref.transform.f))
        window = rasterio.windows.Window(col, row, ref.width, ref.height)
        np.testing.assert_array_equal(ref.read(), src.read(window=window))
    fused = tmp_path / "fused.tif"
    assert run_cli("enhance", "pansharpen", low, "--pan", tmp_path / "low_pan.tif", "-o", fused,
                   "--method", "mtf-glp", "--sensor", "landsat8", "--quiet")[0] == 0
    code, out, err = run_cli("evaluate", "pansharpen", "--pred", fused,
                             "--ref", tmp_path / "low_ref.tif", "--ratio", "2")
    assert code == 0, err
    assert 0 < float(out.split("ergas_ratio2")[1].split()[0]) < 10


def test_degrade_without_pan_is_refused(tmp_path: Path, run_cli) -> None:
    sample = Path(__file__).resolve().parents[1] / "sample_data" / "pansharpen"
    code, _, err = run_cli("degrade", "pansharpen", sample / "l8_ms_b2-b5.tif",
                           "-o", tmp_path / "low.tif")
    assert code == 2 and "needs --pan" in err and list(tmp_path.iterdir()) == []


def test_classical_fit_refuses_what_a_script_may_pass() -> None:
    from domains.pansharpen.classical import mtf_glp
    from suite.errors import ShapeError, UsageError

    rng = np.random.default_rng(0)
    ms, pan = rng.random((4, 32, 32)), rng.random((32, 32))
    with pytest.raises(UsageError, match="injection must be"):
        mtf_glp(ms, pan, 4, injection="HPM")
    with pytest.raises(UsageError, match="ratio must be"):
        mtf_glp(ms, pan, 0)
    with pytest.raises(ShapeError, match="resampled onto the PAN grid"):
        mtf_glp(ms[:, :8, :8], pan, 4)  # MS at its own resolution
    assert mtf_glp(ms, pan, 4, injection="hpm").shape == ms.shape


def test_degrade_side_files_never_replace_an_input(tmp_path: Path, run_cli) -> None:
    """-o scene.tif writes scene_pan.tif and scene_ref.tif: inputs of those names survive."""
    sample = Path(__file__).resolve().parents[1] / "sample_data" / "pansharpen"
    ms, pan = tmp_path / "scene_ref.tif", tmp_path / "scene_pan.tif"
    ms.write_bytes((sample / "l8_ms_b2-b5.tif").read_bytes())
    pan.write_bytes((sample / "l8_pan_b8.tif").read_bytes())
    before = ms.read_bytes(), pan.read_bytes()
    code, _, err = run_cli("degrade", "pansharpen", ms, "--pan", pan, "-o",
                           tmp_path / "scene.tif", "--quiet")
    assert code == 2 and "output path is the input" in err
    assert (ms.read_bytes(), pan.read_bytes()) == before
    assert not (tmp_path / "scene.tif").exists()
    code, _, err = run_cli("degrade", "pansharpen", ms, "--pan", pan, "-o",
                           tmp_path / "low.v2.tif", "--quiet")
    assert code == 0, err
    assert (tmp_path / "low.v2_pan.tif").is_file() and (tmp_path / "low.v2_ref.tif").is_file()


def test_an_output_on_the_pan_band_is_refused(tmp_path: Path, run_cli) -> None:
    sample = Path(__file__).resolve().parents[1] / "sample_data" / "pansharpen"
    pan = tmp_path / "pan.tif"
    pan.write_bytes((sample / "l8_pan_b8.tif").read_bytes())
    before = pan.read_bytes()
    code, _, err = run_cli("enhance", "pansharpen", sample / "l8_ms_b2-b5.tif", "--pan", pan,
                           "-o", pan, "--method", "mtf-glp", "--quiet")
    assert code == 2 and "output path is the input" in err and pan.read_bytes() == before


def _sample_band_files(folder: Path, dtypes: tuple[str, ...]) -> list[Path]:
    """The bundled MS excerpt's first bands as one file each, in the given data types (a float
    type holds reflectance: the value / 65535)."""
    sample = Path(__file__).resolve().parents[1] / "sample_data" / "pansharpen"
    with rasterio.open(sample / "l8_ms_b2-b5.tif") as src:
        profile, data = src.profile, src.read()
    files = []
    for k, dtype in enumerate(dtypes):
        values = data[k] / 65535.0 if np.dtype(dtype).kind == "f" else data[k]
        profile.update(count=1, dtype=dtype, nodata=0)
        files.append(folder / f"b{k}.tif")
        with rasterio.open(files[-1], "w", **profile) as dst:
            dst.write(values.astype(dtype)[None])
    return files


def test_ms_band_files_of_another_data_type_are_refused(tmp_path: Path, run_cli) -> None:
    """A float reflectance band written into the first file's uint16 would become zeros."""
    sample = Path(__file__).resolve().parents[1] / "sample_data" / "pansharpen"
    files = _sample_band_files(tmp_path, ("uint16", "float32"))
    out = tmp_path / "o.tif"
    code, _, err = run_cli("enhance", "pansharpen", *files, "--pan", sample / "l8_pan_b8.tif",
                           "-o", out, "--method", "mtf-glp", "--quiet")
    assert code == 2 and "data type float32" in err and str(files[1]) in err
    assert not out.exists()


def _float_nan_copy(src: Path, dst: Path, hole: tuple[slice, slice]) -> Path:
    """The file as float32 reflectance with NaN nodata and a NaN patch."""
    with rasterio.open(src) as ds:
        profile, data = ds.profile, ds.read().astype(np.float32) / 65535.0
    data[(slice(None), *hole)] = np.nan
    profile.update(dtype="float32", nodata=np.nan)
    with rasterio.open(dst, "w", **profile) as out:
        out.write(data)
    return dst


@pytest.mark.parametrize("method", ["mtf-glp", "deep"])
def test_nan_nodata_stays_where_it_is(tmp_path: Path, run_cli, method: str) -> None:
    """Registration and the deep method's adaptation once fed NaN nodata to their statistics:
    a crash (exit 1), or NaN in every output pixel."""
    sample = Path(__file__).resolve().parents[1] / "sample_data" / "pansharpen"
    ms = _float_nan_copy(sample / "l8_ms_b2-b5.tif", tmp_path / "ms.tif",
                         (slice(10, 16), slice(10, 16)))
    pan = _float_nan_copy(sample / "l8_pan_b8.tif", tmp_path / "pan.tif",
                          (slice(100, 120), slice(60, 90)))
    out = tmp_path / "o.tif"
    code, _, err = run_cli("enhance", "pansharpen", ms, "--pan", pan, "-o", out, "--method",
                           method, "--adapt-steps", "3", "--quiet")
    assert code == 0, err
    with rasterio.open(out) as ds:
        data, valid = ds.read(), ds.dataset_mask() > 0
    assert np.isfinite(data[:, valid]).all() and 0.5 < valid.mean() < 1.0


def test_evaluate_leaves_nodata_out_and_refuses_another_grid(tmp_path: Path, run_cli) -> None:
    sample = Path(__file__).resolve().parents[1] / "sample_data" / "pansharpen"
    ref = _float_nan_copy(sample / "l8_ms_b2-b5.tif", tmp_path / "ref.tif",
                          (slice(10, 16), slice(10, 16)))
    with rasterio.open(ref) as ds:
        profile, data = ds.profile, ds.read()
    noisy = data + np.random.default_rng(0).normal(0, 0.002, data.shape).astype(np.float32)
    with rasterio.open(tmp_path / "pred.tif", "w", **profile) as out:
        out.write(noisy)
    code, out, err = run_cli("evaluate", "pansharpen", "--pred", tmp_path / "pred.tif", "--ref",
                             ref, "--ratio", "2")
    assert code == 0, err
    values = dict(line.split("\t") for line in out.strip().splitlines())
    assert all(np.isfinite(float(v)) for v in values.values()), values
    assert 0.5 < float(values["q2n_block32"]) < 1.0
    profile.update(transform=profile["transform"] @ Affine.translation(10, 0))
    with rasterio.open(tmp_path / "moved.tif", "w", **profile) as out:
        out.write(data)
    code, _, err = run_cli("evaluate", "pansharpen", "--pred", tmp_path / "pred.tif", "--ref",
                           tmp_path / "moved.tif", "--ratio", "2")
    assert code == 2 and "another grid" in err


def test_degrade_keeps_nodata_out_of_the_degraded_pair(tmp_path: Path, run_cli) -> None:
    """A nodata collar (0) was blurred into its neighbours, which came out valid and dark."""
    sample = Path(__file__).resolve().parents[1] / "sample_data" / "pansharpen"
    files = {}
    for name, src, cols in (("ms", "l8_ms_b2-b5.tif", 8), ("pan", "l8_pan_b8.tif", 16)):
        with rasterio.open(sample / src) as ds:
            profile, data = ds.profile, ds.read()
        data[:, :, :cols] = 0
        profile.update(nodata=0)
        files[name] = tmp_path / f"{name}.tif"
        with rasterio.open(files[name], "w", **profile) as out:
            out.write(data)
    low = tmp_path / "low.tif"
    code, _, err = run_cli("degrade", "pansharpen", files["ms"], "--pan", files["pan"], "-o",
                           low, "--quiet")
    assert code == 0, err
    with rasterio.open(tmp_path / "low_ref.tif") as ref, rasterio.open(low) as lo:
        ref_data, ref_valid = ref.read(), ref.dataset_mask() > 0
        lo_data, lo_valid = lo.read(), lo.dataset_mask() > 0
    assert lo_valid.mean() <= ref_valid.mean()
    assert lo_data[:, lo_valid].min() > 0.5 * ref_data[:, ref_valid].min()


@pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")  # rasterio's
def test_a_one_row_strip_is_sharpened_without_registration(tmp_path: Path, run_cli) -> None:
    """Registration cut a zero-row window from a one-row MS strip: an internal error."""
    sample = Path(__file__).resolve().parents[1] / "sample_data" / "pansharpen"
    with rasterio.open(sample / "l8_ms_b2-b5.tif") as ms:
        strip = Window(0, 10, ms.width, 1)
        profile, data = ms.profile, ms.read(window=strip)
        profile.update(height=1, transform=ms.window_transform(strip))
        bounds = rasterio.windows.bounds(strip, ms.transform)
    with rasterio.open(tmp_path / "ms.tif", "w", **profile) as out:
        out.write(data)
    with rasterio.open(sample / "l8_pan_b8.tif") as pan:
        win = rasterio.windows.from_bounds(*bounds, pan.transform).round_offsets().round_lengths()
        win = Window(win.col_off, win.row_off - 1, win.width, win.height + 2)
        profile, data = pan.profile, pan.read(window=win)
        profile.update(height=data.shape[1], width=data.shape[2],
                       transform=pan.window_transform(win))
    with rasterio.open(tmp_path / "pan.tif", "w", **profile) as out:
        out.write(data)
    code, _, err = run_cli("enhance", "pansharpen", tmp_path / "ms.tif", "--pan",
                           tmp_path / "pan.tif", "-o", tmp_path / "o.tif", "--method", "mtf-glp",
                           "--quiet")
    assert code == 0, err
    code, _, err = run_cli("degrade", "pansharpen", tmp_path / "ms.tif", "--pan",
                           tmp_path / "pan.tif", "-o", tmp_path / "low.tif", "--quiet")
    assert code == 2 and "needs more than 2 a side" in err


def test_band_files_keep_their_own_tags_in_the_fusion(tmp_path: Path, run_cli) -> None:
    sample = Path(__file__).resolve().parents[1] / "sample_data" / "pansharpen"
    files = _sample_band_files(tmp_path, ("uint16", "uint16"))
    for k, (path, wavelength) in enumerate(zip(files, ("0.48", "0.56"), strict=True)):
        with rasterio.open(path, "r+") as dst:
            dst.update_tags(BAND=f"B{k + 2}", SENSOR="OLI")
            dst.update_tags(1, WAVELENGTH=wavelength)
    out = tmp_path / "o.tif"
    code, _, err = run_cli("enhance", "pansharpen", *files, "--pan", sample / "l8_pan_b8.tif",
                           "-o", out, "--method", "mtf-glp", "--quiet")
    assert code == 0, err
    with rasterio.open(out) as ds:
        assert [ds.tags(i).get("WAVELENGTH") for i in (1, 2)] == ["0.48", "0.56"]
        assert ds.tags().get("SENSOR") == "OLI" and "BAND" not in ds.tags()
