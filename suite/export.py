"""Deployment: ONNX / TorchScript export with the model card inside, ONNX Runtime inference, int8.

- :func:`export_onnx` and :func:`export_torchscript` write a model with dynamic batch and
  spatial sizes; the JSON model card travels inside (ONNX ``metadata_props`` key
  :data:`CARD_KEY`, TorchScript extra file ``model_card.json``) and beside it
  (:func:`write_card`).
- :class:`OnnxModule` runs an ONNX file on ONNX Runtime (CPU, or CUDA when present) and is a
  drop-in for an ``nn.Module`` in :func:`suite.engine.tiling.tiled_inference`: torch tensor in,
  torch tensor out.
- :func:`quantize_int8` makes a static int8 QDQ model calibrated on a list of NumPy patches
  (:class:`PatchCalibrationReader`).

``onnx`` and ``onnxruntime`` are optional dependencies (the ``deploy`` extra); they are imported
only when an ONNX function runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from suite.engine.device import pick_device
from suite.errors import InputError, UsageError

CARD_KEY = "suite.model_card"
TORCHSCRIPT_CARD = "model_card.json"
OPSET = 17
FP32_RTOL = 1e-4  # max |ort - torch| / max |torch| accepted for an fp32 export


def _require_onnx() -> Any:
    """Import ``onnxruntime`` or raise a one-line usage error naming the extra to install."""
    try:
        import onnxruntime
    except ImportError:
        raise UsageError(
            "ONNX export and runtime need onnx and onnxruntime: pip install 'enhance-suite[deploy]'"
        ) from None
    return onnxruntime


def example_input(card: dict[str, Any], spatial: Sequence[int] | None = None) -> Tensor:
    """A zero input ``(1, C, *spatial)`` for tracing the model described by ``card``.

    Channels come from ``arguments.in_channels``, else ``inference.in_channels`` (a model that
    accepts any band count, traced at the count it was trained with), else 1; the rank from
    ``arguments.spatial_dims`` (default 2), the size from ``spatial``, else the card's
    ``inference.patch``, else 64 per axis.
    """
    args = card.get("arguments", {})
    ndim = int(args.get("spatial_dims", 2))
    size = spatial or card.get("inference", {}).get("patch") or [64] * ndim
    if isinstance(size, int):  # cards may give one patch side for every axis
        size = [size] * ndim
    if len(size) != ndim:
        raise UsageError(f"example size {list(size)} has {len(size)} axes, the model {ndim}")
    # A random (not zero) input so that the export check exercises every weight.
    gen = torch.Generator().manual_seed(0)
    channels = args.get("in_channels", card.get("inference", {}).get("in_channels", 1))
    return torch.randn((1, int(channels), *map(int, size)), generator=gen)


def _axes(ndim: int, prefix: str) -> dict[int, str]:
    """Dynamic-axis names: batch plus every spatial axis."""
    return {0: "batch"} | {2 + i: f"{prefix}{i}" for i in range(ndim)}


def export_onnx(
    model: nn.Module, example: Tensor, path: str | Path, card: dict[str, Any], opset: int = OPSET
) -> Path:
    """Export ``model`` to ONNX with dynamic batch and spatial sizes and the card embedded.

    Args:
        model: maps ``(N, C, *spatial)`` to ``(N, C_out, *spatial_out)``; moved to CPU fp32.
        example: an input of that form used for tracing (sizes become symbolic).
        path: the ``.onnx`` file to write.
        card: the model card, stored as JSON under :data:`CARD_KEY` in ``metadata_props``.
        opset: ONNX opset.

    Returns:
        ``path``.
    """
    import onnx

    net = model.to("cpu", torch.float32).eval()
    ndim = example.ndim - 2
    with warnings.catch_warnings():
        # The TorchScript-based exporter is deprecated but needs no onnxscript, and the models'
        # shape checks are constant for valid inputs, so the tracer's warnings do not apply.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, (example.cpu(),), str(path), dynamo=False, opset_version=opset,
            input_names=["input"], output_names=["output"],
            dynamic_axes={"input": _axes(ndim, "in"), "output": _axes(ndim, "out")},
        )  # fmt: skip
    proto = onnx.load(str(path))
    set_onnx_card(proto, card)
    onnx.save(proto, str(path))
    return Path(path)


def set_onnx_card(proto: Any, card: dict[str, Any]) -> None:
    """Store ``card`` as JSON under :data:`CARD_KEY` in an ``onnx.ModelProto``'s metadata."""
    kept = [p for p in proto.metadata_props if p.key != CARD_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    entry = proto.metadata_props.add()
    entry.key, entry.value = CARD_KEY, json.dumps(card, sort_keys=True, default=str)
    proto.doc_string = f"suite model {card.get('architecture', '?')} (card in {CARD_KEY})"


def read_onnx_card(path: str | Path) -> dict[str, Any]:
    """The model card embedded in an ONNX file.

    Raises:
        InputError: not a readable ONNX file, or no card inside.
    """
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise InputError(path, f"not a readable ONNX model ({type(exc).__name__})") from None
    for prop in proto.metadata_props:
        if prop.key == CARD_KEY:
            card: dict[str, Any] = json.loads(prop.value)
            return card
    raise InputError(path, f"ONNX model has no {CARD_KEY} metadata")


def export_torchscript(
    model: nn.Module, example: Tensor, path: str | Path, card: dict[str, Any]
) -> Path:
    """Trace ``model`` to TorchScript with the card as the extra file ``model_card.json``.

    Tracing records the operations for ``example``; the suite's models have no size-dependent
    control flow, so the trace runs on any batch and spatial size (checked by the tests).
    """
    net = model.to("cpu", torch.float32).eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings on constant shape checks
        traced = torch.jit.trace(net, (example.cpu(),), check_trace=False)
        extra = {TORCHSCRIPT_CARD: json.dumps(card, sort_keys=True, default=str)}
        torch.jit.save(traced, str(path), _extra_files=extra)
    return Path(path)


def write_card(path: str | Path, card: dict[str, Any]) -> Path:
    """Write ``card`` as indented JSON to ``path`` (the ``.json`` beside an export)."""
    Path(path).write_text(json.dumps(card, indent=2, sort_keys=True, default=str) + "\n")
    return Path(path)


def onnx_providers(device: str = "auto") -> list[str]:
    """ONNX Runtime execution providers for ``device`` (``auto``, ``cpu`` or ``cuda``).

    Raises:
        UsageError: CUDA asked but this onnxruntime build has no CUDA provider.
    """
    available = _require_onnx().get_available_providers()
    has_cuda = "CUDAExecutionProvider" in available
    if device == "cpu" or (device == "auto" and not has_cuda):
        return ["CPUExecutionProvider"]
    if device in ("auto", "cuda") or device.startswith("cuda:"):
        if not has_cuda:
            raise UsageError("CUDA asked but onnxruntime has no CUDAExecutionProvider "
                             "(install onnxruntime-gpu)")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise UsageError(f"unknown device {device!r} (auto, cpu, cuda)")


def card_multiple(card: dict[str, Any]) -> int | tuple[int, ...] | None:
    """The spatial size multiple of the network a model card describes, or ``None``.

    The exported graph has lost it, so the card's network is built (not run) and asked: one
    source of truth for what sizes it takes. ``None`` for a card from elsewhere.
    """
    from suite.models import create_model

    try:
        net = create_model(card["architecture"], **card["arguments"])
    except Exception:  # no card, another tool's card, an architecture this version lacks
        return None
    multiple = getattr(net, "multiple", None)
    return multiple if isinstance(multiple, (int, tuple)) else None


class OnnxModule:
    """An ONNX model on ONNX Runtime that stands in for an ``nn.Module`` in tiled inference.

    It takes a torch batch ``(N, C, *spatial)`` on any device and returns the output as a
    float32 torch tensor on that device; ``to()`` and ``eval()`` return the module itself so
    that code written for modules (``net.to(device).eval()``) runs unchanged.

    Args:
        path: the ``.onnx`` file (fp32 or int8 QDQ).
        device: ``auto`` (CUDA when onnxruntime has it), ``cpu`` or ``cuda``.
        threads: intra-op threads (``None``: onnxruntime's default, one per physical core).

    Attributes:
        card: the embedded model card (empty for an ONNX file made elsewhere).
        multiple: the network's spatial size multiple, when the card names a suite network.

    Raises:
        InputError: the file is missing or ONNX Runtime cannot load it.
    """

    def __init__(self, path: str | Path, device: str = "auto", threads: int | None = None) -> None:
        ort = _require_onnx()
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(path, "ONNX model not found")
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=onnx_providers(device)
            )
        except UsageError:
            raise
        except Exception as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(path, f"ONNX Runtime cannot load it ({first})") from None
        self.input_name: str = self.session.get_inputs()[0].name
        # the session has parsed the metadata already: no second read of the file
        embedded = self.session.get_modelmeta().custom_metadata_map.get(CARD_KEY)
        self.card: dict[str, Any] = json.loads(embedded) if embedded else {}
        multiple = card_multiple(self.card)
        if multiple is not None:  # callers pad to it; an unknown one keeps their fallback
            self.multiple = multiple

    def __call__(self, batch: Tensor) -> Tensor:
        """``(N, C, *spatial)`` torch tensor -> ``(N, C_out, *spatial_out)`` float32 tensor."""
        # Channels-last inputs reach here from code written for torch; ORT wants C order.
        array = np.ascontiguousarray(batch.detach().to("cpu", torch.float32).numpy())
        out = self.session.run(None, {self.input_name: array})[0]
        return torch.from_numpy(out).to(batch.device)

    def to(self, *args: Any, **kwargs: Any) -> OnnxModule:
        """No-op for module compatibility: the execution provider fixes the device."""
        return self

    def eval(self) -> OnnxModule:
        """No-op for module compatibility: an exported graph is always in eval mode."""
        return self


