"""CT enhance throughput on CPU: the suite's model and tiler vs MONAI's UNet + sliding window.

Both run on the same 512x512x64 HU volume, the same patch size, overlap and batch size, in one
process, interleaved. The patch is the card's, shrunk to the smallest multiple of 8 that needs
as many patches (``suite.engine.tiling.balanced_patch``): 120x120x16 from 128x128x16 here.
Reports voxels per second, the ratio, each model's achieved GFLOP/s (FLOPs counted by
``torch.utils.flop_counter``) and a float32 matrix-multiply GFLOP/s measured in the same run as
the machine's anchor.

``--int8`` adds the same network on ``--runtime torch-int8`` (PyTorch x86 int8; GFLOP/s then
counts the fp32 network's operations).

``--bf16`` adds the same network on ``--runtime torch-bf16`` and, as a fair anchor, MONAI's
UNet cast to bfloat16 the same way (GFLOP/s count the fp32 operations).

``--weights W`` times another CT card (e.g. a faster variant) in place of the default weights.

Usage:
    python benchmarks/bench_ct_speed.py [--depth 64] [--repeats 2] [--int8] [--bf16]
        [--compare-fit] [--weights W]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from monai.networks.nets import UNet
from torch.utils.flop_counter import FlopCounterMode

from domains.ct_denoise.pipeline import load_ct_model
from domains.ct_denoise.volumes import denoise
from suite.bf16 import to_bfloat16
from suite.engine.tiling import TileConfig, plan_tiles

FIT = 8  # patch sizes a multiple of 8: the suite's networks and MONAI's UNet all accept them


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best-of-N float32 matrix multiply rate through torch, the anchor for achieved GFLOP/s."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def patch_flops(model: torch.nn.Module, patch: list[int], channels_last: bool) -> int:
    """FLOPs of one forward pass on one patch."""
    x = torch.zeros(1, 1, *patch)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x)
    return int(counter.get_total_flops())


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--depth", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--int8", action="store_true",
                        help="also time --runtime torch-int8 (quantized once into the cache)")
    parser.add_argument("--bf16", action="store_true",
                        help="also time --runtime torch-bf16, and MONAI's UNet in bf16")
    parser.add_argument("--compare-fit", action="store_true",
                        help="also time the suite on the card's patch as given (no fitting)")
    parser.add_argument("--weights", default=None,
                        help="a CT model card to time instead of the default weights")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    volume = (rng.normal(40, 60, (512, 512, args.depth))).astype(np.float32)
    ours, tiling = load_ct_model(args.weights, device="cpu")
    monai_net = UNet(3, 1, 1, channels=(16, 32, 64, 128), strides=(2, 2, 2),
                     num_res_units=2).eval()
    x = torch.from_numpy(volume / 1000.0)[None, None]
    # The suite shrinks its patches to the fewest-voxel grid with as many patches
    # (``balanced_patch``); MONAI gets that same patch size, fitted to 8, which its UNet
    # (3 strides) needs, and the suite runs it too.
    patch = list(plan_tiles(volume.shape, TileConfig(tiling.patch, tiling.overlap, fit=FIT)).patch)
    overlap = tiling.overlap[0] / patch[0]

    def run_monai() -> None:
        with torch.inference_mode():
            sliding_window_inference(x, tuple(patch), tiling.batch_size, monai_net,
                                     overlap=overlap, mode="gaussian")

    def run_ours() -> None:
        denoise(ours, volume, tiling, fit=FIT)

    runs: dict[str, Callable[[], object]] = {"suite": run_ours, "monai": run_monai}
    if args.compare_fit:  # fitting to a multiple of the largest patch side never shrinks it
        runs["suite card patch"] = lambda: denoise(ours, volume, tiling, fit=max(tiling.patch))
    if args.int8:
        int8, _ = load_ct_model(args.weights, runtime="torch-int8", device="cpu")
        runs["suite int8"] = lambda: denoise(int8, volume, tiling, fit=FIT)
    if args.bf16:
        bf16, _ = load_ct_model(args.weights, runtime="torch-bf16", device="cpu")
        monai_bf16 = to_bfloat16(monai_net)
        runs["suite bf16"] = lambda: denoise(bf16, volume, tiling, fit=FIT)

        def run_monai_bf16() -> None:
            with torch.inference_mode():
                sliding_window_inference(x, tuple(patch), tiling.batch_size, monai_bf16,
                                         overlap=overlap, mode="gaussian")

        runs["monai bf16"] = run_monai_bf16
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            times[name].append(timed(run))
    report(volume.size, times, ours, monai_net, patch, tiling.overlap, matmul_gflops())


def report(voxels: int, times: dict[str, list[float]], ours: torch.nn.Module,
           monai_net: torch.nn.Module, patch: list[int], overlap: list[int],
           anchor: float) -> None:
    # Patches actually run (overlap included), counted from the suite's own tiling plan.
    n_patches_scale = len(plan_tiles((512, 512, voxels // (512 * 512)),
                                     TileConfig(patch, overlap)).starts)
    flops = {"suite": patch_flops(ours, patch, True), "monai": patch_flops(monai_net, patch, False)}
    # the same networks' operations, in int8 or bf16
    flops |= {"suite int8": flops["suite"], "suite bf16": flops["suite"],
              "monai bf16": flops["monai"], "suite card patch": float("nan")}
    print(f"volume 512x512x{voxels // (512 * 512)}, patch {patch}, threads "
          f"{torch.get_num_threads()}, matmul anchor {anchor:.1f} GFLOP/s")
    print("| engine | best s | voxels/s | GFLOP/s | fraction of matmul |")
    print("|---|---|---|---|---|")
    for name, ts in times.items():
        best = min(ts)
        gflops = flops[name] * n_patches_scale / best / 1e9
        rate = voxels / best
        print(f"| {name} | {best:.2f} | {rate:.3g} | {gflops:.1f} | {gflops / anchor:.2f} |")
    for name in (n for n in times if not n.startswith("monai")):
        print(f"throughput ratio {name}/monai: {min(times['monai']) / min(times[name]):.2f}")
    if "suite card patch" in times:
        gain = min(times["suite card patch"]) / min(times["suite"])
        print(f"fitted patches {patch} vs the card's as given: {gain:.2f}x")
    if "monai bf16" in times:
        ratio = min(times["monai bf16"]) / min(times["suite bf16"])
        print(f"throughput ratio suite bf16/monai bf16: {ratio:.2f}")


if __name__ == "__main__":
    main()
