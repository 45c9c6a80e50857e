"""Fundus restoration quality on the held-out right half of the one real CC0 photograph.

Only one real fundus photograph can be redistributed here (scikit-image's retina, CC0), so the
default weights are trained on its LEFT half (plus synthetic images) and every number below is
measured on its RIGHT half only: the FOV pixels with column >= W/2. Degradations are simulated
on the whole photograph (``suite degrade fundus``'s model, seeds never used in training) at two
severities; every method sees the whole degraded photograph and is scored on the right half
(``--half left`` scores the training half instead: a diagnostic, never the table).

Convention (every number): RGB / 255, data range 1; ``PSNR FOV`` over the right-half FOV
pixels, all channels; ``SSIM FOV`` the mean of the 11-tap Gaussian (sigma 1.5) SSIM map,
channels averaged, over the same pixels; ``PSNR vessel`` over the right-half vessel pixels
(the 12 % of FOV pixels with the highest Sato vesselness of the clean photograph);
``vessel AUC`` the ROC AUC of the Sato vesselness of each image against those vessel pixels;
``colour removed``: PSNR FOV and PSNR vessel after subtracting each channel's mean error over
the right-half FOV pixels from the image (a diagnostic: how much of the error is one global
colour shift); ``mean_error_r/g/b`` (printed and in ``--json``) are those means, and
``vessel_mean_error_r/g/b`` the same over the vessel pixels (negative: too dark);
``psnr_vessel_own_shift_removed`` is PSNR vessel after subtracting the vessel pixels' own mean
error per channel (what is left is error in the vessels' structure, not their level).

Usage:
    flock /tmp/suite_train.lock python benchmarks/bench_fundus.py [--l1 W] [--default W]
        [--draws N] [--no-classical] [--half left]
        [--docs docs/fundus.md]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from domains.fundus.classical import BASELINES
from domains.fundus.degrade import degrade_fundus
from domains.fundus.metrics import ssim_in_mask
from domains.fundus.model import model_input, restore
from domains.fundus.photos import read_fundus
from domains.fundus.pipeline import load_fundus_model
from domains.fundus.vessels import vessel_auc, vessel_mask, vesselness
from suite.metrics import psnr

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PHOTO = SHARED / "fundus" / "skimage_retina.jpg"
WEIGHTS = Path(__file__).resolve().parents[1] / "domains" / "fundus" / "weights"
SEVERITIES = (0.4, 0.8)
MARK_BEGIN, MARK_END = "<!-- bench_fundus:begin -->", "<!-- bench_fundus:end -->"
Method = Callable[[np.ndarray, np.ndarray], np.ndarray]


def scores(img: np.ndarray, clean: np.ndarray, fov: np.ndarray, region: np.ndarray,
           vessels: np.ndarray) -> dict[str, float]:
    """The metrics of the module docstring on ``region`` (the scored half's FOV)."""
    shift = (img[region] - clean[region]).mean(axis=0)
    vessel_shift = (img[vessels] - clean[vessels]).mean(axis=0)
    return {
        **{f"mean_error_{c}": float(v) for c, v in zip("rgb", shift, strict=True)},
        **{f"vessel_mean_error_{c}": float(v) for c, v in zip("rgb", vessel_shift, strict=True)},
        "psnr_fov": psnr(img[region], clean[region], data_range=1.0),
        "psnr_fov_colour_removed": psnr(img[region] - shift, clean[region], data_range=1.0),
        "psnr_vessel_colour_removed": psnr(img[vessels] - shift, clean[vessels], data_range=1.0),
        "psnr_vessel_own_shift_removed": psnr(img[vessels] - vessel_shift, clean[vessels],
                                              data_range=1.0),
        "ssim_fov": ssim_in_mask(img, clean, region),
        "psnr_vessel": psnr(img[vessels], clean[vessels], data_range=1.0),
        "vessel_auc": vessel_auc(vesselness(img, fov), vessels, region),
    }


def methods(l1: Path, default: Path, bf16: bool = False,
            classical: bool = True) -> dict[str, Method]:
    """Input, the classical baselines and the two trained models (and the default on bf16)."""
    out: dict[str, Method] = {"degraded input": lambda x, f: x}
    if classical:
        out |= {name: fn for name, fn in BASELINES.items()}
    models = [("model, plain L1", l1, "torch"), ("model, vessel-aware (default)", default, "torch")]
    if bf16:
        models.append(("model, vessel-aware (default), torch-bf16", default, "torch-bf16"))
    for name, path, runtime in models:
        net, tiling = load_fundus_model(path, runtime=runtime, device="cpu")
        out[name] = lambda x, f, net=net, tiling=tiling: restore(net, x, f, tiling)
    return out


def draw_rng(severity_index: int, draw: int) -> np.random.Generator:
    """The degradation's random stream: draw 0 is the table's, later draws are fresh seeds."""
    return np.random.default_rng([7, severity_index] if draw == 0 else [7, severity_index, draw])


def run(l1: Path, default: Path, bf16: bool = False, draws: int = 1,
        classical: bool = True, half: str = "right") -> dict[str, dict[str, dict[str, float]]]:
    """Metrics per severity and method; with ``draws`` > 1, each metric is the mean over that
    many degradation draws (dB averaged as dB), so that a score does not hinge on how one
    draw's cast and illumination suit a model's colour guess. ``half="left"`` scores the
    training half instead (a diagnostic: what the networks do on what they were fitted to)."""
    src = read_fundus(PHOTO, None)
    clean, fov = src.rgb, src.fov
    scored = np.zeros_like(fov)
    columns = slice(fov.shape[1] // 2, None) if half == "right" else slice(0, fov.shape[1] // 2)
    scored[:, columns] = True
    region = fov & scored
    vessels = vessel_mask(vesselness(clean, fov), fov) & scored
    results: dict[str, dict[str, dict[str, float]]] = {}
    restorers = methods(l1, default, bf16, classical)  # weights loaded once for both severities
    for k, severity in enumerate(SEVERITIES):
        per_draw: dict[str, list[dict[str, float]]] = {name: [] for name in restorers}
        for draw in range(draws):
            low, _ = degrade_fundus(clean, fov, severity, draw_rng(k, draw))
            for name, method in restorers.items():
                started = time.perf_counter()
                out = method(low, fov)
                row = scores(out, clean, fov, region, vessels)
                row["seconds"] = time.perf_counter() - started
                per_draw[name].append(row)
                print(severity, draw, name, {m: round(v, 4) for m, v in row.items()}, flush=True)
        results[str(severity)] = {name: {key: float(np.mean([r[key] for r in rows]))
                                         for key in rows[0]}
                                  for name, rows in per_draw.items()}
    return results


def table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    """Markdown table of the results."""
    lines = ["| severity | method | PSNR FOV (dB) | SSIM FOV | PSNR vessel (dB) | vessel AUC "
             "| colour removed: PSNR FOV (dB) | colour removed: PSNR vessel (dB) |",
             "|---|---|---|---|---|---|---|---|"]
    for severity, rows in results.items():
        for name, r in rows.items():
            lines.append(f"| {severity} | {name} | {r['psnr_fov']:.2f} | {r['ssim_fov']:.4f} "
                         f"| {r['psnr_vessel']:.2f} | {r['vessel_auc']:.4f} "
                         f"| {r['psnr_fov_colour_removed']:.2f} "
                         f"| {r['psnr_vessel_colour_removed']:.2f} |")
    return "\n".join(lines)


def write_docs(path: Path, text: str) -> None:
    """Replace the block between the benchmark markers in ``path``."""
    doc = path.read_text()
    head, rest = doc.split(MARK_BEGIN, 1)
    _, tail = rest.split(MARK_END, 1)
    path.write_text(f"{head}{MARK_BEGIN}\n{text}\n{MARK_END}{tail}")


def full_resolution(default: Path, runtimes: tuple[str, ...] = ("torch",),
                    repeats: int = 3) -> dict[str, float]:
    """Restore a 3504 x 2336 photograph (the retina upscaled and centred) on each runtime,
    interleaved, ``repeats`` times; print the median seconds and the peak RSS."""
    import resource

    from PIL import Image

    src = read_fundus(PHOTO, None)
    side = 2336
    disc = np.asarray(Image.fromarray((src.rgb * 255).astype(np.uint8)).resize((side, side)))
    canvas = np.zeros((side, 3504, 3), np.float32)
    canvas[:, 584:584 + side] = disc / 255.0
    fov = np.zeros(canvas.shape[:2], bool)
    fov[:, 584:584 + side] = np.asarray(Image.fromarray(src.fov).resize((side, side)))
    nets = {r: load_fundus_model(default, runtime=r, device="cpu") for r in runtimes}
    centre = np.s_[912:1424, 1496:2008]
    for net, tiling in nets.values():
        restore(net, canvas[centre], fov[centre], tiling)  # warm-up: oneDNN builds its kernels
    times: dict[str, list[float]] = {r: [] for r in (*runtimes, "context channels")}
    for _ in range(repeats):
        for runtime, (net, tiling) in nets.items():
            started = time.perf_counter()
            out = restore(net, canvas, fov, tiling)
            times[runtime].append(time.perf_counter() - started)
            assert np.isfinite(out).all()
        started = time.perf_counter()
        model_input(canvas, fov)  # the context channels alone: the part no runtime speeds up
        times["context channels"].append(time.perf_counter() - started)
    medians = {name: float(np.median(t)) for name, t in times.items()}
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for name, seconds in medians.items():
        print(f"3504x2336, {name}: median {seconds:.1f} s of {repeats} interleaved runs")
    print(f"peak RSS {peak_mb:.0f} MB (all runtimes in one process)")
    return medians | {"peak_rss_mb": peak_mb}


def main() -> None:
    """Run, print the table, optionally write it into the docs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--l1", type=Path, default=WEIGHTS / "fundus_l1.safetensors")
    parser.add_argument("--default", type=Path, default=WEIGHTS / "fundus.safetensors")
    parser.add_argument("--docs", type=Path, help="write the table into this markdown file")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    parser.add_argument("--full-res", action="store_true",
                        help="only time a 3504x2336 run of the default model")
    parser.add_argument("--bf16", action="store_true",
                        help="also the default model on --runtime torch-bf16")
    parser.add_argument("--draws", type=int, default=1,
                        help="degradation draws per severity, metrics averaged (default 1: "
                             "the docs table)")
    parser.add_argument("--no-classical", action="store_true",
                        help="only the input and the two models (to compare training runs)")
    parser.add_argument("--half", choices=("right", "left"), default="right",
                        help="the half scored: right (held out, the docs table) or left "
                             "(the training half, a diagnostic)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.full_res:
        full_resolution(args.default, ("torch", "torch-bf16") if args.bf16 else ("torch",))
        return
    if args.docs and (args.no_classical or args.half != "right"):
        parser.error("--docs is the held-out table: drop --no-classical and --half left")
    if args.draws < 1:
        parser.error("--draws must be at least 1")
    results = run(args.l1, args.default, args.bf16, args.draws, not args.no_classical,
                  args.half)
    text = table(results)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if args.docs:
        write_docs(args.docs, text)


if __name__ == "__main__":
    main()
