"""ESPCN: efficient sub-pixel convolution super-resolution network."""

from __future__ import annotations

import torch
from torch import nn

from suite.errors import ShapeError
from suite.models.registry import register_model


class ESPCN(nn.Module):
    """Three convolutions in low resolution and a pixel shuffle to ``scale`` times the size.

    Args:
        in_channels: bands in and out.
        scale: upscaling factor (integer >= 1).
        features: width of the first layer (the second has half).

    References:
        Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient
        Sub-Pixel Convolutional Neural Network", CVPR 2016.
    """

    def __init__(self, in_channels: int = 1, scale: int = 2, features: int = 64) -> None:
        super().__init__()
        half = max(features // 2, 1)
        self.in_channels = in_channels
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, features, 5, padding=2),
            nn.Tanh(),
            nn.Conv2d(features, half, 3, padding=1),
            nn.Tanh(),
            nn.Conv2d(half, in_channels * scale**2, 3, padding=1),
            nn.PixelShuffle(scale),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upscale ``(B, C, H, W) -> (B, C, s*H, s*W)``."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ShapeError("x", f"(B, {self.in_channels}, H, W)", tuple(x.shape))
        return self.body(x)


@register_model("espcn")
def espcn(in_channels: int = 1, scale: int = 2, features: int = 64) -> ESPCN:
    """ESPCN factory (about 20k parameters for one band at the defaults)."""
    return ESPCN(in_channels=in_channels, scale=scale, features=features)
