"""Tiled inference: identity, upsampling and convolution models stitch back exactly."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from suite.engine.tiling import (
    PatchMerger,
    TileConfig,
    axis_starts,
    balanced_patch,
    blend_axes,
    blend_window,
    tile_grid,
    tiled_inference,
)
from suite.errors import ShapeError, UsageError


class Nearest(nn.Module):
    """Nearest-neighbour upsampling by a per-axis integer factor, with a channel change."""

    def __init__(self, scale: tuple[int, ...], out_channels: int = 1) -> None:
        super().__init__()
        self.scale = scale
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        up = F.interpolate(x, scale_factor=self.scale, mode="nearest")
        return up.repeat_interleave(self.out_channels, dim=1)


def conv_net(nd: int, seed: int = 0) -> nn.Module:
    """Two 3-wide convolutions with zero padding: receptive radius 2 voxels."""
    torch.manual_seed(seed)
    conv = nn.Conv2d if nd == 2 else nn.Conv3d
    return nn.Sequential(conv(2, 4, 3, padding=1), nn.Tanh(), conv(4, 3, 3, padding=1)).eval()


@pytest.mark.parametrize(
    ("shape", "patch", "overlap"),
    [
        ((2, 3, 37, 29), 16, 5),
        ((1, 2, 11, 19, 13), (8, 8, 6), (3, 2, 1)),
        ((1, 1, 5, 7), 16, 4),  # smaller than the patch on both axes
        ((1, 1, 3, 20, 9), (8, 8, 8), 2),  # smaller on two axes only
    ],
)
@pytest.mark.parametrize("blend", ["gaussian", "hann", "constant"])
def test_identity_reproduces_input(
    shape: tuple[int, ...], patch: int | tuple[int, ...], overlap: int | tuple[int, ...],
    blend: str,
) -> None:
    x = torch.randn(shape)
    out = tiled_inference(x, nn.Identity(), TileConfig(patch, overlap, blend=blend))  # type: ignore[arg-type]
    assert out.shape == x.shape
    torch.testing.assert_close(out, x, atol=1e-6, rtol=0)


@pytest.mark.parametrize("pad_mode", ["replicate", "reflect", "constant"])
def test_identity_with_halo_and_padding(pad_mode: str) -> None:
    x = torch.randn(1, 1, 23, 17)
    cfg = TileConfig(8, 2, halo=3, pad_mode=pad_mode)  # type: ignore[arg-type]
    torch.testing.assert_close(tiled_inference(x, nn.Identity(), cfg), x, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("shape", "scale"), [((1, 1, 13, 10), (2, 2)), ((2, 1, 9, 12, 7), (1, 1, 4))]
)
def test_nearest_upsampling_matches_interpolate(
    shape: tuple[int, ...], scale: tuple[int, ...]
) -> None:
    x = torch.randn(shape)
    cfg = TileConfig(6, 2, scale=scale, batch_size=3)
    out = tiled_inference(x, Nearest(scale, out_channels=2), cfg)
    ref = F.interpolate(x, scale_factor=scale, mode="nearest").repeat_interleave(2, dim=1)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)


def single_conv(nd: int) -> nn.Module:
    """One 5-wide zero-padded convolution: receptive radius 2, linear in its padded input."""
    torch.manual_seed(1)
    conv = nn.Conv2d if nd == 2 else nn.Conv3d
    return conv(2, 3, 5, padding=2).eval()


@pytest.mark.parametrize("shape", [(1, 2, 41, 30), (1, 2, 19, 22, 15)])
def test_single_conv_with_halo_equals_whole_input_everywhere(shape: tuple[int, ...]) -> None:
    """halo (2) = receptive radius and pad_mode 'constant' = the conv's zero padding: equal
    everywhere, volume borders and tile seams included."""
    net = single_conv(len(shape) - 2)
    x = torch.randn(shape)
    with torch.no_grad():
        ref = net(x)
    out = tiled_inference(x, net, TileConfig(8, 2, halo=2, pad_mode="constant", batch_size=5))
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=0)


@pytest.mark.parametrize("shape", [(1, 2, 41, 30), (1, 2, 19, 22, 15)])
def test_deep_conv_with_halo_equals_whole_input_in_interior(shape: tuple[int, ...]) -> None:
    """Two stacked zero-padded convs pad every layer, which no input padding can mimic, so the
    comparison excludes the outer 2 voxels (the receptive radius) of the volume; every tile
    seam is inside the compared region."""
    net = conv_net(len(shape) - 2)
    x = torch.randn(shape)
    with torch.no_grad():
        ref = net(x)
    out = tiled_inference(x, net, TileConfig(8, 2, halo=2, batch_size=5))
    inner = (..., *[slice(2, -2)] * (len(shape) - 2))
    torch.testing.assert_close(out[inner], ref[inner], atol=1e-4, rtol=0)


def test_conv_without_halo_matches_in_interior_only() -> None:
    """Without a halo, tile borders see padding: blending keeps the error small, not zero."""
    net = conv_net(2)
    x = torch.randn(1, 2, 40, 40)
    with torch.no_grad():
        ref = net(x)
    out = tiled_inference(x, net, TileConfig(16, 8, pad_mode="constant"))
    assert (out - ref).abs().max() < 0.05


def test_batch_size_does_not_change_result() -> None:
    net = conv_net(3)
    x = torch.randn(2, 2, 17, 13, 11)
    outs = [tiled_inference(x, net, TileConfig(6, 2, halo=1, batch_size=b)) for b in (1, 3, 64)]
    for out in outs[1:]:
        torch.testing.assert_close(out, outs[0], atol=1e-6, rtol=0)


def test_accumulate_on_and_progress() -> None:
    x = torch.randn(1, 1, 10, 10)
    out = tiled_inference(x, lambda t: t * 2, TileConfig(4, 1), accumulate_on="cpu",
                          progress=True)
    torch.testing.assert_close(out, 2 * x, atol=1e-6, rtol=0)
    assert not out.requires_grad


def test_grid_is_plain_values_and_covers_input() -> None:
    assert axis_starts(64, 64, 16) == [0]
    assert axis_starts(128, 64, 16) == [0, 48, 64]
    grid = tile_grid((20, 9, 7), (8, 4, 7), (2, 1, 0))
    assert all(isinstance(v, int) for start in grid for v in start)
    covered = torch.zeros(20, 9, 7, dtype=torch.bool)
    for z, y, x in grid:
        covered[z : z + 8, y : y + 4, x : x + 7] = True
    assert bool(covered.all())


def test_blend_window_is_smooth_and_positive() -> None:
    for mode in ("gaussian", "hann"):
        w = blend_window((9, 16), mode)  # type: ignore[arg-type]
        assert w.shape == (1, 1, 9, 16)
        assert float(w.min()) > 0 and float(w.max()) == pytest.approx(1.0, abs=1e-3)


def test_errors_are_typed() -> None:
    with pytest.raises(ShapeError):
        tiled_inference(torch.zeros(3, 8, 8), nn.Identity(), TileConfig(4))
    with pytest.raises(UsageError):
        tiled_inference(torch.zeros(1, 1, 8, 8), nn.Identity(), TileConfig(4, overlap=4))
    with pytest.raises(ShapeError):
        tiled_inference(torch.zeros(1, 1, 8, 8), lambda t: t[..., :2], TileConfig(4))
    with pytest.raises(UsageError):
        tiled_inference(torch.zeros(1, 1, 2, 8), nn.Identity(), TileConfig(4, pad_mode="reflect"))


@pytest.mark.gpu
def test_cuda_model_cpu_accumulation_with_autocast() -> None:
    from suite.engine.device import autocast_context

    net = single_conv(3).cuda()
    x = torch.randn(1, 2, 19, 22, 15)
    with torch.no_grad():
        ref = net.cpu()(x)
    net.cuda()
    cfg = TileConfig(8, 2, halo=2, pad_mode="constant")
    with autocast_context(torch.device("cuda")):
        out = tiled_inference(x, net, cfg, accumulate_on="cpu")
    assert out.device.type == "cpu" and out.dtype == torch.float32
    torch.testing.assert_close(out, ref, atol=5e-2, rtol=0)
    exact = tiled_inference(x.cuda(), net, cfg)
    assert exact.device.type == "cuda"
    torch.testing.assert_close(exact.cpu(), ref, atol=1e-3, rtol=0)


@pytest.mark.parametrize(("size", "patch", "overlap", "fit"),
                         [(512, 128, 16, 8), (64, 16, 4, 4), (300, 16, 4, 4), (13, 16, 4, 4),
                          (3, 16, 4, 4), (1411, 256, 32, 8), (97, 32, 8, 8)])
def test_balanced_patch_keeps_the_count_and_never_grows(size: int, patch: int, overlap: int,
                                                        fit: int) -> None:
    fitted = balanced_patch(size, patch, overlap, fit)
    assert fitted % fit == 0 or fitted == patch
    assert overlap < fitted <= patch
    starts = axis_starts(size, fitted, overlap)
    assert len(starts) == len(axis_starts(size, patch, overlap))
    assert starts[-1] + fitted >= size  # still covers the axis


def test_fit_gives_the_same_result_with_less_work() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(4, 1, 3, padding=1))
    x = torch.randn(1, 1, 100, 70)
    calls: list[tuple[int, ...]] = []

    def run(batch: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(batch.shape[2:]))
        return net(batch)

    plain = tiled_inference(x, net, TileConfig(48, 8, halo=4))
    fitted = tiled_inference(x, run, TileConfig(48, 8, halo=4, fit=8))
    # patches of 40 instead of 48 (3 along 100, 2 along 70, as before), plus the 4 px halo
    assert calls and all(shape == (48, 48) for shape in calls)
    assert torch.allclose(plain[..., 8:-8, 8:-8], fitted[..., 8:-8, 8:-8], atol=1e-5)


@pytest.mark.parametrize("blend", ["gaussian", "hann", "constant"])
def test_a_tile_grid_is_normalized_per_axis_without_a_full_weight_map(blend: str) -> None:
    torch.manual_seed(0)
    starts = tile_grid((10, 13, 7), (4, 5, 3), (2, 1, 1))
    patches = torch.rand(len(starts), 2, 4, 5, 3)
    merger = PatchMerger((10, 13, 7), (1, 1, 1), blend, torch.device("cpu"), starts)
    merger.add(starts, patches)
    assert merger.weights is None  # no accumulator as large as the output
    # Brute force with the same (unclamped) separable window, voxel by voxel.
    wz, wy, wx = blend_axes((4, 5, 3), blend)
    window = wz[:, None, None] * wy[None, :, None] * wx[None, None, :]
    values, weights = torch.zeros(1, 2, 10, 13, 7), torch.zeros(10, 13, 7)
    for (z, y, x), patch in zip(starts, patches, strict=True):
        values[0, :, z:z + 4, y:y + 5, x:x + 3] += patch * window
        weights[z:z + 4, y:y + 5, x:x + 3] += window
    torch.testing.assert_close(merger.result(), values / weights, rtol=1e-5, atol=1e-6)
    scattered = PatchMerger((10, 13, 7), (1, 1, 1), blend, torch.device("cpu"),
                            [(0, 0, 0), (5, 8, 4)])  # not a full grid: weights voxel by voxel
    assert scattered.weights is not None
