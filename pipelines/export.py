"""``suite export DOMAIN [--weights W] --format onnx|torchscript [--int8] -o FILE``.

Exports a domain's model (its default weights unless ``--weights``) with dynamic batch and
spatial sizes, checks the export against PyTorch on a random input, and writes the model card
inside the export and as ``FILE.json`` beside it, both atomically. ``--int8`` quantizes
statically (ONNX: QDQ for ONNX Runtime; TorchScript: PyTorch's x86 int8 for CPUs), calibrated
on the domain's sample patches (``Domain.calibration_patches(count)`` when the domain provides
it) or on ``--calibration`` ``.npy`` files of normalized model inputs.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import json
import pkgutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from suite import export as ex
from suite import plugins
from suite.domain import Domain
from suite.errors import InputError, UsageError
from suite.int8 import ENGINE, fp32_module_names, quantize_torch_int8
from suite.io.atomic import atomic_path, check_output_path
from suite.weights import card_path, check_card_domain, load_model

SUFFIXES = {"onnx": (".onnx",), "torchscript": (".pt", ".pth", ".ts")}
"""Output suffixes of each format: an ONNX file named ``.pt`` opens nowhere."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``suite export DOMAIN`` (shared by every domain)."""
    p.add_argument("-o", "--output", type=Path, required=True, help="the .onnx or .pt file")
    p.add_argument("--weights", type=Path, help="weights (default: the domain's shipped ones)")
    p.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    p.add_argument("--int8", action="store_true",
                   help="static int8 quantization (ONNX: QDQ for ONNX Runtime; TorchScript: "
                   "PyTorch's x86 int8, CPU only)")
    p.add_argument("--calibration", type=Path, nargs="+", metavar="NPY",
                   help="calibration inputs: .npy arrays (N, C, *spatial) in model units")
    p.add_argument("--calibration-count", type=int, default=32,
                   help="patches asked from the domain for calibration (default 32)")
    p.add_argument("--example-size", type=int, nargs="+", metavar="N",
                   help="spatial size traced (default: the card's inference patch)")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="allow .pt/.pth state-dict checkpoints (tensors only)")


def export(args: argparse.Namespace) -> int:
    """Run ``suite export``; see the module docstring."""
    domain = plugins.get_domain(args.domain)
    weights = args.weights or domain.default_weights()
    if weights is None:
        raise UsageError(f"{domain.name} has no default weights installed; pass --weights")
    check_card_domain(weights, domain.name)
    out = check_output_path(args.output, [weights])
    if out.suffix == ".json":
        raise InputError(args.output, "the export's card is written as .json beside it; "
                         "give a .onnx or .pt name")  # fmt: skip
    if out.suffix.lower() not in SUFFIXES[args.format]:
        raise InputError(args.output, f"--format {args.format} writes "
                         f"{' or '.join(SUFFIXES[args.format])} files")
    if out.with_suffix(".json") == card_path(weights).absolute():
        raise InputError(args.output, "its card would overwrite the card of the weights "
                                      f"({card_path(weights).name}); give the export another name")
    _check_card_free(out)
    model, card = load_domain_model(domain, weights, args.trust_checkpoint)
    example = ex.example_input(card, args.example_size)
    patches = _calibration(domain, args) if args.int8 else []
    card = _export_card(card, weights, args)
    with atomic_path(out) as tmp, atomic_path(out.with_suffix(".json")) as tmp_card:
        card["export"]["check"] = _write(model, example, tmp, card, args.format, patches)
        card = _embed(tmp, card, args.format)
        ex.write_card(tmp_card, card)
    _say(args, f"wrote {out} and {out.with_suffix('.json').name} ({_fmt_check(card)})")
    return 0


def _check_card_free(out: Path) -> None:
    """Refuse to write the export's card over the card of other weights or of another export.

    The card goes to ``OUTPUT.json``; a file of that name may describe other weights (an
    export into a run folder) or another export of the same stem (``m.onnx`` beside ``m.pt``).
    Only an earlier export to this very output may be replaced with its card.
    """
    card = out.with_suffix(".json")
    if not card.exists():
        return
    try:
        earlier_export = out.exists() and "export" in json.loads(card.read_text())
    except (OSError, ValueError):
        earlier_export = False
    if not earlier_export:
        raise InputError(out, f"{card.name} beside it is the card of other weights or of another "
                              "export; give the export another name")


def load_domain_model(
    domain: Domain, weights: Path, trust: bool = False
) -> tuple[nn.Module, dict[str, Any]]:
    """``suite.weights.load_model``, after importing the domain's modules if the card names an
    architecture the domain registers itself (e.g. in its ``nets`` module)."""
    try:
        return load_model(weights, trust=trust)
    except UsageError as exc:
        if "unknown model" not in str(exc):
            raise
    package = type(domain).__module__.split(".")[0:2]
    pkg = importlib.import_module(".".join(package))
    for info in pkgutil.iter_modules(getattr(pkg, "__path__", []), f"{pkg.__name__}."):
        with contextlib.suppress(Exception):  # a module that needs optional extras is skipped
            importlib.import_module(info.name)
    return load_model(weights, trust=trust)


