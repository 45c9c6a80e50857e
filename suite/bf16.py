"""bfloat16 inference (``--runtime torch-bf16``): the network in bf16, the residual in fp32.

On a CPU with AVX-512 BF16 (the development machine) oneDNN runs the whole CT pipeline 2.3x
faster than fp32, with no calibration (``python benchmarks/bench_ct_speed.py --bf16``). bf16 keeps
8 bits of mantissa, so a residual network's ``x + net(x)`` is not done in bf16: at 1000 HU
(1.0 in model units) that would round the output to 8 HU steps. The wrapper runs the network
part in bf16 and adds the input back in fp32, so only the correction is rounded. The weights are
cast once rather than under ``torch.autocast``, which recasts them on every call (in a scratch
timing on the CT network, autocast took 0.59 s per batch against 0.40 s cast once).
"""

from __future__ import annotations

import copy
import sys

import torch
from torch import nn

from suite.models.unet import ResidualWrapper


class Bfloat16Net(nn.Module):
    """``x + net(x)`` (or ``net(x)``) with ``net`` in bfloat16 and float32 in and out."""

    def __init__(self, net: nn.Module, residual: bool) -> None:
        super().__init__()
        self.net, self.residual = net, residual
        if hasattr(net, "multiple"):  # the size multiple that callers pad inputs to
            self.multiple: int | tuple[int, ...] = net.multiple  # type: ignore[assignment]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, *spatial)`` float32 -> float32."""
        out = self.net(x.to(torch.bfloat16)).float()
        # the image channels: a conditioned network takes more channels than it returns
        return x[:, : out.shape[1]] + out if self.residual else out


def to_bfloat16(model: nn.Module) -> Bfloat16Net:
    """A bf16 copy of ``model`` whose input residual, if it has one, stays in float32.

    Residual U-Nets of :mod:`suite.models.unet` (``residual`` attribute) and
    :class:`~suite.models.unet.ResidualWrapper` (MONAI backend) are unwrapped; any other model
    runs wholly in bf16 with float32 at its ends.
    """
    net = copy.deepcopy(model).eval()
    if isinstance(net, ResidualWrapper):
        return Bfloat16Net(net.net.to(torch.bfloat16), residual=True)
    residual = bool(getattr(net, "residual", False))
    if residual:
        setattr(net, "residual", False)  # noqa: B010  (nn.Module's attribute typing)
    return Bfloat16Net(net.to(torch.bfloat16), residual=residual)


def cpu_has_bf16() -> bool:
    """Whether oneDNN has native bfloat16 kernels on this CPU (AVX-512 BF16, AMX, or Arm BF16).

    Without them PyTorch emulates bf16 and a bf16 network can run slower than fp32. An unknown
    answer (the probe is a private PyTorch op) counts as yes, so nothing warns by mistake.
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return True


def warn_if_emulated(device: str) -> None:
    """Say on stderr when ``--runtime torch-bf16`` will run emulated on a CPU without bf16."""
    on_gpu = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if not on_gpu and not cpu_has_bf16():
        print("warning: this CPU has no native bfloat16 instructions; --runtime torch-bf16 may "
              "run slower than --runtime torch here", file=sys.stderr)
