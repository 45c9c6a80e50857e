"""Networks of sat-sr: a DSen2-style guided network and ESPCN on top of bicubic upsampling.

Registered as ``"dsen2"`` and ``"espcn_residual"`` in the suite's model registry when this
module is imported, so that ``suite.weights.load_model`` rebuilds them from a model card.
(Both are general; they could move to ``suite/models`` without change.)
"""

from __future__ import annotations

import torch
from torch import nn

from suite.errors import ShapeError
from suite.models.blocks import ResBlock2d
from suite.models.espcn import ESPCN
from suite.models.registry import list_models, register_model


class DSen2(nn.Module):
    """Concatenated 10 m bands and upsampled 20 m bands -> residual added to the 20 m bands.

    Args:
        guide_bands: number of high-resolution guide bands (4 for B2, B3, B4, B8).
        target_bands: number of bands to sharpen (6 for B5, B6, B7, B8A, B11, B12).
        features: width.
        num_blocks: residual blocks (no normalization, residual scaling ``res_scale``).
        res_scale: residual scaling of each block (0.1 in DSen2).
        zero_tail: start the last convolution at zero, so the untrained network returns its
            skip input (the classical estimate) unchanged.

    Input ``(B, guide + target, H, W)``: guides first, then the target bands already resampled
    to the guide grid (bicubic). Output ``(B, target, H, W)``: the sharpened target bands.

    References:
        Lanaras et al., "Super-resolution of Sentinel-2 images: Learning a globally applicable
        deep neural network", ISPRS J. Photogramm. 146, 2018.
    """

    def __init__(self, guide_bands: int = 4, target_bands: int = 6, features: int = 48,
                 num_blocks: int = 4, res_scale: float = 0.1, zero_tail: bool = False) -> None:
        super().__init__()
        self.guide_bands, self.target_bands = guide_bands, target_bands
        self.head = nn.Sequential(nn.Conv2d(guide_bands + target_bands, features, 3, padding=1),
                                  nn.ReLU(inplace=True))
        self.body = nn.Sequential(*[ResBlock2d(features, res_scale) for _ in range(num_blocks)])
        self.tail = nn.Conv2d(features, target_bands, 3, padding=1)
        if zero_tail:
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, G + T, H, W) -> (B, T, H, W)``."""
        if x.ndim != 4 or x.shape[1] != self.guide_bands + self.target_bands:
            raise ShapeError("x", f"(B, {self.guide_bands + self.target_bands}, H, W)",
                             tuple(x.shape))
        return x[:, self.guide_bands:] + self.tail(self.body(self.head(x)))


if "dsen2" not in list_models():

    @register_model("dsen2")
    def dsen2(guide_bands: int = 4, target_bands: int = 6, features: int = 48,
              num_blocks: int = 4, res_scale: float = 0.1, zero_tail: bool = False) -> DSen2:
        """DSen2-style factory (about 0.17M parameters at the defaults)."""
        return DSen2(guide_bands, target_bands, features, num_blocks, res_scale, zero_tail)


class ResidualESPCN(nn.Module):
    """ESPCN that predicts the detail missing from bicubic upsampling (``up(x) + espcn(x)``).

    Args:
        in_channels: bands in and out.
        scale: upscaling factor.
        features: width of ESPCN's first layer.

    References:
        Shi et al., CVPR 2016 (ESPCN); the global bicubic skip as in VDSR (Kim et al., CVPR 2016).
    """

    def __init__(self, in_channels: int = 1, scale: int = 2, features: int = 32) -> None:
        super().__init__()
        self.net, self.scale = ESPCN(in_channels, scale, features), scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, C, sH, sW)``."""
        up = nn.functional.interpolate(x, scale_factor=self.scale, mode="bicubic")
        return up + self.net(x)


if "espcn_residual" not in list_models():

    @register_model("espcn_residual")
    def espcn_residual(in_channels: int = 1, scale: int = 2, features: int = 32) -> ResidualESPCN:
        """Residual ESPCN factory (about 12k parameters for one band, x2, 32 features)."""
        return ResidualESPCN(in_channels, scale, features)
