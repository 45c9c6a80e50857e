"""PanNet-style detail network, shared across bands so that it works for any number of MS bands.

Every MS band ``k`` is sharpened by the same small CNN from six planes: the PAN, band ``k`` and
the MS band mean (all per-scene standardized, see :mod:`domains.pansharpen.deep`), plus their
high-pass parts (each minus a local box mean). The network predicts the missing detail of band
``k``, which is added to the upsampled band (residual learning on the upsampled MS).

References:
    Masi, Cozzolino, Verdoliva, Scarpa, "Pansharpening by convolutional neural networks",
    Remote Sensing 8(7), 2016 (PNN). Yang et al., "PanNet: a deep network architecture for
    pan-sharpening", ICCV 2017 (high-pass inputs, residual on the upsampled MS).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from suite.errors import ShapeError
from suite.models.registry import list_models, register_model


class PanDetailNet(nn.Module):
    """Band-shared residual detail CNN.

    Args:
        width: feature channels.
        depth: number of 3x3 convolutions (>= 2).
        highpass: side of the box mean whose residual is the high-pass input (odd).

    Shapes:
        input ``(B, C + 1, H, W)``: ``C`` upsampled standardized MS bands then the PAN;
        output ``(B, C, H, W)``: the sharpened bands (same units).
    """

    def __init__(self, width: int = 32, depth: int = 4, highpass: int = 5) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(6, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(width, 1, 3, padding=1))
        self.body = nn.Sequential(*layers)
        self.highpass = highpass
        self.depth = depth
        nn.init.zeros_(layers[-1].weight)  # start as the identity (plain upsampling)
        nn.init.zeros_(layers[-1].bias)  # type: ignore[arg-type]

    @property
    def halo(self) -> int:
        """Context (pixels) one output pixel depends on: conv receptive field plus the box."""
        return self.depth + self.highpass // 2

    def _highpass(self, x: Tensor) -> Tensor:
        k = self.highpass
        return x - F.avg_pool2d(F.pad(x, (k // 2,) * 4, mode="replicate"), k, stride=1)

    def forward(self, x: Tensor) -> Tensor:
        """Sharpen ``(B, C + 1, H, W)`` into ``(B, C, H, W)``."""
        if x.ndim != 4 or x.shape[1] < 3:
            raise ShapeError("pansharpen input", "(B, C + 1 >= 3, H, W)", tuple(x.shape))
        b, c1, h, w = x.shape
        ms, pan = x[:, :-1], x[:, -1:]
        mean = ms.mean(dim=1, keepdim=True)
        planes = torch.stack(
            [pan.expand(-1, c1 - 1, -1, -1), ms, mean.expand(-1, c1 - 1, -1, -1)], dim=2
        ).reshape(b * (c1 - 1), 3, h, w)
        feats = torch.cat([planes, self._highpass(planes)], dim=1)
        detail = self.body(feats).reshape(b, c1 - 1, h, w)
        return ms + detail


if "pan_detail_net" not in list_models():

    @register_model("pan_detail_net")
    def pan_detail_net(width: int = 32, depth: int = 4, highpass: int = 5) -> PanDetailNet:
        """Registry factory, so that ``suite export`` can rebuild the network from its card."""
        return PanDetailNet(width, depth, highpass)


def parameter_count(model: nn.Module) -> int:
    """Number of parameters (frozen ones, e.g. of an EMA copy, included)."""
    return sum(p.numel() for p in model.parameters())
