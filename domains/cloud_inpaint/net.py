"""The residual inpainting network: a classical fill plus a learned correction inside the mask.

The input planes (one band at a time, see :func:`domains.cloud_inpaint.inpaint.band_planes`) carry a
classical starting point: the smooth (harmonic, then biharmonic-relaxed) fill of the band (single
date), or the Poisson clone of the reference date into the hole (guided). The network adds a
correction inside the mask only; its last convolution starts at zero, so an untrained model *is* the
classical fill, and outside the mask the output is the input exactly.
"""

from __future__ import annotations

import torch
from torch import nn

from suite.errors import ShapeError
from suite.models.registry import list_models, register_model
from suite.models.resnet_generator import ResnetGenerator

MASK_CHANNEL = 2
PRIOR_CHANNEL = 3


class ResidualInpainter(nn.Module):
    """``prior + mask * ResnetGenerator(planes)`` on band planes ``(N, K, H, W)``.

    Args:
        in_channels: planes per band (5 single date, 7 with a reference date).
        features: generator stem width (bottleneck ``4 * features``).
        num_blocks: generator residual blocks (a self-attention block in their middle).
        attention: insert the self-attention block.
        prior_sweeps: biharmonic sweeps of the prior it was trained with (the caller makes the
            planes, :func:`domains.cloud_inpaint.inpaint.band_planes`).

    Channel 2 of the input is the mask (1 = fill), channel 3 the classical fill.
    """

    def __init__(self, in_channels: int = 5, features: int = 16, num_blocks: int = 4,
                 attention: bool = True, prior_sweeps: int = 20) -> None:
        super().__init__()
        self.prior_sweeps = prior_sweeps  # how the prior plane was made (see fill.smooth_fill)
        self.body = ResnetGenerator(in_channels, 1, features, num_blocks, attention, tanh=False)
        last = self.body.net[-1]
        if not isinstance(last, nn.Conv2d):
            raise TypeError(f"expected the generator to end in a Conv2d, not {type(last)}")
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)  # type: ignore[arg-type]
        self.in_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, K, H, W) -> (N, 1, H, W)``, spatial sizes multiples of 4."""
        if x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[1] <= PRIOR_CHANNEL:
            raise ShapeError("x", f"(N, {self.in_channels}, 4k, 4m)", tuple(x.shape))
        mask = x[:, MASK_CHANNEL: MASK_CHANNEL + 1]
        prior = x[:, PRIOR_CHANNEL: PRIOR_CHANNEL + 1]
        return prior + mask * self.body(x)


if "cloud_residual_inpainter" not in list_models():

    @register_model("cloud_residual_inpainter")
    def cloud_residual_inpainter(in_channels: int = 5, features: int = 16, num_blocks: int = 4,
                                 attention: bool = True, prior_sweeps: int = 20
                                 ) -> ResidualInpainter:
        """Registry factory, so that :func:`suite.weights.load_model` rebuilds it from its card."""
        return ResidualInpainter(in_channels, features, num_blocks, attention, prior_sweeps)
