"""2D/3D U-Net: a lean normalization-free variant and a wrapper of MONAI's UNet."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

from suite.errors import ShapeError
from suite.models.blocks import ChannelAttention, conv_nd
from suite.models.registry import register_model


def _double_conv(conv: type[nn.Conv2d] | type[nn.Conv3d], cin: int, cout: int,
                 norm: type[nn.Module] | None = None) -> nn.Sequential:
    """Two 3x3(x3) convolutions with LeakyReLU, each followed by ``norm`` when given."""
    layers: list[nn.Module] = []
    for a, b in ((cin, cout), (cout, cout)):
        layers.append(conv(a, b, 3, padding=1))
        if norm is not None:
            layers.append(norm(b, affine=True))
        layers.append(nn.LeakyReLU(0.1, inplace=True))
    return nn.Sequential(*layers)


class _ResidualBlock(nn.Module):
    """``body(x) + proj(x)``: a block with an identity (or 1x1 projection) shortcut.

    Not MONAI's ``ResidualUnit``: that builds its own convolution, norm and PReLU stack,
    where this wraps the lean network's own blocks, gates included, and keeps the lean
    backend free of the MONAI import.
    """

    def __init__(self, body: nn.Module, proj: nn.Module) -> None:
        super().__init__()
        self.body, self.proj = body, proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same shape as ``body(x)``."""
        return self.body(x) + self.proj(x)


