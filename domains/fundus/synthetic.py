"""Procedurally generated synthetic fundus images with branching vessel trees (training aid).

Not a model of any real eye: an orange-red disc with radial shading, a bright optic disc, a
darker macula, choroidal texture, and two vessel arcades grown as random branching curves whose
width shrinks at each branch. They add vessel shapes and colours to the one real photograph.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def _grow(canvas: np.ndarray, rng: np.random.Generator, y: float, x: float, angle: float,
          width: float, depth: int) -> None:
    """Draw one vessel segment as a soft curve and branch it recursively."""
    h, w = canvas.shape
    length = rng.uniform(0.15, 0.3) * h
    for _ in range(int(length)):
        angle += rng.normal(0, 0.05)
        y, x = y + np.sin(angle), x + np.cos(angle)
        if not (0 <= y < h and 0 <= x < w):
            return
        r = int(np.ceil(width)) + 1
        y0, x0 = int(y), int(x)
        yy, xx = np.mgrid[max(0, y0 - r):min(h, y0 + r + 1), max(0, x0 - r):min(w, x0 + r + 1)]
        prof = np.clip(width / 2 + 0.5 - np.hypot(yy - y, xx - x), 0, 1)
        canvas[yy, xx] = np.maximum(canvas[yy, xx], prof)
    if depth > 0 and width > 1.0:
        for turn in (-1, 1):
            _grow(canvas, rng, y, x, angle + turn * rng.uniform(0.3, 0.8),
                  width * rng.uniform(0.65, 0.85), depth - 1)


def synthetic_fundus(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic fundus image.

    Args:
        size: side in pixels.
        rng: random generator.

    Returns:
        ``(size, size, 3)`` float32 RGB in ``[0, 1]`` and its ``(size, size)`` bool FOV.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    c = size / 2
    r = np.hypot(yy - c, xx - c) / (0.46 * size)
    fov = r <= 1
    disc = (c + rng.uniform(-0.05, 0.05) * size, c + rng.choice([-1, 1]) * 0.25 * size)
    d_od = np.hypot(yy - disc[0], xx - disc[1]) / (0.06 * size)
    d_mac = np.hypot(yy - c, xx - (2 * c - disc[1]) * 0.5 - c * 0.5) / (0.1 * size)
    texture = ndimage.gaussian_filter(rng.standard_normal((size, size)), size / 150)
    base = np.array(rng.uniform([0.7, 0.22, 0.08], [0.85, 0.35, 0.18]), np.float32)
    shade = (1 - 0.3 * r**2) * (1 - 0.25 * np.exp(-(d_mac**2)))
    shade = shade * (1 + 0.04 * texture / texture.std())
    img = base * shade[..., None]
    img = img + np.array([0.2, 0.45, 0.3]) * np.exp(-(d_od**4))[..., None]
    img = img * (1 - 0.45 * _vessels(size, disc, rng)[..., None] * np.array([0.35, 1, 1]))
    img = np.where(fov[..., None], np.clip(img, 0, 1), 0)
    return img.astype(np.float32), fov


def _vessels(size: int, disc: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """Vessel density map ``(size, size)`` in ``[0, 1]``: arcades leaving the optic disc."""
    canvas = np.zeros((size, size), np.float32)
    toward = 0.0 if disc[1] < size / 2 else np.pi
    for k in range(6):
        angle = toward + (k - 2.5) * 0.45 + rng.normal(0, 0.1)
        _grow(canvas, rng, disc[0], disc[1], angle, size / 130 * rng.uniform(0.7, 1.1), 5)
    return ndimage.gaussian_filter(canvas, 0.7)
