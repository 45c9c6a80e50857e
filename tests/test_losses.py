"""Losses: function and module twins agree, golden values, gradients flow, shapes are checked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity

from suite.errors import ShapeError
from suite.losses import (
    CharbonnierLoss,
    DiscriminatorLoss,
    FocalFrequencyLoss,
    FrequencyLoss,
    GeneratorLoss,
    GradientLoss,
    L1Loss,
    MultiScaleLoss,
    SSIMLoss,
    charbonnier_loss,
    discriminator_loss,
    focal_frequency_loss,
    frequency_loss,
    generator_loss,
    gradient_loss,
    l1_loss,
    multiscale_loss,
    ssim_loss,
)
from suite.losses.gradient import sobel
from suite.losses.ssim import gaussian_filter_valid, gaussian_kernel1d

GEN = torch.Generator().manual_seed(0)
X2 = torch.rand(2, 2, 16, 16, generator=GEN)
Y2 = (X2 + 0.1 * torch.randn(2, 2, 16, 16, generator=GEN)).clamp(0, 1)
X3 = torch.rand(1, 1, 12, 13, 14, generator=GEN)
Y3 = (X3 + 0.1 * torch.randn(1, 1, 12, 13, 14, generator=GEN)).clamp(0, 1)

PAIRS: list[tuple[Callable[..., torch.Tensor], torch.nn.Module, dict[str, Any]]] = [
    (l1_loss, L1Loss(), {}),
    (charbonnier_loss, CharbonnierLoss(eps=1e-2), {"eps": 1e-2}),
    (ssim_loss, SSIMLoss(data_range=1.0), {"data_range": 1.0}),
    (frequency_loss, FrequencyLoss(focal_alpha=1.0), {"focal_alpha": 1.0}),
    (focal_frequency_loss, FocalFrequencyLoss(), {}),
    (gradient_loss, GradientLoss("sobel"), {"mode": "sobel"}),
]


@pytest.mark.parametrize(
    ("fn", "module", "kwargs"), PAIRS, ids=lambda p: getattr(p, "__name__", "")
)
def test_function_equals_module(
    fn: Callable[..., torch.Tensor], module: torch.nn.Module, kwargs: dict[str, Any]
) -> None:
    torch.testing.assert_close(module(X2, Y2), fn(X2, Y2, **kwargs))


@pytest.mark.parametrize(
    ("fn", "module", "kwargs"), PAIRS, ids=lambda p: getattr(p, "__name__", "")
)
def test_gradients_flow_and_shape_checked(
    fn: Callable[..., torch.Tensor], module: torch.nn.Module, kwargs: dict[str, Any]
) -> None:
    pred = X2.clone().requires_grad_(True)
    fn(pred, Y2, **kwargs).backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    with pytest.raises(ShapeError):
        fn(X2, Y2[:, :1], **kwargs)


def test_pixel_losses_golden() -> None:
    a, b = torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), 0.5)
    assert float(l1_loss(a, b)) == pytest.approx(0.5)
    assert float(charbonnier_loss(a, a, eps=1e-3)) == pytest.approx(1e-3)
    assert l1_loss(a, b, reduction="none").shape == a.shape


@pytest.mark.parametrize(("x", "y"), [(X2, Y2), (X3, Y3)], ids=["2d", "3d"])
def test_ssim_loss_matches_skimage(x: torch.Tensor, y: torch.Tensor) -> None:
    ref = np.mean(
        [
            structural_similarity(
                x[b, c].double().numpy(),
                y[b, c].double().numpy(),
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                data_range=1.0,
            )
            for b in range(x.shape[0])
            for c in range(x.shape[1])
        ]
    )
    assert float(ssim_loss(x.double(), y.double(), data_range=1.0)) == pytest.approx(
        1 - ref, abs=1e-6
    )
    assert float(ssim_loss(x, x, data_range=1.0)) == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("shape", [(2, 3, 20, 17), (1, 2, 13, 15, 12)], ids=["2d", "3d"])
def test_gaussian_filter_valid_matches_scipy_interior(shape: tuple[int, ...]) -> None:
    x = torch.rand(*shape, dtype=torch.float64, generator=GEN)
    got = gaussian_filter_valid(x, gaussian_kernel1d(dtype=torch.float64))
    # scipy filters the whole image with padding; away from the border (5 px) no padding is read.
    axes = tuple(range(2, x.ndim))
    ref = gaussian_filter(x.numpy(), sigma=1.5, truncate=3.5, axes=axes)
    interior = (slice(None), slice(None)) + (slice(5, -5),) * len(axes)
    assert got.shape == ref[interior].shape
    np.testing.assert_allclose(got.numpy(), ref[interior], atol=1e-12)


def test_ssim_rejects_small_input() -> None:
    with pytest.raises(ShapeError):
        ssim_loss(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), data_range=1.0)


@pytest.mark.parametrize(("x", "y", "dims"), [(X2, Y2, 2), (X3, Y3, 3)], ids=["2d", "3d"])
def test_frequency_losses_zero_on_identity_positive_otherwise(
    x: torch.Tensor, y: torch.Tensor, dims: int
) -> None:
    for fn in (frequency_loss, focal_frequency_loss):
        assert float(fn(x, x, spatial_dims=dims)) == pytest.approx(0.0, abs=1e-6)
        assert float(fn(x, y, spatial_dims=dims)) > 0


def test_focal_frequency_loss_reference_formula() -> None:
    p, t = torch.fft.fft2(X2, norm="ortho"), torch.fft.fft2(Y2, norm="ortho")
    d2 = (p.real - t.real) ** 2 + (p.imag - t.imag) ** 2
    w = torch.sqrt(d2)
    w = w / w.amax(dim=(-2, -1), keepdim=True)
    torch.testing.assert_close(focal_frequency_loss(X2, Y2), (w * d2).mean())


def test_frequency_phase_term_sees_a_shift_amplitude_does_not() -> None:
    shifted = torch.roll(X2, shifts=3, dims=-1)
    assert float(frequency_loss(X2, shifted, phase_weight=0.0)) == pytest.approx(0.0, abs=1e-5)
    assert float(frequency_loss(X2, shifted, amplitude_weight=0.0)) > 0.1


@pytest.mark.parametrize("mode", ["diff", "sobel"])
@pytest.mark.parametrize(("x", "y"), [(X2, Y2), (X3, Y3)], ids=["2d", "3d"])
def test_gradient_loss_ignores_offsets(x: torch.Tensor, y: torch.Tensor, mode: str) -> None:
    assert float(gradient_loss(x, x + 3.0, mode=mode)) == pytest.approx(0.0, abs=1e-6)
    assert float(gradient_loss(x, y, mode=mode)) > 0


def test_sobel_of_a_ramp() -> None:
    ramp = torch.arange(8.0).view(1, 1, 1, 8).expand(1, 1, 8, 8)
    d_h, d_w = sobel(ramp)
    torch.testing.assert_close(d_w[..., 1:-1], torch.full((1, 1, 8, 6), 2.0))
    torch.testing.assert_close(d_h, torch.zeros_like(d_h))


def test_adversarial_golden_values() -> None:
    real, fake = torch.ones(2, 1, 3, 3), torch.zeros(2, 1, 3, 3)
    assert float(generator_loss(fake, "lsgan")) == pytest.approx(1.0)
    assert float(discriminator_loss(real, fake, "lsgan")) == pytest.approx(0.0)
    assert float(generator_loss(fake + 2, "hinge")) == pytest.approx(-2.0)
    assert float(discriminator_loss(real, fake, "hinge")) == pytest.approx(1.0)
    for kind in ("lsgan", "hinge"):
        assert GeneratorLoss(kind)(fake) == generator_loss(fake, kind)
        assert DiscriminatorLoss(kind)(real, fake) == discriminator_loss(real, fake, kind)
    with pytest.raises(ValueError, match="kind"):
        GeneratorLoss("wgan")


def test_multiscale_single_scale_is_the_base_loss() -> None:
    torch.testing.assert_close(multiscale_loss(l1_loss, X2, Y2, weights=(1.0,)), l1_loss(X2, Y2))


def test_multiscale_weights_and_deep_supervision() -> None:
    pooled = torch.nn.functional.avg_pool2d
    expected = l1_loss(X2, Y2) + 0.5 * l1_loss(pooled(X2, 2), pooled(Y2, 2))
    torch.testing.assert_close(multiscale_loss(l1_loss, X2, Y2, (1.0, 0.5)), expected)
    deep = [X2, pooled(X2, 2)]
    torch.testing.assert_close(MultiScaleLoss(L1Loss(), (1.0, 0.5))(deep, Y2), expected)
    with pytest.raises(ShapeError):
        multiscale_loss(l1_loss, deep, Y2, (1.0, 0.5, 0.25))
