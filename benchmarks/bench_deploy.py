"""CPU deployment benchmark: PyTorch fp32, int8 and bf16, ONNX Runtime fp32 and int8 (QDQ).

For each model (CT denoising; satellite SR when its weights are installed) the same tiled
pipeline runs with the runtimes swapped in, on real data, interleaved, ``--reps`` times;
the table gives the median wall time of a whole input, throughput, speed-up against PyTorch
fp32 and quality against the clean reference, with the metric convention on every row.

- CT: held-out volume ``ct/totalsegmentator_ct.nii.gz`` (the recipe's validation volume) with
  50 HU of projection-domain low-dose noise (seed 0); PyTorch runs the domain's own
  ``channels_last_3d`` path; int8 is calibrated on the bundled sample series
  (``sample_data/ct/abdomen_ct_dicom``) at 20/50/100 HU. PSNR on HU clipped to [-160, 240]
  (data range 400), 3D over the whole volume.
- sat-sr x2: Sentinel-2 10 m bands B02/B03/B04/B08 (decimated fixture) as reference, Wald
  degradation (generic MTF gain 0.3, decimation by 2) as input, per-band 1-99 % normalization
  as in the recipe; PSNR in normalized units (data range 1), all bands, 4 px border cropped.

Run under the shared lock (it takes a few minutes):
``flock /tmp/suite_train.lock python benchmarks/bench_deploy.py --write-docs``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from suite.export import calibration_crops

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
DOCS = REPO / "docs" / "deploy.md"
THREADS = 2


@dataclass
class Case:
    """One model: how to run it on the benchmark input, and how to score the output."""

    name: str
    model: torch.nn.Module
    card: dict[str, Any]
    run: Callable[[Any], np.ndarray]
    score: Callable[[np.ndarray], float]
    metric: str
    units: float  # voxels/pixels of output per run, for throughput
    calibration: list[np.ndarray]
    weights: Path
    torch_int8: bool = False  # the domain runs ``--runtime torch-int8`` (CT only)


def ct_weights(given: Path | None = None) -> Path | None:
    """``given``, else the shipped CT weights, else the default training run's output."""
    shipped = REPO / "domains/ct_denoise/weights/ct_denoise.safetensors"
    for path in (*([given] if given else []), shipped,
                 REPO / "runs/ct_default/ct_denoise.safetensors"):
        if path.is_file():
            return path
    return None


def ct_case(given: Path | None = None) -> Case | None:
    from domains.ct_denoise.config import HU_SCALE, ModelConfig
    from domains.ct_denoise.lowdose import simulate_low_dose
    from domains.ct_denoise.pipeline import load_ct_model
    from domains.ct_denoise.volumes import denoise, to_axial
    from suite.io.volume import read_volume
    from suite.metrics import psnr

    weights = ct_weights(given)
    if weights is None:
        print("CT: no trained weights (shipped or runs/ct_default); skipped", file=sys.stderr)
        return None
    model, cfg = load_ct_model(weights, device="cpu")
    ref = to_axial(read_volume(DATA / "ct" / "totalsegmentator_ct.nii.gz"))
    noisy = simulate_low_dose(ref.hu, ref.pixel_mm, 2, noise_hu=50.0, seed=0).noisy
    sample = to_axial(read_volume(REPO / "sample_data" / "ct" / "abdomen_ct_dicom"))
    calib = calibration_crops(
        [simulate_low_dose(sample.hu, sample.pixel_mm, 2, noise_hu=level, seed=1).noisy[None]
         / HU_SCALE for level in (20.0, 50.0, 100.0)], (128, 128, 8), 18)

    def score(out: np.ndarray) -> float:
        return psnr(np.clip(out, -160, 240), np.clip(ref.hu, -160, 240), data_range=400.0)

    def run(net: Any) -> np.ndarray:
        return denoise(net, noisy, ModelConfig(patch=cfg.patch, overlap=cfg.overlap))

    from suite.weights import read_card

    return Case(f"ct-denoise ({weights.name})", model, read_card(weights), run,
                score, "PSNR dB, HU clipped to [-160, 240], range 400, 3D", float(noisy.size),
                calib, weights, torch_int8=True)  # fmt: skip


