"""Frequency-domain losses: FFT amplitude/phase loss and the Focal Frequency Loss."""

from __future__ import annotations

import torch
from torch import nn

from suite.losses._checks import check_pair


def _spectra(
    pred: torch.Tensor, target: torch.Tensor, spatial_dims: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthonormal FFTs over the last ``spatial_dims`` axes of both tensors."""
    check_pair(pred, target, spatial_dims)
    dims = tuple(range(-spatial_dims, 0))
    return torch.fft.fftn(pred, dim=dims, norm="ortho"), torch.fft.fftn(
        target, dim=dims, norm="ortho"
    )


def _focal_weight(diff: torch.Tensor, alpha: float, spatial_dims: int) -> torch.Tensor:
    """Spectrum weight ``|dF|^alpha`` scaled to ``[0, 1]`` per (B, C) map, no gradient."""
    w = diff.detach() ** alpha
    peak = w.flatten(2).amax(dim=-1).view(*w.shape[:2], *([1] * spatial_dims))
    return torch.nan_to_num(w / peak.clamp_min(1e-12), nan=0.0)


def frequency_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    spatial_dims: int = 2,
    amplitude_weight: float = 1.0,
    phase_weight: float = 1.0,
    focal_alpha: float = 0.0,
) -> torch.Tensor:
    """L1 distance of FFT amplitudes plus a phase term, optionally focal-weighted.

    The phase term is ``1 - cos(phase_pred - phase_target)`` (in ``[0, 2]``), computed from
    ``Re(P conj(T)) / (|P| |T|)`` so it is differentiable at zero amplitude (where it counts as 0).

    Args:
        pred: ``(B, C, H, W)`` (``spatial_dims=2``) or ``(B, C, D, H, W)`` (3).
        target: same shape.
        spatial_dims: FFT over the last 2 or 3 axes.
        amplitude_weight: weight of the amplitude term.
        phase_weight: weight of the phase term.
        focal_alpha: if > 0, weight each frequency by ``|P - T|^alpha`` normalized per map
            (hard frequencies count more), as in the Focal Frequency Loss.

    References:
        Jiang, Dai, Wu, Loy, "Focal Frequency Loss for Image Reconstruction and Synthesis",
        ICCV 2021.
    """
    p, t = _spectra(pred, target, spatial_dims)
    amp = (p.abs() - t.abs()).abs()
    norm = p.abs() * t.abs()
    cos = torch.where(norm > 1e-12, (p * t.conj()).real / norm.clamp_min(1e-12), 1.0)
    term = amplitude_weight * amp + phase_weight * (1.0 - cos)
    if focal_alpha > 0:
        term = term * _focal_weight((p - t).abs(), focal_alpha, spatial_dims)
    return term.mean()


def focal_frequency_loss(
    pred: torch.Tensor, target: torch.Tensor, spatial_dims: int = 2, alpha: float = 1.0
) -> torch.Tensor:
    """Focal Frequency Loss: ``mean(w * |P - T|^2)`` with ``w = |P - T|^alpha / max``.

    Args:
        pred: ``(B, C, [D,] H, W)``.
        target: same shape.
        spatial_dims: FFT over the last 2 or 3 axes.
        alpha: focusing exponent (1 in the paper).

    References:
        Jiang, Dai, Wu, Loy, "Focal Frequency Loss for Image Reconstruction and Synthesis",
        ICCV 2021.
    """
    p, t = _spectra(pred, target, spatial_dims)
    dist = (p - t).abs()
    return (_focal_weight(dist, alpha, spatial_dims) * dist**2).mean()


class FrequencyLoss(nn.Module):
    """Module form of :func:`frequency_loss`."""

    def __init__(
        self,
        spatial_dims: int = 2,
        amplitude_weight: float = 1.0,
        phase_weight: float = 1.0,
        focal_alpha: float = 0.0,
    ) -> None:
        super().__init__()
        self.spatial_dims, self.focal_alpha = spatial_dims, focal_alpha
        self.amplitude_weight, self.phase_weight = amplitude_weight, phase_weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """See :func:`frequency_loss`."""
        return frequency_loss(
            pred,
            target,
            self.spatial_dims,
            self.amplitude_weight,
            self.phase_weight,
            self.focal_alpha,
        )


class FocalFrequencyLoss(nn.Module):
    """Module form of :func:`focal_frequency_loss`."""

    def __init__(self, spatial_dims: int = 2, alpha: float = 1.0) -> None:
        super().__init__()
        self.spatial_dims, self.alpha = spatial_dims, alpha

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """See :func:`focal_frequency_loss`."""
        return focal_frequency_loss(pred, target, self.spatial_dims, self.alpha)
