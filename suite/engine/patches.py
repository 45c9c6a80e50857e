"""Random paired patches ``(input, target)`` for training, reproducible from the sample index.

Each sample draws from a NumPy generator seeded by ``(seed, index)``, so a sample is a pure
function of its index and the current patch size: the stream does not depend on the number of
DataLoader workers or ranks, and a resumed run sees exactly the samples it would have seen.
The trainer hands out disjoint, step-ordered indices (see :class:`StepSampler`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from suite.errors import ShapeError, UsageError

Degrade = Callable[[np.ndarray, np.random.Generator], np.ndarray]
Augment = Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]


def random_flips(
    inputs: np.ndarray, target: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Paired augmentation: flip both arrays ``(C, *spatial)`` along the same random axes."""
    for axis in range(1, inputs.ndim):
        if rng.random() < 0.5:
            inputs, target = np.flip(inputs, axis), np.flip(target, axis)
    return inputs, target


class PairedPatchDataset(Dataset[tuple[Tensor, Tensor]]):
    """Random paired patches from clean arrays, degraded on the fly or given as pairs.

    Args:
        targets: clean arrays ``(C, *spatial)`` (2D or 3D spatial), any real dtype.
        inputs: matching degraded arrays ``(C_in, *spatial / scale)``; or ``None`` with
            ``degrade``.
        degrade: ``degrade(clean_patch, rng) -> input_patch`` made on the fly.
        patch_size: target (high-resolution) patch size; settable for a progressive schedule.
        scale: target/input size ratio per axis for pairs given as arrays (SR).
        augment: ``augment(input, target, rng) -> (input, target)``, e.g. :func:`random_flips`.
        length: nominal epoch length returned by ``len()``; any index ``>= 0`` is valid.
        seed: base seed of the per-sample generators.
        weights: relative sampling weight of each array (``None``: every array equally often),
            e.g. to show a network its harder or rarer cases more often.

    Returns (per item):
        ``(input, target)`` float32 tensors ``(C_in, *p_in)`` and ``(C, *patch_size)``.
    """

    def __init__(self, targets: Sequence[np.ndarray], inputs: Sequence[np.ndarray] | None = None,
                 degrade: Degrade | None = None, patch_size: int | Sequence[int] = 64,
                 scale: int | Sequence[int] = 1, augment: Augment | None = None,
                 length: int = 10_000, seed: int = 0,
                 weights: Sequence[float] | None = None) -> None:
        if (inputs is None) == (degrade is None):
            raise UsageError("give exactly one of `inputs` (paired arrays) and `degrade`")
        if not targets or (inputs is not None and len(inputs) != len(targets)):
            raise UsageError("need a non-empty list of targets, one input per target")
        self.targets, self.inputs, self.degrade = list(targets), inputs, degrade
        self.augment, self.length, self.seed = augment, length, seed
        self.ndim = targets[0].ndim - 1
        self.scale = (scale,) * self.ndim if isinstance(scale, int) else tuple(scale)
        self.patch_size = patch_size
        self.probabilities = sampling_probabilities(weights, len(self.targets))

    @property
    def patch_size(self) -> tuple[int, ...]:
        """Target patch size per spatial axis."""
        return self._patch_size

    @patch_size.setter
    def patch_size(self, value: int | Sequence[int]) -> None:
        size = (value,) * self.ndim if isinstance(value, int) else tuple(value)
        if len(size) != self.ndim or any(p % s for p, s in zip(size, self.scale, strict=True)):
            raise UsageError(f"patch size {size} must have {self.ndim} values divisible by "
                             f"the scale {self.scale}")
        self._patch_size = size

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        rng = np.random.default_rng([self.seed, int(index)])
        if self.probabilities is None:  # the uniform draw, so unweighted streams stay as they were
            k = int(rng.integers(len(self.targets)))
        else:
            k = int(rng.choice(len(self.targets), p=self.probabilities))
        target, corner = self._crop(self.targets[k], self.patch_size, rng)
        if self.degrade is not None:
            inputs = self.degrade(target, rng)
        elif self.inputs is not None:
            low = [c // s for c, s in zip(corner, self.scale, strict=True)]
            size = [p // s for p, s in zip(self.patch_size, self.scale, strict=True)]
            inputs = self.inputs[k][(slice(None), *(slice(a, a + n) for a, n in
                                                   zip(low, size, strict=True)))]
        if self.augment is not None:
            inputs, target = self.augment(inputs, target, rng)
        return _tensor(inputs), _tensor(target)

    def _crop(self, array: np.ndarray, size: Sequence[int],
              rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
        """Random crop of ``size`` from ``array`` ``(C, *spatial)``, corners on the scale grid."""
        spatial = array.shape[1:]
        if len(spatial) != len(size) or any(n < p for n, p in zip(spatial, size, strict=True)):
            raise ShapeError("training array", f"(C, >= {tuple(size)})", array.shape)
        corner = [int(rng.integers((n - p) // s + 1)) * s
                  for n, p, s in zip(spatial, size, self.scale, strict=True)]
        region = (slice(None), *(slice(c, c + p) for c, p in zip(corner, size, strict=True)))
        return array[region], corner


def sampling_probabilities(weights: Sequence[float] | None, count: int,
                           name: str = "sampling weights") -> np.ndarray | None:
    """Relative sampling weights as probabilities; ``None`` stays ``None`` (uniform).

    Raises:
        UsageError: not ``count`` finite values >= 0, or all 0 (``name`` says whose).
    """
    if weights is None:
        return None
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (count,) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise UsageError(f"{name} must be finite, >= 0 and not all 0, {count} of them; "
                         f"got {list(weights)}")
    return w / w.sum()


def _tensor(array: np.ndarray) -> Tensor:
    """Contiguous float32 tensor copy of an array."""
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


class StepSampler(Sampler[int]):
    """Sample indices for steps ``[start, stop)``: step ``s``, rank ``r`` gets the ``batch_size``
    indices beginning at ``(s * world_size + r) * batch_size`` (disjoint across ranks)."""

    def __init__(self, start: int, stop: int, batch_size: int, rank: int = 0,
                 world_size: int = 1) -> None:
        self.start, self.stop, self.batch_size = start, stop, batch_size
        self.rank, self.world_size = rank, world_size

    def __len__(self) -> int:
        return max(0, self.stop - self.start) * self.batch_size

    def __iter__(self) -> Iterator[int]:
        for step in range(self.start, self.stop):
            first = (step * self.world_size + self.rank) * self.batch_size
            yield from range(first, first + self.batch_size)
