"""PatchGAN discriminator: a real/fake logit per overlapping receptive-field patch."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import spectral_norm as sn

from suite.errors import ShapeError
from suite.models.registry import register_model


class PatchGAN(nn.Module):
    """Stack of 4x4 convolutions (stride 2, then 1) ending in one logit channel.

    With ``num_layers=3`` each output logit sees a 70x70 input patch.

    Args:
        in_channels: channels of the image (for a conditional GAN, input and output
            concatenated).
        features: width of the first layer, doubled per layer up to ``8 * features``.
        num_layers: stride-2 layers.
        norm: ``"instance"`` or ``"none"``.
        spectral_norm: wrap every convolution in spectral normalization.

    References:
        Isola, Zhu, Zhou, Efros, "Image-to-Image Translation with Conditional Adversarial
        Networks" (pix2pix), CVPR 2017.
    """

    def __init__(
        self,
        in_channels: int = 3,
        features: int = 32,
        num_layers: int = 3,
        norm: str = "instance",
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        if norm not in ("instance", "none"):
            raise ValueError(f"norm must be 'instance' or 'none', got {norm!r}")
        wrap = sn if spectral_norm else (lambda m: m)
        widths = [features * min(2**i, 8) for i in range(num_layers + 1)]
        layers: list[nn.Module] = [wrap(nn.Conv2d(in_channels, widths[0], 4, 2, 1))]
        layers.append(nn.LeakyReLU(0.2, inplace=True))
        for i in range(1, num_layers + 1):
            stride = 2 if i < num_layers else 1
            layers.append(wrap(nn.Conv2d(widths[i - 1], widths[i], 4, stride, 1)))
            if norm == "instance":
                layers.append(nn.InstanceNorm2d(widths[i], affine=True))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        layers.append(wrap(nn.Conv2d(widths[-1], 1, 4, 1, 1)))
        self.net = nn.Sequential(*layers)
        self.in_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, 1, H', W')`` raw logits (no sigmoid)."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ShapeError("x", f"(B, {self.in_channels}, H, W)", tuple(x.shape))
        return self.net(x)


@register_model("patchgan")
def patchgan(
    in_channels: int = 3,
    features: int = 32,
    num_layers: int = 3,
    norm: str = "instance",
    spectral_norm: bool = False,
) -> PatchGAN:
    """PatchGAN factory (about 0.7M parameters at the defaults)."""
    return PatchGAN(in_channels, features, num_layers, norm, spectral_norm)
