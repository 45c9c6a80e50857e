"""sat-sr Sentinel-2: the classical guided method, the guided network, target adaptation."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import rasterio
import torch
from scipy import ndimage

from domains.sat_sr import nets as _nets  # noqa: F401
from domains.sat_sr.adapt import AdaptConfig, adapt, adapt_to_scene
from domains.sat_sr.guided import (
    SceneNorm,
    fit_gains,
    guided_sharpen,
    network_input,
    reduced_inputs,
    upsample_to,
)
from domains.sat_sr.sentinel2 import GUIDES, TARGETS, fit_scene
from domains.sat_sr.sr import WEIGHTS_DIR
from suite.errors import ShapeError
from suite.models import create_model
from suite.weights import save_weights

REPO = Path(__file__).resolve().parents[1]
Cli = Callable[..., tuple[int, str, str]]


def _guides(rng: np.random.Generator, side: int = 64) -> np.ndarray:
    """Four smooth-ish random guide bands ``(4, side, side)`` (reflectance-like)."""
    noise = rng.random((4, side, side))
    return np.stack([ndimage.gaussian_filter(b, 1.0) for b in noise]).astype(np.float32)


def _linear_scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Guides, fine targets that are an exact linear mix of them, and the mix ``(6, 5)``."""
    from suite.degradations.mtf import mtf_decimate

    g = _guides(rng)
    mix = np.concatenate([rng.normal(0, 1, (6, 4)), rng.normal(0, 0.1, (6, 1))], axis=1)
    fine = (np.tensordot(mix[:, :4], g, axes=1) + mix[:, 4, None, None]).astype(np.float32)
    return g, mtf_decimate(fine, 0.3, 2), fine


def test_classical_recovers_a_linear_mix_of_the_guides_exactly() -> None:
    g, coarse, fine = _linear_scene(np.random.default_rng(0))
    gains = fit_gains(g, coarse)
    # The detail of a constant is zero: the offset gain is 0, the band gains are the mix.
    mix = np.linalg.lstsq(np.concatenate([g.reshape(4, -1).T, np.ones((g[0].size, 1))], 1),
                          fine.reshape(6, -1).T, rcond=None)[0].T
    np.testing.assert_allclose(gains[:, :4], mix[:, :4], atol=1e-3)
    np.testing.assert_allclose(gains[:, 4], 0.0, atol=1e-4)
    np.testing.assert_allclose(guided_sharpen(g, coarse), fine, atol=1e-4)
    bicubic = upsample_to(coarse, g.shape[1:])
    assert np.abs(bicubic - fine).max() > 100 * np.abs(guided_sharpen(g, coarse) - fine).max()


def test_classical_refuses_grids_not_in_a_2_to_1_ratio() -> None:
    with pytest.raises(ShapeError):
        fit_gains(np.zeros((4, 64, 64), np.float32), np.zeros((6, 30, 32), np.float32))


def test_untrained_zero_tail_network_returns_the_classical_estimate() -> None:
    rng = np.random.default_rng(1)
    g, coarse, _ = _linear_scene(rng)
    coarse = coarse + rng.normal(0, 0.05, coarse.shape).astype(np.float32)
    model = create_model("dsen2", features=8, num_blocks=1, zero_tail=True).eval()
    up = upsample_to(coarse, g.shape[1:])
    classical = fit_scene(g, coarse, None, AdaptConfig(steps=0))(g, up)
    network = fit_scene(g, coarse, model, AdaptConfig(steps=0))(g, up)
    np.testing.assert_allclose(network, classical, atol=1e-5)
    np.testing.assert_allclose(classical, guided_sharpen(g, coarse), atol=1e-6)


def test_scene_norm_inverts_and_network_input_stacks_guides_then_targets() -> None:
    rng = np.random.default_rng(2)
    g, t = rng.random((4, 16, 16)), rng.random((6, 16, 16)) * 3 + 1
    norm = SceneNorm.fit(g, t)
    np.testing.assert_allclose(norm.untargets(norm.targets(t)), t, rtol=1e-5)
    x = network_input(g, t, norm)
    assert x.shape == (10, 16, 16) and abs(float(x[4:].mean())) < 1e-5