def _export_card(card: dict[str, Any], weights: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The source card plus an ``export`` section: format, source, tool versions, date."""
    return card | {"export": {
        "format": _format_name(args),
        "source_weights": str(weights),
        "opset": ex.OPSET if args.format == "onnx" else None,
        "dynamic_axes": "batch and every spatial axis",
        "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "suite export " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["export"]
        else f"suite export {args.domain} --format {args.format}",
    }}  # fmt: skip


def _write(model: nn.Module, example: torch.Tensor, path: Path, card: dict[str, Any],
           fmt: str, patches: list[np.ndarray]) -> dict[str, Any]:
    """Export to ``path`` and return the check against PyTorch.

    fp32 exports are checked on a random batch of two at the example size; int8 exports on the
    first calibration patch, because a random input far outside the calibrated ranges only
    measures clipping.
    """
    if patches:
        batch, measured_on = torch.from_numpy(np.stack(patches[:1])).float(), "calibration patch 1"
    else:
        batch, measured_on = torch.cat([example, -example]), "a random (2, C, *example) input"
    with torch.inference_mode():
        reference = model.eval()(batch)
    if patches:
        run = _write_int8(model, example, path, card, fmt, patches)
    elif fmt == "torchscript":
        run = torch.jit.load(str(ex.export_torchscript(model, example, path, card)))
    else:
        run = ex.OnnxModule(ex.export_onnx(model, example, path, card), "cpu")
    return _check(reference, run(batch), None if patches else ex.FP32_RTOL, measured_on)


def _write_int8(model: nn.Module, example: torch.Tensor, path: Path, card: dict[str, Any],
                fmt: str, patches: list[np.ndarray]) -> Any:
    """Quantize and export; return the exported model as a callable."""
    if fmt == "torchscript":
        quantized = quantize_torch_int8(model, patches)
        card["quantization"] = {"format": "PyTorch FX static int8", "engine": ENGINE,
                                "weights": "int8 per-channel symmetric",
                                "activations": "uint8 asymmetric, histogram-calibrated",
                                "calibration_patches": len(patches),
                                "fp32_modules": fp32_module_names(model)}  # fmt: skip
        return torch.jit.load(str(ex.export_torchscript(quantized, example, path, card)))
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = ex.export_onnx(model, example, Path(tmp) / "fp32.onnx", card)
        ex.quantize_int8(fp32, path, patches)
    return ex.OnnxModule(path, "cpu")


def _format_name(args: argparse.Namespace) -> str:
    """The export's format as the card records it."""
    if not args.int8:
        return str(args.format)
    return "onnx-int8-qdq" if args.format == "onnx" else "torchscript-int8-x86"


def _check(reference: torch.Tensor, output: torch.Tensor, bound: float | None,
           measured_on: str) -> dict[str, Any]:
    """Relative error of an export; fails above ``bound`` (fp32 only)."""
    error = ex.relative_error(reference, output)
    if bound is not None and not error <= bound:
        raise RuntimeError(f"export differs from PyTorch: relative error {error:.2e} > {bound}")
    return {"relative_error": error, "bound": bound,
            "measure": f"max|export - torch| / max|torch| on {measured_on}"}


def _embed(path: Path, card: dict[str, Any], fmt: str) -> dict[str, Any]:
    """Rewrite the embedded card (now with the check) into the exported file; return it."""
    if fmt == "torchscript":
        module = torch.jit.load(str(path))
        extra = {ex.TORCHSCRIPT_CARD: json.dumps(card, sort_keys=True, default=str)}
        torch.jit.save(module, str(path), _extra_files=extra)
        return card
    import onnx

    proto = onnx.load(str(path))
    card = ex.read_onnx_card(path) | {"export": card["export"]}
    ex.set_onnx_card(proto, card)
    onnx.save(proto, str(path))
    return card


def _calibration(domain: Domain, args: argparse.Namespace) -> list[np.ndarray]:
    """Calibration patches from ``--calibration`` files, else from the domain's hook."""
    if args.calibration:
        return [a for path in args.calibration for a in _read_npy(path)]
    hook = getattr(domain, "calibration_patches", None)
    if hook is None:
        raise UsageError(f"{domain.name} provides no calibration patches; pass --calibration "
                         "NPY... (normalized model inputs, (N, C, *spatial))")
    return list(hook(args.calibration_count))


def _read_npy(path: Path) -> list[np.ndarray]:
    """The patches of one ``.npy`` file: an (N, C, *spatial) array split along N."""
    if not path.is_file():
        raise InputError(path, "no such file")
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise InputError(path, f"not a readable .npy array ({type(exc).__name__})") from None
    if array.ndim < 4 or not np.issubdtype(array.dtype, np.floating):
        raise InputError(path, f"expected float (N, C, *spatial), got {array.dtype} "
                         f"{array.shape}")  # fmt: skip
    return list(array.astype(np.float32))  # (C, *spatial) each, like the domain hooks


def _fmt_check(card: dict[str, Any]) -> str:
    check = card["export"]["check"]
    return f"relative error vs PyTorch {check['relative_error']:.2e}"


def _say(args: argparse.Namespace, text: str) -> None:
    if not getattr(args, "quiet", False):
        print(text, file=sys.stderr)