class LeanUNet(nn.Module):
    """U-Net, by default without normalization layers, friendly to ``channels_last(_3d)`` inputs.

    Downsampling is a strided 2x convolution, upsampling a 2x transposed convolution, skips are
    concatenated. Every op keeps the memory format of its input, so a ``channels_last_3d``
    input runs the fast CPU kernels end to end. Spatial sizes must be divisible by
    ``2 ** (len(channels) - 1)``.

    Args:
        spatial_dims: 2 for ``(B, C, H, W)``, 3 for ``(B, C, D, H, W)``.
        in_channels: input channels.
        out_channels: output channels.
        channels: width per level, e.g. ``(16, 32, 64)``.
        residual: add the input to the output (needs ``in_channels == out_channels``), so the
            network learns the correction, e.g. the negative noise for CT denoising.
        channels_last: keep every activation in ``channels_last(_3d)`` (re-asserted at block
            boundaries, where oneDNN sometimes falls back to the contiguous layout). Call
            ``net.to(memory_format=...)`` as well so the weights match.
        gated_levels: the deepest this many levels end each double convolution with a
            squeeze-and-excitation channel gate. The gate sees the whole patch, so it can scale
            features with the patch's noise level, as an instance norm does, for the cost of a
            mean over the level's (small) grid.
        resample_kernel: 2 (default) for non-overlapping 2x down- and up-sampling, 3 for
            overlapping ones (3x3(x3) strided and transposed convolutions, as in MONAI's UNet),
            so that neighbouring cells of the coarser grid share inputs and blend outputs.
        head_kernel: 1 (default) or 3: the output convolution's size. Inside a space-to-depth
            fold a 3 lets each unfolded block see its neighbours' features.
        norm_levels: the deepest this many levels normalize each convolution's output per patch
            and channel (instance norm with a learned scale and shift, as MONAI's UNet does at
            every level).
        residual_levels: the deepest this many levels add a shortcut around each double
            convolution (identity, or a 1x1 convolution where the width changes), as MONAI's
            residual units do; a gate, if any, stays on the convolution branch.
        condition_channels: the last this many of the ``in_channels`` are conditions, constant
            over a patch (e.g. the input's noise level): their patch means scale and shift the
            first level's features (FiLM) instead of entering the convolutions, which costs an
            elementwise multiply-add where a constant input channel would widen the first
            convolution. ``residual`` then adds back the other (image) channels.

    References:
        Ronneberger, Fischer, Brox, "U-Net: Convolutional Networks for Biomedical Image
        Segmentation", MICCAI 2015. Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018.
        Perez, Strub, de Vries, Dumoulin, Courville, "FiLM: Visual Reasoning with a General
        Conditioning Layer", AAAI 2018.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        channels: Sequence[int] = (16, 32, 64),
        residual: bool = False,
        channels_last: bool = False,
        gated_levels: int = 0,
        resample_kernel: int = 2,
        head_kernel: int = 1,
        norm_levels: int = 0,
        residual_levels: int = 0,
        condition_channels: int = 0,
    ) -> None:
        super().__init__()
        if resample_kernel not in (2, 3) or head_kernel not in (1, 3):
            raise ValueError("resample_kernel must be 2 or 3 and head_kernel 1 or 3")
        image_channels = in_channels - condition_channels
        if not 0 <= condition_channels < in_channels:
            raise ValueError("condition_channels must leave at least one image channel")
        if residual and image_channels != out_channels:
            raise ValueError("residual=True needs as many image channels as out_channels")
        fmt = torch.channels_last if spatial_dims == 2 else torch.channels_last_3d
        self.memory_format = fmt if channels_last else None
        conv = conv_nd(spatial_dims)
        tconv = nn.ConvTranspose2d if spatial_dims == 2 else nn.ConvTranspose3d
        ch = list(channels)
        inorm = nn.InstanceNorm2d if spatial_dims == 2 else nn.InstanceNorm3d

        def block(cin: int, cout: int, level: int) -> nn.Module:
            norm = inorm if level >= len(ch) - norm_levels else None
            body = _double_conv(conv, cin, cout, norm)
            if level >= len(ch) - gated_levels:
                # The suite's own gate rather than MONAI's ChannelSELayer: importing MONAI costs
                # every command a third of its start-up, and the lean backend avoids it.
                body.append(ChannelAttention(cout, reduction=4, spatial_dims=spatial_dims))
            if level < len(ch) - residual_levels:
                return body
            return _ResidualBlock(body, nn.Identity() if cin == cout else conv(cin, cout, 1))

        self.stem = block(image_channels, ch[0], 0)
        self.film: nn.Linear | None = None
        if condition_channels:
            self.film = nn.Linear(condition_channels, 2 * ch[0])
            nn.init.zeros_(self.film.weight)  # starts as the unconditioned network
            nn.init.zeros_(self.film.bias)
        k, pad = resample_kernel, resample_kernel - 2  # both halve / double an even size exactly
        self.down = nn.ModuleList(conv(a, b, k, stride=2, padding=pad)
                                  for a, b in itertools.pairwise(ch))
        self.enc = nn.ModuleList(block(b, b, i + 1) for i, b in enumerate(ch[1:]))
        self.up = nn.ModuleList(tconv(b, a, k, stride=2, padding=pad, output_padding=pad)
                                for a, b in itertools.pairwise(ch))
        self.dec = nn.ModuleList(block(2 * a, a, i) for i, a in enumerate(ch[:-1]))
        self.head = conv(ch[0], out_channels, head_kernel, padding=head_kernel // 2)
        self.spatial_dims, self.in_channels, self.residual = spatial_dims, in_channels, residual
        self.image_channels = image_channels
        self.multiple = 2 ** (len(ch) - 1)

    def _check(self, x: torch.Tensor) -> None:
        """Raise ShapeError unless ``x`` is ``(B, C_in, *spatial)`` with divisible sizes."""
        if not isinstance(x, torch.Tensor):
            return  # an FX tracing proxy (int8 quantization): shapes are not known yet
        if (
            x.ndim != self.spatial_dims + 2
            or x.shape[1] != self.in_channels
            or any(s % self.multiple for s in x.shape[2:])
        ):
            expected = f"(B, {self.in_channels}, *spatial) with spatial % {self.multiple} == 0"
            raise ShapeError("x", expected, tuple(x.shape))

    def _fmt(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the requested memory format (a no-op when none was requested)."""
        return x if self.memory_format is None else x.contiguous(memory_format=self.memory_format)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, [D,] H, W) -> (B, C_out, [D,] H, W)``."""
        self._check(x)
        image = x[:, : self.image_channels] if self.film is not None else x
        skips = [self._fmt(self._condition(self.stem(self._fmt(image)), x))]
        for down, enc in zip(self.down, self.enc, strict=False):
            skips.append(self._fmt(enc(down(skips[-1]))))
        h = skips.pop()
        for i in reversed(range(len(self.up))):
            h = self._fmt(self.dec[i](torch.cat([self.up[i](h), skips.pop()], dim=1)))
        out = self.head(h)
        return out + image if self.residual else out

    def _condition(self, features: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``features`` scaled and shifted by the patch means of ``x``'s condition channels."""
        if self.film is None:
            return features
        # spatial_dims, not x.ndim: int8 quantization traces x as a proxy with no known rank
        conditions = x[:, self.image_channels :].mean(dim=tuple(range(2, 2 + self.spatial_dims)))
        scale, shift = self.film(conditions).chunk(2, dim=1)
        spread = (...,) + (None,) * self.spatial_dims
        return features * (1.0 + scale[spread]) + shift[spread]


