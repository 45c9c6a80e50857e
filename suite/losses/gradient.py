"""Gradient (edge) loss: L1 between spatial derivatives, finite differences or Sobel, 2D/3D."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from suite.losses._checks import check_pair


def finite_differences(x: torch.Tensor) -> list[torch.Tensor]:
    """Forward differences along each spatial axis of ``(B, C, [D,] H, W)``."""
    return [torch.diff(x, dim=axis) for axis in range(2, x.ndim)]


def sobel(x: torch.Tensor) -> list[torch.Tensor]:
    """Separable Sobel derivatives (``[-1, 0, 1]`` along one axis, ``[1, 2, 1]`` along the
    others, replicate padding) of ``(B, C, [D,] H, W)``, one map per spatial axis."""
    nd = x.ndim - 2
    b, c = x.shape[:2]
    y = F.pad(x.reshape(b * c, 1, *x.shape[2:]), [1] * (2 * nd), mode="replicate")
    conv = F.conv2d if nd == 2 else F.conv3d
    deriv = torch.tensor([-1.0, 0.0, 1.0], dtype=x.dtype, device=x.device)
    smooth = torch.tensor([1.0, 2.0, 1.0], dtype=x.dtype, device=x.device) / 4
    out = []
    for axis in range(nd):
        g = y
        for other in range(nd):
            shape = [1, 1] + [1] * nd
            shape[2 + other] = 3
            g = conv(g, (deriv if other == axis else smooth).view(shape))
        out.append(g.reshape(b, c, *g.shape[2:]))
    return out


def gradient_loss(pred: torch.Tensor, target: torch.Tensor, mode: str = "diff") -> torch.Tensor:
    """Mean L1 distance between the spatial gradients of ``pred`` and ``target``.

    Args:
        pred: ``(B, C, H, W)`` or ``(B, C, D, H, W)``.
        target: same shape.
        mode: ``"diff"`` (forward differences) or ``"sobel"``.

    References:
        Mathieu, Couprie, LeCun, "Deep multi-scale video prediction beyond mean square error"
        (gradient difference loss), ICLR 2016.
    """
    check_pair(pred, target)
    if mode not in ("diff", "sobel"):
        raise ValueError(f"mode must be 'diff' or 'sobel', got {mode!r}")
    op = finite_differences if mode == "diff" else sobel
    terms = [(gp - gt).abs().mean() for gp, gt in zip(op(pred), op(target), strict=True)]
    return torch.stack(terms).mean()


class GradientLoss(nn.Module):
    """Module form of :func:`gradient_loss`."""

    def __init__(self, mode: str = "diff") -> None:
        super().__init__()
        self.mode = mode

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """See :func:`gradient_loss`."""
        return gradient_loss(pred, target, self.mode)
