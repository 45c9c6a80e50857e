"""ResNet image-to-image generator (Johnson et al. / CycleGAN), optional self-attention."""

from __future__ import annotations

import torch
from torch import nn

from suite.errors import ShapeError
from suite.models.blocks import SelfAttention2d
from suite.models.registry import register_model


class _NormResBlock(nn.Module):
    """Reflection-padded conv-IN-ReLU-conv-IN residual block."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels, affine=True),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, C, H, W)``."""
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """7x7 stem, two stride-2 downsamplings, residual blocks, two upsamplings, 7x7 head.

    Spatial sizes must be divisible by 4.

    Args:
        in_channels: input channels (e.g. cloudy bands plus a cloud mask).
        out_channels: output channels.
        features: width of the stem; the bottleneck has ``4 * features``.
        num_blocks: residual blocks at the bottleneck.
        attention: insert a :class:`SelfAttention2d` block in the middle of the residual stack.
        tanh: squash the output to ``[-1, 1]`` (inputs normalized to that range).

    References:
        Johnson, Alahi, Fei-Fei, "Perceptual Losses for Real-Time Style Transfer and
        Super-Resolution", ECCV 2016; Zhu et al., "Unpaired Image-to-Image Translation using
        Cycle-Consistent Adversarial Networks" (CycleGAN), ICCV 2017.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        features: int = 32,
        num_blocks: int = 6,
        attention: bool = False,
        tanh: bool = False,
    ) -> None:
        super().__init__()
        f = features
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, f, 7)]
        layers += [nn.InstanceNorm2d(f, affine=True), nn.ReLU(inplace=True)]
        for m in (1, 2):
            layers += [nn.Conv2d(f * m, f * m * 2, 3, stride=2, padding=1)]
            layers += [nn.InstanceNorm2d(f * m * 2, affine=True), nn.ReLU(inplace=True)]
        blocks: list[nn.Module] = [_NormResBlock(4 * f) for _ in range(num_blocks)]
        if attention:
            blocks.insert(num_blocks // 2, SelfAttention2d(4 * f))
        layers += blocks
        for m in (4, 2):
            layers += [nn.ConvTranspose2d(f * m, f * m // 2, 3, 2, padding=1, output_padding=1)]
            layers += [nn.InstanceNorm2d(f * m // 2, affine=True), nn.ReLU(inplace=True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(f, out_channels, 7)]
        if tanh:
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)
        self.in_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W) -> (B, C_out, H, W)``."""
        if x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[2] % 4 or x.shape[3] % 4:
            raise ShapeError("x", f"(B, {self.in_channels}, 4k, 4m)", tuple(x.shape))
        return self.net(x)


@register_model("resnet_generator")
def resnet_generator(
    in_channels: int = 3,
    out_channels: int = 3,
    features: int = 32,
    num_blocks: int = 6,
    attention: bool = False,
    tanh: bool = False,
) -> ResnetGenerator:
    """ResNet generator factory (about 2.0M parameters at the defaults)."""
    return ResnetGenerator(in_channels, out_channels, features, num_blocks, attention, tanh)
