"""Shape checks and reductions shared by the loss functions."""

from __future__ import annotations

import torch

from suite.errors import ShapeError


def check_pair(pred: torch.Tensor, target: torch.Tensor, spatial_dims: int | None = None) -> None:
    """Raise ShapeError unless ``pred`` and ``target`` match and have ``(B, C, *spatial)`` form.

    Args:
        pred: prediction ``(B, C, [D,] H, W)``.
        target: reference of the same shape.
        spatial_dims: 2 or 3 to require that many spatial axes; ``None`` accepts either.
    """
    dims = (2, 3) if spatial_dims is None else (spatial_dims,)
    if pred.ndim - 2 not in dims:
        expected = {2: "(B, C, H, W)", 3: "(B, C, D, H, W)"}.get(spatial_dims or 0)
        raise ShapeError("pred", expected or "(B, C, [D,] H, W)", pred.shape)
    if pred.shape != target.shape:
        raise ShapeError("target", f"same as pred {tuple(pred.shape)}", target.shape)


def reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce an element-wise loss with ``"mean"``, ``"sum"`` or ``"none"``."""
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