def calibration_crops(arrays: Sequence[np.ndarray], size: Sequence[int], count: int,
                      seed: int = 0) -> list[np.ndarray]:
    """``count`` random crops ``(C, *size)`` float32 taken from ``arrays`` ``(C, *spatial)`` in
    turn: what a domain's ``calibration_patches`` hook returns. A crop is clipped to an array
    smaller than ``size``."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        array = arrays[i % len(arrays)]
        window = []
        for extent, n in zip(array.shape[1:], size, strict=True):
            n = min(n, extent)
            start = int(rng.integers(0, extent - n + 1))
            window.append(slice(start, start + n))
        out.append(np.ascontiguousarray(array[(slice(None), *window)], dtype=np.float32))
    return out


class PatchCalibrationReader:
    """Feeds calibration patches to ONNX Runtime's static quantization, one per step.

    Implements the ``onnxruntime.quantization.CalibrationDataReader`` protocol
    (``get_next`` / ``rewind``).

    Args:
        patches: model inputs, each ``(C, *spatial)`` or ``(1, C, *spatial)``, normalized like
            the model's training inputs; sizes may differ between patches.
        input_name: the ONNX graph's input name.
        spatial_dims: 2 or 3; a patch with ``spatial_dims + 1`` axes gets a batch axis.
    """

    def __init__(
        self, patches: Sequence[np.ndarray], input_name: str = "input", spatial_dims: int = 2
    ) -> None:
        if not patches:
            raise UsageError("int8 calibration needs at least one patch")
        self.patches = list(patches)
        self.input_name = input_name
        self.spatial_dims = spatial_dims
        self._iter: Iterator[np.ndarray] = iter(self.patches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next ``{input_name: (1, C, *spatial) float32}``, or ``None`` at the end."""
        patch = next(self._iter, None)
        if patch is None:
            return None
        array = np.asarray(patch, dtype=np.float32)
        if array.ndim == self.spatial_dims + 1:
            array = array[None]
        if array.ndim != self.spatial_dims + 2:
            raise UsageError(f"calibration patch of shape {array.shape} is not "
                             f"(C, *spatial) or (N, C, *spatial) with {self.spatial_dims} axes")
        return {self.input_name: np.ascontiguousarray(array)}

    def rewind(self) -> None:
        """Start again from the first patch."""
        self._iter = iter(self.patches)


