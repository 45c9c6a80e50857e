"""Pixel-wise losses: L1 and Charbonnier."""

from __future__ import annotations

import torch
from torch import nn

from suite.losses._checks import check_pair, reduce


def l1_loss(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean absolute error.

    Args:
        pred: prediction ``(B, C, [D,] H, W)``, any value range.
        target: reference of the same shape and range.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    >>> float(l1_loss(torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)))
    1.0
    """
    check_pair(pred, target)
    return reduce((pred - target).abs(), reduction)


def charbonnier_loss(
    pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3, reduction: str = "mean"
) -> torch.Tensor:
    """Charbonnier (smooth L1) loss ``sqrt((pred - target)^2 + eps^2)``.

    Args:
        pred: prediction ``(B, C, [D,] H, W)``.
        target: reference of the same shape.
        eps: smoothing in the units of the data; the loss is ``eps`` where pred == target.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    References:
        Lai et al., "Deep Laplacian Pyramid Networks for Fast and Accurate Super-Resolution",
        CVPR 2017.
    """
    check_pair(pred, target)
    return reduce(torch.sqrt((pred - target) ** 2 + eps**2), reduction)


class L1Loss(nn.Module):
    """Module form of :func:`l1_loss`."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """See :func:`l1_loss`."""
        return l1_loss(pred, target, self.reduction)


class CharbonnierLoss(nn.Module):
    """Module form of :func:`charbonnier_loss`."""

    def __init__(self, eps: float = 1e-3, reduction: str = "mean") -> None:
        super().__init__()
        self.eps, self.reduction = eps, reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """See :func:`charbonnier_loss`."""
        return charbonnier_loss(pred, target, self.eps, self.reduction)
