"""PyTorch int8 (FX, x86): close to fp32, fp32 at the ends, cached once, dynamic sizes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from suite import export as ex
from suite.errors import UsageError
from suite.int8 import cached_int8, fp32_module_names, quantize_torch_int8
from suite.models import create_model
from suite.weights import save_weights

ARGS = {"spatial_dims": 3, "in_channels": 1, "out_channels": 1, "channels": [8, 16],
        "residual": True, "backend": "lean"}


CARD = {"architecture": "unet", "arguments": ARGS, "domain": "tiny", "normalization": {},
        "training": {"note": "randomly initialized, tests only"}, "validation": {}}


def _model() -> nn.Module:
    torch.manual_seed(0)
    return create_model("unet", **ARGS).eval()


def _patches(n: int = 6, size: tuple[int, ...] = (16, 16, 8)) -> list[np.ndarray]:
    gen = np.random.default_rng(0)
    # smooth-ish inputs with noise, like a denoiser's: a ramp plus white noise
    ramp = np.linspace(-1, 1, size[0], dtype=np.float32)[:, None, None]
    return [(ramp + 0.1 * gen.normal(size=size)).astype(np.float32)[None] for _ in range(n)]


def test_fp32_modules_are_the_ends_and_the_transposed_convolutions() -> None:
    assert fp32_module_names(_model()) == ["head", "stem.0", "up.0"]
    with pytest.raises(UsageError, match="convolutional"):
        fp32_module_names(nn.Sequential(nn.Linear(2, 2)))


def test_quantized_model_is_int8_inside_and_close_to_fp32() -> None:
    model = _model()
    quantized = quantize_torch_int8(model, _patches())
    kinds = {type(m).__module__ for m in quantized.modules()}
    assert any("quantized" in k for k in kinds)  # int8 convolutions really are there
    assert isinstance(quantized.get_submodule("stem.0"), nn.Conv3d)  # the ends stay fp32
    assert isinstance(quantized.get_submodule("head"), nn.Conv3d)
    x = torch.from_numpy(np.stack(_patches(2, (24, 16, 8)), 0))  # another size than calibrated
    with torch.no_grad():
        error = ex.relative_error(model(x), quantized(x))
    assert 0 < error < 5e-2
    with pytest.raises(UsageError, match="at least one patch"):
        quantize_torch_int8(model, [])


def test_space_to_depth_model_quantizes_its_inner_network_and_is_cached(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUITE_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    args = {**ARGS, "unshuffle": [2, 2, 2]}
    model = create_model("unet", **args).eval()
    quantized = quantize_torch_int8(model, _patches())
    assert any("quantized" in type(m).__module__ for m in quantized.net.modules())
    weights = save_weights(tmp_path / "s2d.safetensors", model, {**CARD, "arguments": args})
    scripted = cached_int8(weights, model, _patches)  # the wrapper traces as TorchScript
    x = torch.from_numpy(np.stack(_patches(2, (32, 16, 8)), 0))  # not the calibrated size
    with torch.no_grad():
        assert 0 < ex.relative_error(model(x), scripted(x)) < 5e-2


def test_int8_model_is_cached_once_and_runs_at_any_size(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUITE_CACHE", str(tmp_path / "cache"))
    model = _model()
    weights = save_weights(tmp_path / "w.safetensors", model, CARD)
    calls: list[int] = []

    def calibration() -> list[np.ndarray]:
        calls.append(1)
        return _patches()

    first = cached_int8(weights, model, calibration)
    second = cached_int8(weights, model, calibration)
    assert calls == [1] and len(list((tmp_path / "cache" / "int8").glob("*.pt"))) == 1
    # a fresh process loading the cache: PyTorch's C++ unpickler printed a deprecation notice
    load = "import sys, torch; from suite.int8 import cached_int8; " \
           "cached_int8(sys.argv[1], torch.nn.Identity(), list)"
    run = subprocess.run([sys.executable, "-c", load, str(weights)], capture_output=True,
                         text=True, env={**os.environ, "SUITE_CACHE": str(tmp_path / "cache")})
    assert run.returncode == 0 and run.stderr == "", run.stderr
    x = torch.from_numpy(np.stack(_patches(3, (32, 16, 16)), 0))
    with torch.no_grad():
        assert torch.equal(first(x), second(x))
        assert ex.relative_error(model(x), first(x)) < 5e-2


def test_runtime_needs_calibration(tmp_path: Path) -> None:
    weights = save_weights(tmp_path / "w.safetensors", _model(), CARD)
    with pytest.raises(UsageError, match="tiny has no int8 calibration data"):
        ex.load_runtime_model(weights, "torch-int8")


class _Branchy(nn.Module):
    """A model with data-dependent control flow, which FX cannot trace."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) if x.sum() > 0 else x


def test_untraceable_model_is_refused_clearly() -> None:
    with pytest.raises(UsageError, match="_Branchy cannot be traced for PyTorch int8"):
        quantize_torch_int8(_Branchy(), _patches(1))


def test_calibration_crops_cycle_through_arrays_and_clip() -> None:
    big = np.arange(2 * 10 * 12, dtype=np.float64).reshape(2, 10, 12)
    small = np.ones((2, 4, 30))
    crops = ex.calibration_crops([big, small], (8, 8), 4, seed=1)
    assert [c.shape for c in crops] == [(2, 8, 8), (2, 4, 8), (2, 8, 8), (2, 4, 8)]
    assert all(c.dtype == np.float32 for c in crops)
    first = crops[0]
    y, x = np.argwhere(big[0] == first[0, 0, 0])[0]  # a real window of the source
    np.testing.assert_array_equal(first, big[:, y:y + 8, x:x + 8])


def test_int8_models_keep_the_size_multiple_the_tiler_fits_to(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Quantizing traces the network, which drops the attribute; without it the tiler fell back
    # to the patch sizes' common divisor, which a deep folded network does not divide into.
    from suite.export import load_runtime_model

    monkeypatch.setenv("SUITE_CACHE", str(tmp_path / "cache"))
    args = {**ARGS, "unshuffle": [2, 2, 2]}
    model = create_model("unet", **args).eval()
    assert quantize_torch_int8(model, _patches()).multiple == model.multiple
    weights = save_weights(tmp_path / "s2d.safetensors", model, {**CARD, "arguments": args})
    loaded, _ = load_runtime_model(weights, "torch-int8", calibration=_patches)
    assert loaded.multiple == model.multiple
