"""NaN pixels in float rasters are invalid in every raster domain, declared nodata or not.

GDAL's masks call a NaN valid when the file declares no nodata value; one NaN fed to a network,
a spline or a filler then spread over the output (sat-sr returned an all-NaN raster).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from suite.io.raster import read_valid_mask, read_window

REPO = Path(__file__).resolve().parents[1]
SAT = REPO / "sample_data" / "sat" / "landsat8_LC80200392015216_excerpt.tif"
MS = REPO / "sample_data" / "pansharpen" / "l8_ms_b2-b5.tif"
PAN = REPO / "sample_data" / "pansharpen" / "l8_pan_b8.tif"
Cli = Callable[..., tuple[int, str, str]]


def _float_with_hole(src: Path, dst: Path, nodata: float | None, size: int = 0) -> np.ndarray:
    """``src`` as float32 reflectance-like values with a NaN square at the top left; returns the
    hole as a boolean ``(h, w)`` array."""
    with rasterio.open(src) as ds:
        window = Window(0, 0, size or ds.width, size or ds.height)
        data = ds.read(window=window).astype(np.float32) / 10000
        profile = dict(ds.profile, width=data.shape[2], height=data.shape[1], dtype="float32",
                       nodata=nodata)
    hole = np.zeros(data.shape[1:], bool)
    hole[:12, :10] = True
    data[:, hole] = np.nan
    with rasterio.open(dst, "w", **profile) as out:
        out.write(data)
    return hole


def test_reads_mask_nan_without_a_nodata_value(tmp_path: Path) -> None:
    hole = _float_with_hole(SAT, tmp_path / "a.tif", None, size=40)
    data = read_window(tmp_path / "a.tif", None, masked=True)
    assert np.array_equal(np.ma.getmaskarray(data).any(axis=0), hole)
    assert np.array_equal(read_valid_mask(tmp_path / "a.tif"), ~hole)
    boundless = read_window(tmp_path / "a.tif", Window(-2, -2, 20, 20), boundless=True,
                            masked=True)
    assert np.ma.getmaskarray(boundless)[0, 2:14, 2:12].all()


@pytest.mark.parametrize("nodata", [None, float("nan")])
def test_sat_sr_and_cloud_inpaint_keep_nan_to_the_hole(run_cli: Cli, tmp_path: Path,
                                                       nodata: float | None) -> None:
    src = tmp_path / "in.tif"
    hole = _float_with_hole(SAT, src, nodata, size=64)
    sr, filled = tmp_path / "sr.tif", tmp_path / "filled.tif"
    assert run_cli("enhance", "sat-sr", src, "-o", sr, "--scale", "2", "--quiet")[0] == 0
    assert run_cli("enhance", "cloud-inpaint", src, "-o", filled, "--quiet")[0] == 0
    for path, factor in ((sr, 2), (filled, 1)):
        with rasterio.open(path) as ds:
            data, valid = ds.read(), ds.dataset_mask() > 0
        expected = ~np.repeat(np.repeat(hole, factor, 0), factor, 1)
        assert np.array_equal(valid, expected), path.name
        assert np.isfinite(data[:, valid]).all(), path.name


def test_pansharpen_keeps_nan_out_of_valid_pixels(run_cli: Cli, tmp_path: Path) -> None:
    ms = tmp_path / "ms.tif"
    _float_with_hole(MS, ms, None)
    with rasterio.open(MS) as ds:
        low, high = ds.read().min() / 10000, ds.read().max() / 10000
    for method in ("gsa", "mtf-glp"):
        out = tmp_path / f"{method}.tif"
        assert run_cli("enhance", "pansharpen", ms, "--pan", PAN, "-o", out, "--method", method,
                       "--quiet")[0] == 0
        with rasterio.open(out) as ds:
            data, valid = ds.read(), ds.dataset_mask() > 0
        assert 0 < (~valid).sum() < valid.size and np.isfinite(data[:, valid]).all()
        # no ringing from the hole: values stay near the input's range (they had -0.29 with
        # the hole read as 0)
        inside = data[:, valid]
        assert inside.min() > 0.5 * low and inside.max() < 1.5 * high