def test_adaptation_fits_the_scene_and_leaves_the_model_alone() -> None:
    rng = np.random.default_rng(3)
    g, coarse, _ = _linear_scene(rng)
    coarse = np.abs(coarse) + rng.normal(0, 0.05, coarse.shape).astype(np.float32)
    model = create_model("dsen2", features=8, num_blocks=1, zero_tail=True).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    inputs, truth, _ = reduced_inputs(g, coarse)
    assert inputs.shape == (10, 32, 32) and truth.shape == (6, 32, 32)
    cfg = AdaptConfig(steps=30, lr=1e-3, patch=24, batch=4)
    tuned = adapt(model, inputs, truth, cfg)

    def loss(m: torch.nn.Module) -> float:
        with torch.no_grad():
            return float((m(torch.from_numpy(inputs)[None])[0] - torch.from_numpy(truth))
                         .abs().mean())

    assert loss(tuned) < loss(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert adapt(model, inputs, truth, AdaptConfig(steps=0)) is model
    assert adapt_to_scene(model, g, coarse, AdaptConfig(steps=0)) is model


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_sat_sr",
                                                  REPO / "benchmarks" / "bench_sat_sr.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not (WEIGHTS_DIR / "s2_dsen2.safetensors").is_file(),
                    reason="shipped Sentinel-2 weights not installed")
def test_benchmark_predictions_never_depend_on_the_reference(
        monkeypatch: pytest.MonkeyPatch) -> None:
    bench = _bench()
    rng = np.random.default_rng(4)
    g, coarse, fine = _linear_scene(rng)
    seen: list[dict[str, np.ndarray]] = []
    predict = bench.s2_predictions

    def recording(*args: object, **kwargs: object) -> dict[str, np.ndarray]:
        seen.append(predict(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(bench, "s2_predictions", recording)
    rows = []
    for truth in (fine, fine + rng.normal(0, 1.0, fine.shape).astype(np.float32)):
        monkeypatch.setattr(bench, "s2_reduced", lambda t=truth: (g, np.abs(coarse), t))
        rows.append(bench.s2_rows(adapt_steps=3))
    assert len(seen) == 2 and seen[0].keys() == seen[1].keys() and len(seen[0]) == 4
    for name in seen[0]:
        np.testing.assert_array_equal(seen[0][name], seen[1][name])
    assert rows[0][1]["rmse_reflectance"] != rows[1][1]["rmse_reflectance"]


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read().astype(np.float64)


def test_s2_classical_cli_matches_the_array_method(run_cli: Cli, s2_set: Path,
                                                   tmp_path: Path) -> None:
    out = tmp_path / "classical.tif"
    code, _, err = run_cli("enhance", "sat-sr", s2_set, "-o", out, "--sentinel2",
                           "--s2-method", "classical", "--quiet")
    assert code == 0, err
    g = np.concatenate([_read(s2_set / f"T_{b}.tif") for b in GUIDES]) / 10000
    t = np.concatenate([_read(s2_set / f"T_{b}.tif") for b in TARGETS]) / 10000
    expected = guided_sharpen(g.astype(np.float32), t.astype(np.float32)) * 10000
    got = _read(out)
    inner = (slice(None), slice(8, -8), slice(8, -8))  # raster-edge mirroring differs
    assert np.abs(got[inner] - np.clip(np.round(expected), 0, 65535)[inner]).max() <= 1
    bicubic = upsample_to(t.astype(np.float32), g.shape[1:]) * 10000
    assert np.abs(got - bicubic).mean() > 1  # the guides' detail was injected


def test_s2_refuses_weights_of_the_old_scheme(run_cli: Cli, s2_set: Path,
                                              tmp_path: Path) -> None:
    model = create_model("dsen2", features=8, num_blocks=1)
    card = {"architecture": "dsen2", "arguments": {"features": 8, "num_blocks": 1},
            "normalization": {"input": "reflectance * 5"}, "training": {}, "validation": {}}
    weights = save_weights(tmp_path / "old.safetensors", model, card)
    out = tmp_path / "s2.tif"
    code, _, err = run_cli("enhance", "sat-sr", s2_set, "-o", out, "--sentinel2",
                           "--weights", weights)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "scheme" in err
    assert not out.exists()
