"""Reusable building blocks shared by the architectures: attention and residual blocks."""

from __future__ import annotations

import torch
from torch import nn

from suite.errors import ShapeError


def conv_nd(spatial_dims: int) -> type[nn.Conv2d] | type[nn.Conv3d]:
    """The convolution class for 2 or 3 spatial dimensions.

    Raises:
        ValueError: ``spatial_dims`` is not 2 or 3.
    """
    if spatial_dims == 2:
        return nn.Conv2d
    if spatial_dims == 3:
        return nn.Conv3d
    raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")


class SelfAttention2d(nn.Module):
    """SAGAN self-attention over all spatial positions, added back through a learned gate.

    The gate ``gamma`` starts at 0, so a freshly built block is the identity.

    Args:
        channels: channels of the input ``(B, C, H, W)``.
        reduction: query/key channels are ``max(channels // reduction, 1)``.

    References:
        Zhang, Goodfellow, Metaxas, Odena, "Self-Attention Generative Adversarial Networks",
        ICML 2019.

    >>> SelfAttention2d(16)(torch.zeros(1, 16, 8, 8)).shape
    torch.Size([1, 16, 8, 8])
    """

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        inner = max(channels // reduction, 1)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend: ``(B, C, H, W) -> (B, C, H, W)``."""
        if x.ndim != 4 or x.shape[1] != self.value.in_channels:
            raise ShapeError("x", f"(B, {self.value.in_channels}, H, W)", tuple(x.shape))
        b, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)  # (B, HW, C')
        k = self.key(x).flatten(2)  # (B, C', HW)
        attn = torch.softmax(q @ k, dim=-1)  # (B, HW, HW)
        v = self.value(x).flatten(2)  # (B, C, HW)
        out = (v @ attn.transpose(1, 2)).view(b, c, h, w)
        return x + self.gamma * out


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation channel attention as used in RCAN.

    Args:
        channels: channels of the input ``(B, C, H, W)`` (or ``(B, C, D, H, W)``).
        reduction: bottleneck ratio.
        spatial_dims: 2 or 3.

    References:
        Zhang et al., "Image Super-Resolution Using Very Deep Residual Channel Attention
        Networks", ECCV 2018.
    """

    def __init__(self, channels: int, reduction: int = 16, spatial_dims: int = 2) -> None:
        super().__init__()
        inner = max(channels // reduction, 1)
        conv = conv_nd(spatial_dims)
        pool = nn.AdaptiveAvgPool2d(1) if spatial_dims == 2 else nn.AdaptiveAvgPool3d(1)
        self.body = nn.Sequential(
            pool,
            conv(channels, inner, 1),
            nn.ReLU(inplace=True),
            conv(inner, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rescale channels: ``(B, C, *spatial) -> (B, C, *spatial)``."""
        return x * self.body(x)


class ResBlock2d(nn.Module):
    """Conv-ReLU-Conv residual block without normalization (EDSR), optional channel attention.

    Args:
        channels: channels in and out.
        res_scale: multiplier on the residual branch (EDSR uses 0.1 for wide nets).
        attention: add RCAN channel attention to the residual branch.
    """

    def __init__(self, channels: int, res_scale: float = 1.0, attention: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
        ]
        if attention:
            layers.append(ChannelAttention(channels))
        self.body = nn.Sequential(*layers)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, C, H, W)``."""
        return x + self.res_scale * self.body(x)
