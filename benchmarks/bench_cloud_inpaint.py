"""Cloud inpainting quality on real clear imagery not used for training, synthetic clouds.

Scenes: eo-learn Sentinel-2 reference scenes 2, 3, 4 (101x100, B02, B03, B04, B08; each filled
with and without another of them as the reference date) and a 256x256 window of the decimated
Sentinel-2 29RKH scene (10 m bands at 100 m; single-date methods only). Clouds: the domain's
synthetic clouds at 10 %, 30 % and 50 % cover, seeds 0-2. Metrics inside the mask only:
PSNR (dB, data range = max - min of the clear scene over all bands), SSIM (11x11 Gaussian
sigma 1.5 per band, mean over masked pixels), SAM (degrees). Values are means over scenes and
seeds. Run: ``python benchmarks/bench_cloud_inpaint.py [--write-docs]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import rasterio
import torch

from domains.cloud_inpaint import DOMAIN
from domains.cloud_inpaint.clouds import make_clouds
from domains.cloud_inpaint.fill import SMOOTH_SWEEPS, smooth_fill
from domains.cloud_inpaint.inpaint import (
    biharmonic_fill,
    classical_prior,
    clear_stats,
    composite,
    matched_reference,
    mean_fill,
    model_filler,
)
from domains.cloud_inpaint.metrics import masked_metrics
from suite.weights import load_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "remote"
DOC = Path(__file__).resolve().parents[1] / "docs" / "cloud_inpaint.md"
COVERS = (0.1, 0.3, 0.5)
SEEDS = (0, 1, 2)
PAIRS = ((2, 3), (3, 4), (4, 2))  # (target, reference date)


def eolearn() -> list[np.ndarray]:
    """The three clear eo-learn reference scenes as (4, H, W) reflectance."""
    scenes = np.load(DATA / "eolearn_eopatch" / "REFERENCE_SCENES.npy")
    return [np.moveaxis(s[..., [1, 2, 3, 7]], -1, 0).astype(np.float64) for s in scenes]


def s2_window() -> np.ndarray:
    """256x256 window of the decimated Sentinel-2 L2A scene, B02, B03, B04, B08 (reflectance)."""
    folder = DATA / "sentinel2_S2A_29RKH_20200219_L2A_decimated"
    bands = []
    for b in ("B02", "B03", "B04", "B08"):
        with rasterio.open(next(folder.glob(f"*_{b}_crop.tif"))) as ds:
            bands.append(ds.read(1)[128:384, 128:384] / 10000.0)
    return np.stack(bands)


def score(filled: np.ndarray, clear: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = masked_metrics(filled, clear, mask)
    return np.array([m["psnr_in_mask"], m["ssim_in_mask"], m["sam_in_mask"]])


def torch_fill(sweeps: int):  # type: ignore[no-untyped-def]
    """The torch harmonic fill plus ``sweeps`` biharmonic sweeps (the model's prior: 20)."""

    def fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(image[None].astype(np.float32))
        m = torch.from_numpy(mask[None, None].astype(np.float32))
        return composite(image, mask, smooth_fill(t, m, sweeps)[0].double().numpy())

    return fill


def poisson_clone(ref: np.ndarray, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The guided model's starting point alone (reference cloned into the hole)."""
    mu, sd = clear_stats(image, ~mask)
    rmu, rsd = clear_stats(ref, ~mask)
    z = torch.from_numpy(((image - mu) / sd)[None].astype(np.float32))
    r = torch.from_numpy(((ref - rmu) / rsd)[None].astype(np.float32))
    m = torch.from_numpy(mask[None, None].astype(np.float32))
    prior = classical_prior(z * (1 - m), m, r)[0].double().numpy()
    return composite(image, mask, prior * sd + mu)


def run(weights: Path | None = None, guided_w: Path | None = None
        ) -> dict[tuple[str, float], np.ndarray]:
    scenes = eolearn()
    single = {"mean fill": mean_fill, "biharmonic": biharmonic_fill,
              "harmonic (torch)": torch_fill(0),
              "smooth fill (torch, default model prior)": torch_fill(SMOOTH_SWEEPS)}
    weights = weights or DOMAIN.default_weights()
    if weights is not None:
        single["default model"] = model_filler(load_model(weights)[0])
    guided_w = guided_w or DOMAIN.guided_weights()
    guided = load_model(guided_w)[0] if guided_w is not None else None
    results: dict[tuple[str, float], list[np.ndarray]] = {}
    for cover in COVERS:
        for seed in SEEDS:
            for t, r in PAIRS:
                cases = [(scenes[t], scenes[r])] + ([(s2_window(), None)] if t == 2 else [])
                for clear, ref in cases:
                    mask = make_clouds(clear.shape[1:], cover, np.random.default_rng(seed)).mask
                    hidden = np.where(mask[None], 0.0, clear)
                    for name, fill in single.items():
                        results.setdefault((name, cover), []).append(
                            score(fill(hidden, mask), clear, mask))
                    if ref is None:
                        continue
                    results.setdefault(("matched reference (eo-learn)", cover), []).append(
                        score(matched_reference(ref, hidden, mask), clear, mask))
                    results.setdefault(("Poisson clone (eo-learn, guided prior)", cover),
                                       []).append(score(poisson_clone(ref, hidden, mask), clear,
                                                        mask))
                    if guided is not None:
                        results.setdefault(("guided model (eo-learn)", cover), []).append(
                            score(model_filler(guided, ref)(hidden, mask), clear, mask))
    return {k: np.mean(v, axis=0) for k, v in results.items()}


def table(results: dict[tuple[str, float], np.ndarray]) -> str:
    names = list(dict.fromkeys(k[0] for k in results))
    head = "| method | " + " | ".join(f"{int(c * 100)} % PSNR / SSIM / SAM" for c in COVERS)
    lines = [head + " |", "|---|" + "---|" * len(COVERS)]
    for n in names:
        cells = [f"{v[0]:.2f} / {v[1]:.3f} / {v[2]:.2f}"
                 for v in (results[(n, c)] for c in COVERS)]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write-docs", action="store_true", help="put the table in the docs")
    parser.add_argument("--weights", type=Path, help="default-model weights (else shipped)")
    parser.add_argument("--guided-weights", type=Path, help="guided weights (else shipped)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the shared 2-core machine: see train.py
    text = table(run(args.weights, args.guided_weights))
    print(text)
    if args.write_docs:
        doc = DOC.read_text()
        start, end = "<!-- bench:start -->", "<!-- bench:end -->"
        before, rest = doc.split(start)
        DOC.write_text(before + start + "\n" + text + "\n" + end + rest.split(end)[1])


if __name__ == "__main__":
    main()
