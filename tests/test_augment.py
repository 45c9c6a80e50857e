"""Paired augmentations keep input and target aligned, in 2D and 3D, NumPy and torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from suite.augment import (
    PairedAugment,
    intensity_jitter,
    random_erasing,
    random_flip,
    random_rot90,
)
from suite.errors import ShapeError

SHAPES = [(2, 6, 8), (1, 4, 6, 8)]
ALL_PLANES = {3: ((-2, -1),), 4: ((1, 2), (1, 3), (2, 3))}


def _upsample(a: np.ndarray, s: int) -> np.ndarray:
    """Nearest-neighbour ``s`` times along every spatial axis."""
    for axis in range(1, a.ndim):
        a = np.repeat(a, s, axis=axis)
    return a


@pytest.mark.parametrize("shape", SHAPES, ids=["2d", "3d"])
@pytest.mark.parametrize("seed", range(6))
def test_geometry_keeps_sr_pairs_aligned(shape: tuple[int, ...], seed: int) -> None:
    x = np.random.default_rng(100 + seed).random(shape)
    aug = PairedAugment(planes=ALL_PLANES[len(shape)], jitter=False, erase_p=0.0)
    a, b = aug(x, _upsample(x, 2), np.random.default_rng(seed))
    np.testing.assert_array_equal(b, _upsample(np.asarray(a), 2))


@pytest.mark.parametrize("shape", SHAPES, ids=["2d", "3d"])
def test_torch_matches_numpy_and_seed_reproduces(shape: tuple[int, ...]) -> None:
    x = np.random.default_rng(1).random(shape)
    aug = PairedAugment(planes=ALL_PLANES[len(shape)], erase_p=1.0)
    a_np, b_np = aug(x, 3 * x, np.random.default_rng(7))
    a_t, b_t = aug(torch.from_numpy(x), torch.from_numpy(3 * x), np.random.default_rng(7))
    assert isinstance(a_t, torch.Tensor) and isinstance(b_t, torch.Tensor)
    np.testing.assert_allclose(a_t.numpy(), a_np)
    np.testing.assert_allclose(b_t.numpy(), b_np)


def test_flip_and_rot90_change_something_over_seeds() -> None:
    x = np.arange(48.0).reshape(1, 6, 8)
    outs = {
        random_flip(*random_rot90(x, x, np.random.default_rng(s)), np.random.default_rng(s))[
            0
        ].tobytes()
        for s in range(20)
    }
    assert len(outs) > 4


def test_jitter_input_only_or_both() -> None:
    x = np.ones((1, 4, 4))
    a, b = intensity_jitter(x, x, np.random.default_rng(0), apply_to="input")
    assert b is x and not np.allclose(a, x)
    a, b = intensity_jitter(x, x, np.random.default_rng(0), apply_to="both")
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="apply_to"):
        intensity_jitter(x, x, np.random.default_rng(0), apply_to="target")


@pytest.mark.parametrize("shape", SHAPES, ids=["2d", "3d"])
def test_erasing_box_is_aligned_on_both(shape: tuple[int, ...]) -> None:
    x = np.ones(shape)
    a, b = random_erasing(x, _upsample(x, 2), np.random.default_rng(3), p=1.0, apply_to="both")
    assert 0 < (a == 0).sum() < a.size
    np.testing.assert_array_equal(b, _upsample(a, 2))
    a, b = random_erasing(x, x, np.random.default_rng(3), p=1.0)
    assert (a == 0).any() and (b == 1).all()
    assert x.min() == 1  # inputs are never modified


def test_bad_shapes_raise() -> None:
    with pytest.raises(ShapeError):
        random_flip(np.zeros((4, 4)), np.zeros((4, 4)), np.random.default_rng(0))
    with pytest.raises(ShapeError):
        random_erasing(
            np.ones((1, 4, 4)), np.ones((1, 6, 6)), np.random.default_rng(0), p=1.0, apply_to="both"
        )
