"""MRI through-plane SR quality on a held-out real volume: cubic B-spline vs the default model vs
``--adapt``, at factors 2 and 4, plus the frequency-loss ablation (same recipe without it).

Run under the training lock (it takes several minutes on 2 CPU cores)::

    flock /tmp/suite_train.lock python benchmarks/bench_mri_sr.py \
        --ref ../shared/data/mri/niivue_MR_Gd.nii.gz \
        [--ablation runs/mri_sr_nofft/mri_sr.safetensors] [--bf16]

Thick slices are simulated along axis 2 (``--axis`` to choose another; Gaussian slice
profile, FWHM = factor), restored onto the original grid and compared with the original; the
metric convention is printed with the table (``domains.mri_sr.metrics.convention``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from domains.mri_sr import DOMAIN
from domains.mri_sr.adapt import adapt_model
from domains.mri_sr.config import DEFAULT_YAML, MriSrConfig
from domains.mri_sr.geometry import thick_slices
from domains.mri_sr.metrics import convention, sr_metrics
from domains.mri_sr.sr import super_resolve
from suite.bf16 import to_bfloat16
from suite.config import load_config
from suite.io.volume import read_volume
from suite.weights import load_model

AXIS = 2


def run_method(weights: Path | None, data: np.ndarray, hr: np.ndarray, ref_path: Path,
               scale: float, adapt: bool = False, adapt_steps: int | None = None,
               adapt_lr: float | None = None, bf16: bool = False,
               axis: int = AXIS) -> tuple[dict[str, float], float]:
    """Super-resolve the thick volume with one method and score it against ``hr`` (read once
    per volume by the caller; ``ref_path`` names it in ``--adapt``'s errors); return metrics
    and seconds."""
    started = time.time()
    model = None if weights is None else load_model(weights)[0]
    if adapt and model is not None:
        cfg = load_config(MriSrConfig, DEFAULT_YAML)
        cfg.adapt.steps = adapt_steps or cfg.adapt.steps
        cfg.adapt.lr = adapt_lr or cfg.adapt.lr
        model = adapt_model(model, data, axis, scale, cfg.adapt, cfg.loss, ref_path)
    if bf16 and model is not None:
        model = to_bfloat16(model)  # as ``enhance --runtime torch-bf16``
    pred = super_resolve(model, data, axis, scale)
    seconds = time.time() - started
    ref = np.take(hr, np.arange(pred.shape[axis]), axis=axis)
    return sr_metrics(pred, ref, axis, scale), seconds


def main() -> None:
    """Print a markdown table and write JSON beside it."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ref", type=Path, required=True, nargs="+")
    parser.add_argument("--weights", type=Path, default=DOMAIN.default_weights())
    parser.add_argument("--ablation", type=Path, help="weights of the recipe without FFT loss")
    parser.add_argument("--skip-adapt", action="store_true")
    parser.add_argument("--adapt-steps", type=int, help="--adapt step budget (default: recipe's)")
    parser.add_argument("--adapt-lr", type=float, help="--adapt learning rate (default: recipe's)")
    parser.add_argument("--bf16", action="store_true",
                        help="also the default model on --runtime torch-bf16")
    parser.add_argument("--json", type=Path, default=Path("runs/bench_mri_sr.json"))
    parser.add_argument("--axis", type=int, choices=(0, 1, 2), default=AXIS,
                        help="the axis made thick (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = []
    for ref_path in args.ref:
        hr = read_volume(ref_path).data
        for scale in (2.0, 4.0):
            thick = thick_slices(hr, args.axis, scale, "gaussian")
            methods: list[tuple[str, Path | None, bool, bool]] = [
                ("cubic B-spline", None, False, False)]
            if args.weights is not None:
                methods.append(("default model (L1+FFT)", args.weights, False, False))
            if args.bf16 and args.weights is not None:
                methods.append(("default model, torch-bf16", args.weights, False, True))
            if args.ablation:
                methods.append(("same recipe, L1 only", args.ablation, False, False))
            if not args.skip_adapt and args.weights is not None:
                methods.append(("default + --adapt", args.weights, True, False))
            for name, w, adapt, bf16 in methods:
                m, sec = run_method(w, thick, hr, ref_path, scale, adapt, args.adapt_steps,
                                    args.adapt_lr, bf16, args.axis)
                rows.append({"volume": ref_path.name, "scale": scale, "method": name,
                             **{k: round(v, 4) for k, v in m.items()}, "seconds": round(sec, 1)})
                print(rows[-1], flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"rows": rows, "convention": convention()}, indent=2))
    print("\n| volume | factor | method | PSNR (dB) | SSIM | HF error (dB) | time (s) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['volume']} | x{r['scale']:g} | {r['method']} | {r['psnr_masked']:.2f} | "
              f"{r['ssim3d_bbox']:.4f} | {r['hf_error_db']:.2f} | {r['seconds']} |")
    print("\nConvention:", convention())


if __name__ == "__main__":
    main()
