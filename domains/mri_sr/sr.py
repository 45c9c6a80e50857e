"""The 2.5D super-resolution operator: cubic B-spline onto the thin grid, then a 2D residual
network applied in the two orthogonal planes that contain the slice axis, averaged.

Why 2.5D and not 3D: the network must also be trainable on the input scan alone (``--adapt``,
SMORE), where the only high-resolution signal is the 2D in-plane slices; a 2D model trained to
restore one image axis applies unchanged to through-plane planes. 2D convolutions are also about
twice as fast per voxel on this CPU, which buys a deeper network within the same budget.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from domains.mri_sr.geometry import cubic_upsample
from suite.engine.device import module_device
from suite.errors import InputError, ShapeError, UsageError

NORM_PERCENTILE = 99.5


def intensity_scale(data: np.ndarray) -> float:
    """Normalization constant: the 99.5th percentile of the non-zero voxels (1.0 if none)."""
    nz = np.abs(data[data != 0])
    value = float(np.percentile(nz, NORM_PERCENTILE)) if nz.size else 0.0
    return value if value > 0 else 1.0


def run_planes(model: nn.Module, planes: np.ndarray, batch: int = 8) -> np.ndarray:
    """Apply a 2D model to a stack of planes, padding each to the network's size multiple.

    Args:
        model: ``(B, 1, H, W) -> (B, 1, H, W)``, W the axis being restored.
        planes: ``(N, H, W)`` float32 normalized intensities.
        batch: planes per call.

    Returns:
        ``(N, H, W)`` float32.
    """
    multiple = int(getattr(model, "multiple", 1))
    n, h, w = planes.shape
    ph, pw = (-h) % multiple, (-w) % multiple
    out = np.empty_like(planes)
    with torch.no_grad():
        for start in range(0, n, batch):
            x = torch.from_numpy(np.ascontiguousarray(planes[start : start + batch]))[:, None]
            x = x.to(module_device(model))
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
            y = model(x.contiguous(memory_format=torch.channels_last))
            out[start : start + batch] = y[:, 0, :h, :w].float().cpu().numpy()
    return out


def refine(model: nn.Module, up: np.ndarray, batch: int = 8) -> np.ndarray:
    """Average the model over (X, Z) planes and (Y, Z) planes of ``up`` ``(X, Y, Z)``."""
    model = model.eval().to(memory_format=torch.channels_last)
    a = run_planes(model, np.ascontiguousarray(up.transpose(1, 0, 2)), batch).transpose(1, 0, 2)
    b = run_planes(model, np.ascontiguousarray(up), batch)
    return 0.5 * (a + b)


def super_resolve(
    model: nn.Module | None, data: np.ndarray, axis: int, scale: float, batch: int = 8
) -> np.ndarray:
    """Through-plane SR of ``data`` along ``axis`` by ``scale`` (model ``None``: cubic only).

    Args:
        model: 2D residual network trained on normalized intensities, or ``None``.
        data: ``(I, J, K)`` float32 in scanner units.
        axis: slice axis.
        scale: through-plane factor (> 1).
        batch: planes per model call.

    Returns:
        float32 array in scanner units with ``round(n * scale)`` slices along ``axis``.

    Raises:
        ShapeError: ``data`` is not 3D; UsageError: ``axis`` or ``scale`` out of range;
        InputError: NaN or infinite voxels (a script's arrays skip the readers' checks).
    """
    _check_arguments(data, axis, scale)
    up = cubic_upsample(data, axis, scale)
    if model is None:
        return up
    s = intensity_scale(data)
    moved = np.moveaxis(up, axis, -1) / s
    out = refine(model, moved.astype(np.float32), batch) * s
    return np.moveaxis(out, -1, axis).astype(np.float32)


def _check_arguments(data: np.ndarray, axis: int, scale: float) -> None:
    if np.ndim(data) != 3:
        raise ShapeError("data", "(I, J, K)", tuple(np.shape(data)))
    if axis not in (0, 1, 2):
        raise UsageError(f"axis must be 0, 1 or 2, got {axis!r}")
    if not scale > 1:
        raise UsageError(f"scale must be above 1 (a through-plane factor), got {scale!r}")
    bad = int(np.count_nonzero(~np.isfinite(data)))
    if bad:
        raise InputError(None, f"{bad} of {np.size(data)} voxels are NaN or Inf")
