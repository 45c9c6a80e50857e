"""Tiled inference: this engine against MONAI's ``sliding_window_inference``, same run.

Same model (a small 3D conv net), same volume, same patch size, overlap, batch size and
Gaussian blending (sigma = patch / 8); repeats are interleaved and the median is reported.

Usage: ``python benchmarks/bench_tiling.py [--repeats 3] [--size 128 128 64]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from monai.inferers import sliding_window_inference
from torch import Tensor, nn

from suite.engine.tiling import TileConfig, tiled_inference


def small_net() -> nn.Module:
    """Three zero-padded 3x3x3 convolutions, 16 features, the kind of net being tiled."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv3d(1, 16, 3, padding=1), nn.ReLU(),
                         nn.Conv3d(16, 16, 3, padding=1), nn.ReLU(),
                         nn.Conv3d(16, 1, 3, padding=1)).eval()


def timed(fn: Callable[[], Tensor]) -> tuple[float, Tensor]:
    """Wall time of one call and its result."""
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    """Run both engines ``--repeats`` times, interleaved, and print times, ratio, difference."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, nargs=3, default=[128, 128, 64])
    parser.add_argument("--patch", type=int, nargs=3, default=[64, 64, 32])
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    net, volume = small_net(), torch.randn(1, 1, *args.size)
    overlap = 0.25
    config = TileConfig(tuple(args.patch), tuple(int(p * overlap) for p in args.patch),
                        batch_size=args.batch, blend="gaussian")

    def ours() -> Tensor:
        return tiled_inference(volume, net, config)

    def monai() -> Tensor:
        with torch.inference_mode():
            return sliding_window_inference(volume, tuple(args.patch), args.batch, net,  # type: ignore[return-value]
                                            overlap=overlap, mode="gaussian", sigma_scale=0.125)

    times: dict[str, list[float]] = {"suite": [], "monai": []}
    outs: dict[str, Tensor] = {}
    for _ in range(args.repeats):
        for name, fn in (("suite", ours), ("monai", monai)):
            seconds, outs[name] = timed(fn)
            times[name].append(seconds)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"volume {tuple(volume.shape)}, patch {tuple(args.patch)}, overlap {overlap}, "
          f"batch {args.batch}, gaussian, {torch.get_num_threads()} threads, "
          f"{args.repeats} interleaved repeats (median)")
    for name in ("suite", "monai"):
        print(f"{name:6s} {med[name]:.3f} s  ({', '.join(f'{t:.3f}' for t in times[name])})")
    print(f"ratio suite/monai: {med['suite'] / med['monai']:.3f}")
    print(f"max |suite - monai|: {float((outs['suite'] - outs['monai']).abs().max()):.3e}")
    with torch.inference_mode():
        whole = net(volume)
    for name in ("suite", "monai"):
        print(f"max |{name} - whole-volume model| (seams, no halo): "
              f"{float((outs[name] - whole).abs().max()):.3e}")
    pointwise = nn.Conv3d(1, 1, 1).eval()
    with torch.inference_mode():
        a = tiled_inference(volume, pointwise, config)
        b = sliding_window_inference(volume, tuple(args.patch), args.batch, pointwise,
                                     overlap=overlap, mode="gaussian", sigma_scale=0.125)
    print(f"pointwise model (no seam error), max |suite - monai|: "
          f"{float((a - b).abs().max()):.3e}")  # type: ignore[operator]


if __name__ == "__main__":
    main()
