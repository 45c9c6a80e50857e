"""Why CT int8 misses its target: two probes behind the notes in ``docs/deploy.md``.

1. ``--equalize A [A ...]``: before quantization, rescale each convolution's output channels by
   ``s_c = r_c ** A / w_c ** (1 - A)`` (``r_c``: the channel's largest activation on the
   calibration patches, ``w_c``: its largest weight in the consuming convolutions; SmoothQuant's
   migration strength ``A``) and multiply the consumers' input weights by ``s_c``. LeakyReLU is
   positively homogeneous, so the fp32 network is unchanged; per-tensor activation ranges become
   even across channels. Prints the int8 PSNR change against PyTorch fp32 for each ``A``.
2. ``--profile``: one batch of four 128x128x16 patches, ONNX Runtime fp32 and int8 (profiled:
   each operator type's share of the kernel time) and PyTorch fp32; median seconds of 5 runs.

Same data and calibration as ``bench_deploy.py`` (held-out CT volume with 50 HU of simulated
low-dose noise; PSNR on HU clipped to [-160, 240], range 400, 3D).

Usage: ``flock /tmp/suite_train.lock python benchmarks/bench_ct_int8_probe.py --equalize 0.5 1
--profile``
"""

from __future__ import annotations

import argparse
import collections
import copy
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_deploy import ct_case
from torch import nn

from suite.export import OnnxModule, example_input, export_onnx, quantize_int8

Link = tuple[nn.Module, nn.Module | None, list[tuple[nn.Module, int]]]


def links(net: Any) -> list[Link]:
    """``(producer, activation after it or None, [(consumer, input-channel offset)])`` of a
    ``LeanUNet`` with three levels or more; a decoder's skip input sits after the upsampled one."""
    width = [net.stem[0].out_channels] + [d.out_channels for d in net.down]
    out: list[Link] = [(net.stem[0], net.stem[1], [(net.stem[2], 0)]),
                       (net.stem[2], net.stem[3], [(net.down[0], 0), (net.dec[0][0], width[0])])]
    for k, (down, enc) in enumerate(zip(net.down, net.enc, strict=True)):
        last = k == len(net.enc) - 1
        skip = (net.dec[k + 1][0], width[k + 1]) if not last else None
        nxt = [(net.up[k], 0)] if skip is None else [(net.down[k + 1], 0), skip]
        out += [(down, None, [(enc[0], 0)]), (enc[0], enc[1], [(enc[2], 0)]), (enc[2], enc[3], nxt)]
    for i in reversed(range(len(net.up))):
        nxt = [(net.up[i - 1], 0)] if i > 0 else [(net.head, 0)]
        out += [(net.up[i], None, [(net.dec[i][0], 0)]),
                (net.dec[i][0], net.dec[i][1], [(net.dec[i][2], 0)]),
                (net.dec[i][2], net.dec[i][3], nxt)]
    return out


def _out_dim(module: nn.Module) -> int:
    """Output-channel dimension of a (transposed) convolution's weight."""
    return 1 if isinstance(module, nn.modules.conv._ConvTransposeNd) else 0


@torch.no_grad()
def _activation_ranges(net: nn.Module, chain: list[Link], patches: list[np.ndarray]) -> list[Any]:
    """Largest absolute value per channel of every producer's (activated) output."""
    ranges: list[Any] = [None] * len(chain)
    hooks = []
    for j, (producer, act, _) in enumerate(chain):
        def record(_m: nn.Module, _i: Any, out: torch.Tensor, j: int = j) -> None:
            peak = out.abs().transpose(0, 1).reshape(out.shape[1], -1).amax(dim=1)
            ranges[j] = peak if ranges[j] is None else torch.maximum(ranges[j], peak)
        hooks.append((act or producer).register_forward_hook(record))
    for patch in patches:
        net(torch.from_numpy(patch)[None])
    for hook in hooks:
        hook.remove()
    return ranges