def quantize_int8(
    fp32_path: str | Path,
    out_path: str | Path,
    patches: Sequence[np.ndarray],
    per_channel: bool = True,
    reduce_range: bool = False,
    method: str = "minmax",
    fp32_tail: bool = True,
) -> Path:
    """Static int8 post-training quantization in QDQ format, calibrated on ``patches``.

    Weights become signed int8 (per output channel), activations unsigned int8 with ranges
    from the calibration patches; ONNX Runtime fuses the QDQ pairs into int8 kernels. The
    embedded card gains a ``quantization`` section.

    Args:
        fp32_path: the fp32 ONNX model (from :func:`export_onnx`).
        out_path: the int8 ``.onnx`` to write.
        patches: calibration inputs, see :class:`PatchCalibrationReader`; a few dozen patches
            of real data that cover the value range the model will see.
        per_channel: one weight scale per output channel (better accuracy, same speed).
        reduce_range: 7-bit weights, which avoids the int16 saturation of u8s8 kernels on
            CPUs without VNNI at some accuracy cost.
        method: activation-range calibration: ``minmax``, ``percentile`` or ``entropy``.
        fp32_tail: keep the nodes that produce the graph's outputs in fp32, fed by the exact
            fp32 input where they read it: a residual model's ``x + net(x)`` then adds the
            correction to the unquantized input instead of rounding the whole output to 8 bits
            (for CT in HU / 1000 one uint8 step of the output would be about 10 HU). The skip
            path stays exact too: every non-convolution node that reads the graph input (the
            bicubic ``Resize`` of an SR model's global residual) runs in fp32 on the exact
            input; quantizing that Resize alone cost sat-sr x2 0.45 dB of its 0.55 dB loss.

    Returns:
        ``out_path``.

    References:
        Jacob et al., "Quantization and Training of Neural Networks for Efficient
        Integer-Arithmetic-Only Inference", CVPR 2018.
    """
    _require_onnx()
    import onnx
    from onnxruntime import quantization as q

    methods = {"minmax": q.CalibrationMethod.MinMax, "entropy": q.CalibrationMethod.Entropy,
               "percentile": q.CalibrationMethod.Percentile}
    if method not in methods:
        raise UsageError(f"unknown calibration method {method!r} ({', '.join(methods)})")
    proto = onnx.load(str(fp32_path))
    rank = len(proto.graph.input[0].type.tensor_type.shape.dim)
    reader = PatchCalibrationReader(patches, proto.graph.input[0].name, rank - 2)
    tail = _output_nodes(proto) + _skip_path_nodes(proto) if fp32_tail else []
    with _without_preprocessing_advice():
        q.quantize_static(
            str(fp32_path), str(out_path), reader, quant_format=q.QuantFormat.QDQ,
            per_channel=per_channel, reduce_range=reduce_range,
            activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8,
            calibrate_method=methods[method], nodes_to_exclude=tail,
            calibration_providers=["CPUExecutionProvider"],
        )  # fmt: skip
    card = _card_of(proto)
    card["quantization"] = {"format": "QDQ", "weights": "int8 per-channel" if per_channel
                            else "int8 per-tensor", "activations": "uint8 asymmetric",
                            "calibration": method, "calibration_patches": len(patches),
                            "reduce_range": reduce_range, "fp32_nodes": tail}  # fmt: skip
    quantized = onnx.load(str(out_path))
    _feed_exact_inputs(quantized, set(tail))
    set_onnx_card(quantized, card)
    onnx.save(quantized, str(out_path))
    return Path(out_path)


