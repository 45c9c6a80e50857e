"""Convolutional denoising autoencoder, 2D or 3D."""

from __future__ import annotations

import itertools

import torch
from torch import nn

from suite.errors import ShapeError
from suite.models.blocks import conv_nd
from suite.models.registry import register_model


class DenoisingAutoencoder(nn.Module):
    """Strided-conv encoder and transposed-conv decoder with a residual output.

    Spatial sizes must be divisible by ``2 ** depth``.

    Args:
        in_channels: channels in and out.
        features: width of the first level; doubled at each deeper level.
        depth: number of downsampling steps.
        spatial_dims: 2 for ``(B, C, H, W)``, 3 for ``(B, C, D, H, W)``.
        residual: predict the noise and subtract it from the input (output = x - net(x)).

    References:
        Gondara, "Medical Image Denoising Using Convolutional Denoising Autoencoders",
        ICDM Workshops 2016.
    """

    def __init__(
        self,
        in_channels: int = 1,
        features: int = 16,
        depth: int = 2,
        spatial_dims: int = 2,
        residual: bool = True,
    ) -> None:
        super().__init__()
        conv = conv_nd(spatial_dims)
        tconv = nn.ConvTranspose2d if spatial_dims == 2 else nn.ConvTranspose3d
        widths = [features * 2**i for i in range(depth + 1)]
        enc: list[nn.Module] = [conv(in_channels, widths[0], 3, padding=1), nn.ReLU(inplace=True)]
        for a, b in itertools.pairwise(widths):
            enc += [conv(a, b, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
        dec: list[nn.Module] = []
        for a, b in zip(widths[:0:-1], widths[-2::-1], strict=True):
            dec += [tconv(a, b, 2, stride=2), nn.ReLU(inplace=True)]
        dec.append(conv(widths[0], in_channels, 3, padding=1))
        self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec)
        self.spatial_dims, self.in_channels, self.residual = spatial_dims, in_channels, residual
        self.multiple = 2**depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Denoise ``(B, C, [D,] H, W)`` to the same shape."""
        if (
            x.ndim != self.spatial_dims + 2
            or x.shape[1] != self.in_channels
            or any(s % self.multiple for s in x.shape[2:])
        ):
            expected = f"(B, {self.in_channels}, *spatial) with spatial % {self.multiple} == 0"
            raise ShapeError("x", expected, tuple(x.shape))
        out = self.decoder(self.encoder(x))
        return x - out if self.residual else out


@register_model("dae")
def dae(
    in_channels: int = 1,
    features: int = 16,
    depth: int = 2,
    spatial_dims: int = 2,
    residual: bool = True,
) -> DenoisingAutoencoder:
    """Denoising autoencoder factory (about 34k parameters in 2D at the defaults)."""
    return DenoisingAutoencoder(in_channels, features, depth, spatial_dims, residual)
