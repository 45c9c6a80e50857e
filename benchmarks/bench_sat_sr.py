"""sat-sr quality on held-out real imagery, and peak memory against raster size.

Quality (``python benchmarks/bench_sat_sr.py``):

- Landsat 8 OLI scene cut LC80200392015216LGN00 (never seen in training), bands B1-B7 as TOA
  reflectance (MTL scale 2e-5, offset -0.1), Wald protocol: ``suite degrade`` by 2 and 4 (MTF
  gain 0.3), then bicubic, ESPCN and the default network back to 30 m, compared with the
  original. PSNR/SSIM per band with the reference band's max - min as range, averaged; SAM in
  degrees; border of 2 x scale pixels cropped (``domains.sat_sr.metrics``). At x2 also the
  default network after adversarial fine-tuning (``default_x2_gan``, when installed), and a
  no-reference NIQE (``suite.metrics.noref``, lower = more natural statistics) per band on
  the 1-99 % range of the reference band, averaged, for the reference and each method.
  ``--landsat-only`` skips the Sentinel-2 part.
- Sentinel-2 29RKH lower half (the training uses only the upper half), reduced resolution:
  10 m -> 20 m guides and 20 m -> 40 m targets (MTF gain 0.3), predicted 20 m against the
  real 20 m bands; RMSE in reflectance over the six bands and every pixel (no crop): bicubic,
  the classical guided method (high-pass injection, least-squares gains fitted one level
  further down), the guided network without and with target adaptation (which sees only the
  40 m and 20 m input bands). ``--s2-only`` runs this part alone.

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
from domains.sat_sr.adapt import AdaptConfig
from domains.sat_sr.degrade import degrade_raster
from domains.sat_sr.guided import MTF_GAIN, upsample2, upsample_to
from domains.sat_sr.metrics import sr_metrics
from domains.sat_sr.sentinel2 import GUIDES, TARGETS, fit_scene
from domains.sat_sr.sr import WEIGHTS_DIR, enhance_raster, load_sr, shipped_weights
from suite.degradations.mtf import mtf_decimate
from suite.io.raster import read_window
from suite.metrics.noref import niqe
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


GAN = "default + GAN fine-tuning"


def band_niqe(image: np.ndarray, ref: np.ndarray) -> float:
    """NIQE per band on the reference band's 1-99 % range (clipped to [0, 1]), averaged."""
    values = []
    for band, rband in zip(image, ref, strict=True):
        low, high = np.percentile(rband, [1, 99])
        values.append(niqe(np.clip((band - low) / (high - low), 0, 1), 1.0))
    return float(np.mean(values))


def landsat_rows(folder: Path) -> list[dict[str, object]]:
    """Bicubic, ESPCN and default at x2 and x4 (and GAN at x2) on the held-out Landsat 8 scene;
    NIQE at x2."""
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
            net, tiling = load_sr(shipped_weights(model, scale), scale, device="cpu")
            enhance_raster(low, out, net, scale, tiling)
            preds[model] = reflectance(out)[:, :h, :w]
        gan = WEIGHTS_DIR / f"default_x{scale}_gan.safetensors"
        if gan.is_file():
            net, tiling = load_sr(gan, scale, device="cpu")
            enhance_raster(low, folder / f"gan_x{scale}.tif", net, scale, tiling)
            preds[GAN] = reflectance(folder / f"gan_x{scale}.tif")[:, :h, :w]
        b = 2 * scale
        for name, pred in preds.items():
            m = sr_metrics(pred, ref[:, :h, :w], None, b)
            if scale == 2:
                m["niqe"] = band_niqe(pred[:, b:-b, b:-b], ref[:, b:h - b, b:w - b])
            rows.append({"scale": scale, "method": name, **m})
        if scale == 2:
            crop = ref[:, b:h - b, b:w - b]
            rows.append({"scale": scale, "method": "reference (30 m original)",
                         "niqe": band_niqe(crop, crop)})
    return rows


