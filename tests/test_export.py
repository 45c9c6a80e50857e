"""Export to ONNX / TorchScript, ONNX Runtime inference and int8: outputs match PyTorch.

Tolerance: fp32 exports must satisfy ``max|export - torch| / max|torch| <= 1e-4``
(:data:`suite.export.FP32_RTOL`); int8 exports are checked to stay within 5e-2 of that measure
(their quality on real data is in ``benchmarks/bench_deploy.py`` / ``docs/deploy.md``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from pipelines import export as pipeline_export  # noqa: E402
from suite import export as ex  # noqa: E402
from suite import plugins  # noqa: E402
from suite.domain import Domain  # noqa: E402
from suite.engine.tiling import TileConfig, tiled_inference  # noqa: E402
from suite.errors import InputError, UsageError  # noqa: E402
from suite.models import create_model  # noqa: E402
from suite.weights import load_model, save_weights  # noqa: E402

SMALL_MODELS: dict[str, tuple[dict[str, Any], list[int]]] = {
    "espcn": ({"in_channels": 1, "scale": 2}, [24, 20]),
    "edsr": ({"in_channels": 1, "scale": 2, "features": 8, "num_blocks": 1,
              "global_residual": True}, [24, 20]),
    "unet": ({"spatial_dims": 3, "in_channels": 1, "out_channels": 1, "channels": [4, 8],
              "residual": True, "backend": "lean"}, [16, 16, 8]),
}


def _weights(tmp_path: Path, name: str) -> Path:
    """A freshly initialized (test-only) registry model saved with a full card."""
    args, patch = SMALL_MODELS[name]
    torch.manual_seed(0)
    model = create_model(name, **args)
    card = {"architecture": name, "arguments": args, "normalization": {"kind": "none"},
            "training": {"note": "randomly initialized, tests only"}, "validation": {},
            "inference": {"patch": patch}}
    return save_weights(tmp_path / f"{name}.safetensors", model, card)


def _bigger(card: dict[str, Any]) -> torch.Tensor:
    """A batch of 3 at another spatial size than the traced example (dynamic axes)."""
    example = ex.example_input(card)
    size = [s + 8 for s in example.shape[2:]]
    return torch.randn(3, example.shape[1], *size, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", sorted(SMALL_MODELS))
def test_onnx_matches_torch_at_other_sizes(tmp_path: Path, name: str) -> None:
    model, card = load_model(_weights(tmp_path, name))
    path = ex.export_onnx(model, ex.example_input(card), tmp_path / "m.onnx", card)
    x = _bigger(card)
    with torch.inference_mode():
        reference = model(x)
    out = ex.OnnxModule(path, "cpu")(x)
    assert out.shape == reference.shape and out.dtype == torch.float32
    assert ex.relative_error(reference, out) <= ex.FP32_RTOL
    assert ex.read_onnx_card(path) == card


@pytest.mark.parametrize("name", sorted(SMALL_MODELS))
def test_torchscript_matches_torch_and_carries_card(tmp_path: Path, name: str) -> None:
    model, card = load_model(_weights(tmp_path, name))
    path = ex.export_torchscript(model, ex.example_input(card), tmp_path / "m.pt", card)
    extra = {ex.TORCHSCRIPT_CARD: ""}
    loaded = torch.jit.load(str(path), _extra_files=extra)
    x = _bigger(card)
    with torch.inference_mode():
        assert ex.relative_error(model(x), loaded(x)) <= ex.FP32_RTOL
    assert ex.json.loads(extra[ex.TORCHSCRIPT_CARD]) == card


def test_onnx_module_drops_into_tiled_inference(tmp_path: Path) -> None:
    model, card = load_model(_weights(tmp_path, "unet"))
    path = ex.export_onnx(model, ex.example_input(card), tmp_path / "m.onnx", card)
    onnx_model = ex.OnnxModule(path, "cpu").to("cpu").eval()  # module-style calls are no-ops
    x = torch.randn(1, 1, 40, 36, 20)
    config = TileConfig(patch_size=(16, 16, 8), overlap=(4, 4, 2), batch_size=3)
    reference = tiled_inference(x, model, config)
    out = tiled_inference(x, onnx_model, config)
    assert ex.relative_error(reference, out) <= ex.FP32_RTOL


def _calibration(n: int = 6) -> list[np.ndarray]:
    gen = np.random.default_rng(0)
    return [gen.normal(size=(1, 16, 16, 8)).astype(np.float32) for _ in range(n)]


def test_folded_network_exports_and_reports_its_size_multiple(tmp_path: Path) -> None:
    args = {"spatial_dims": 3, "in_channels": 1, "out_channels": 1, "channels": [4, 8],
            "residual": True, "backend": "lean", "unshuffle": [4, 4, 2]}
    torch.manual_seed(0)
    model = create_model("unet", **args)
    assert model.multiple == (8, 8, 4)
    card = {"architecture": "unet", "arguments": args, "inference": {"patch": [16, 16, 8]}}
    path = ex.export_onnx(model, ex.example_input(card), tmp_path / "m.onnx", card)
    # the tiler fits patches to it; without it, ONNX runs fell back to the patch sizes' gcd
    onnx_model = ex.OnnxModule(path, "cpu")
    assert onnx_model.multiple == (8, 8, 4)
    x = torch.randn(2, 1, 24, 16, 12, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():  # the fold exports at all (its memory format did not)
        assert ex.relative_error(model.eval()(x), onnx_model(x)) <= ex.FP32_RTOL
    foreign = {**card, "architecture": "made-elsewhere"}
    other = ex.export_onnx(model, ex.example_input(card), tmp_path / "o.onnx", foreign)
    assert not hasattr(ex.OnnxModule(other, "cpu"), "multiple")


def test_int8_is_qdq_close_and_keeps_the_residual_exact(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    model, card = load_model(_weights(tmp_path, "unet"))
    fp32 = ex.export_onnx(model, ex.example_input(card), tmp_path / "m.onnx", card)
    int8 = ex.quantize_int8(fp32, tmp_path / "m8.onnx", _calibration())
    assert not [r for r in caplog.records if "pre-processing" in r.getMessage()]  # stray lines
    proto = onnx.load(str(int8))
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    tail = [n for n in proto.graph.node if "output" in n.output]
    assert tail[0].op_type == "Add" and "input" in tail[0].input  # fp32 input, not its 8-bit copy
    x = torch.from_numpy(np.stack(_calibration(2)))
    with torch.inference_mode():
        reference = model(x)
    error = ex.relative_error(reference, ex.OnnxModule(int8, "cpu")(x))
    assert 0 < error < 5e-2
    quant = ex.read_onnx_card(int8)["quantization"]
    assert quant["format"] == "QDQ" and quant["calibration_patches"] == 6


def test_int8_keeps_the_bicubic_skip_path_exact(tmp_path: Path) -> None:
    model, card = load_model(_weights(tmp_path, "edsr"))
    fp32 = ex.export_onnx(model, ex.example_input(card), tmp_path / "m.onnx", card)
    gen = np.random.default_rng(0)
    calibration = [gen.uniform(size=(1, 24, 20)).astype(np.float32) for _ in range(4)]
    int8 = ex.quantize_int8(fp32, tmp_path / "m8.onnx", calibration)
    resize = [n for n in onnx.load(str(int8)).graph.node if n.op_type == "Resize"]
    assert resize and resize[0].input[0] == "input"  # the exact input, not its 8-bit copy
    assert resize[0].name in ex.read_onnx_card(int8)["quantization"]["fp32_nodes"]


def test_calibration_reader_protocol() -> None:
    reader = ex.PatchCalibrationReader([np.zeros((1, 4, 4)), np.ones((1, 1, 4, 4))], "x", 2)
    first = reader.get_next()
    assert first is not None and first["x"].shape == (1, 1, 4, 4)
    assert first["x"].dtype == np.float32
    assert reader.get_next() is not None and reader.get_next() is None
    reader.rewind()
    assert reader.get_next() is not None
    with pytest.raises(UsageError):
        ex.PatchCalibrationReader([])
    with pytest.raises(UsageError):
        ex.PatchCalibrationReader([np.zeros((4, 4))], "x", 2).get_next()


def test_bad_onnx_files_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(InputError, match=r"bad\.onnx"):
        ex.OnnxModule(bad)
    with pytest.raises(InputError, match="not found"):
        ex.OnnxModule(tmp_path / "missing.onnx")
    with pytest.raises(InputError, match=r"bad\.onnx"):
        ex.read_onnx_card(bad)


def test_load_runtime_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUITE_CACHE", str(tmp_path / "cache"))
    weights = _weights(tmp_path, "espcn")
    torch_model, card = ex.load_runtime_model(weights, "torch")
    ort_model, card2 = ex.load_runtime_model(weights, "onnxruntime", "cpu")
    assert isinstance(torch_model, nn.Module) and isinstance(ort_model, ex.OnnxModule)
    assert card2 == card and len(list((tmp_path / "cache" / "onnx").glob("*.onnx"))) == 1
    x = torch.rand(2, 1, 12, 12)
    with torch.inference_mode():
        assert ex.relative_error(torch_model(x), ort_model(x)) <= ex.FP32_RTOL
    with pytest.raises(UsageError, match="--runtime onnxruntime"):
        ex.load_runtime_model(ort_model.path, "torch")
    with pytest.raises(UsageError):
        ex.load_runtime_model(weights, "tensorrt")


# --- the `suite export` command --------------------------------------------------------------


class TinyDomain(Domain):
    """A domain whose default weights are a small registry model (always present in tests)."""

    name = "tiny"
    task = "test domain"

    def __init__(self, weights: Path) -> None:
        self.weights = weights

    def default_weights(self) -> Path | None:
        return self.weights

    def calibration_patches(self, count: int) -> list[np.ndarray]:
        return _calibration(min(count, 4))


def _args(tmp_path: Path, **kw: Any) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    pipeline_export.add_arguments(parser)
    argv = ["-o", str(kw.pop("output", tmp_path / "out.onnx"))]
    for key, value in kw.items():
        flag = "--" + key.replace("_", "-")
        argv += [flag] if value is True else [flag, *map(str, np.atleast_1d(value))]
    args = parser.parse_args(argv)
    args.domain, args.quiet = "tiny", True
    return args


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TinyDomain:
    domain = TinyDomain(_weights(tmp_path, "unet"))
    entry = plugins.DomainEntry("tiny", "tests:tiny", domain, None)
    monkeypatch.setattr(plugins, "discover", lambda: {"tiny": entry})
    return domain


@pytest.mark.parametrize(("fmt", "int8", "suffix"), [("onnx", False, ".onnx"),
                                                     ("onnx", True, ".onnx"),
                                                     ("torchscript", False, ".pt"),
                                                     ("torchscript", True, ".pt")])
def test_export_command_writes_model_and_card(tmp_path: Path, tiny: TinyDomain, fmt: str,
                                              int8: bool, suffix: str) -> None:
    out = tmp_path / f"model{suffix}"
    kw: dict[str, Any] = {"output": out, "format": fmt} | ({"int8": True} if int8 else {})
    assert pipeline_export.export(_args(tmp_path, **kw)) == 0
    card = ex.json.loads(out.with_suffix(".json").read_text())
    assert card["architecture"] == "unet" and card["export"]["check"]["relative_error"] < 5e-2
    names = {"onnx": "onnx-int8-qdq", "torchscript": "torchscript-int8-x86"}
    assert card["export"]["format"] == (names[fmt] if int8 else fmt)
    if fmt == "onnx":
        assert ex.read_onnx_card(out) == card
    assert ("quantization" in card) == int8
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["unet.safetensors", "unet.json", out.name, out.with_suffix(".json").name])


def test_export_replaces_only_its_own_earlier_export(tmp_path: Path, tiny: TinyDomain) -> None:
    onnx = tmp_path / "m.onnx"
    assert pipeline_export.export(_args(tmp_path, output=onnx)) == 0
    assert pipeline_export.export(_args(tmp_path, output=onnx)) == 0  # the same export again
    card = onnx.with_suffix(".json").read_bytes()
    with pytest.raises(InputError, match=r"m\.json beside it"):  # m.pt would take m.onnx's card
        pipeline_export.export(_args(tmp_path, output=tmp_path / "m.pt", format="torchscript"))
    assert onnx.with_suffix(".json").read_bytes() == card


def test_export_command_calibration_files(tmp_path: Path, tiny: TinyDomain) -> None:
    npy = tmp_path / "calib.npy"
    np.save(npy, np.stack(_calibration(3)))
    assert pipeline_export.export(_args(tmp_path, int8=True, calibration=npy)) == 0
    assert ex.read_onnx_card(tmp_path / "out.onnx")["quantization"]["calibration_patches"] == 3


def test_export_command_refusals(tmp_path: Path, tiny: TinyDomain) -> None:
    with pytest.raises(InputError, match=r"out\.json"):
        pipeline_export.export(_args(tmp_path, output=tmp_path / "out.json"))
    with pytest.raises(InputError, match="does not exist"):
        pipeline_export.export(_args(tmp_path, output=tmp_path / "no" / "m.onnx"))
    with pytest.raises(InputError, match=r"none\.safetensors"):
        pipeline_export.export(_args(tmp_path, weights=tmp_path / "none.safetensors"))
    card_before = (tmp_path / "unet.json").read_bytes()
    with pytest.raises(InputError, match=r"card of the weights \(unet\.json\)"):
        pipeline_export.export(_args(tmp_path, output=tmp_path / "unet.onnx"))
    assert (tmp_path / "unet.json").read_bytes() == card_before
    with pytest.raises(InputError, match=r"--format onnx writes \.onnx"):
        pipeline_export.export(_args(tmp_path, output=tmp_path / "out.pt"))
    other = tmp_path / "other.json"  # another model's card where the export's would go
    other.write_text('{"architecture": "unet"}')
    with pytest.raises(InputError, match=r"other\.json beside it is the card of other weights"):
        pipeline_export.export(_args(tmp_path, output=tmp_path / "other.onnx"))
    assert other.read_text() == '{"architecture": "unet"}'
    other.unlink()
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((4, 4), dtype=np.int16))
    with pytest.raises(InputError, match=r"bad\.npy"):
        pipeline_export.export(_args(tmp_path, int8=True, calibration=bad))
    tiny.weights = None  # type: ignore[assignment]
    with pytest.raises(UsageError, match="no default weights"):
        pipeline_export.export(_args(tmp_path))
    assert not list(tmp_path.glob("out*")) and not list(tmp_path.glob(".*partial*"))


# --- every installed domain that ships default weights ---------------------------------------


def _shipped() -> list[str]:
    return [name for name, entry in plugins.discover().items()
            if entry.domain is not None and entry.domain.default_weights() is not None]


@pytest.mark.parametrize("domain_name", _shipped())
def test_shipped_models_export_match_torch(tmp_path: Path, domain_name: str) -> None:
    domain = plugins.get_domain(domain_name)
    weights = domain.default_weights()
    assert weights is not None
    try:
        model, card = pipeline_export.load_domain_model(domain, weights)
    except UsageError as exc:  # the domain builds its network itself, outside the registry
        pytest.skip(f"{domain_name}: not rebuildable by suite.weights.load_model ({exc})")
    example = ex.example_input(card)
    hook = getattr(domain, "calibration_patches", None)
    assert hook is not None, f"{domain_name} provides no sample inputs (calibration_patches)"
    sample = torch.from_numpy(np.asarray(hook(1)[0]))[None]  # real sample data, model units
    path = ex.export_onnx(model, example, tmp_path / "m.onnx", card)
    with torch.inference_mode():
        reference = model(sample)
    assert ex.relative_error(reference, ex.OnnxModule(path, "cpu")(sample)) <= ex.FP32_RTOL


@pytest.mark.gpu
def test_onnx_module_on_cuda(tmp_path: Path) -> None:
    if "CUDAExecutionProvider" not in ex._require_onnx().get_available_providers():
        pytest.skip("onnxruntime-gpu with CUDA is not installed")
    model, card = load_model(_weights(tmp_path, "unet"))
    path = ex.export_onnx(model, ex.example_input(card), tmp_path / "m.onnx", card)
    x = torch.randn(2, 1, 32, 32, 16)
    with torch.inference_mode():
        reference = model(x)
    out = ex.OnnxModule(path, "cuda")(x.cuda() if torch.cuda.is_available() else x)
    assert ex.relative_error(reference, out.cpu()) <= 1e-3  # TF32/cuDNN algorithms differ


def test_a_torchscript_export_given_as_weights_names_its_source(tmp_path: Path,
                                                                tiny: TinyDomain) -> None:
    """It was taken for a pickled state dict: '--trust-checkpoint', which then failed too."""
    from suite.weights import check_card_domain

    out = tmp_path / "m.pt"
    assert pipeline_export.export(_args(tmp_path, output=out, format="torchscript")) == 0
    with pytest.raises(InputError, match=r"m\.pt: is a TorchScript export.*unet\.safetensors"):
        check_card_domain(out, "tiny")
    onnx = tmp_path / "m2.onnx"
    assert pipeline_export.export(_args(tmp_path, output=onnx)) == 0
    assert check_card_domain(onnx, "tiny")["export"]["format"] == "onnx"
    onnx.with_suffix(".json").unlink()  # an ONNX file travels without its sidecar card
    assert check_card_domain(onnx, "tiny")["export"]["format"] == "onnx"


def test_a_batch_records_the_card_inside_an_onnx_export(tmp_path: Path, tiny: TinyDomain) -> None:
    """The manifest took the sidecar JSON, which may describe another export of that stem."""
    from pipelines.batch_items import weights_record

    onnx = tmp_path / "m.onnx"
    assert pipeline_export.export(_args(tmp_path, output=onnx)) == 0
    onnx.with_suffix(".json").write_text('{"architecture": "something else"}')
    record = weights_record(tiny, argparse.Namespace(weights=onnx))
    assert record["card"]["export"]["format"] == "onnx" and record["card"]["architecture"] == "unet"
