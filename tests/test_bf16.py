"""bfloat16 runtime: close to fp32, float32 out, the residual added in float32."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipelines.commands import RUNTIMES as CLI_RUNTIMES
from suite import bf16
from suite import export as ex
from suite.bf16 import Bfloat16Net, to_bfloat16
from suite.models import create_model
from suite.weights import save_weights

LEAN = {"spatial_dims": 3, "in_channels": 1, "out_channels": 1, "channels": [8, 16],
        "residual": True, "backend": "lean"}


@pytest.mark.parametrize("args", [LEAN, {**LEAN, "unshuffle": [2, 2, 2]},
                                  {**LEAN, "backend": "monai", "num_res_units": 1}],
                         ids=["lean", "space-to-depth", "monai"])
def test_bf16_is_close_to_fp32_and_keeps_the_residual_in_fp32(args: dict) -> None:
    torch.manual_seed(0)
    model = create_model("unet", **args).eval()
    fast = to_bfloat16(model)
    assert isinstance(fast, Bfloat16Net) and fast.residual
    assert getattr(fast, "multiple", None) == getattr(model, "multiple", None)  # callers pad to it
    # A bright input (1.0 = 1000 HU in CT units): a bf16 residual would round it to 2**-7.
    x = 1.0 + 0.05 * torch.randn(2, 1, 16, 16, 8)
    with torch.no_grad():
        ref, out = model(x), fast(x)
    assert out.dtype == torch.float32
    correction_error = (out - ref).abs().max() / (ref - x).abs().max()
    assert 0 < correction_error < 0.05
    assert next(model.parameters()).dtype == torch.float32  # the original is untouched


def test_bf16_adds_the_input_back_exactly() -> None:
    model = create_model("unet", **LEAN).eval()
    torch.nn.init.zeros_(model.head.weight)
    torch.nn.init.zeros_(model.head.bias)  # the network part outputs 0: out must be x itself
    x = 1.0 + 0.05 * torch.randn(1, 1, 16, 16, 8)
    with torch.no_grad():
        assert torch.equal(to_bfloat16(model)(x), x)  # a bf16 sum would round 1.0x to 2**-7


def _tiny_weights(tmp_path: Path) -> Path:
    model = create_model("unet", **LEAN).eval()
    card = {"architecture": "unet", "arguments": LEAN, "domain": "tiny", "normalization": {},
            "training": {"note": "randomly initialized, tests only"}, "validation": {}}
    return save_weights(tmp_path / "w.safetensors", model, card)


def test_runtime_loads_bf16_and_cli_offers_every_runtime(tmp_path: Path) -> None:
    weights = _tiny_weights(tmp_path)
    loaded, _ = ex.load_runtime_model(weights, "torch-bf16")
    assert isinstance(loaded, Bfloat16Net)
    assert set(CLI_RUNTIMES) == set(ex.RUNTIMES)


@pytest.mark.parametrize("native", [True, False])
def test_bf16_warns_on_a_cpu_without_bf16_instructions(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        native: bool) -> None:
    weights = _tiny_weights(tmp_path)
    monkeypatch.setattr(bf16, "cpu_has_bf16", lambda: native)
    ex.load_runtime_model(weights, "torch-bf16", device="cpu")
    warned = "no native bfloat16 instructions" in capsys.readouterr().err
    assert warned is not native
