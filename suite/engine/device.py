"""Device choice and mixed precision: CUDA when asked or available, autocast only on CUDA."""

from __future__ import annotations

import contextlib
from typing import Literal

import torch

from suite.errors import UsageError

DeviceName = Literal["auto", "cpu", "cuda"]


def pick_device(name: str = "auto") -> torch.device:
    """Resolve a device name to a :class:`torch.device`.

    Args:
        name: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or an indexed
            CUDA device such as ``"cuda:1"``.

    Raises:
        UsageError: CUDA asked but not available, or an unknown name.

    >>> pick_device("cpu")
    device(type='cpu')
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name} asked but CUDA is not available on this machine")
        return torch.device(name)
    raise UsageError(f"unknown device {name!r} (auto, cpu, cuda)")


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """Autocast dtype for ``device``: bf16 where supported, else fp16; ``None`` off CUDA."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast_context(
    device: torch.device, enabled: bool = True
) -> contextlib.AbstractContextManager[object]:
    """Mixed-precision context: CUDA autocast (bf16 or fp16) on CUDA, a no-op elsewhere.

    >>> with autocast_context(torch.device("cpu")):
    ...     y = torch.ones(2) * 2
    """
    dtype = amp_dtype(device)
    if not enabled or dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=dtype)


def module_device(model: object) -> torch.device:
    """Where a model's parameters live; CPU for a parameterless callable (e.g. an ONNX
    Runtime session), so inference helpers send their inputs to the model, not the reverse."""
    params = getattr(model, "parameters", None)
    first = next(iter(params()), None) if callable(params) else None
    return first.device if isinstance(first, torch.Tensor) else torch.device("cpu")