def s2_reduced() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower half of 29RKH one level down, reflectance: guides 20 m, targets 40 m, truth 20 m."""
    bands = {b: next(S2.glob(f"*_{b}_crop.tif")) for b in (*GUIDES, *TARGETS)}
    guide = np.concatenate([read_window(bands[b], None) for b in GUIDES]) / 10000.0
    target = np.concatenate([read_window(bands[b], None) for b in TARGETS]) / 10000.0
    half = target.shape[1] // 2
    g, t = guide[:, 2 * half:].astype(np.float32), target[:, half:].astype(np.float32)
    return mtf_decimate(g, MTF_GAIN, 2), mtf_decimate(t, MTF_GAIN, 2), t


def s2_predictions(guides: np.ndarray, targets: np.ndarray, adapt_steps: int | None = None,
                   weights: Path | None = None) -> dict[str, np.ndarray]:
    """Every method on the benchmark's input only (``guides (4, H, W)``, ``targets (6, h, w)``).

    No reference is passed in: the classical gains, the band statistics and the target
    adaptation all come from ``guides`` and ``targets``.
    """
    model, card = load_model(weights or shipped_weights_s2())
    cfg = AdaptConfig(**card.get("adaptation", {}))
    if adapt_steps is not None:
        cfg = AdaptConfig(**{**card.get("adaptation", {}), "steps": adapt_steps})
    up = upsample_to(targets, guides.shape[1:])
    preds = {"bicubic": up, "classical guided (HP + LSQ gains)":
             fit_scene(guides, targets, None, cfg)(guides, up)}
    preds["network"] = fit_scene(guides, targets, model, AdaptConfig(steps=0))(guides, up)
    preds[f"network + adaptation ({cfg.steps} steps)"] = fit_scene(guides, targets, model,
                                                                   cfg)(guides, up)
    return preds


def s2_rows(weights: Path | None = None, adapt_steps: int | None = None
            ) -> list[dict[str, object]]:
    """Reduced-resolution RMSE (reflectance, six bands, all pixels) on the 29RKH lower half."""
    guides, targets, truth = s2_reduced()
    rows: list[dict[str, object]] = []
    for name, pred in s2_predictions(guides, targets, adapt_steps, weights).items():
        rmse = float(np.sqrt(np.mean((pred.astype(np.float64) - truth) ** 2)))
        rows.append({"method": name, "rmse_reflectance": rmse})
    base = float(rows[0]["rmse_reflectance"])  # type: ignore[arg-type]
    return [{**r, "reduction_vs_bicubic": 1 - float(r["rmse_reflectance"]) / base}  # type: ignore[arg-type]
            for r in rows]


def shipped_weights_s2() -> Path:
    """The shipped Sentinel-2 weights."""
    return Path(__file__).resolve().parents[1] / "domains" / "sat_sr" / "weights" / \
        "s2_dsen2.safetensors"


CHILD = """
import json, resource, sys
from pathlib import Path
from domains.sat_sr.sr import enhance_raster, load_sr, shipped_weights
net, tiling = load_sr(shipped_weights("espcn", 2), 2, device="cpu")
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
    parser.add_argument("--s2-only", action="store_true", help="only the Sentinel-2 table")
    parser.add_argument("--landsat-only", action="store_true", help="only the Landsat table")
    parser.add_argument("--s2-weights", type=Path, help="Sentinel-2 weights (default: shipped)")
    parser.add_argument("--s2-adapt-steps", type=int, help="adaptation steps (default: card)")
    args = parser.parse_args()
    if args.s2_only:
        print(json.dumps({"sentinel2": s2_rows(args.s2_weights, args.s2_adapt_steps)},
                         indent=2))
        return
    with tempfile.TemporaryDirectory() as tmp:
        if args.memory:
            print(json.dumps({"memory": memory_rows(args.memory, Path(tmp))}, indent=2))
            return
        result: dict[str, object] = {"landsat8": landsat_rows(Path(tmp))}
        if not args.landsat_only:
            result["sentinel2"] = s2_rows(args.s2_weights, args.s2_adapt_steps)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
