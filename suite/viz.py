"""Small picture helpers for reports: arrays to 8-bit PNGs with an explicit display window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def to_uint8(image: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    """Map ``[vmin, vmax]`` linearly to ``[0, 255]`` (clipped); works for (H, W) or (H, W, 3)."""
    scaled = (np.asarray(image, dtype=np.float64) - vmin) / max(vmax - vmin, 1e-12)
    return np.clip(np.round(scaled * 255.0), 0, 255).astype(np.uint8)


def save_png(path: str | Path, image: np.ndarray, vmin: float, vmax: float) -> Path:
    """Write a 2D grey or (H, W, 3) colour array as an 8-bit PNG with the given window."""
    Image.fromarray(to_uint8(image, vmin, vmax)).save(path)
    return Path(path)


def side_by_side(images: list[np.ndarray], gap: int = 4) -> np.ndarray:
    """Join same-height uint8 images left to right with a white gap (for validation strips)."""
    height = max(im.shape[0] for im in images)
    parts: list[np.ndarray] = []
    for im in images:
        pad = np.full((height - im.shape[0], *im.shape[1:]), 255, np.uint8)
        parts += [np.concatenate([im, pad]), np.full((height, gap, *im.shape[2:]), 255, np.uint8)]
    return np.concatenate(parts[:-1], axis=1)
