"""Adversarial losses on raw discriminator logits: least-squares (LSGAN) and hinge."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_KINDS = ("lsgan", "hinge")


def _check_kind(kind: str) -> None:
    """Raise ValueError for an unknown GAN loss kind."""
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")


def generator_loss(fake_logits: torch.Tensor, kind: str = "lsgan") -> torch.Tensor:
    """Generator side: push the discriminator's output on fakes towards "real".

    Args:
        fake_logits: discriminator output on generated images, any shape (e.g. PatchGAN
            ``(B, 1, H', W')``), no sigmoid.
        kind: ``"lsgan"`` (``mean((D(G(z)) - 1)^2)``) or ``"hinge"`` (``-mean(D(G(z)))``).

    References:
        Mao et al., "Least Squares Generative Adversarial Networks", ICCV 2017; Lim & Ye,
        "Geometric GAN", 2017 (hinge).
    """
    _check_kind(kind)
    if kind == "lsgan":
        return ((fake_logits - 1.0) ** 2).mean()
    return -fake_logits.mean()


def discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "lsgan"
) -> torch.Tensor:
    """Discriminator side: real towards 1 and fake towards 0 (LSGAN), or hinge margins.

    Args:
        real_logits: discriminator output on real images.
        fake_logits: discriminator output on generated images (detach them first).
        kind: ``"lsgan"`` (``0.5 * (mean((D(x) - 1)^2) + mean(D(G(z))^2))``) or ``"hinge"``
            (``mean(relu(1 - D(x))) + mean(relu(1 + D(G(z))))``).

    References:
        Mao et al., ICCV 2017; Lim & Ye, "Geometric GAN", 2017.
    """
    _check_kind(kind)
    if kind == "lsgan":
        return 0.5 * (((real_logits - 1.0) ** 2).mean() + (fake_logits**2).mean())
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


class GeneratorLoss(nn.Module):
    """Module form of :func:`generator_loss`."""

    def __init__(self, kind: str = "lsgan") -> None:
        super().__init__()
        _check_kind(kind)
        self.kind = kind

    def forward(self, fake_logits: torch.Tensor) -> torch.Tensor:
        """See :func:`generator_loss`."""
        return generator_loss(fake_logits, self.kind)


class DiscriminatorLoss(nn.Module):
    """Module form of :func:`discriminator_loss`."""

    def __init__(self, kind: str = "lsgan") -> None:
        super().__init__()
        _check_kind(kind)
        self.kind = kind

    def forward(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """See :func:`discriminator_loss`."""
        return discriminator_loss(real_logits, fake_logits, self.kind)
