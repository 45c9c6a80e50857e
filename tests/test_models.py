"""Every registered model builds with small arguments, runs forward and stays under a size cap."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from suite.errors import ShapeError
from suite.models import SelfAttention2d, create_model, list_models
from suite.models.blocks import ChannelAttention
from suite.models.registry import model_origin

# name -> (small kwargs, input shape, expected output shape, parameter cap at defaults)
CASES: dict[str, tuple[dict[str, Any], tuple[int, ...], tuple[int, ...], int]] = {
    "espcn": ({"in_channels": 1, "scale": 3, "features": 8}, (1, 1, 8, 8), (1, 1, 24, 24), 10**5),
    "dae": ({"spatial_dims": 3, "features": 4}, (1, 1, 8, 8, 8), (1, 1, 8, 8, 8), 10**5),
    "unet": (
        {"spatial_dims": 3, "channels": (4, 8), "residual": True},
        (1, 1, 8, 8, 8),
        (1, 1, 8, 8, 8),
        10**6,
    ),
    "edsr": (
        {"in_channels": 4, "scale": 4, "features": 8, "num_blocks": 2},
        (1, 4, 6, 6),
        (1, 4, 24, 24),
        10**6,
    ),
    "rcan": (
        {"in_channels": 1, "scale": 3, "features": 16, "num_blocks": 2},
        (1, 1, 6, 6),
        (1, 1, 18, 18),
        10**6,
    ),
    "resnet_generator": (
        {"in_channels": 4, "out_channels": 3, "features": 4, "num_blocks": 2, "attention": True},
        (1, 4, 16, 16),
        (1, 3, 16, 16),
        3 * 10**6,
    ),
    "patchgan": ({"in_channels": 2, "features": 4}, (1, 2, 64, 64), (1, 1, 6, 6), 10**6),
}


def test_every_registered_model_has_a_case() -> None:
    # Domains may register their own networks; the core's sweep covers the core's models.
    core = {n for n in list_models() if model_origin(n).startswith("suite.")}
    assert core <= set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_model_forward_and_size(name: str) -> None:
    kwargs, in_shape, out_shape, cap = CASES[name]
    assert sum(p.numel() for p in create_model(name).parameters()) < cap
    net = create_model(name, **kwargs).eval()
    with torch.no_grad():
        out = net(torch.rand(in_shape))
    assert tuple(out.shape) == out_shape
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(CASES))
def test_model_rejects_wrong_channels(name: str) -> None:
    kwargs, in_shape, _, _ = CASES[name]
    net = create_model(name, **kwargs)
    bad = (in_shape[0], in_shape[1] + 1, *in_shape[2:])
    with pytest.raises(ShapeError):
        net(torch.rand(bad))


@pytest.mark.parametrize("keep_format", [False, True])
def test_unet_channels_last_3d_matches_contiguous(keep_format: bool) -> None:
    kwargs = {"channels": (4, 8, 16), "residual": True, "channels_last": keep_format}
    net = create_model("unet", spatial_dims=3, **kwargs).eval()
    x = torch.rand(1, 1, 8, 8, 8)
    with torch.no_grad():
        ref = net(x)
        out = net.to(memory_format=torch.channels_last_3d)(
            x.to(memory_format=torch.channels_last_3d)
        )
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_unet_lean_has_no_norm_layers() -> None:
    net = create_model("unet", spatial_dims=3)
    norms = (torch.nn.BatchNorm3d, torch.nn.InstanceNorm3d, torch.nn.GroupNorm)
    assert not any(isinstance(m, norms) for m in net.modules())


def test_unet_monai_backend_residual() -> None:
    net = create_model("unet", spatial_dims=2, channels=(4, 8), residual=True, backend="monai")
    net.eval()
    with torch.no_grad():
        assert net(torch.rand(1, 1, 16, 16)).shape == (1, 1, 16, 16)


def test_residual_needs_matching_channels() -> None:
    with pytest.raises(ValueError, match="residual"):
        create_model("unet", in_channels=1, out_channels=2, residual=True)


def test_self_attention_starts_as_identity() -> None:
    x = torch.rand(2, 8, 5, 7)
    torch.testing.assert_close(SelfAttention2d(8)(x), x)


def test_space_to_depth_is_pixel_unshuffle_and_inverts() -> None:
    from suite.models.unet import depth_to_space, space_to_depth

    x2 = torch.randn(2, 3, 8, 6)
    assert torch.equal(space_to_depth(x2, [2, 2]), torch.nn.functional.pixel_unshuffle(x2, 2))
    x3 = torch.randn(1, 2, 8, 6, 4)
    assert torch.equal(depth_to_space(space_to_depth(x3, [2, 3, 2]), [2, 3, 2], 2), x3)


def test_unet_with_unshuffle_keeps_shape_and_refuses_odd_sizes() -> None:
    net = create_model("unet", spatial_dims=3, channels=[4, 8], residual=True,
                       unshuffle=[2, 2, 2]).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 1, 8, 8, 8)).shape == (1, 1, 8, 8, 8)
    with pytest.raises(ShapeError):
        net(torch.randn(1, 1, 7, 8, 8))


def test_folded_unet_tail_sees_the_input_across_block_boundaries() -> None:
    def reach(tail: int) -> float:
        """Output change one block away from a unit impulse, with the folded U-Net silenced."""
        torch.manual_seed(0)
        net = create_model("unet", spatial_dims=3, channels=[4, 8], residual=True,
                           unshuffle=[2, 2, 2], tail=tail).eval()
        with torch.no_grad():
            net.net.head.weight.zero_()
            net.net.head.bias.zero_()
            x = torch.zeros(1, 1, 8, 8, 8)
            x[..., 1, 1, 1] = 1.0  # the last voxel of the first 2x2x2 block
            return float(net(x)[..., 2, 2, 2].abs())

    assert reach(0) == 0.0 and reach(2) > 0.0
    net = create_model("unet", spatial_dims=3, channels=[4, 8], unshuffle=[2, 2, 2], tail=2)
    assert net(torch.randn(1, 1, 8, 8, 8)).shape == (1, 1, 8, 8, 8)
    with pytest.raises(ValueError, match="tail"):
        create_model("unet", spatial_dims=3, tail=2)


def test_gated_levels_gate_the_deepest_levels_with_the_whole_patch() -> None:
    def far_change(gated_levels: int) -> bool:
        """Does a change at one corner reach the opposite corner, beyond the convolutions?"""
        torch.manual_seed(0)
        net = create_model("unet", spatial_dims=3, channels=[4, 8, 16], residual=True,
                           unshuffle=[2, 2, 2], gated_levels=gated_levels).eval()
        x = torch.randn(1, 1, 96, 96, 8)
        x2 = x.clone()
        x2[..., :4, :4, :] += 5.0
        with torch.no_grad():
            return not torch.equal(net(x)[..., -4:, -4:, :], net(x2)[..., -4:, -4:, :])

    assert not far_change(0) and far_change(2)
    inner = create_model("unet", spatial_dims=3, channels=[4, 8, 16], gated_levels=2).to("cpu")
    assert [isinstance(b[-1], ChannelAttention) for b in [inner.stem, *inner.enc]] == [
        False, True, True]
    assert [isinstance(b[-1], ChannelAttention) for b in inner.dec] == [False, True]
    with pytest.raises(ValueError, match="gated_levels"):
        create_model("unet", spatial_dims=3, backend="monai", gated_levels=1)


def test_overlapping_kernels_widen_the_reach_of_one_voxel() -> None:
    def reach(resample_kernel: int, head_kernel: int) -> int:
        """Width of the output rows that one changed input pixel moves."""
        torch.manual_seed(0)
        net = create_model("unet", spatial_dims=2, channels=[2, 4], resample_kernel=resample_kernel,
                           head_kernel=head_kernel).eval()
        x = torch.randn(1, 1, 32, 32)
        x2 = x.clone()
        x2[..., 16, 16] += 5.0
        with torch.no_grad():
            moved = (net(x2) - net(x)).abs()[0, 0, 16] > 0
        return int(moved.sum())

    plain = reach(2, 1)
    assert reach(3, 1) > plain and reach(2, 3) > plain
    net = create_model("unet", spatial_dims=3, channels=[4, 8], unshuffle=[2, 2, 2],
                       resample_kernel=3, head_kernel=3)
    assert net(torch.randn(1, 1, 8, 12, 8)).shape == (1, 1, 8, 12, 8)
    with pytest.raises(ValueError, match="resample_kernel"):
        create_model("unet", spatial_dims=3, resample_kernel=5)
    with pytest.raises(ValueError, match="head_kernel"):
        create_model("unet", spatial_dims=3, backend="monai", head_kernel=3)


def test_norm_levels_normalize_the_deepest_levels_over_the_whole_patch() -> None:
    torch.manual_seed(0)
    net = create_model("unet", spatial_dims=3, channels=[4, 8, 16], residual=True,
                       unshuffle=[2, 2, 2], norm_levels=1).eval()
    x = torch.randn(1, 1, 96, 96, 8)
    x2 = x.clone()
    x2[..., :4, :4, :] += 5.0
    with torch.no_grad():  # the deepest level's statistics carry a corner to the far corner
        assert not torch.equal(net(x)[..., -4:, -4:, :], net(x2)[..., -4:, -4:, :])
    inner = create_model("unet", spatial_dims=3, channels=[4, 8, 16], norm_levels=2)
    normed = [any(isinstance(m, torch.nn.InstanceNorm3d) for m in b)
              for b in [inner.stem, *inner.enc, *inner.dec]]
    assert normed == [False, True, True, False, True]
    with pytest.raises(ValueError, match="norm_levels"):
        create_model("unet", spatial_dims=3, backend="monai", norm_levels=1)


def test_residual_levels_shortcut_the_deepest_blocks() -> None:
    torch.manual_seed(0)
    inner = create_model("unet", spatial_dims=3, channels=[4, 8, 16], gated_levels=1,
                         residual_levels=2)
    blocks = [inner.stem, *inner.enc, *inner.dec]
    assert [hasattr(b, "proj") for b in blocks] == [False, True, True, False, True]
    same, deepest = inner.enc  # both keep their width: identity shortcuts
    assert isinstance(same.proj, torch.nn.Identity)
    assert isinstance(inner.dec[1].proj, torch.nn.Conv3d)  # 16 concatenated -> 8 projects
    assert isinstance(deepest.body[-1], ChannelAttention)  # the gate stays on the branch
    for p in same.body.parameters():
        p.data.zero_()
    x = torch.randn(1, 8, 4, 4, 4)
    with torch.no_grad():  # a silenced branch leaves the shortcut: the block passes x through
        assert torch.equal(same(x), x)
    net = create_model("unet", spatial_dims=3, channels=[4, 8], unshuffle=[2, 2, 2],
                       residual=True, residual_levels=2)
    assert net(torch.randn(1, 1, 8, 12, 8)).shape == (1, 1, 8, 12, 8)
    with pytest.raises(ValueError, match="residual_levels"):
        create_model("unet", spatial_dims=3, backend="monai", residual_levels=1)


def test_condition_channels_scale_and_shift_features_and_stay_out_of_the_residual() -> None:
    torch.manual_seed(0)
    for fold in (None, [2, 2, 2]):
        net = create_model("unet", spatial_dims=3, in_channels=2, channels=[4, 8],
                           residual=True, condition_channels=1, unshuffle=fold).eval()
        image = torch.randn(2, 1, 8, 8, 8)
        low, high = torch.full_like(image, 0.2), torch.full_like(image, 0.9)
        plain = create_model("unet", spatial_dims=3, channels=[4, 8], residual=True,
                             unshuffle=fold).eval()
        inner, plain_inner = (net.net, plain.net) if fold else (net, plain)
        plain_inner.load_state_dict({k: v for k, v in inner.state_dict().items()
                                     if not k.startswith("film.")})
        with torch.no_grad():
            # the FiLM layer starts at zero: the unconditioned network, condition ignored
            torch.testing.assert_close(net(torch.cat([image, low], 1)), plain(image))
            inner.film.weight.normal_()
            changed = net(torch.cat([image, high], 1)) - net(torch.cat([image, low], 1))
        assert changed.abs().min() > 0  # every voxel of every sample hears the condition
    with pytest.raises(ValueError, match="image channels"):
        create_model("unet", spatial_dims=3, in_channels=2, residual=True)
    with pytest.raises(ValueError, match="condition_channels"):
        create_model("unet", spatial_dims=3, in_channels=2, backend="monai",
                     condition_channels=1)


def test_folded_unet_reports_its_per_axis_size_multiple() -> None:
    net = create_model("unet", spatial_dims=3, channels=[4, 8, 16, 32], unshuffle=[4, 4, 2])
    assert net.multiple == (32, 32, 16)  # 4 * 8 in-plane: the folded grid feeds 4 levels
