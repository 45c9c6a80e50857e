"""cloud-inpaint residual model: the torch harmonic and smooth fills, the Poisson-clone prior, and
that an untrained residual network is exactly its classical fill inside the mask and the input
outside."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.restoration import inpaint_biharmonic

from domains.cloud_inpaint.clouds import make_clouds
from domains.cloud_inpaint.config import CloudConfig
from domains.cloud_inpaint.fill import harmonic_fill, smooth_fill
from domains.cloud_inpaint.inpaint import (
    band_planes,
    classical_prior,
    clear_stats,
    composite,
    model_filler,
)
from domains.cloud_inpaint.net import ResidualInpainter
from domains.cloud_inpaint.train import band_batch, build_models, make_degrade
from suite.errors import ShapeError
from suite.weights import load_model, save_weights

WEIGHTS = Path(__file__).resolve().parents[1] / "domains" / "cloud_inpaint" / "weights"


def _smooth(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    return np.stack([np.sin(3 * yy) + xx, np.cos(2 * xx) * yy, yy * xx, yy - xx])


@pytest.mark.parametrize("shape", [(48, 48), (37, 53)])
def test_harmonic_fill_solves_laplace_and_keeps_clear_pixels(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(2, 3, *shape)))
    m = torch.from_numpy(np.stack([make_clouds(shape, 0.4, rng).mask for _ in range(2)]))[:, None]
    out = harmonic_fill(x, m.double(), iters=60)
    keep = ~m.expand_as(x)
    assert torch.equal(out[keep], x[keep])  # bit for bit outside the mask
    p = torch.nn.functional.pad(out, (1, 1, 1, 1), mode="replicate")
    lap = (p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:]) / 4 - out
    assert lap[~keep].abs().max() < 1e-3  # discrete Laplace equation holds inside the hole


def test_harmonic_fill_is_close_to_skimage_biharmonic_on_a_smooth_image() -> None:
    img = _smooth(40, 40)
    mask = make_clouds((40, 40), 0.3, np.random.default_rng(1)).mask
    ours = harmonic_fill(torch.from_numpy(img[None]), torch.from_numpy(mask[None, None] * 1.0))
    theirs = inpaint_biharmonic(np.moveaxis(img, 0, -1), mask, channel_axis=-1)
    err = np.abs(ours[0].numpy() - np.moveaxis(theirs, -1, 0))[:, mask]
    assert err.max() < 0.1 * np.ptp(img)


def test_harmonic_fill_reproduces_a_linear_ramp() -> None:
    # a linear function is harmonic: inside a hole away from the border it is recovered
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float64)
    x = torch.from_numpy(0.3 * yy - 0.2 * xx)[None, None]
    m = torch.zeros_like(x)
    m[..., 8:24, 10:20] = 1
    assert (harmonic_fill(x, m, iters=200) - x).abs().max() < 1e-3


def test_smooth_fill_keeps_clear_pixels_and_is_smoother_at_the_edge() -> None:
    rng = np.random.default_rng(4)
    img = torch.from_numpy(_smooth(48, 48))[None]
    m = torch.from_numpy(make_clouds((48, 48), 0.2, rng).mask)[None, None]
    x = img + 0.0
    assert torch.equal(smooth_fill(x, m.double(), 0), harmonic_fill(x, m.double()))
    out = smooth_fill(x, m.double())
    keep = ~m.expand_as(x)
    assert torch.equal(out[keep], x[keep])
    # on a smooth image the relaxed fill is closer to the truth than the harmonic one
    err_h = (harmonic_fill(x, m.double()) - img)[~keep].abs().mean()
    assert (out - img)[~keep].abs().mean() < err_h


def test_harmonic_fill_rejects_bad_shapes() -> None:
    with pytest.raises(ShapeError):
        harmonic_fill(torch.zeros(1, 4, 8, 8), torch.zeros(1, 2, 8, 8))


def test_poisson_clone_of_a_shifted_reference_is_exact() -> None:
    # a reference that differs by a constant per band is cloned back exactly
    z = torch.from_numpy(_smooth(32, 32))[None]
    m = torch.zeros(1, 1, 32, 32, dtype=z.dtype)
    m[..., 5:20, 8:25] = 1
    prior = classical_prior(z * (1 - m), m, z + 0.7)
    assert (prior - z).abs().max() < 1e-3


@pytest.mark.parametrize("guided", [False, True])
def test_untrained_residual_model_is_the_classical_fill(guided: bool) -> None:
    cfg = CloudConfig()
    cfg.model.guided = guided
    gen, _ = build_models(cfg)
    rng = np.random.default_rng(2)
    degrade = make_degrade(cfg)
    x = torch.from_numpy(np.stack([degrade(rng.random((4, 48, 48)).astype(np.float32), rng)
                                   for _ in range(2)]))
    inputs, target, mask = band_batch(x, guided)
    with torch.no_grad():
        out = gen(inputs)
    assert torch.equal(out[mask == 0], target[mask == 0])
    assert torch.equal(out, inputs[:, 3:4])
    z, m = x[:, :4], x[:, 4:5]
    ref = x[:, 5:] if guided else None
    prior = classical_prior(z * (1 - m), m, ref).reshape(-1, 1, 48, 48)
    assert torch.allclose(out, prior)


def test_untrained_filler_equals_smooth_fill_and_copies_clear_pixels(tmp_path: Path) -> None:
    img = (_smooth(50, 60) + 2.0) * 0.1
    mask = make_clouds((50, 60), 0.3, np.random.default_rng(3)).mask
    hidden = np.where(mask[None], 0.0, img)
    path = save_weights(tmp_path / "w.safetensors", ResidualInpainter(5, 8, 2),
                        {"domain": "cloud-inpaint", "architecture": "cloud_residual_inpainter",
                         "arguments": {"in_channels": 5, "features": 8, "num_blocks": 2},
                         "normalization": {}, "training": {}, "validation": {}})
    filled = model_filler(load_model(path)[0])(hidden, mask)
    assert np.array_equal(filled[:, ~mask], hidden[:, ~mask])
    mu, sd = clear_stats(hidden, ~mask)
    t = torch.from_numpy(((hidden - mu) / sd)[None].astype(np.float32))
    h = smooth_fill(t, torch.from_numpy(mask[None, None] * 1.0).float())
    expected = composite(hidden, mask, h[0].double().numpy() * sd + mu)
    assert np.allclose(filled, expected, atol=1e-5)
    assert np.abs(filled - img)[:, mask].mean() < 0.1 * np.abs(hidden.mean() - img[:, mask]).max()


def test_band_planes_layout() -> None:
    z = torch.randn(2, 4, 16, 16)
    m = torch.zeros(2, 1, 16, 16)
    m[..., 4:9, 4:9] = 1
    planes = band_planes(z, m, torch.randn(2, 4, 16, 16))
    assert planes.shape == (8, 7, 16, 16)
    assert torch.equal(planes[:, 2:3], m.expand(2, 4, 16, 16).reshape(8, 1, 16, 16))
    assert torch.equal(planes[0, 0], z[0, 0] * (1 - m[0, 0]))


@pytest.mark.parametrize("name", ["cloud_inpaint", "cloud_inpaint_guided"])
def test_shipped_weights_are_residual_and_load(name: str) -> None:
    path = WEIGHTS / f"{name}.safetensors"
    model, card = load_model(path)
    assert isinstance(model, ResidualInpainter)
    assert card["architecture"] == "cloud_residual_inpainter"
    assert "suite train cloud-inpaint" in card["training"]["command"]


def test_the_card_command_reproduces_the_run_with_its_overrides() -> None:
    """The card dropped every --set and named a lock-file wrapper that was not run."""
    import argparse

    from domains.cloud_inpaint.config import CloudConfig
    from domains.cloud_inpaint.train import model_card

    args = argparse.Namespace(data=[Path("scene.tif")], config=None, out=Path("runs/ci"),
                              overrides=["train.steps=2", "loss.adversarial=0"])
    command = model_card(CloudConfig(), args, {}, 1.0, 1)["training"]["command"]
    assert command == ("suite train cloud-inpaint --data scene.tif --set train.steps=2 "
                       "--set loss.adversarial=0 --out runs/ci")


def test_a_large_fill_shows_its_progress_when_asked(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A 2000-pixel scene filled for minutes with nothing on screen."""
    img = (_smooth(300, 260) + 2.0) * 0.1
    mask = make_clouds((300, 260), 0.3, np.random.default_rng(3)).mask
    path = save_weights(tmp_path / "w.safetensors", ResidualInpainter(5, 8, 2),
                        {"domain": "cloud-inpaint", "architecture": "cloud_residual_inpainter",
                         "arguments": {"in_channels": 5, "features": 8, "num_blocks": 2},
                         "normalization": {}, "training": {}, "validation": {}})
    model = load_model(path)[0]
    quiet = model_filler(model)(img, mask)
    assert "tiles" not in capsys.readouterr().err
    shown = model_filler(model, progress=True)(img, mask)
    assert "tiles" in capsys.readouterr().err and np.array_equal(quiet, shown)
