"""int8 post-training quantization in PyTorch (FX graph mode), for CPU inference.

ONNX Runtime's int8 path (:func:`suite.export.quantize_int8`) is fast for 2D models, but its
3D ``QLinearConv`` is slower than PyTorch's fp32 oneDNN path on the CT network
(``benchmarks/bench_ct_int8_probe.py --profile``). PyTorch's own ``x86`` backend (FBGEMM)
runs int8 3D convolutions faster than fp32 (``benchmarks/bench_deploy.py``), so this module
quantizes with it.

What stays fp32, and why (measured on the CT network, ``bench_deploy.py``'s volume):

- the first convolution: it reads the raw input, and 8-bit input steps are about 12 HU;
- every transposed convolution: PyTorch only quantizes their weights per tensor, which cost
  1.8 dB on its own;
- the last convolution and the residual ``x + net(x)``: the output keeps full precision, so a
  residual model adds its correction to the exact input.

Activation ranges come from a histogram observer (a range that minimizes the quantization
error, rather than min-max): on the CT network it lost 0.14 dB where min-max lost 0.30 dB (one
scratch comparison with the same calibration patches).
"""

from __future__ import annotations

import contextlib
import copy
import operator
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from suite.errors import UsageError

ENGINE = "x86"


def fp32_module_names(model: nn.Module) -> list[str]:
    """The modules kept in fp32: the first and last convolutions and every transposed one."""
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.modules.conv._ConvNd)]
    if not convs:
        raise UsageError("int8 quantization needs a convolutional model")
    transposed = [n for n, m in model.named_modules()
                  if isinstance(m, nn.modules.conv._ConvTransposeNd)]
    return sorted({convs[0], convs[-1], *transposed})


def quantize_torch_int8(model: nn.Module, patches: Sequence[np.ndarray]) -> nn.Module:
    """Static int8 model calibrated on ``patches`` (``(C, *spatial)`` arrays in model units).

    A :class:`~suite.models.unet.SpaceToDepthNet` is not traceable as a whole (its folding
    reshapes by the input's shape), so its inner network is quantized on folded patches and
    the folding and the residual stay fp32 around it.

    Returns:
        A ``torch.fx.GraphModule`` for CPU: int8 convolutions (weights per output channel,
        symmetric; activations unsigned, full 8-bit range) between fp32 ends.

    Raises:
        UsageError: no patches, or this PyTorch has no FX quantization.
    """
    if not patches:
        raise UsageError("int8 calibration needs at least one patch")
    from suite.models.unet import SpaceToDepthNet, space_to_depth

    if isinstance(model, SpaceToDepthNet):
        folded = [space_to_depth(torch.from_numpy(np.asarray(p, dtype=np.float32))[None],
                                 model.factors)[0].numpy() for p in patches]
        inner = quantize_torch_int8(model.net, folded)
        wrapped = SpaceToDepthNet(inner, model.factors, model.channels, model.residual)
        wrapped.multiple = model.multiple  # the FX graph dropped the inner network's multiple
        return wrapped
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.ao moves to torchao
            from torch.ao import quantization as tq
            from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    except ImportError:
        raise UsageError(f"PyTorch {torch.__version__} has no FX int8 quantization; use "
                         "--runtime onnxruntime with an int8 ONNX export") from None
    if ENGINE not in torch.backends.quantized.supported_engines:
        raise UsageError(f"this PyTorch build has no {ENGINE} int8 engine")
    torch.backends.quantized.engine = ENGINE
    qconfig = tq.QConfig(
        activation=tq.HistogramObserver.with_args(dtype=torch.quint8, reduce_range=False),
        weight=tq.PerChannelMinMaxObserver.with_args(
            dtype=torch.qint8, qscheme=torch.per_channel_symmetric))
    mapping = tq.QConfigMapping().set_global(qconfig).set_object_type(operator.add, None)
    for name in fp32_module_names(model):
        mapping = mapping.set_module_name(name, None)
    net = copy.deepcopy(model).cpu().float().eval()
    for module in net.modules():
        if isinstance(module, (nn.LeakyReLU, nn.ReLU)):
            module.inplace = False  # quantized activations never are (and warn on every call)
    calib = [torch.from_numpy(np.ascontiguousarray(p, dtype=np.float32))[None] for p in patches]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # deprecation and observer notices, not actionable
        try:
            prepared = prepare_fx(net, mapping, example_inputs=(calib[0],))
        except torch.fx.proxy.TraceError as exc:
            raise UsageError(f"{type(model).__name__} cannot be traced for PyTorch int8 "
                             f"({exc}); use an int8 ONNX export") from None
        for batch in calib:
            prepared(batch)
        return convert_fx(prepared)


def cached_int8(
    weights: str | Path, model: nn.Module, calibration: Callable[[], Sequence[np.ndarray]]
) -> torch.jit.ScriptModule:
    """The int8 model of ``weights``, quantized once and kept (TorchScript) in the user cache.

    Calibration simulates inputs from the domain's sample data, which takes seconds to a
    minute, so the result is cached (``int8`` sub-folder, see :func:`suite.export.cache_file`),
    keyed by the weights and the PyTorch version: quantized weights are serialized in packed,
    backend-specific forms that other versions need not read.
    """
    from suite.export import cache_file

    target = cache_file(weights, "int8", f"-torch{torch.__version__}.pt")
    if not target.is_file():
        patches = list(calibration())
        quantized = quantize_torch_int8(model, patches)
        from suite.io.atomic import atomic_path

        with atomic_path(target) as tmp, warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings on constant shape checks
            example = torch.from_numpy(np.ascontiguousarray(patches[0], dtype=np.float32))[None]
            torch.jit.save(torch.jit.trace(quantized, (example,), check_trace=False), str(tmp))
    torch.backends.quantized.engine = ENGINE
    with _quiet_native_stderr():
        loaded = torch.jit.load(str(target))
    if hasattr(model, "multiple"):  # the size multiple callers pad to; tracing drops it
        loaded.multiple = model.multiple
    return loaded


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence what C++ code writes to stderr meanwhile (file descriptor 2).

    Loading a quantized TorchScript file makes PyTorch's C++ unpickler log a deprecation notice
    of quantized tensors on every run, past Python's warning filters; on the command line it
    was a stray line around a clean run. Errors still raise as Python exceptions.
    """
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to protect (a detached process)
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
