"""Training losses, each as a function and a thin ``nn.Module`` twin (Kornia style)."""

from __future__ import annotations

from suite.losses.adversarial import (
    DiscriminatorLoss,
    GeneratorLoss,
    discriminator_loss,
    generator_loss,
)
from suite.losses.frequency import (
    FocalFrequencyLoss,
    FrequencyLoss,
    focal_frequency_loss,
    frequency_loss,
)
from suite.losses.gradient import GradientLoss, gradient_loss
from suite.losses.multiscale import MultiScaleLoss, multiscale_loss
from suite.losses.pixel import CharbonnierLoss, L1Loss, charbonnier_loss, l1_loss
from suite.losses.ssim import SSIMLoss, ssim_loss, ssim_map

__all__ = [
    "CharbonnierLoss",
    "DiscriminatorLoss",
    "FocalFrequencyLoss",
    "FrequencyLoss",
    "GeneratorLoss",
    "GradientLoss",
    "L1Loss",
    "MultiScaleLoss",
    "SSIMLoss",
    "charbonnier_loss",
    "discriminator_loss",
    "focal_frequency_loss",
    "frequency_loss",
    "generator_loss",
    "gradient_loss",
    "l1_loss",
    "multiscale_loss",
    "ssim_loss",
    "ssim_map",
]