@contextlib.contextmanager
def _without_preprocessing_advice() -> Iterator[None]:
    """Drop ONNX Runtime's "Please consider (to run) pre-processing" root-logger warnings.

    Its shape-inference pre-processing targets models with static shapes; these exports have
    dynamic spatial sizes. The advice printed two stray lines on every ``suite export --int8``.
    """

    def keep(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Please consider")

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def _output_nodes(proto: Any) -> list[str]:
    """Names of the nodes that write a graph output (named first if unnamed)."""
    outputs = {o.name for o in proto.graph.output}
    names = []
    for i, node in enumerate(proto.graph.node):
        if outputs.intersection(node.output):
            node.name = node.name or f"graph_output_node_{i}"
            names.append(node.name)
    return names


def _skip_path_nodes(proto: Any) -> list[str]:
    """Names of the non-convolution nodes that read a graph input (named first if unnamed)."""
    inputs = {i.name for i in proto.graph.input}
    learned = {"Conv", "ConvTranspose", "MatMul", "Gemm"}
    names = []
    for i, node in enumerate(proto.graph.node):
        if node.op_type not in learned and inputs.intersection(node.input):
            node.name = node.name or f"skip_path_node_{i}"
            names.append(node.name)
    return names


def _feed_exact_inputs(proto: Any, nodes: set[str]) -> None:
    """Let ``nodes`` read graph inputs directly instead of their Quantize-Dequantize copy."""
    inputs = {i.name for i in proto.graph.input}
    quantized = {n.output[0]: n.input[0] for n in proto.graph.node
                 if n.op_type == "QuantizeLinear" and n.input[0] in inputs}
    exact = {n.output[0]: quantized[n.input[0]] for n in proto.graph.node
             if n.op_type == "DequantizeLinear" and n.input[0] in quantized}
    for node in proto.graph.node:
        if node.name in nodes:
            for k, name in enumerate(node.input):
                node.input[k] = exact.get(name, name)


def _card_of(proto: Any) -> dict[str, Any]:
    """The card embedded in an ``onnx.ModelProto`` (empty if none)."""
    for prop in proto.metadata_props:
        if prop.key == CARD_KEY:
            card: dict[str, Any] = json.loads(prop.value)
            return card
    return {}


def relative_error(reference: Tensor | np.ndarray, output: Tensor | np.ndarray) -> float:
    """``max |output - reference| / max |reference|``: the export tolerance measure.

    Normalizing by the peak of the reference (not elementwise) keeps near-zero outputs from
    blowing the ratio up; :data:`FP32_RTOL` is the bound an fp32 export must meet.
    """
    ref = torch.as_tensor(reference).detach().to("cpu", torch.float64)
    out = torch.as_tensor(output).detach().to("cpu", torch.float64)
    if ref.shape != out.shape:
        raise UsageError(f"shapes differ: {tuple(ref.shape)} vs {tuple(out.shape)}")
    peak = float(ref.abs().max()) if ref.numel() else 0.0
    return float((out - ref).abs().max()) / max(peak, math.ulp(1.0))


def cache_file(weights: str | Path, folder: str, suffix: str) -> Path:
    """Where a file derived from ``weights`` is kept: ``$SUITE_CACHE`` (or ``~/.cache/suite``)
    ``/folder/STEM-SHA16SUFFIX``, keyed by the weights' SHA-256 so retrained weights get a new
    file. The folder is created."""
    import hashlib
    import os

    digest = hashlib.sha256(Path(weights).read_bytes()).hexdigest()[:16]
    root = Path(os.environ.get("SUITE_CACHE", Path.home() / ".cache" / "suite")) / folder
    root.mkdir(parents=True, exist_ok=True)
    return root / f"{Path(weights).stem}-{digest}{suffix}"


def cached_onnx(weights: str | Path, model: nn.Module, card: dict[str, Any]) -> Path:
    """An fp32 ONNX export of ``weights``, made once and kept in the user cache (``onnx``
    sub-folder, see :func:`cache_file`)."""
    target = cache_file(weights, "onnx", ".onnx")
    if not target.is_file():
        from suite.io.atomic import atomic_path

        with atomic_path(target) as tmp:
            export_onnx(model, example_input(card), tmp, card)
    return target


RUNTIMES = ("torch", "torch-int8", "torch-bf16", "onnxruntime")


def load_runtime_model(
    weights: str | Path,
    runtime: str = "torch",
    device: str = "auto",
    trust: bool = False,
    calibration: Callable[[], Sequence[np.ndarray]] | None = None,
) -> tuple[nn.Module | OnnxModule, dict[str, Any]]:
    """Load weights for ``runtime``: what a domain calls instead of ``load_model``.

    Args:
        weights: ``.safetensors`` with its card, or an exported ``.onnx`` (card embedded).
        runtime: ``torch`` (an ``nn.Module``), ``torch-int8`` (PyTorch int8 on CPU, quantized
            once into the cache, see :func:`suite.int8.cached_int8`), ``torch-bf16`` (the
            network in bfloat16, residual in float32, :func:`suite.bf16.to_bfloat16`) or
            ``onnxruntime`` (an
            :class:`OnnxModule`; safetensors weights are exported once into the cache, see
            :func:`cached_onnx`).
        device: ``auto``, ``cpu`` or ``cuda``: where ``torch`` and ``torch-bf16`` modules are
            placed and ONNX Runtime runs; ``torch-int8`` modules stay on the CPU, the only
            place PyTorch's int8 kernels run.
        trust: allow pickled checkpoints (torch runtimes only).
        calibration: returns the int8 calibration patches (``torch-int8`` only, called only
            when the cache has no int8 model for these weights yet).

    Returns:
        The callable model and its card.

    Raises:
        UsageError: unknown runtime, or an ``.onnx`` file with ``runtime="torch"``.
    """
    from suite.weights import load_model

    if runtime not in RUNTIMES:
        raise UsageError(f"unknown runtime {runtime!r} ({', '.join(RUNTIMES)})")
    if Path(weights).suffix == ".onnx":
        if runtime != "onnxruntime":
            raise UsageError(f"{weights} is an ONNX model: run it with --runtime onnxruntime")
        module = OnnxModule(weights, device)
        return module, module.card
    if runtime == "torch":
        return load_model(weights, trust=trust, device=device)
    model, card = load_model(weights, trust=trust)
    if runtime == "torch-bf16":
        from suite.bf16 import to_bfloat16, warn_if_emulated

        warn_if_emulated(device)
        return to_bfloat16(model).to(pick_device(device)), card
    if runtime == "torch-int8":
        if calibration is None:
            raise UsageError(f"{card.get('domain', 'this model')} has no int8 calibration data; "
                             "use --runtime torch or onnxruntime")
        from suite.int8 import cached_int8

        return cached_int8(weights, model, calibration), card
    return OnnxModule(cached_onnx(weights, model, card), device), card