def sat_case() -> Case | None:
    path = REPO / "domains/sat_sr/weights/default_x2.safetensors"
    if not path.is_file():
        print("sat-sr: no default_x2 weights installed yet; skipped", file=sys.stderr)
        return None
    import rasterio

    from domains.sat_sr.sr import load_sr, sr_block
    from suite.degradations.mtf import mtf_decimate
    from suite.metrics import psnr
    from suite.weights import read_card

    model, tiling = load_sr(path, 2, device="cpu")
    folder = DATA / "remote" / "sentinel2_S2A_29RKH_20200219_L2A_decimated"
    bands = []
    for band in ("B02", "B03", "B04", "B08"):
        with rasterio.open(folder / f"S2A_29RKH_20200219_0_L2A_{band}_crop.tif") as src:
            bands.append(src.read(1).astype(np.float32))
    hr = np.stack(bands)
    lo, hi = np.percentile(hr, 1, axis=(1, 2)), np.percentile(hr, 99, axis=(1, 2))
    hr = (hr - lo[:, None, None]) / (hi - lo)[:, None, None]
    lr = mtf_decimate(hr, [0.3] * len(hr), 2).astype(np.float32)
    calib = calibration_crops([band[None] for band in lr], (64, 64), 8)  # single-band model

    def score(out: np.ndarray) -> float:
        c = 4
        return psnr(out[:, c:-c, c:-c], hr[:, c:-c, c:-c], data_range=1.0)

    def run(net: Any) -> np.ndarray:
        return sr_block(net, lr, 2, tiling)

    return Case("sat-sr x2 (default_x2)", model, read_card(path), run, score,
                "PSNR dB, per-band 1-99 % normalized units, range 1, 4 bands, 4 px crop",
                float(hr.size), calib, path)  # fmt: skip


def runtimes(case: Case, tmp: Path) -> dict[str, Any]:
    """The runtimes of one model, exported and quantized into ``tmp``.

    PyTorch int8 (for the domains that run it) goes through the same cached TorchScript as
    ``--runtime torch-int8``.
    """
    import os

    from suite.bf16 import to_bfloat16
    from suite.export import OnnxModule, example_input, export_onnx, quantize_int8
    from suite.int8 import cached_int8

    fp32 = export_onnx(case.model, example_input(case.card), tmp / "fp32.onnx", case.card)
    int8 = quantize_int8(fp32, tmp / "int8.onnx", case.calibration)
    os.environ["SUITE_CACHE"] = str(tmp)
    nets: dict[str, Any] = {"PyTorch fp32": case.model}
    if case.torch_int8:
        nets["PyTorch int8 (x86, TorchScript)"] = cached_int8(case.weights, case.model,
                                                              lambda: case.calibration)
    nets["PyTorch bf16"] = to_bfloat16(case.model)  # as --runtime torch-bf16
    return nets | {"ONNX Runtime fp32": OnnxModule(fp32, "cpu", threads=THREADS),
                   "ONNX Runtime int8 (QDQ)": OnnxModule(int8, "cpu", threads=THREADS)}


def bench(case: Case, reps: int) -> list[dict[str, Any]]:
    """Interleaved timing and quality of every runtime for one case."""
    with tempfile.TemporaryDirectory() as tmp:
        nets = runtimes(case, Path(tmp))
        times: dict[str, list[float]] = {name: [] for name in nets}
        scores = {name: case.score(case.run(net)) for name, net in nets.items()}  # warm-up
        for _ in range(reps):
            for name, net in nets.items():
                start = time.perf_counter()
                case.run(net)
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times["PyTorch fp32"])
    return [{"model": case.name, "runtime": name, "seconds": statistics.median(t),
             "mvox_s": case.units / statistics.median(t) / 1e6,
             "speedup": base / statistics.median(t), "psnr": scores[name],
             "dpsnr": scores[name] - scores["PyTorch fp32"], "metric": case.metric}
            for name, t in times.items()]  # fmt: skip


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| model | runtime | s / input | Mvoxel/s | speed-up vs PyTorch fp32 | quality | "
             "change vs PyTorch fp32 | quality convention |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['runtime']} | {r['seconds']:.2f} | {r['mvox_s']:.3f} |"
                     f" {r['speedup']:.2f}x | {r['psnr']:.2f} dB | {r['dpsnr']:+.3f} dB |"
                     f" {r['metric']} |")  # fmt: skip
    return "\n".join(lines)


def write_docs(text: str) -> None:
    """Replace the block between the benchmark markers of docs/deploy.md."""
    start, end = "<!-- bench_deploy:start -->", "<!-- bench_deploy:end -->"
    doc = DOCS.read_text()
    head, rest = doc.split(start)
    DOCS.write_text(head + start + "\n" + text + "\n" + end + rest.split(end)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--ct-weights", type=Path, help="CT weights (default: shipped/run)")
    parser.add_argument("--write-docs", action="store_true", help="put the table in docs")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    rows = []
    for case in (ct_case(args.ct_weights), sat_case()):
        if case is not None:
            rows += bench(case, args.reps)
    import onnxruntime

    text = (table(rows) + f"\n\nCPU: {THREADS} threads (torch.set_num_threads, ORT "
            f"intra_op_num_threads), median of {args.reps} interleaved runs after a warm-up; "
            f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}; "
            f"{time.strftime('%Y-%m-%d')}.")  # fmt: skip
    print(text)
    if args.write_docs:
        write_docs(text)


if __name__ == "__main__":
    main()
