"""sat-sr quality on held-out real imagery, and peak memory against raster size.

Quality (``python benchmarks/bench_sat_sr.py``):

- Landsat 8 OLI scene cut LC80200392015216LGN00 (never seen in training), bands B1-B7 as TOA
  reflectance (MTL scale 2e-5, offset -0.1), Wald protocol: ``suite degrade`` by 2 and 4 (MTF
  gain 0.3), then bicubic, ESPCN and the default network back to 30 m, compared with the
  original. PSNR/SSIM per band with the reference band's max - min as range, averaged; SAM in
  degrees; border of 2 x scale pixels cropped (``domains.sat_sr.metrics``).
- Sentinel-2 29RKH lower half (the training uses only the upper half), reduced resolution:
  10 m -> 20 m guides and 20 m -> 40 m targets, predicted 20 m against the real 20 m bands;
  RMSE in reflectance over the six bands, bicubic against the DSen2-style network.

Memory (``--memory 1000 4000``): peak RSS of ``enhance`` on synthetic rasters of those sides,
each in a fresh subprocess, as a ratio to the smallest.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio

from domains.sat_sr import nets as _nets  # noqa: F401
from domains.sat_sr.degrade import degrade_raster
from domains.sat_sr.metrics import sr_metrics
from domains.sat_sr.sentinel2 import GUIDES, TARGETS, UNITS, sharpen, upsample2
from domains.sat_sr.sr import enhance_raster, load_sr, shipped_weights
from suite.io.raster import read_window
from suite.weights import load_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "remote"
L8 = DATA / "landsat8_LC80200392015216LGN00"
S2 = DATA / "sentinel2_S2A_29RKH_20200219_L2A_decimated"


def landsat_stack(folder: Path) -> Path:
    """B1-B7 of the held-out scene as one 7-band GeoTIFF with reflectance scales/offsets."""
    out = folder / "l8_b1_b7.tif"
    bands = [rasterio.open(L8 / f"l8_B{i}.tif") for i in range(1, 8)]
    profile = dict(bands[0].profile, count=7, tiled=True, blockxsize=256, blockysize=256)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(np.concatenate([b.read() for b in bands]))
        dst.scales, dst.offsets = (2e-5,) * 7, (-0.1,) * 7
    for b in bands:
        b.close()
    return out


def reflectance(path: Path) -> np.ndarray:
    """TOA reflectance of the 7-band stack."""
    return read_window(path, None).astype(np.float64) * 2e-5 - 0.1


def landsat_rows(folder: Path) -> list[dict[str, object]]:
    """Bicubic, ESPCN and default at x2 and x4 on the held-out Landsat 8 scene."""
    src = landsat_stack(folder)
    ref = reflectance(src)
    rows: list[dict[str, object]] = []
    for scale in (2, 4):
        low = folder / f"low_x{scale}.tif"
        degrade_raster(src, low, scale)
        lo = reflectance(low)
        h, w = ref.shape[1] // scale * scale, ref.shape[2] // scale * scale
        bic = lo
        for _ in range({2: 1, 4: 2}[scale]):
            bic = upsample2(bic)
        preds = {"bicubic": bic[:, :h, :w]}
        for model in ("espcn", "default"):
            out = folder / f"{model}_x{scale}.tif"
            net, tiling = load_sr(shipped_weights(model, scale), scale)
            enhance_raster(low, out, net, scale, tiling)
            preds[model] = reflectance(out)[:, :h, :w]
        for name, pred in preds.items():
            m = sr_metrics(pred, ref[:, :h, :w], None, 2 * scale)
            rows.append({"scale": scale, "method": name, **m})
    return rows


def s2_rows() -> list[dict[str, object]]:
    """Reduced-resolution RMSE on the held-out lower half of the Sentinel-2 scene."""
    bands = {b: next(S2.glob(f"*_{b}_crop.tif")) for b in (*GUIDES, *TARGETS)}
    guide = np.concatenate([read_window(bands[b], None) for b in GUIDES]).astype(np.float64)
    target = np.concatenate([read_window(bands[b], None) for b in TARGETS]).astype(np.float64)
    half = target.shape[1] // 2
    lower = {"guide": guide[:, 2 * half:], "target": target[:, half:]}
    x, truth = _reduced(lower["guide"], lower["target"])
    model, _ = load_model(shipped_weights_s2())
    pred = sharpen(model, x)
    rmse = {n: float(np.sqrt(np.mean(((p - truth) / UNITS) ** 2)))
            for n, p in (("bicubic", x[len(GUIDES):]), ("dsen2-style", pred))}
    gain = 1 - rmse["dsen2-style"] / rmse["bicubic"]
    return [{"method": k, "rmse_reflectance": v} for k, v in rmse.items()] + [
        {"method": "reduction vs bicubic", "rmse_reflectance": gain}]


def _reduced(guide: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from suite.degradations.mtf import mtf_decimate

    g, t = guide / 10000 * UNITS, target / 10000 * UNITS
    low = upsample2(mtf_decimate(t, 0.3, 2))[:, : t.shape[1], : t.shape[2]]
    return np.concatenate([mtf_decimate(g, 0.3, 2), low]).astype(np.float32), t


def shipped_weights_s2() -> Path:
    """The shipped Sentinel-2 weights."""
    return Path(__file__).resolve().parents[1] / "domains" / "sat_sr" / "weights" / \
        "s2_dsen2.safetensors"


CHILD = """
import json, resource, sys
from pathlib import Path
from domains.sat_sr.sr import enhance_raster, load_sr, shipped_weights
net, tiling = load_sr(shipped_weights("espcn", 2), 2)
enhance_raster(Path(sys.argv[1]), Path(sys.argv[2]), net, 2, tiling)
print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def memory_rows(sides: list[int], folder: Path) -> list[dict[str, float]]:
    """Peak RSS of x2 ESPCN enhance per raster side (4 bands, uint16), fresh process each."""
    rows = []
    for side in sides:
        src = folder / f"syn_{side}.tif"
        profile = {"driver": "GTiff", "width": side, "height": side, "count": 4,
                   "dtype": "uint16", "crs": "EPSG:32616", "tiled": True, "blockxsize": 256,
                   "blockysize": 256, "transform": rasterio.Affine(30, 0, 0, 0, -30, 0)}
        with rasterio.open(src, "w", **profile) as dst:
            rng = np.random.default_rng(0)
            for _, win in dst.block_windows(1):
                dst.write(rng.integers(5000, 20000, (4, win.height, win.width), np.uint16),
                          window=win)
        res = subprocess.run([sys.executable, "-c", CHILD, src, folder / f"o_{side}.tif"],
                             capture_output=True, text=True, check=True)
        rows.append({"side": side, **json.loads(res.stdout.strip().splitlines()[-1])})
    base = rows[0]["peak_rss_mib"]
    return [{**r, "ratio": r["peak_rss_mib"] / base} for r in rows]


def main() -> None:
    """Print the tables as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--memory", type=int, nargs="*", help="raster sides for the RSS run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.memory:
            print(json.dumps({"memory": memory_rows(args.memory, Path(tmp))}, indent=2))
            return
        result = {"landsat8": landsat_rows(Path(tmp)), "sentinel2": s2_rows()}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
