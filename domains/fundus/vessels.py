"""Vessel maps without manual labels: multiscale Hessian vesselness of the green channel.

Retinal vessels are dark ridges, best contrasted in the green channel. The map used to weight
losses and to score vessel pixels comes from the clean target (skimage's Sato filter), or from
a user's label mask when one is given.

References:
    Sato et al., "Three-dimensional multi-scale line filter for segmentation and visualization
    of curvilinear structures in medical images", Medical Image Analysis 1998;
    Frangi et al., "Multiscale vessel enhancement filtering", MICCAI 1998.
"""

from __future__ import annotations

import numpy as np
from skimage.filters import sato

from domains.fundus.fov import fov_diameter

VESSEL_FRACTION = 0.12  # share of FOV pixels called vessel in the binary map (metric convention)


def vessel_sigmas(fov: np.ndarray) -> list[float]:
    """Filter scales in pixels: vessel half-widths at this resolution (1411 px disc: 1-3 px)."""
    unit = max(0.6, fov_diameter(fov) / 1300)
    return [unit, 2 * unit, 3 * unit]


def vesselness(img: np.ndarray, fov: np.ndarray) -> np.ndarray:
    """Sato vesselness (dark ridges) of the green channel, normalized to ``[0, 1]`` in the FOV.

    Args:
        img: ``(H, W, 3)`` float in ``[0, 1]``.
        fov: ``(H, W)`` bool.

    Returns:
        ``(H, W)`` float32, 0 outside the FOV (and on the FOV edge, where the rim is a ridge).
    """
    from scipy import ndimage

    green = img[..., 1].astype(np.float64)
    # fill the rim with the FOV mean so its edge does not read as a ridge
    green = np.where(fov, green, green[fov].mean())
    v = sato(green, sigmas=vessel_sigmas(fov), black_ridges=True, mode="reflect")
    inner = ndimage.binary_erosion(fov, iterations=int(4 * vessel_sigmas(fov)[-1]))
    v = np.where(inner, v, 0.0)
    top = np.percentile(v[inner], 99.5) if inner.any() else 1.0
    return np.clip(v / max(top, 1e-8), 0, 1).astype(np.float32)


def vessel_mask(vmap: np.ndarray, fov: np.ndarray,
                fraction: float = VESSEL_FRACTION) -> np.ndarray:
    """Binary vessels: the ``fraction`` of FOV pixels with the strongest vesselness."""
    threshold = np.quantile(vmap[fov], 1 - fraction)
    return np.asarray((vmap > threshold) & fov, dtype=bool)


def vessel_auc(scores: np.ndarray, labels: np.ndarray, fov: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` against bool ``labels`` inside the FOV.

    Computed exactly by the Mann-Whitney rank statistic (ties get average ranks).
    """
    from scipy.stats import rankdata

    s, y = scores[fov].ravel(), labels[fov].ravel()
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))
