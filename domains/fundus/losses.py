"""Vessel-aware losses on FOV-masked images: vessel-weighted L1 and a soft clDice term.

Tensors are ``(B, C, H, W)`` RGB in ``[0, 1]``; ``fov`` and ``vessel`` weight maps are
``(B, 1, H, W)`` in ``[0, 1]``. Pixels outside the FOV never contribute.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.layers import separable_filtering
from torch import Tensor

from suite.errors import ShapeError

EPS = 1e-6
SQRT_EPS = 1e-12  # keeps sqrt differentiable at 0 without lifting flat regions
CONTRAST_SIGMA = 6.0  # surround of a vessel: a few widths of the widest (about 10 px) vessels
RIDGE_SCALE = 0.015  # ridge strength mapped to 0.76: about the 95th percentile in a retina


def masked_l1(pred: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """``sum(w |pred - target|) / (C sum(w))``: L1 averaged under a ``(B, 1, H, W)`` weight."""
    if pred.shape != target.shape or weight.shape[1] != 1:
        raise ShapeError("pred/target/weight", "(B, C, H, W), (B, C, H, W), (B, 1, H, W)",
                         tuple(pred.shape))
    return ((pred - target).abs() * weight).sum() / (pred.shape[1] * weight.sum() + EPS)


def vessel_weighted_l1(pred: Tensor, target: Tensor, fov: Tensor, vessel: Tensor,
                       gain: float) -> Tensor:
    """L1 inside the FOV with vessel pixels weighted ``1 + gain * vessel``.

    Args:
        pred: ``(B, 3, H, W)``.
        target: ``(B, 3, H, W)``.
        fov: ``(B, 1, H, W)`` in ``{0, 1}``.
        vessel: ``(B, 1, H, W)`` soft vessel map of the target (or a label mask) in ``[0, 1]``.
        gain: extra weight of vessel pixels.
    """
    return masked_l1(pred, target, fov * (1.0 + gain * vessel))


def _gauss_kernel(sigma: float, device: torch.device) -> Tensor:
    radius = max(1, int(3 * sigma + 0.5))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur (3-sigma kernel) of every channel of ``(B, C, H, W)``, borders
    replicated, by MONAI's ``separable_filtering``."""
    k = _gauss_kernel(sigma, x.device)
    return separable_filtering(x, [k, k], mode="replicate")


def soft_vesselness(rgb: Tensor, sigmas: tuple[float, ...] = (1.0, 2.0)) -> Tensor:
    """Differentiable dark-ridge map of the green channel: the largest Hessian eigenvalue.

    Scale-normalized (``sigma^2``) Gaussian second derivatives, maximum over scales, squashed
    by ``tanh`` into ``[0, 1)``.

    Args:
        rgb: ``(B, 3, H, W)`` in ``[0, 1]``.
        sigmas: scales in pixels.

    Returns:
        ``(B, 1, H, W)``.
    """
    g = rgb[:, 1:2]
    best = torch.zeros_like(g)
    for s in sigmas:
        p = F.pad(gaussian_blur(g, s), (1, 1, 1, 1), mode="replicate")
        dxx = p[..., 1:-1, 2:] - 2 * p[..., 1:-1, 1:-1] + p[..., 1:-1, :-2]
        dyy = p[..., 2:, 1:-1] - 2 * p[..., 1:-1, 1:-1] + p[..., :-2, 1:-1]
        dxy = (p[..., 2:, 2:] - p[..., 2:, :-2] - p[..., :-2, 2:] + p[..., :-2, :-2]) / 4
        lam = 0.5 * (dxx + dyy + torch.sqrt((dxx - dyy) ** 2 + 4 * dxy**2 + SQRT_EPS))
        best = torch.maximum(best, s**2 * lam.clamp_min(0))
    return torch.tanh(best / RIDGE_SCALE)


def local_contrast(x: Tensor, fov: Tensor, sigma: float) -> Tensor:
    """``x`` minus its Gaussian-weighted mean over the FOV pixels around it (sigma in pixels).

    A vessel's value here is its darkness against its surround, whatever the global level.
    """
    return x - gaussian_blur(x * fov, sigma) / (gaussian_blur(fov, sigma) + EPS)


def soft_skeleton(mask: Tensor, iterations: int = 5) -> Tensor:
    """Soft morphological skeleton by iterated min/max pooling (Shit et al. 2021, Alg. 1)."""

    def erode(x: Tensor) -> Tensor:
        return torch.minimum(-F.max_pool2d(-x, (3, 1), 1, (1, 0)),
                             -F.max_pool2d(-x, (1, 3), 1, (0, 1)))

    def open_(x: Tensor) -> Tensor:
        return F.max_pool2d(erode(x), 3, 1, 1)

    skel = F.relu(mask - open_(mask))
    for _ in range(iterations):
        mask = erode(mask)
        delta = F.relu(mask - open_(mask))
        skel = skel + F.relu(delta - skel * delta)
    return skel


def soft_cldice(pred_map: Tensor, target_map: Tensor, fov: Tensor,
                iterations: int = 5) -> Tensor:
    """``1 - clDice`` of two soft vessel maps inside the FOV.

    Args:
        pred_map: ``(B, 1, H, W)`` in ``[0, 1]``.
        target_map: ``(B, 1, H, W)`` in ``[0, 1]``.
        fov: ``(B, 1, H, W)``.
        iterations: soft-skeleton iterations (about the largest vessel radius in pixels).

    References:
        Shit et al., "clDice - a Novel Topology-Preserving Loss Function for Tubular
        Structure Segmentation", CVPR 2021.
    """
    p, t = pred_map * fov, target_map * fov
    sp, st = soft_skeleton(p, iterations), soft_skeleton(t, iterations)
    tprec = ((sp * t).sum() + EPS) / (sp.sum() + EPS)
    tsens = ((st * p).sum() + EPS) / (st.sum() + EPS)
    return 1.0 - 2.0 * tprec * tsens / (tprec + tsens)


def fundus_loss(pred: Tensor, target: Tensor, vessel_gain: float, cldice: float,
                ridge: float = 0.0, contrast: float = 0.0) -> Tensor:
    """The training loss on packed targets ``(B, 5, H, W)``: RGB, FOV, vessel map.

    ``vessel_gain = cldice = 0`` gives plain L1 inside the FOV (the ablation). ``ridge``
    weighs an L1 between the soft vessel maps of prediction and target inside the FOV;
    ``contrast`` an L1 between their local contrasts, weighted by the vessel map.
    """
    rgb, fov, vessel = target[:, :3], target[:, 3:4], target[:, 4:5]
    loss = vessel_weighted_l1(pred, rgb, fov, vessel, vessel_gain)
    if contrast:
        # local_contrast is linear, so the contrast of the error is the error of the contrasts
        error = local_contrast(pred - rgb, fov, CONTRAST_SIGMA)
        loss = loss + contrast * masked_l1(error, torch.zeros_like(error), fov * vessel)
    if cldice or ridge:
        with torch.no_grad():
            target_map = soft_vesselness(rgb)
        pred_map = soft_vesselness(pred)
        if cldice:
            loss = loss + cldice * soft_cldice(pred_map, target_map, fov)
        if ridge:
            loss = loss + ridge * masked_l1(pred_map, target_map, fov)
    return loss
