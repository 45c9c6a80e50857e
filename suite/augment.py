"""Paired augmentations: the same random geometry for an input and its target, 2D or 3D.

Arrays are channel-first ``(C, H, W)`` or ``(C, D, H, W)``, NumPy or torch, and the target may
be an integer multiple of the input's size (super-resolution pairs). All randomness comes from
a caller-owned ``np.random.Generator``, so a seed reproduces a run.

What is applied to which:

- flips and 90-degree rotations: both input and target, identically.
- intensity jitter: the input only by default (``apply_to="input"``: the network must undo
  it), or both with the same scale and shift (``apply_to="both"``: a global intensity
  augmentation that keeps the pair consistent).
- random erasing: the input only by default (the target keeps the content, as in
  inpainting), or both with the same box scaled to each size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from suite.errors import ShapeError

Array = np.ndarray | torch.Tensor
Box = tuple[tuple[int, int], ...]


def _check(x: Array, y: Array) -> None:
    """Raise ShapeError unless both are ``(C, H, W)`` or ``(C, D, H, W)`` with equal rank."""
    if x.ndim not in (3, 4):
        raise ShapeError("input", "(C, H, W) or (C, D, H, W)", tuple(x.shape))
    if y.ndim != x.ndim:
        raise ShapeError("target", f"{x.ndim} axes like the input", tuple(y.shape))


def _flip(a: Array, axis: int) -> Array:
    """Flip one axis, returning a contiguous copy."""
    if isinstance(a, torch.Tensor):
        return torch.flip(a, dims=(axis,))
    return np.ascontiguousarray(np.flip(a, axis=axis))


def _rot90(a: Array, k: int, axes: tuple[int, int]) -> Array:
    """Rotate by ``k * 90`` degrees in the plane of ``axes``, returning a contiguous copy."""
    if isinstance(a, torch.Tensor):
        return torch.rot90(a, k, dims=axes)
    return np.ascontiguousarray(np.rot90(a, k, axes=axes))


def random_flip(
    x: Array, y: Array, rng: np.random.Generator, p: float = 0.5
) -> tuple[Array, Array]:
    """Flip each spatial axis with probability ``p``, the same axes for input and target.

    Args:
        x: input ``(C, [D,] H, W)``.
        y: target ``(C', [sD,] sH, sW)``.
        rng: source of randomness.
        p: probability per axis.
    """
    _check(x, y)
    for axis in range(1, x.ndim):
        if rng.random() < p:
            x, y = _flip(x, axis), _flip(y, axis)
    return x, y


def random_rot90(
    x: Array, y: Array, rng: np.random.Generator, planes: tuple[tuple[int, int], ...] = ((-2, -1),)
) -> tuple[Array, Array]:
    """Rotate both by the same random multiple of 90 degrees in one randomly chosen plane.

    Args:
        x: input ``(C, [D,] H, W)``.
        y: target.
        rng: source of randomness.
        planes: candidate planes as pairs of axes; the default ``(H, W)`` keeps an
            anisotropic slice axis in place. Use ``((1, 2), (1, 3), (2, 3))`` for isotropic 3D.
    """
    _check(x, y)
    axes = planes[int(rng.integers(len(planes)))]
    k = int(rng.integers(4))
    return _rot90(x, k, axes), _rot90(y, k, axes)


def intensity_jitter(
    x: Array,
    y: Array,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.9, 1.1),
    shift: tuple[float, float] = (-0.05, 0.05),
    apply_to: str = "input",
) -> tuple[Array, Array]:
    """``a * s + t`` with ``s ~ U(scale)`` and ``t ~ U(shift)`` (in data units).

    Args:
        x: input.
        y: target.
        rng: source of randomness.
        scale: range of the multiplicative factor.
        shift: range of the additive offset, in the units of the (normalized) data.
        apply_to: ``"input"`` (default) or ``"both"`` (same ``s`` and ``t``).
    """
    if apply_to not in ("input", "both"):
        raise ValueError(f"apply_to must be 'input' or 'both', got {apply_to!r}")
    s, t = float(rng.uniform(*scale)), float(rng.uniform(*shift))
    return x * s + t, (y * s + t if apply_to == "both" else y)


def _random_box(shape: tuple[int, ...], rng: np.random.Generator, area: tuple[float, float]) -> Box:
    """A random box covering a fraction ``U(area)`` of a spatial shape, as (start, stop) pairs."""
    frac = float(rng.uniform(*area)) ** (1.0 / len(shape))
    box = []
    for n in shape:
        size = max(1, min(n, round(n * frac)))
        start = int(rng.integers(0, n - size + 1))
        box.append((start, start + size))
    return tuple(box)


def _erase(a: Array, box: Box, ratios: tuple[int, ...], value: float) -> Array:
    """Copy of ``a`` with ``box`` (in input pixels, scaled by ``ratios``) set to ``value``."""
    out = a.clone() if isinstance(a, torch.Tensor) else a.copy()
    idx = tuple(slice(lo * r, hi * r) for (lo, hi), r in zip(box, ratios, strict=True))
    out[(slice(None), *idx)] = value
    return out


def random_erasing(
    x: Array,
    y: Array,
    rng: np.random.Generator,
    p: float = 0.5,
    area: tuple[float, float] = (0.02, 0.2),
    value: float = 0.0,
    apply_to: str = "input",
) -> tuple[Array, Array]:
    """With probability ``p`` set a random box (all channels) to ``value``.

    Args:
        x: input ``(C, [D,] H, W)``.
        y: target; with ``apply_to="both"`` its spatial sizes must be integer multiples of
            the input's, and the box is scaled accordingly.
        rng: source of randomness.
        p: probability of erasing.
        area: range of the erased fraction of the spatial extent.
        value: fill value, in data units.
        apply_to: ``"input"`` (default) or ``"both"``.

    References:
        Zhong et al., "Random Erasing Data Augmentation", AAAI 2020.
    """
    _check(x, y)
    if apply_to not in ("input", "both"):
        raise ValueError(f"apply_to must be 'input' or 'both', got {apply_to!r}")
    if rng.random() >= p:
        return x, y
    box = _random_box(tuple(x.shape[1:]), rng, area)
    x_out = _erase(x, box, (1,) * len(box), value)
    if apply_to == "input":
        return x_out, y
    ratios = tuple(b // a for a, b in zip(x.shape[1:], y.shape[1:], strict=True))
    if any(r * a != b for r, a, b in zip(ratios, x.shape[1:], y.shape[1:], strict=True)):
        raise ShapeError("target", f"integer multiples of {tuple(x.shape[1:])}", tuple(y.shape))
    return x_out, _erase(y, box, ratios, value)


@dataclass(frozen=True)
class PairedAugment:
    """Flips, 90-degree rotations, then optional jitter and erasing, for an (input, target) pair.

    >>> aug = PairedAugment(jitter=False, erase_p=0.0)
    >>> x = np.arange(16.0).reshape(1, 4, 4)
    >>> a, b = aug(x, 2 * x, np.random.default_rng(0))
    >>> bool(np.array_equal(b, 2 * a))
    True
    """

    flip_p: float = 0.5
    rot90: bool = True
    planes: tuple[tuple[int, int], ...] = ((-2, -1),)
    jitter: bool = True
    jitter_scale: tuple[float, float] = (0.9, 1.1)
    jitter_shift: tuple[float, float] = (-0.05, 0.05)
    jitter_apply_to: str = "input"
    erase_p: float = 0.0
    erase_area: tuple[float, float] = (0.02, 0.2)
    erase_value: float = 0.0
    erase_apply_to: str = "input"

    def __call__(self, x: Array, y: Array, rng: np.random.Generator) -> tuple[Array, Array]:
        """Augment ``x`` ``(C, [D,] H, W)`` and ``y`` with the same geometry."""
        x, y = random_flip(x, y, rng, self.flip_p)
        if self.rot90:
            x, y = random_rot90(x, y, rng, self.planes)
        if self.jitter:
            x, y = intensity_jitter(
                x, y, rng, self.jitter_scale, self.jitter_shift, self.jitter_apply_to
            )
        if self.erase_p > 0:
            x, y = random_erasing(
                x, y, rng, self.erase_p, self.erase_area, self.erase_value, self.erase_apply_to
            )
        return x, y