@torch.no_grad()
def equalize(net: Any, patches: list[np.ndarray], strength: float) -> None:
    """Rescale ``net`` in place (function-preserving) with migration strength ``strength``."""
    chain = links(net)
    ranges = _activation_ranges(net, chain, patches)
    for (producer, _, consumers), r in zip(chain, ranges, strict=True):
        n = producer.weight.shape[_out_dim(producer)]
        w = torch.zeros(n)
        for module, off in consumers:
            inputs_first = module.weight.transpose(0, 1) if _out_dim(module) == 0 else module.weight
            w = torch.maximum(w, inputs_first[off:off + n].abs().reshape(n, -1).amax(dim=1))
        s = r.clamp_min(1e-5) ** strength / w.clamp_min(1e-5) ** (1 - strength)
        s = s / s.mean()
        shape = [1] * producer.weight.ndim
        shape[_out_dim(producer)] = n
        producer.weight.div_(s.view(shape))
        if producer.bias is not None:
            producer.bias.div_(s)
        for module, off in consumers:
            dim = 1 - _out_dim(module)
            index: list[Any] = [slice(None)] * module.weight.ndim
            index[dim] = slice(off, off + n)
            view = [1] * module.weight.ndim
            view[dim] = n
            module.weight[tuple(index)] *= s.view(view)


def probe_equalize(case: Any, strengths: list[float]) -> None:
    """int8 PSNR change against PyTorch fp32, without and with equalization."""
    base = case.score(case.run(case.model))
    x = torch.from_numpy(case.calibration[0])[None]
    for strength in [None, *strengths]:
        model = copy.deepcopy(case.model)
        if strength is not None:
            equalize(getattr(model, "net", model), case.calibration, strength)
        with torch.no_grad():
            drift = float((model(x) - case.model(x)).abs().max())
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = export_onnx(model, example_input(case.card), Path(tmp) / "f.onnx", case.card)
            int8 = quantize_int8(fp32, Path(tmp) / "i.onnx", case.calibration)
            score = case.score(case.run(OnnxModule(int8, "cpu", threads=2)))
        label = "none" if strength is None else f"{strength:g}"
        print(f"equalize {label}: fp32 drift {drift:.1e}, int8 {score - base:+.3f} dB vs fp32")


def _median_seconds(call: Any, repeats: int = 5) -> float:
    """Median wall time of ``call()`` after one warm-up call."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def probe_profile(case: Any) -> None:
    """Seconds per batch and operator shares, ONNX Runtime fp32 and int8, and PyTorch fp32."""
    import onnxruntime as ort

    x = np.random.default_rng(0).standard_normal((4, 1, 128, 128, 16)).astype(np.float32) * 0.05
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(case.model, example_input(case.card), Path(tmp) / "f.onnx", case.card)
        int8 = quantize_int8(fp32, Path(tmp) / "i.onnx", case.calibration)
        for name, path in (("ONNX Runtime fp32", fp32), ("ONNX Runtime int8", int8)):
            options = ort.SessionOptions()
            options.intra_op_num_threads = 2
            options.enable_profiling = True
            options.profile_file_prefix = str(Path(tmp) / name.replace(" ", "_"))
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            seconds = _median_seconds(lambda s=session: s.run(None, {"input": x}))
            shares = collections.Counter[str]()
            for event in json.loads(Path(session.end_profiling()).read_text()):
                if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                    shares[event["args"]["op_name"]] += event["dur"]
            total = sum(shares.values())
            top = ", ".join(f"{op} {v / total:.0%}" for op, v in shares.most_common(4))
            print(f"{name}: {seconds:.2f} s per batch; {top}")
    with torch.no_grad():
        batch = torch.from_numpy(x).contiguous(memory_format=torch.channels_last_3d)
        seconds = _median_seconds(lambda: case.model(batch))
        print(f"PyTorch fp32: {seconds:.2f} s per batch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--equalize", type=float, nargs="*", default=[], metavar="A")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    case = ct_case()
    if case is None:
        raise SystemExit("no CT weights")
    if args.equalize:
        probe_equalize(case, args.equalize)
    if args.profile:
        probe_profile(case)


if __name__ == "__main__":
    main()
