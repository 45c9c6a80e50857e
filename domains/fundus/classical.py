"""Classical enhancement baselines: CLAHE on luminance, unsharp masking, and both.

Applied inside the FOV; outside pixels are left unchanged.

References:
    Zuiderveld, "Contrast Limited Adaptive Histogram Equalization", Graphics Gems IV, 1994.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage import color, exposure

from domains.fundus.fov import fov_diameter
from suite.errors import UsageError


def _unit_float(img: np.ndarray) -> None:
    """Refuse the stored integers of a photo: these filters work on floats in ``[0, 1]``."""
    if not np.issubdtype(np.asarray(img).dtype, np.floating):
        raise UsageError(f"the baselines take float RGB in [0, 1], got {np.asarray(img).dtype} "
                         "(divide a photo's data by 255, or 65535 for 16 bits)")


def clahe_luminance(img: np.ndarray, fov: np.ndarray, clip_limit: float = 0.01) -> np.ndarray:
    """CLAHE on the L channel of CIELAB, tiles of 1/8 of the FOV diameter.

    Args:
        img: ``(H, W, 3)`` float in ``[0, 1]``.
        fov: ``(H, W)`` bool.
        clip_limit: skimage's normalized clip limit.

    Returns:
        ``(H, W, 3)`` float32 in ``[0, 1]``.
    """
    _unit_float(img)
    lab = color.rgb2lab(np.clip(img, 0, 1))
    kernel = max(8, int(fov_diameter(fov) / 8))
    lum = exposure.equalize_adapthist(lab[..., 0] / 100.0, kernel_size=kernel,
                                      clip_limit=clip_limit)
    lab[..., 0] = np.where(fov, lum * 100.0, lab[..., 0])
    out = np.clip(color.lab2rgb(lab), 0, 1).astype(np.float32)
    return np.where(fov[..., None], out, img).astype(np.float32)


def unsharp(img: np.ndarray, fov: np.ndarray, amount: float = 1.0) -> np.ndarray:
    """Unsharp masking per channel, radius 1/300 of the FOV diameter (about vessel width)."""
    _unit_float(img)
    radius = max(1.0, fov_diameter(fov) / 300)
    # by hand: skimage 0.26's unsharp_mask overflows on float32 and rescales float64 input
    blurred = ndimage.gaussian_filter(img.astype(np.float64), (radius, radius, 0))
    out = img + amount * (img - blurred)
    return np.where(fov[..., None], np.clip(out, 0, 1), img).astype(np.float32)


def clahe_unsharp(img: np.ndarray, fov: np.ndarray) -> np.ndarray:
    """CLAHE on luminance, then unsharp masking."""
    return unsharp(clahe_luminance(img, fov), fov)


BASELINES = {"clahe": clahe_luminance, "unsharp": unsharp, "clahe+unsharp": clahe_unsharp}
