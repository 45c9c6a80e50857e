"""Metrics against scikit-image golden references; no-reference scores rank degradations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from suite.errors import ShapeError
from suite.metrics import brisque_distance, brisque_features, niqe, noise_std_flat, psnr, ssim
from suite.metrics.noref import aggd_fit, ggd_fit, load_pristine_model, to_luminance

RNG = np.random.default_rng(0)
SK = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}


def _pair(shape: tuple[int, ...], scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    ref = RNG.random(shape) * scale
    return np.clip(ref + 0.1 * scale * RNG.standard_normal(shape), 0, scale), ref


@pytest.mark.parametrize("shape", [(32, 40), (16, 20, 24)])
@pytest.mark.parametrize("data_range", [1.0, 400.0])
def test_psnr_and_ssim_match_skimage(shape: tuple[int, ...], data_range: float) -> None:
    pred, ref = _pair(shape, data_range)
    assert psnr(pred, ref, data_range) == pytest.approx(
        peak_signal_noise_ratio(ref, pred, data_range=data_range), abs=1e-4
    )
    expected = structural_similarity(pred, ref, data_range=data_range, **SK)
    assert ssim(pred, ref, data_range) == pytest.approx(expected, abs=1e-4)


def test_ssim_slice_average_and_channels() -> None:
    pred, ref = _pair((14, 20, 24))
    per_slice = [
        structural_similarity(pred[:, j], ref[:, j], data_range=1.0, **SK) for j in range(20)
    ]
    assert ssim(pred, ref, 1.0, slice_axis=1) == pytest.approx(np.mean(per_slice), abs=1e-4)
    rgb_p, rgb_r = _pair((24, 26, 3))
    expected = structural_similarity(rgb_p, rgb_r, data_range=1.0, channel_axis=-1, **SK)
    assert ssim(rgb_p, rgb_r, 1.0, channel_axis=-1) == pytest.approx(expected, abs=1e-4)


def test_metrics_accept_torch_float32() -> None:
    pred, ref = _pair((24, 24))
    tp, tr = torch.from_numpy(pred).float(), torch.from_numpy(ref).float()
    assert ssim(tp, tr, 1.0) == pytest.approx(ssim(pred, ref, 1.0), abs=1e-4)
    assert psnr(tp, tr, 1.0) == pytest.approx(psnr(pred, ref, 1.0), abs=1e-4)
    assert psnr(ref, ref, 1.0) == float("inf")


def test_metric_shape_errors() -> None:
    with pytest.raises(ShapeError):
        psnr(np.zeros((4, 4)), np.zeros((4, 5)), 1.0)
    with pytest.raises(ShapeError):
        ssim(np.zeros((16, 16)), np.zeros((16, 16)), 1.0, slice_axis=0)


def test_noise_std_flat() -> None:
    img = np.zeros((50, 50))
    mask = np.zeros_like(img, dtype=bool)
    mask[10:40, 10:40] = True
    img[mask] = RNG.normal(40.0, 12.0, int(mask.sum()))
    img[~mask] = 1000.0
    assert noise_std_flat(img, mask) == pytest.approx(np.std(img[mask]))
    assert noise_std_flat(img, mask) == pytest.approx(12.0, rel=0.1)
    with pytest.raises(ShapeError):
        noise_std_flat(img, mask[:10])


# ---- no-reference: NIQE and the BRISQUE-feature distance (fitted pristine models) ----


def _test_image(name: str) -> np.ndarray:
    """A fitting image, or ``retina_heldout``: a 512x512 crop of an image not used to fit."""
    if name == "retina_heldout":
        return to_luminance(data.retina())[450:962, 450:962]
    return to_luminance(getattr(data, name)())


@pytest.mark.parametrize("score", [niqe, brisque_distance], ids=["niqe", "brisque_distance"])
@pytest.mark.parametrize("name", ["camera", "astronaut", "chelsea", "retina_heldout"])
def test_noref_scores_rank_blur_and_noise_worse(score: object, name: str) -> None:
    assert callable(score)
    lum = _test_image(name)
    noisy = np.clip(lum + np.random.default_rng(0).normal(0, 20, lum.shape), 0, 255)
    clean = score(lum)
    assert clean < score(gaussian_filter(lum, 2.0))
    assert clean < score(noisy)


def test_noref_data_range_and_rgb() -> None:
    rgb = data.astronaut()
    assert niqe(rgb) == pytest.approx(niqe(rgb / 255.0, data_range=1.0), rel=1e-6)
    assert brisque_features(to_luminance(rgb)).shape == (36,)
    with pytest.raises(ShapeError):
        niqe(np.zeros((100, 100)))


def test_shipped_model_loads_without_pickle() -> None:
    model = load_pristine_model()
    assert model.niqe_mu.shape == (36,) and model.niqe_cov.shape == (36, 36)
    assert model.brisque_mu.shape == (36,) and model.patch_size == 96


def test_ggd_and_aggd_fits_recover_known_shapes() -> None:
    rng = np.random.default_rng(0)
    assert ggd_fit(rng.normal(0, 1, 200_000))[0] == pytest.approx(2.0, abs=0.05)
    assert ggd_fit(rng.laplace(0, 1, 200_000))[0] == pytest.approx(1.0, abs=0.05)
    alpha, mean, lvar, rvar = aggd_fit(rng.normal(0, 2, 200_000))
    assert alpha == pytest.approx(2.0, abs=0.05) and abs(mean) < 0.05
    assert lvar == pytest.approx(4.0, rel=0.05) and rvar == pytest.approx(4.0, rel=0.05)
