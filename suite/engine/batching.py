"""Size-aware batching: pick the tile batch from free memory, and shrink it on out-of-memory.

:func:`choose_batch_size` estimates how many patches of a given window fit in a fraction of the
memory that is free now (CUDA: ``torch.cuda.mem_get_info``; CPU: ``psutil`` or
``/proc/meminfo``). :func:`shrink_on_oom` wraps a model call so that an out-of-memory error
splits the batch into smaller chunks instead of failing the run; the smaller size is kept for
later calls. Both work with any callable ``(N, C, *window) -> (N, C_out, *window_out)``, torch
or ONNX Runtime.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor

from suite.errors import UsageError

OOM_MARKERS = (
    "out of memory",
    "can't allocate memory",
    "cannot allocate memory",
    "failed to allocate memory",
    "bad allocation",
)


def memory_available(device: torch.device | str = "cpu") -> int:
    """Bytes free for new allocations on ``device``.

    Args:
        device: ``"cpu"`` (RAM available to new processes, psutil or ``/proc/meminfo``
            ``MemAvailable``) or a CUDA device (free bytes from ``torch.cuda.mem_get_info``).

    Returns:
        Free memory in bytes (0 when it cannot be read).
    """
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # psutil is optional; Linux always has /proc/meminfo
        return _meminfo_available(Path("/proc/meminfo"))


def _meminfo_available(path: Path) -> int:
    """``MemAvailable`` of a ``/proc/meminfo``-style file in bytes, 0 if absent."""
    if not path.is_file():
        return 0
    for line in path.read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024  # the file states kB
    return 0


def choose_batch_size(
    window: Sequence[int],
    floats_per_voxel: float = 64.0,
    device: torch.device | str = "cpu",
    fraction: float = 0.5,
    max_batch: int = 64,
    available: int | None = None,
) -> int:
    """Largest tile batch whose activations fit in ``fraction`` of the free memory.

    The peak memory of one patch is modelled as ``prod(window) * floats_per_voxel * 4`` bytes
    (float32): for a U-Net that is about twice the sum of its widths at full resolution plus
    the skips; measure it for a new model with ``torch.cuda.max_memory_allocated`` or peak RSS.

    Args:
        window: spatial size of one model input ``([D,] H, W)`` in voxels/pixels, halo included.
        floats_per_voxel: live float32 values per input voxel at the forward pass's peak.
        device: where the model runs.
        fraction: share of the free memory the batch may take (the rest is for the merger,
            the input and other processes).
        max_batch: upper bound (beyond some size a bigger batch brings no speed).
        available: free bytes, measured when ``None``.

    Returns:
        A batch size in ``[1, max_batch]``; 1 when not even one patch fits (the OOM shrink
        of :func:`shrink_on_oom` then has the last word).

    >>> choose_batch_size((64, 64), floats_per_voxel=16, available=64 * 64 * 16 * 4 * 10)
    5
    """
    if not 0.0 < fraction <= 1.0 or floats_per_voxel <= 0 or max_batch < 1:
        raise UsageError(
            f"need 0 < fraction <= 1, floats_per_voxel > 0 and max_batch >= 1, got "
            f"{fraction}, {floats_per_voxel} and {max_batch}"
        )
    free = memory_available(device) if available is None else available
    per_patch = math.prod(int(s) for s in window) * floats_per_voxel * 4
    return int(max(1, min(max_batch, (free * fraction) // per_patch)))


def shrink_on_oom(model_call: Callable[[Tensor], Tensor], limit: int | None = None) -> OomShrinker:
    """Wrap ``model_call`` so that an out-of-memory error shrinks the batch instead of failing.

    See :class:`OomShrinker`; ``limit`` is the starting chunk size (e.g. from
    :func:`choose_batch_size`), ``None`` for the whole batch.
    """
    return OomShrinker(model_call, limit)


def is_oom(exc: BaseException) -> bool:
    """True for an out-of-memory error of torch (CUDA or CPU), Python or ONNX Runtime."""
    if isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)):
        return True
    # Torch CPU, ONNX Runtime and older CUDA builds only say so in the message.
    text = str(exc).lower()
    return any(marker in text for marker in OOM_MARKERS)


class OomShrinker:
    """Wrap ``model_call`` so that an out-of-memory error halves the chunk size and retries.

    A batch of ``N`` patches runs as chunks of at most :attr:`limit` patches, concatenated along
    the batch axis. On OOM the limit halves (CUDA cache emptied), the failed chunk is retried,
    and the smaller limit is kept for later calls. OOM with a single patch is re-raised.

    Args:
        model_call: ``(N, C, *window) -> (N, C_out, *window_out)``.
        limit: starting chunk size (``None``: the whole batch at first).

    >>> calls = []
    >>> def fake(x):
    ...     calls.append(len(x))
    ...     if len(x) > 2:
    ...         raise RuntimeError("CUDA out of memory")
    ...     return x * 2
    >>> run = OomShrinker(fake)
    >>> run(torch.ones(5, 1, 4, 4)).shape, run.limit, calls
    (torch.Size([5, 1, 4, 4]), 2, [5, 2, 2, 1])
    """

    def __init__(self, model_call: Callable[[Tensor], Tensor], limit: int | None = None) -> None:
        if limit is not None and limit < 1:
            raise UsageError(f"limit must be >= 1, got {limit}")
        self.model_call = model_call
        self.limit = limit
        self.shrinks = 0

    def __call__(self, batch: Tensor) -> Tensor:
        """Run ``batch`` ``(N, C, *window)`` in chunks that fit; returns the concatenation."""
        outputs: list[Tensor] = []
        start = 0
        while start < len(batch):
            size = len(batch) - start if self.limit is None else self.limit
            chunk = batch[start : start + size]
            try:
                outputs.append(self.model_call(chunk))
            except Exception as exc:
                if not is_oom(exc) or len(chunk) == 1:
                    raise
                self._shrink(len(chunk))
                continue
            start += len(chunk)
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs)

    def _shrink(self, failed: int) -> None:
        """Halve the chunk size below the size that failed and free cached GPU memory."""
        self.limit = max(1, failed // 2)
        self.shrinks += 1
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
