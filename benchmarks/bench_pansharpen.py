"""Pansharpening quality on real scenes not used for training: Wald reduced resolution + QNR.

Scenes: the right third of Landsat 8 LC80200392015216LGN00 (held out by the training recipe) at
its native ratio 2 and at ratio 4 (MS coarsened once more with its MTF), and the decimated
Landsat 8 2017 fixture (ratio 2). Methods: bicubic upsampling, the five classical methods, the
deep default without target adaptation, adapted on the Wald pair only, and adapted as shipped
(Wald pair plus the full-resolution term). Metrics over every pixel of the scene (no cloud
mask, the same for all methods), SAM in degrees, ERGAS at the scene's ratio, Q2n on 32x32 blocks;
QNR (alpha = beta = 1, Q on 32x32 blocks) at full resolution, PAN low-passed with its MTF onto
the MS grid for D_s.

Usage: ``flock /tmp/suite_train.lock python benchmarks/bench_pansharpen.py --out results.json``
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from domains.pansharpen import classical, deep
from domains.pansharpen.wald import (
    Scene,
    crop_valid,
    degrade_ms,
    full_pair,
    load_scene,
    pan_to_ms_grid,
    reduced_scene,
)
from suite.degradations.mtf import sensor_mtf
from suite.metrics.spectral import ergas, q2n, qnr, sam

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "remote"
L8 = DATA / "landsat8_LC80200392015216LGN00"
L8B = DATA / "landsat8_LC08_L1TP_016037_20170813_decimated"
SENSOR = "landsat8"
Fuser = Callable[[Scene], np.ndarray]


def scenes() -> dict[str, Scene]:
    """The benchmark scenes (MS B2-B5, PAN B8)."""
    held = load_scene([L8 / f"l8_B{b}.tif" for b in (2, 3, 4, 5)], L8 / "l8_B8.tif", (2 / 3, 1))
    stem = "LC08_L1TP_016037_20170813_20170814_01_RT_B"
    # its nodata collar (zeros) is cut off so that no method is scored or adapted on it
    other = crop_valid(
        load_scene([L8B / f"{stem}{b}.TIF" for b in (2, 3, 4, 5)], L8B / f"{stem}8.TIF")
    )
    return {
        "L8 2015 held-out third, ratio 2": held,
        "L8 2015 held-out third, ratio 4": degrade_ms(held, 2, SENSOR),
        "L8 2017 decimated, ratio 2": other,
    }


def classical_fuser(method: str) -> Fuser:
    """Fit and apply a classical method on a scene's full extent (PAN grid)."""

    def fuse(scene: Scene) -> np.ndarray:
        ms_up, pan = full_pair(scene)
        if method == "bicubic":
            return ms_up
        gains = sensor_mtf(SENSOR).ms_gains(scene.ms.shape[0])
        return classical.pansharpen(ms_up, pan, method, scene.ratio, gains)

    return fuse


def deep_fuser(steps: int, model: torch.nn.Module, adapt_cfg: dict[str, Any]) -> Fuser:
    """The deep method: standardize on the scene, adapt ``steps`` on its Wald pair, fuse."""

    def fuse(scene: Scene) -> np.ndarray:
        norm = deep.fit_norm(scene.ms, scene.pan)
        tuned = deep.adapt_on_scene(model, scene, SENSOR, norm, adapt_cfg, steps)
        ms_up, pan = full_pair(scene)
        return deep.DeepSharpener(tuned, norm).apply(ms_up, pan)

    return fuse


def evaluate(scene: Scene, fuse: Fuser) -> dict[str, float]:
    """Reduced-resolution metrics (fusing the degraded scene) and full-resolution QNR."""
    lr, ref = reduced_scene(scene, SENSOR)
    t = time.perf_counter()
    rr = fuse(lr)
    seconds = time.perf_counter() - t
    fr = fuse(scene)
    q = qnr(fr, scene.ms, scene.pan, pan_to_ms_grid(scene, SENSOR))
    return {
        "sam_deg": sam(rr, ref),
        f"ergas_ratio{scene.ratio}": ergas(rr, ref, scene.ratio),
        "q2n_block32": q2n(rr, ref, 32),
        "qnr_block32": q["qnr"],
        "d_lambda": q["d_lambda"],
        "d_s": q["d_s"],
        "seconds_rr": seconds,
    }


def main() -> None:
    """Run every method on every scene; print a markdown table and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench_pansharpen.json"))
    parser.add_argument("--adapt-steps", type=int, default=None)
    parser.add_argument("--only", default="", help="run the scenes whose name contains this")
    parser.add_argument("--adapt", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override the card's adaptation settings, e.g. full_weight=0.1")
    parser.add_argument("--deep-only", action="store_true", help="skip the classical methods")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model, card = deep.load(device="cpu")
    adapt_cfg = {**card.get("adaptation", {}), **_overrides(args.adapt)}
    steps = int(args.adapt_steps or adapt_cfg.get("steps", 100))
    methods: dict[str, Fuser] = {} if args.deep_only else {
        m: classical_fuser(m) for m in ("bicubic", *classical.METHODS)}
    methods["deep (no adaptation)"] = deep_fuser(0, model, adapt_cfg)
    wald_only = {**adapt_cfg, "full_weight": 0.0}
    methods[f"deep (adapted, {steps} steps, Wald term only)"] = deep_fuser(steps, model, wald_only)
    methods[f"deep (adapted, {steps} steps)"] = deep_fuser(steps, model, adapt_cfg)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name, scene in scenes().items():
        if args.only not in name:
            continue
        results[name] = {m: evaluate(scene, fuse) for m, fuse in methods.items()}
        print_table(name, results[name])
    args.out.write_text(json.dumps(results, indent=2))


def _overrides(items: list[str]) -> dict[str, float]:
    """``["lr=8e-4", "steps=300"]`` -> ``{"lr": 0.0008, "steps": 300}``."""
    out: dict[str, float] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = int(value) if value.lstrip("-").isdigit() else float(value)
    return out


def print_table(scene: str, rows: dict[str, dict[str, float]]) -> None:
    """One markdown table per scene."""
    print(f"\n### {scene}\n")
    print("| method | SAM (deg) | ERGAS | Q2n | QNR | D_lambda | D_s |")
    print("|---|---|---|---|---|---|---|")
    for method, m in rows.items():
        erg = next(v for k, v in m.items() if k.startswith("ergas"))
        print(
            f"| {method} | {m['sam_deg']:.3f} | {erg:.3f} | {m['q2n_block32']:.4f} | "
            f"{m['qnr_block32']:.4f} | {m['d_lambda']:.4f} | {m['d_s']:.4f} |"
        )


if __name__ == "__main__":
    main()