class ResidualWrapper(nn.Module):
    """Adds the input to a wrapped network's output: ``y = x + net(x)``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, *spatial) -> (B, C, *spatial)``."""
        return x + self.net(x)


def space_to_depth(x: torch.Tensor, factors: Sequence[int]) -> torch.Tensor:
    """Fold blocks of ``factors`` voxels into channels: ``(B, C, *S) -> (B, C * prod(f), *S / f)``.

    Lossless and exactly inverted by :func:`depth_to_space` (``pixel_unshuffle`` for any rank).
    """
    b, c, *size = x.shape
    nd = len(size)
    split = [b, c] + [n for s, f in zip(size, factors, strict=True) for n in (s // f, f)]
    order = [0, 1, *range(3, 2 + 2 * nd, 2), *range(2, 2 + 2 * nd, 2)]
    folded = x.reshape(split).permute(order)
    return folded.reshape(b, -1, *(s // f for s, f in zip(size, factors, strict=True)))


def depth_to_space(x: torch.Tensor, factors: Sequence[int], channels: int) -> torch.Tensor:
    """Inverse of :func:`space_to_depth` back to ``channels`` channels."""
    b, _, *size = x.shape
    nd = len(size)
    unfolded = x.reshape(b, channels, *factors, *size)
    order = [0, 1] + [i for k in range(nd) for i in (2 + nd + k, 2 + k)]
    return unfolded.permute(order).reshape(b, channels, *(s * f for s, f in
                                                          zip(size, factors, strict=True)))


class SpaceToDepthNet(nn.Module):
    """Run a network at reduced resolution on losslessly folded voxels (FFDNet-style).

    The input's ``factors``-sized blocks become channels, ``net`` maps them, the result is
    unfolded; with ``residual`` the input is added back at full resolution. On a CPU this moves
    the widest, full-resolution layers of a U-Net to a grid ``prod(factors)`` times smaller.

    With ``tail`` > 0 the network unfolds to ``tail`` full-resolution channels instead of the
    output, and one 3x3(x3) convolution over those channels and the input makes the output. The
    unfolded output alone is one linear map per block, so neighbouring blocks cannot blend and
    the output never sees the input at full resolution; MONAI's UNet, which also runs its first
    level at half resolution, ends in an overlapping transposed convolution and a
    full-resolution convolution. On this CPU even this one convolution adds about a fifth to
    the fold's time (``benchmarks/bench_ct_variants.py``).

    References:
        Zhang, Zuo, Zhang, "FFDNet: Toward a Fast and Flexible Solution for CNN-Based Image
        Denoising", IEEE TIP 2018.
    """

    def __init__(self, net: nn.Module, factors: Sequence[int], channels: int,
                 residual: bool, tail: int = 0, in_channels: int | None = None) -> None:
        super().__init__()
        self.net, self.factors = net, list(factors)
        self.channels, self.residual = channels, residual
        self.unfolded = tail or channels
        self.tail: nn.Module | None = None
        if tail:
            conv = conv_nd(len(self.factors))
            self.tail = conv(tail + (in_channels or channels), channels, 3, padding=1)
        # Per axis: the folded grid must still divide into the inner network's levels.
        inner = int(getattr(net, "multiple", 1))
        self.multiple = tuple(f * inner for f in self.factors)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, *spatial) -> (B, C, *spatial)``; spatial sizes divisible by the factors."""
        if any(s % f for s, f in zip(x.shape[2:], self.factors, strict=True)):
            raise ShapeError("x", f"spatial sizes divisible by {self.factors}", tuple(x.shape))
        folded = space_to_depth(x, self.factors)
        if x.ndim == 5 and not torch.onnx.is_in_onnx_export():  # ONNX has no memory formats
            folded = folded.contiguous(memory_format=torch.channels_last_3d)
        out = depth_to_space(self.net(folded), self.factors, self.unfolded)
        if self.tail is not None:
            out = self.tail(torch.cat([out, x], dim=1))
        return x[:, : self.channels] + out if self.residual else out


@register_model("unet")
def unet(
    spatial_dims: int = 2,
    in_channels: int = 1,
    out_channels: int = 1,
    channels: Sequence[int] = (16, 32, 64),
    residual: bool = False,
    backend: str = "lean",
    num_res_units: int = 0,
    channels_last: bool = False,
    unshuffle: Sequence[int] | None = None,
    gated_levels: int = 0,
    tail: int = 0,
    resample_kernel: int = 2,
    head_kernel: int = 1,
    norm_levels: int = 0,
    residual_levels: int = 0,
    condition_channels: int = 0,
) -> nn.Module:
    """U-Net factory.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels.
        channels: width per level.
        residual: add the input to the output (in and out channels must match).
        backend: ``"lean"`` (:class:`LeanUNet`, no normalization, fast on CPU) or ``"monai"``
            (``monai.networks.nets.UNet`` with instance norm and ``num_res_units``).
        num_res_units: residual units per level, MONAI backend only.
        channels_last: lean backend only, see :class:`LeanUNet`.
        unshuffle: lean backend only: fold blocks of this many voxels per axis into channels and
            run the U-Net at that reduced resolution (:class:`SpaceToDepthNet`).
        gated_levels: lean backend only, see :class:`LeanUNet`.
        tail: with ``unshuffle``: full-resolution channels of the output stage, see
            :class:`SpaceToDepthNet` (0: unfold straight to the output).
        resample_kernel, head_kernel, norm_levels, residual_levels, condition_channels: lean
            backend only, see :class:`LeanUNet`.
    """
    lean_only = {"gated_levels": gated_levels, "resample_kernel": resample_kernel != 2,
                 "head_kernel": head_kernel != 1, "norm_levels": norm_levels,
                 "residual_levels": residual_levels, "condition_channels": condition_channels}
    for name, used in lean_only.items():
        if used and backend != "lean":
            raise ValueError(f"{name} needs backend='lean'")
    if tail and (backend != "lean" or unshuffle is None):
        raise ValueError("tail needs backend='lean' and unshuffle")
    if backend == "lean" and unshuffle is not None:
        k = int(torch.tensor(list(unshuffle)).prod())
        # space_to_depth folds channel by channel, so the conditions stay the last channels
        inner = LeanUNet(spatial_dims, in_channels * k, (tail or out_channels) * k, channels,
                         False, channels_last, gated_levels, resample_kernel, head_kernel,
                         norm_levels, residual_levels, condition_channels * k)
        if residual and in_channels - condition_channels != out_channels:
            raise ValueError("residual=True needs as many image channels as out_channels")
        return SpaceToDepthNet(inner, unshuffle, out_channels, residual, tail, in_channels)
    if backend == "lean":
        return LeanUNet(spatial_dims, in_channels, out_channels, channels, residual, channels_last,
                        gated_levels, resample_kernel, head_kernel, norm_levels,
                        residual_levels, condition_channels)
    if backend != "monai":
        raise ValueError(f"backend must be 'lean' or 'monai', got {backend!r}")
    if residual and in_channels != out_channels:
        raise ValueError("residual=True needs in_channels == out_channels")
    # Imported here: MONAI's package import pulls in its data and transform stacks, about a
    # third of every `suite` command's start-up, and only this backend needs it.
    from monai.networks.nets import UNet as MonaiUNet

    net = MonaiUNet(
        spatial_dims=spatial_dims,
        in_channels=in_channels,
        out_channels=out_channels,
        channels=tuple(channels),
        strides=(2,) * (len(channels) - 1),
        num_res_units=num_res_units,
    )
    return ResidualWrapper(net) if residual else net
