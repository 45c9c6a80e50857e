"""Where a CT candidate network's CPU forward time goes: convolutions against everything else.

Profiles one candidate of ``bench_ct_variants.py`` (by its name there) on one 128x128x16 patch
with 2 threads, in bfloat16 as ``--runtime torch-bf16`` runs it (``--fp32`` for float32), and
prints the share of the self time of each ATen operator, convolutions first. It says whether
anything besides the convolutions is worth making faster.

Usage:
    python benchmarks/profile_ct_fold.py ["space-to-depth 2x2x2, 16-32-64, gates on 2 levels"]
"""

from __future__ import annotations

import argparse
from collections import Counter

import torch
from bench_ct_variants import CANDIDATES, LEAN
from torch.profiler import ProfilerActivity, profile

from suite.bf16 import to_bfloat16
from suite.models import create_model

CONVOLUTIONS = ("aten::mkldnn_convolution", "aten::_convolution", "aten::convolution",
                "aten::conv3d", "aten::conv_transpose3d")


def self_times(net: torch.nn.Module, x: torch.Tensor, calls: int) -> Counter[str]:
    """Self CPU time (microseconds) per ATen operator over ``calls`` forwards."""
    with torch.inference_mode():
        for _ in range(3):
            net(x)  # oneDNN picks its kernels on the first calls
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(calls):
                net(x)
    return Counter({e.key: e.self_cpu_time_total for e in prof.key_averages()})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("name", nargs="?", default="space-to-depth 2x2x2, 16-32-64, gates on 2 levels",
                   choices=sorted(CANDIDATES))
    p.add_argument("--fp32", action="store_true", help="profile float32 instead of bfloat16")
    p.add_argument("--calls", type=int, default=10)
    a = p.parse_args()
    torch.set_num_threads(2)
    net = create_model("unet", **CANDIDATES[a.name], **LEAN).eval()
    net = net.to(memory_format=torch.channels_last_3d)
    if not a.fp32:
        net = to_bfloat16(net)
    x = torch.randn(1, 1, 128, 128, 16).contiguous(memory_format=torch.channels_last_3d)
    times = self_times(net, x, a.calls)
    total = sum(times.values())
    conv = sum(times[k] for k in CONVOLUTIONS)
    print(f"{a.name}, {'fp32' if a.fp32 else 'bf16'}: {total / a.calls / 1e3:.1f} ms per forward")
    print("| operator | share of self time |")
    print("|---|---|")
    print(f"| convolutions (all) | {conv / total:.1%} |")
    for key, t in times.most_common():
        if key not in CONVOLUTIONS and t / total >= 0.005:
            print(f"| {key} | {t / total:.1%} |")


if __name__ == "__main__":
    main()
