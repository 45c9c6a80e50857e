"""EDSR-style residual super-resolution backbone and its RCAN-style channel-attention variant."""

from __future__ import annotations

import torch
from torch import nn

from suite.errors import ShapeError
from suite.models.blocks import ResBlock2d
from suite.models.registry import register_model


def make_upsampler(features: int, scale: int) -> nn.Sequential:
    """Conv + pixel shuffle steps that upscale by 1, 2, 3 or 4.

    Raises:
        ValueError: unsupported scale.
    """
    if scale not in (1, 2, 3, 4):
        raise ValueError(f"scale must be 1, 2, 3 or 4, got {scale}")
    steps = {1: [], 2: [2], 3: [3], 4: [2, 2]}[scale]
    layers: list[nn.Module] = []
    for s in steps:
        layers += [nn.Conv2d(features, features * s * s, 3, padding=1), nn.PixelShuffle(s)]
    return nn.Sequential(*layers)


class EDSR(nn.Module):
    """Head conv, residual blocks without normalization, global skip, pixel-shuffle upsampler.

    Args:
        in_channels: bands in and out (any count: grayscale, RGB, multispectral).
        scale: 1 (restoration at the same size), 2, 3 or 4.
        features: width.
        num_blocks: residual blocks.
        res_scale: residual scaling inside each block.
        attention: add channel attention to every block (RCAN-style).
        global_residual: add the bicubically upsampled input to the output, so the network
            learns the high-frequency detail only.

    References:
        Lim et al., "Enhanced Deep Residual Networks for Single Image Super-Resolution",
        CVPRW 2017; Zhang et al., "Residual Channel Attention Networks", ECCV 2018.
    """

    def __init__(
        self,
        in_channels: int = 3,
        scale: int = 2,
        features: int = 32,
        num_blocks: int = 8,
        res_scale: float = 1.0,
        attention: bool = False,
        global_residual: bool = True,
    ) -> None:
        super().__init__()
        self.head = nn.Conv2d(in_channels, features, 3, padding=1)
        blocks = [ResBlock2d(features, res_scale, attention) for _ in range(num_blocks)]
        self.body = nn.Sequential(*blocks, nn.Conv2d(features, features, 3, padding=1))
        self.tail = nn.Sequential(
            make_upsampler(features, scale), nn.Conv2d(features, in_channels, 3, padding=1)
        )
        self.in_channels, self.scale, self.global_residual = in_channels, scale, global_residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, C, s*H, s*W)``."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ShapeError("x", f"(B, {self.in_channels}, H, W)", tuple(x.shape))
        h = self.head(x)
        out = self.tail(h + self.body(h))
        if not self.global_residual:
            return out
        if self.scale == 1:
            return out + x
        up = nn.functional.interpolate(x, scale_factor=self.scale, mode="bicubic")
        return out + up


@register_model("edsr")
def edsr(
    in_channels: int = 3,
    scale: int = 2,
    features: int = 32,
    num_blocks: int = 8,
    res_scale: float = 1.0,
    attention: bool = False,
    global_residual: bool = True,
) -> EDSR:
    """EDSR factory (about 0.2M parameters for RGB x2 at the defaults)."""
    return EDSR(in_channels, scale, features, num_blocks, res_scale, attention, global_residual)


@register_model("rcan")
def rcan(
    in_channels: int = 3,
    scale: int = 2,
    features: int = 32,
    num_blocks: int = 8,
    global_residual: bool = True,
) -> EDSR:
    """RCAN-style factory: the EDSR backbone with channel attention in every block."""
    return EDSR(in_channels, scale, features, num_blocks, 1.0, True, global_residual)
