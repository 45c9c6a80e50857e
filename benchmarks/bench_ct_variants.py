"""Per-patch CPU forward time of CT network candidates vs MONAI's UNet, in one run.

Untrained networks (time does not depend on the weights): the shipped lean U-Net 16-32-64, the
space-to-depth (``unshuffle=[2, 2, 2]``) 24-48-96 variant, and MONAI ``UNet(16, 32, 64, 128; 2
res units)``; one 128x128x16 patch, 2 threads, best of 5 after a warm-up.

Usage:
    python benchmarks/bench_ct_variants.py
"""

from __future__ import annotations

import time

import torch
from monai.networks.nets import UNet

from suite.models import create_model


def best_time(net: torch.nn.Module, x: torch.Tensor, repeats: int = 5) -> float:
    with torch.inference_mode():
        net(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            net(x)
            times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    torch.set_num_threads(2)
    x = torch.randn(1, 1, 128, 128, 16)
    cl = x.contiguous(memory_format=torch.channels_last_3d)
    lean = dict(spatial_dims=3, residual=True, backend="lean")
    nets = {
        "lean 16-32-64 (shipped)": (create_model("unet", channels=[16, 32, 64], **lean), cl),
        "space-to-depth 2x2x2, 24-48-96": (
            create_model("unet", channels=[24, 48, 96], unshuffle=[2, 2, 2], **lean), cl),
        "MONAI UNet(16,32,64,128; 2 res units)": (
            UNet(3, 1, 1, (16, 32, 64, 128), (2, 2, 2), num_res_units=2), x),
    }
    times = {name: best_time(net.eval(), inp) for name, (net, inp) in nets.items()}
    monai = times["MONAI UNet(16,32,64,128; 2 res units)"]
    print("| network | s per 128x128x16 patch | MONAI time / this time |")
    print("|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {t:.3f} | {monai / t:.2f} |")


if __name__ == "__main__":
    main()
