"""Raster I/O: metadata round trip, windowed writing, masks, COG, normalization, errors."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.rpc import RPC
from rasterio.transform import RPCTransformer
from rasterio.windows import Window

from suite.errors import InputError
from suite.io.raster import (
    RasterMeta,
    denormalize,
    detect_normalization,
    gdal_env,
    inner_slices,
    iter_windows,
    normalize,
    read_raster_meta,
    read_valid_mask,
    read_window,
    scale_transform,
    stacked_bands,
    write_raster_windows,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RGB = DATA / "remote" / "rasterio_RGB.byte.tif"
needs_data = pytest.mark.skipif(not RGB.exists(), reason="shared data absent")


def fake_geotiff(
    path: Path, data: np.ndarray, nodata: float | None = None, **extra: object
) -> Path:
    """Write a small striped GeoTIFF in EPSG:32633 with 10 m pixels."""
    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": str(data.dtype),
        "nodata": nodata,
        "crs": CRS.from_epsg(32633),
        "transform": Affine(10, 0, 500000, 0, -10, 4000000),
    }
    profile.update(extra)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def reader(path: Path) -> Callable[[Window], np.ndarray]:
    """Producer that copies ``path`` window by window (masked)."""
    return lambda window: read_window(path, window, masked=True)


@needs_data
def test_round_trip_real_raster_keeps_metadata_and_values(tmp_path: Path) -> None:
    meta = read_raster_meta(RGB)
    meta = meta.updated(descriptions=("red", "green", "blue"))
    out = write_raster_windows(tmp_path / "rgb.tif", meta, reader(RGB))
    with rasterio.open(RGB) as src, rasterio.open(out) as dst:
        assert dst.crs == src.crs and dst.crs.to_epsg() == 32618
        assert dst.transform == src.transform
        assert dst.nodata == src.nodata == 0
        assert dst.dtypes == src.dtypes
        assert dst.descriptions == ("red", "green", "blue")
        assert dst.profile["tiled"] and dst.block_shapes[0] == (256, 256)
        assert dst.compression.value == "DEFLATE"
        np.testing.assert_array_equal(dst.read(), src.read())
        np.testing.assert_array_equal(dst.dataset_mask(), src.dataset_mask())


@needs_data
def test_windowed_write_equals_whole_write(tmp_path: Path) -> None:
    meta = read_raster_meta(RGB)
    whole = write_raster_windows(tmp_path / "a.tif", meta, reader(RGB), window_size=1024)
    tiles = write_raster_windows(tmp_path / "b.tif", meta, reader(RGB), window_size=256)
    np.testing.assert_array_equal(read_window(whole, None), read_window(tiles, None))


@needs_data
def test_cog_output(tmp_path: Path) -> None:
    meta = read_raster_meta(RGB)
    out = write_raster_windows(tmp_path / "c.tif", meta, reader(RGB), cog=True)
    with rasterio.open(out) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert ds.overviews(1)
        np.testing.assert_array_equal(ds.read(), read_window(RGB, None))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.tif"]


def test_ycbcr_jpeg_source_writes_lossless_copy(tmp_path: Path) -> None:
    # a JPEG-compressed YCbCr source: GDAL refuses YCbCr without JPEG compression
    rng = np.random.default_rng(0)
    data = rng.integers(0, 255, (3, 64, 64), dtype=np.uint8)
    src = fake_geotiff(tmp_path / "ycbcr.tif", data, compress="jpeg", photometric="ycbcr",
                       tiled=True, blockxsize=32, blockysize=32)
    meta = read_raster_meta(src)
    assert meta.profile["photometric"].lower() == "ycbcr"
    out = write_raster_windows(tmp_path / "out.tif", meta, reader(src))
    with rasterio.open(out) as ds:
        assert ds.compression.value == "DEFLATE"
        np.testing.assert_array_equal(ds.read(), read_window(src, None))


def test_stacked_bands_reads_files_as_one_raster(tmp_path: Path) -> None:
    a = fake_geotiff(tmp_path / "a.tif", np.full((1, 30, 20), 3, np.uint16), nodata=0)
    b = fake_geotiff(tmp_path / "b.tif", np.arange(1200, dtype=np.uint16).reshape(2, 30, 20),
                     nodata=0)
    with rasterio.open(b, "r+") as ds:
        ds.scales, ds.offsets = (0.5, 2.0), (-1.0, 0.0)
        ds.set_band_description(2, "nir")
    with stacked_bands([a]) as one:
        assert one == a
    with stacked_bands([a, b]) as vrt:
        meta = read_raster_meta(vrt)
        assert (meta.count, meta.crs.to_epsg(), meta.nodata) == (3, 32633, 0)
        assert meta.transform == read_raster_meta(a).transform
        assert meta.descriptions == ("a", "b band 1", "nir")
        assert meta.scales == (1.0, 0.5, 2.0) and meta.offsets == (0.0, -1.0, 0.0)
        np.testing.assert_array_equal(read_window(vrt, None)[1:], read_window(b, None))
    assert not vrt.exists()  # the VRT lives only while it is read


def test_stacked_bands_refuses_mixed_files(tmp_path: Path) -> None:
    a = fake_geotiff(tmp_path / "a.tif", np.ones((1, 30, 20), np.uint16))
    floats = fake_geotiff(tmp_path / "f.tif", np.ones((1, 30, 20), np.float32))
    shifted = fake_geotiff(tmp_path / "s.tif", np.ones((1, 30, 21), np.uint16))
    masked = fake_geotiff(tmp_path / "m.tif", np.ones((1, 30, 20), np.uint16))
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK="YES"), rasterio.open(masked, "r+") as ds:
        ds.write_mask(np.full((30, 20), 255, np.uint8))
    for other, problem in ((floats, "data type"), (shifted, "grid"), (masked, "mask")):
        with pytest.raises(InputError, match=problem) as info, stacked_bands([a, other]):
            pass
        assert str(other) in str(info.value)


def test_mask_without_nodata_becomes_dataset_mask(tmp_path: Path) -> None:
    data = np.arange(2 * 300 * 280, dtype=np.float32).reshape(2, 300, 280)
    src = fake_geotiff(tmp_path / "f.tif", data)
    meta = read_raster_meta(src)

    def produce(window: Window) -> np.ma.MaskedArray:
        block = read_window(src, window)
        rows = np.arange(window.row_off, window.row_off + window.height)[:, None]
        mask = np.broadcast_to(rows < 10, block.shape)
        return np.ma.MaskedArray(block, mask=mask)

    out = write_raster_windows(tmp_path / "o.tif", meta, produce)
    valid = read_valid_mask(out)
    assert not valid[:10].any() and valid[10:].all()
    np.testing.assert_array_equal(read_window(out, None)[:, 10:], data[:, 10:])


def test_mask_with_nodata_writes_nodata_value(tmp_path: Path) -> None:
    data = np.full((1, 40, 50), 7, dtype=np.uint16)
    data[0, :5] = 0
    src = fake_geotiff(tmp_path / "n.tif", data, nodata=0)
    meta = read_raster_meta(src)
    double = lambda w: read_window(src, w, masked=True) * 2  # noqa: E731
    out = write_raster_windows(tmp_path / "o.tif", meta, double)
    got = read_window(out, None, masked=True)
    assert got.mask[0, :5].all() and not got.mask[0, 5:].any()
    assert (got.data[0, :5] == 0).all() and (got.data[0, 5:] == 14).all()


@pytest.mark.parametrize(("dtype", "nodata", "moved"), [
    ("uint8", 0, 1), ("uint8", 255, 254), ("int16", -9999, -9998), ("float32", 0.0, 1e-5)])
def test_valid_pixels_never_land_on_the_nodata_value(tmp_path: Path, dtype: str, nodata: float,
                                                      moved: float) -> None:
    """A sharpened byte scene clipped valid dark pixels to 0, its nodata: they read back as
    missing."""
    data = np.full((1, 20, 30), 9, dtype=dtype)
    src = fake_geotiff(tmp_path / "n.tif", data, nodata=nodata)
    meta = read_raster_meta(src)
    hidden = np.zeros(data.shape, bool)
    hidden[0, :4] = True

    def produce(window: Window) -> np.ma.MaskedArray:
        block = np.full((1, int(window.height), int(window.width)), nodata, dtype=dtype)
        block[0, -1] = 9
        return np.ma.MaskedArray(block, mask=hidden[:, : block.shape[1], : block.shape[2]])

    got = read_window(write_raster_windows(tmp_path / "o.tif", meta, produce), None, masked=True)
    assert got.mask[0, :4].all() and not got.mask[0, 4:].any()
    assert (got.data[0, :4] == nodata).all() and (got.data[0, -1] == 9).all()
    assert (got.data[0, 4:-1] == np.asarray(moved, dtype)).all()


def test_band_metadata_is_carried(tmp_path: Path) -> None:
    src = fake_geotiff(tmp_path / "t.tif", np.ones((2, 20, 20), dtype=np.uint16))
    with rasterio.open(src, "r+") as ds:
        ds.update_tags(1, WAVELENGTH="0.49", STATISTICS_MEAN="1")
        ds.update_tags(2, WAVELENGTH="0.56")
    meta = read_raster_meta(src)
    out = write_raster_windows(tmp_path / "o.tif", meta, lambda w: read_window(src, w))
    with rasterio.open(out) as ds:
        assert ds.tags(1) == {"WAVELENGTH": "0.49"} and ds.tags(2) == {"WAVELENGTH": "0.56"}


def test_scales_offsets_and_descriptions_carried(tmp_path: Path) -> None:
    data = np.ones((2, 20, 20), dtype=np.uint16)
    src = fake_geotiff(tmp_path / "s.tif", data)
    with rasterio.open(src, "r+") as ds:
        ds.scales, ds.offsets = (1e-4, 2e-4), (-0.1, 0.0)
        ds.set_band_description(1, "B02")
    meta = read_raster_meta(src)
    out = write_raster_windows(tmp_path / "o.tif", meta, lambda w: read_window(src, w))
    with rasterio.open(out) as ds:
        assert ds.scales == (1e-4, 2e-4) and ds.offsets == (-0.1, 0.0)
        assert ds.descriptions == ("B02", None)


def test_scale_transform_halves_pixels() -> None:
    t = Affine(30, 0, 1000, 0, -30, 5000)
    assert scale_transform(t, 2) == Affine(15, 0, 1000, 0, -15, 5000)
    assert scale_transform(t, 0.5) == Affine(60, 0, 1000, 0, -60, 5000)


def test_iter_windows_tile_exactly_with_halo() -> None:
    covered = np.zeros((600, 530), int)
    for outer, inner in iter_windows(530, 600, size=256, halo=16):
        assert inner.col_off % 256 == 0 and inner.row_off % 256 == 0
        assert outer.col_off >= 0 and outer.col_off + outer.width <= 530
        rs, cs = inner_slices(outer, inner)
        covered[inner.toslices()] += 1
        assert rs.stop <= outer.height and cs.stop <= outer.width
    assert (covered == 1).all()


@pytest.mark.parametrize(
    ("dtype", "maximum", "nbits", "kind", "scale"),
    [
        ("uint8", 255, None, "uint8", 255),
        ("uint16", 2000, None, "uint16-11bit", 2047),
        ("uint16", 4000, None, "uint16-12bit", 4095),
        ("uint16", 100, "12", "uint16-12bit", 4095),
        ("uint16", 40000, None, "uint16", 65535),
        ("float32", 0.7, None, "float", 1),
    ],
)
def test_normalization_detects_and_inverts(
    dtype: str, maximum: float, nbits: str | None, kind: str, scale: float
) -> None:
    meta = RasterMeta(
        {}, (), None, (), (), None, Affine.identity(), dtype, tags={"NBITS": nbits} if nbits else {}
    )
    norm = detect_normalization(meta, max_value=maximum)
    assert (norm.kind, norm.scale) == (kind, scale)
    values = np.linspace(0, maximum, 101).astype(dtype)
    back = denormalize(normalize(values, norm), norm)
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back, values)


def test_not_a_raster_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "notes.tif"
    bad.write_text("hello")
    with pytest.raises(InputError) as err:
        read_raster_meta(bad)
    assert err.value.path == bad and str(bad) in str(err.value)


def test_gdal_env_sets_batch_options() -> None:
    with gdal_env(GDAL_CACHEMAX=64):
        env = rasterio.env.getenv()
        assert env["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR"
        assert str(env["GDAL_CACHEMAX"]) == "64"


def test_source_metadata_is_carried_but_not_statistics_or_software(tmp_path: Path) -> None:
    from suite import __version__

    src = tmp_path / "src.tif"
    with rasterio.open(src, "w", driver="GTiff", width=40, height=30, count=1, dtype="uint16",
                       crs=CRS.from_epsg(32633), transform=Affine(10, 0, 5e5, 0, -10, 5e6)) as ds:
        ds.write(np.arange(1200, dtype=np.uint16).reshape(1, 30, 40))
        ds.update_tags(BOA_ADD_OFFSET="-1000", SENSOR="MSI", STATISTICS_MEAN="599.5",
                       TIFFTAG_SOFTWARE="sen2cor")
    meta = read_raster_meta(src)
    assert meta.metadata == {"BOA_ADD_OFFSET": "-1000", "SENSOR": "MSI"}
    out = write_raster_windows(tmp_path / "out.tif", meta, lambda w: read_window(src, w))
    with rasterio.open(out) as ds:
        tags = ds.tags()
    assert tags["BOA_ADD_OFFSET"] == "-1000" and tags["SENSOR"] == "MSI"
    assert "STATISTICS_MEAN" not in tags
    assert tags["TIFFTAG_SOFTWARE"] == f"enhance-suite {__version__}"


def _rpcs() -> RPC:
    """Affine-like RPCs over a 1000 x 800 image near 45 N, 7 E (line ~ -lat, sample ~ lon)."""
    zero = [0.0] * 20
    line, samp = list(zero), list(zero)
    line[1], line[2], samp[1], samp[2] = 0.05, -1.0, 1.0, 0.03
    return RPC(height_off=0, height_scale=500, lat_off=45, lat_scale=0.05, long_off=7,
               long_scale=0.05, line_off=500, line_scale=500, samp_off=400, samp_scale=400,
               line_num_coeff=line, line_den_coeff=[1.0, *zero[1:]],
               samp_num_coeff=samp, samp_den_coeff=[1.0, *zero[1:]])


@pytest.mark.parametrize("s", [2.0, 4.0, 0.5])
def test_resampled_rpcs_put_each_corner_where_gdal_put_it(s: float) -> None:
    meta = RasterMeta(profile={"count": 1, "width": 800, "height": 1000}, descriptions=(None,),
                      nodata=None, scales=(1.0,), offsets=(0.0,), crs=None,
                      transform=Affine.identity(), dtype="uint16", rpcs=_rpcs())
    fine = meta.resampled(s, int(800 * s), int(1000 * s))
    assert fine.rpcs is not None and meta.rpcs is not None
    with RPCTransformer(meta.rpcs) as coarse_t, RPCTransformer(fine.rpcs) as fine_t:
        for row, col in ((0, 0), (10.3, 700.0), (999.0, 799.0)):
            before = coarse_t.xy(row, col, zs=0, offset="ul")
            after = fine_t.xy(row * s, col * s, zs=0, offset="ul")
            assert np.allclose(before, after, rtol=0, atol=1e-9)


@pytest.mark.parametrize("cog", [False, True])
def test_gcps_and_rpcs_are_written_on_the_new_grid(tmp_path: Path, cog: bool) -> None:
    """A level-1 raster georeferenced by GCPs (no transform) and carrying RPCs keeps both."""
    data = np.arange(2 * 64 * 48, dtype=np.uint16).reshape(2, 64, 48)
    src = tmp_path / "swath.tif"
    gcps = [GroundControlPoint(row=r, col=c, x=500000 + 10 * c, y=4000000 - 10 * r)
            for r, c in ((0, 0), (0, 48), (64, 0), (64, 48))]
    profile = {"driver": "GTiff", "width": 48, "height": 64, "count": 2, "dtype": "uint16"}
    with rasterio.open(src, "w", **profile) as dst:
        dst.write(data)
        dst.gcps = (gcps, CRS.from_epsg(32633))
        dst.rpcs = _rpcs()
    meta = read_raster_meta(src)
    assert len(meta.gcps) == 4 and meta.gcps_crs == CRS.from_epsg(32633) and meta.crs is None
    out = write_raster_windows(tmp_path / "fine.tif", meta.resampled(2.0, 96, 128),
                               lambda w: np.zeros((2, int(w.height), int(w.width)), "uint16"),
                               cog=cog)
    with rasterio.open(out) as ds:
        written, crs = ds.gcps
        assert crs == CRS.from_epsg(32633) and ds.crs is None and ds.transform.is_identity
        assert [(g.row, g.col, g.x, g.y) for g in written] == [  # GeoTIFF keeps no GCP ids
            (g.row * 2, g.col * 2, g.x, g.y) for g in gcps]
        assert ds.rpcs is not None
        assert ds.rpcs.line_scale == pytest.approx(1000.0)
        assert ds.rpcs.line_off == pytest.approx(1000.5)


def test_an_alpha_band_reads_as_the_mask_of_the_other_bands(tmp_path: Path) -> None:
    """An RGBA orthomosaic: three data bands, the alpha their mask, the metadata carried."""
    rgb = np.arange(3 * 40 * 30, dtype=np.uint8).reshape(3, 40, 30)
    alpha = np.full((1, 40, 30), 255, np.uint8)
    alpha[0, :10, :5] = 0
    src = fake_geotiff(tmp_path / "ortho.tif", np.concatenate([rgb, alpha]),
                       photometric="RGB", alpha="YES")
    with rasterio.open(src, "r+") as ds:
        ds.update_tags(SENSOR="drone")
        ds.rpcs = _rpcs()
    with stacked_bands([src]) as raster:
        assert raster != src
        meta = read_raster_meta(raster)
        assert meta.count == 3 and meta.metadata.get("SENSOR") == "drone"
        assert meta.transform == read_raster_meta(src).transform and meta.crs == CRS.from_epsg(
            32633)
        assert meta.rpcs is not None
        kept, given = meta.rpcs.to_dict(), _rpcs().to_dict()
        assert {k: kept[k] for k in given if not k.startswith("err_")} == {
            k: v for k, v in given.items() if not k.startswith("err_")}
        data = read_window(raster, None, masked=True)
        np.testing.assert_array_equal(np.ma.getdata(data), rgb)
        np.testing.assert_array_equal(np.ma.getmaskarray(data)[0], alpha[0] == 0)
        np.testing.assert_array_equal(read_valid_mask(raster), alpha[0] > 0)


@pytest.mark.parametrize("command", [
    ("enhance", "sat-sr"), ("degrade", "sat-sr"), ("enhance", "cloud-inpaint"),
    ("degrade", "cloud-inpaint"), ("enhance", "pansharpen"),
])
def test_a_paletted_raster_is_refused(tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]],
                                      command: tuple[str, str]) -> None:
    """Land-cover classes behind a colour table: interpolating them would invent classes."""
    src = fake_geotiff(tmp_path / "classes.tif", (np.arange(1200) % 3).astype(np.uint8).reshape(
        1, 40, 30), photometric="palette")
    with rasterio.open(src, "r+") as ds:
        ds.write_colormap(1, {0: (0, 90, 0, 255), 1: (0, 0, 200, 255), 2: (200, 200, 0, 255)})
    out = tmp_path / "out.tif"
    extra = ("--pan", str(src)) if command[1] == "pansharpen" else ()
    code, _, err = run_cli(*command, src, "-o", out, *extra, "--quiet")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "classes.tif: is a paletted raster" in err and not out.exists()


def test_a_zip_archive_is_refused_with_what_to_do(tmp_path: Path) -> None:
    import zipfile

    archive = tmp_path / "S2B_MSIL2A_20240101.SAFE.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("S2B_MSIL2A_20240101.SAFE/manifest.safe", "<xml/>")
    with pytest.raises(InputError, match="is a zip archive; unzip it") as info:
        read_raster_meta(archive)
    assert str(archive) in str(info.value)


@pytest.mark.parametrize(("photometric", "expected"), [
    ("MINISBLACK", ("gray", "undefined", "undefined", "undefined")),
    ("RGB", ("red", "green", "blue", "undefined")),
])
def test_a_fourth_byte_band_stays_a_band_not_alpha(tmp_path: Path, photometric: str,
                                                   expected: tuple[str, ...]) -> None:
    """GDAL's default for four byte bands is RGB plus alpha: a NIR band read as transparency
    would mask its dark pixels and be dropped by the next run."""
    data = np.random.default_rng(0).integers(0, 255, (4, 40, 30), dtype=np.uint8)
    data[3, :5] = 0  # dark NIR pixels: an alpha band would mask them
    src = fake_geotiff(tmp_path / "rgbn.tif", data, photometric=photometric,
                       **({"alpha": "UNSPECIFIED"} if photometric == "RGB" else {}))
    meta = read_raster_meta(src)
    out = write_raster_windows(tmp_path / "out.tif", meta, reader(src))
    with rasterio.open(out) as ds:
        assert tuple(c.name for c in ds.colorinterp) == expected
        assert (ds.dataset_mask() == 255).all()
    assert read_raster_meta(out).alpha is None


def test_band_files_with_nan_nodata_stack(tmp_path: Path) -> None:
    """NaN is not equal to itself; two float bands with NaN nodata still share it."""
    a = fake_geotiff(tmp_path / "a.tif", np.full((1, 30, 20), 0.2, np.float32), nodata=np.nan)
    b = fake_geotiff(tmp_path / "b.tif", np.full((1, 30, 20), 0.3, np.float32), nodata=np.nan)
    with stacked_bands([a, b]) as vrt:
        assert read_raster_meta(vrt).count == 2
    c = fake_geotiff(tmp_path / "c.tif", np.full((1, 30, 20), 0.3, np.float32), nodata=-1.0)
    with pytest.raises(InputError, match=r"nodata -1\.0 differ"), stacked_bands([a, c]):
        pass


def test_pixel_size_and_bounds_of_a_rotated_grid(tmp_path: Path) -> None:
    """30 m pixels turned by 10 degrees read as 29.5 m, and the bounds missed two corners."""
    angle = math.radians(10)
    transform = Affine(30 * math.cos(angle), -30 * math.sin(angle), 458475.0,
                       -30 * math.sin(angle), -30 * math.cos(angle), 4000000.0)
    src = fake_geotiff(tmp_path / "rot.tif", np.ones((1, 40, 50), np.uint16), transform=transform)
    meta = read_raster_meta(src)
    assert meta.res == pytest.approx((30.0, 30.0))
    corners = [transform @ (c, r) for c in (0, 50) for r in (0, 40)]
    xs, ys = [x for x, _ in corners], [y for _, y in corners]
    assert meta.bounds == pytest.approx((min(xs), min(ys), max(xs), max(ys)))


def test_stacked_band_files_keep_each_bands_tags(tmp_path: Path) -> None:
    """One file per band (Landsat): each band's WAVELENGTH, and only the shared dataset tags."""
    paths = []
    for name, wavelength in (("B2", "0.48"), ("B3", "0.56")):
        path = fake_geotiff(tmp_path / f"{name}.tif", np.full((1, 30, 20), 3, np.uint16))
        with rasterio.open(path, "r+") as ds:
            ds.update_tags(BAND=name, SENSOR="OLI")
            ds.update_tags(1, WAVELENGTH=wavelength)
        paths.append(path)
    with stacked_bands(paths) as vrt:
        out = write_raster_windows(tmp_path / "out.tif", read_raster_meta(vrt), reader(vrt))
    with rasterio.open(out) as ds:
        assert [ds.tags(i).get("WAVELENGTH") for i in (1, 2)] == ["0.48", "0.56"]
        assert ds.tags().get("SENSOR") == "OLI" and "BAND" not in ds.tags()


def test_a_band_file_given_twice_is_refused(tmp_path: Path) -> None:
    a = fake_geotiff(tmp_path / "a.tif", np.full((1, 30, 20), 3, np.uint16))
    b = fake_geotiff(tmp_path / "b.tif", np.full((1, 30, 20), 4, np.uint16))
    with pytest.raises(InputError, match="is given twice"), stacked_bands([a, b, a]):
        pass


def test_float_blocks_for_an_integer_raster_are_rounded_and_clipped(tmp_path: Path) -> None:
    """A producer's floats were cast as they were: 2550 became 246 in a byte raster."""
    meta = read_raster_meta(fake_geotiff(tmp_path / "a.tif", np.zeros((1, 4, 4), np.uint8)))
    block = np.array([[[2550.0, 0.7, -3.0, np.nan]] * 4])
    out = write_raster_windows(tmp_path / "o.tif", meta, lambda w: block)
    with rasterio.open(out) as ds:
        assert ds.read()[0, 0, :3].tolist() == [255, 1, 0]
        assert ds.dataset_mask()[0].tolist() == [255, 255, 255, 0]
