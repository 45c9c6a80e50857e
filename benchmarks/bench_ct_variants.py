"""Per-patch CPU forward time of CT network candidates vs MONAI's UNet, in one run.

Untrained networks (time does not depend on the weights): the shipped lean U-Net 16-32-64, the
space-to-depth (``unshuffle``) variants trained for the comparison in
``docs/ct_denoise_3x_search.md``, and MONAI ``UNet(16, 32, 64, 128; 2 res units)``, each in
float32 and cast to bfloat16
(``--runtime torch-bf16``'s wrapper). One 128x128x16 patch, 2 threads; the networks take turns
within each round (so a busy spell of the machine hits them all) and each keeps its best of
the rounds.

Usage:
    python benchmarks/bench_ct_variants.py [--rounds 5] [--only "gates on 2 levels" ...]
"""

from __future__ import annotations

import argparse
import time

import torch
from monai.networks.nets import UNet

from suite.bf16 import to_bfloat16
from suite.models import create_model

MONAI = "MONAI UNet(16,32,64,128; 2 res units)"
LEAN = {"spatial_dims": 3, "residual": True, "backend": "lean", "channels_last": True}
# The 3-level 2x2x2 fold and its gated form, which most candidates extend by one option.
FOLD = {"channels": [16, 32, 64], "unshuffle": [2, 2, 2]}
GATED = {**FOLD, "gated_levels": 2}
CANDIDATES: dict[str, dict] = {
    "lean 16-32-64 (shipped)": {"channels": [16, 32, 64]},
    "space-to-depth 2x2x2, 24-48-96": {"channels": [24, 48, 96], "unshuffle": [2, 2, 2]},
    "space-to-depth 2x2x2, 16-32-64": FOLD,
    "space-to-depth 2x2x2, 16-32-64-128": {"channels": [16, 32, 64, 128],
                                           "unshuffle": [2, 2, 2]},
    "space-to-depth 4x4x2, 32-64-128": {"channels": [32, 64, 128], "unshuffle": [4, 4, 2]},
    "space-to-depth 2x2x2, 16-32-64, gates on 2 levels": GATED,
    "space-to-depth 2x2x2, 16-32-64, gates on 3 levels": {**FOLD, "gated_levels": 3},
    "space-to-depth 2x2x2, 16-32-64, gates on 2 levels, tail 4": {**GATED, "tail": 4},
    "space-to-depth 2x2x2, 16-32-64, gates on 2 levels, tail 1": {**GATED, "tail": 1},
    "space-to-depth 2x2x2, 16-32-96, gates on 3 levels": {
        **FOLD, "channels": [16, 32, 96], "gated_levels": 3},
    "space-to-depth 2x2x2, 16-32-64, gates on 2 levels, head 3": {**GATED, "head_kernel": 3},
    "space-to-depth 2x2x2, 16-32-64, gates on 2 levels, resample 3": {
        **GATED, "resample_kernel": 3},
    "space-to-depth 2x2x2, 16-32-64, gates on 2 levels, resample 3, head 3": {
        **GATED, "resample_kernel": 3, "head_kernel": 3},
    "space-to-depth 2x2x2, 16-32-64, gates on 2 levels, norm on 2 levels": {
        **GATED, "norm_levels": 2},
    "space-to-depth 2x2x2, 16-32-64, gates on 2 levels, norm on 3 levels": {
        **GATED, "norm_levels": 3},
    "space-to-depth 2x2x2, 16-32-64, gates on 2 levels, shortcuts on 3 levels": {
        **GATED, "residual_levels": 3},
    "space-to-depth 2x2x2, 16-32-64, shortcuts on 3 levels": {**FOLD, "residual_levels": 3},
    "space-to-depth 2x2x2, 16-32-64, gates on 2 levels, shortcuts on 2 levels": {
        **GATED, "residual_levels": 2},
    "space-to-depth 2x2x2, 16-32-64, gates on 2 levels, shortcuts and norm on 3 levels": {
        **GATED, "residual_levels": 3, "norm_levels": 3},
}


def one_time(net: torch.nn.Module, x: torch.Tensor) -> float:
    start = time.perf_counter()
    net(x)
    return time.perf_counter() - start


def networks(only: list[str] | None) -> dict[str, tuple[torch.nn.Module, torch.Tensor]]:
    x = torch.randn(1, 1, 128, 128, 16)
    cl = x.contiguous(memory_format=torch.channels_last_3d)
    nets: dict[str, tuple[torch.nn.Module, torch.Tensor]] = {}
    for name, kw in CANDIDATES.items():
        if only and not any(text in name for text in only):
            continue
        net = create_model("unet", **kw, **LEAN).eval().to(memory_format=torch.channels_last_3d)
        nets[name] = (net, cl)
        nets[f"{name}, bf16"] = (to_bfloat16(net), cl)
    monai = UNet(3, 1, 1, (16, 32, 64, 128), (2, 2, 2), num_res_units=2).eval()
    nets[MONAI] = (monai, x)
    nets[f"{MONAI}, bf16"] = (to_bfloat16(monai), x)
    return nets


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--only", nargs="*", default=None, metavar="TEXT",
                   help="time only the candidates whose name contains one of these (and MONAI)")
    a = p.parse_args()
    torch.set_num_threads(2)
    nets = networks(a.only)
    best = dict.fromkeys(nets, float("inf"))
    with torch.inference_mode():
        for net, x in nets.values():
            net(x)  # warm-up: oneDNN picks its kernels on the first call
        for _ in range(a.rounds):
            for name, (net, x) in nets.items():
                best[name] = min(best[name], one_time(net, x))
    monai = best[MONAI]
    print("| network | s per 128x128x16 patch | MONAI fp32 time / this time |")
    print("|---|---|---|")
    for name, t in best.items():
        print(f"| {name} | {t:.4f} | {monai / t:.2f} |")


if __name__ == "__main__":
    main()
