"""Multi-scale supervision: one loss applied at several resolutions with weights."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from suite.errors import ShapeError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _downsample(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Area (average) downsampling of ``(B, C, [D,] H, W)`` to ``size``."""
    if tuple(x.shape[2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="area")


def multiscale_loss(
    loss_fn: LossFn,
    pred: torch.Tensor | Sequence[torch.Tensor],
    target: torch.Tensor,
    weights: Sequence[float] = (1.0, 0.5, 0.25),
) -> torch.Tensor:
    """Weighted sum of ``loss_fn`` over scales.

    Two forms:

    - ``pred`` a tensor: pred and target are both average-pooled by ``2**i`` for scale ``i``.
    - ``pred`` a sequence (deep supervision, full resolution first): the target is
      area-resampled to each prediction's size.

    Args:
        loss_fn: ``(pred, target) -> scalar``, e.g. :func:`~suite.losses.l1_loss`.
        pred: ``(B, C, [D,] H, W)`` or a list of such at decreasing resolution.
        target: ``(B, C, [D,] H, W)`` at full resolution.
        weights: one weight per scale.

    References:
        Lee et al., "Deeply-Supervised Nets", AISTATS 2015.
    """
    if isinstance(pred, torch.Tensor):
        preds = [
            _downsample(pred, [s // 2**i for s in pred.shape[2:]]) for i in range(len(weights))
        ]
    else:
        preds = list(pred)
    if len(preds) != len(weights):
        raise ShapeError("pred", f"a list of {len(weights)} scales", (len(preds),))
    terms = [
        w * loss_fn(p, _downsample(target, p.shape[2:]))
        for p, w in zip(preds, weights, strict=True)
    ]
    return torch.stack(terms).sum()


class MultiScaleLoss(nn.Module):
    """Module form of :func:`multiscale_loss` wrapping a loss module or function."""

    def __init__(self, loss: LossFn, weights: Sequence[float] = (1.0, 0.5, 0.25)) -> None:
        super().__init__()
        self.loss = loss
        self.weights = tuple(weights)

    def forward(
        self, pred: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor
    ) -> torch.Tensor:
        """See :func:`multiscale_loss`."""
        return multiscale_loss(self.loss, pred, target, self.weights)
