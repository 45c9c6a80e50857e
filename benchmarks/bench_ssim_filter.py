"""SSIM's separable Gaussian filter: banded matrix products (the suite) vs one-channel conv.

The SSIM loss and metrics filter five maps (x, y, x^2, y^2, xy) with an 11-tap Gaussian along
every axis. This times forward plus backward of the suite's ``gaussian_filter_valid`` (one matrix
product per axis) against the same filter as one-channel ``conv2d``/``conv3d`` calls, back to back
in one process, 2 threads, best of 5, on the shapes the suite meets: a CT training batch as 2D
slices (16 patches of 64x64x16 -> 256 slices, 5 maps), the same batch in 3D, and a 1411 px RGB
fundus photograph (15 maps). It also prints the largest difference of the two in float64.

Usage:
    python benchmarks/bench_ssim_filter.py
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from suite.losses.ssim import gaussian_filter_valid, gaussian_kernel1d

SHAPES = {
    "CT batch as 2D slices (256 x 5 x 64 x 64)": (256, 5, 64, 64),
    "CT batch in 3D (16 x 5 x 64 x 64 x 16)": (16, 5, 64, 64, 16),
    "fundus photograph (1 x 15 x 1411 x 1411)": (1, 15, 1411, 1411),
}


def conv_filter(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """The same valid-mode separable filter as one-channel convolutions (the anchor)."""
    b, c, *size = x.shape
    nd = len(size)
    y = x.reshape(b * c, 1, *size)
    conv = F.conv2d if nd == 2 else F.conv3d
    for axis in range(nd):
        shape = [1, 1] + [1] * nd
        shape[2 + axis] = kernel.numel()
        y = conv(y, kernel.to(y).view(shape))
    return y.reshape(b, c, *y.shape[2:])


def best_time(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], shape: tuple[int, ...],
              repeats: int = 5) -> float:
    kernel = gaussian_kernel1d()
    x = torch.rand(*shape, requires_grad=True)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        fn(x, kernel).square().mean().backward()
        times.append(time.perf_counter() - start)
    return min(times[1:])


def main() -> None:
    torch.set_num_threads(2)
    print("| shape | conv s | suite (matmul) s | conv / suite | max abs diff (float64) |")
    print("|---|---|---|---|---|")
    for label, shape in SHAPES.items():
        x = torch.rand(*shape, dtype=torch.float64)
        k = gaussian_kernel1d(dtype=torch.float64)
        diff = float((conv_filter(x, k) - gaussian_filter_valid(x, k)).abs().max())
        conv, suite = best_time(conv_filter, shape), best_time(gaussian_filter_valid, shape)
        print(f"| {label} | {conv:.3f} | {suite:.3f} | {conv / suite:.1f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
