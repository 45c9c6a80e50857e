"""Field of view (FOV) of a fundus photograph: the bright disc inside the dark camera rim.

Every loss and metric of the domain is computed inside the FOV, and pixels outside it are
written back unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from suite.errors import InputError
from suite.io.photo import read_photo, to_display, to_stored

MIN_FRACTION = 0.2  # a fundus disc covers at least this share of the frame
MAX_FRACTION = 0.97  # ... and leaves some dark rim
MIN_SOLIDITY = 0.9  # the disc (possibly clipped by the frame) is convex
MAX_RIM_LEVEL = 0.12  # the camera rim is nearly black (fraction of full scale)
# Share of the FOV's edge that lies on one ellipse: 0.97 on the real photograph, 0.39-0.46 on
# discs cut by dark bands at top and bottom; 0.17-0.29 on squares, rotated squares (a satellite
# scene's nodata collar) and hexagons.
MIN_ON_ELLIPSE = 0.33


def estimate_fov(rgb: np.ndarray, path: str | Path | None = None) -> np.ndarray:
    """Estimate the FOV mask of a fundus photograph.

    The brightest channel is thresholded half-way between the dark rim and the retina
    (robust percentiles), the largest connected component is kept, holes are filled and the
    edge is eroded by 0.5 % of the disc diameter so that the blurred rim stays outside.

    Args:
        rgb: ``(H, W, 3)`` float in ``[0, 1]``.
        path: the source file, named in the error.

    Returns:
        ``(H, W)`` bool mask.

    Raises:
        InputError: no fundus-like disc on a dark rim is found (not a fundus photograph).
    """
    level = ndimage.uniform_filter(rgb.max(axis=2), 5)
    rim, retina = np.percentile(level, 2), np.percentile(level, 90)
    if retina - rim < 0.1 or rim > MAX_RIM_LEVEL:
        raise InputError(path, "no field of view found (no bright disc on a dark camera rim);"
                         " is this a fundus photograph? Pass --fov MASK.png to give one")
    mask = _largest_component(level > rim + 0.25 * (retina - rim))
    _check_disc(mask, level, path)
    erode = max(1, int(0.005 * np.sqrt(mask.sum() / np.pi) * 2))
    return np.asarray(ndimage.binary_erosion(mask, iterations=erode), dtype=bool)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, count = ndimage.label(mask)
    if count == 0:
        return mask
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, count + 1))
    return np.asarray(ndimage.binary_fill_holes(labels == 1 + int(np.argmax(sizes))), dtype=bool)


def _check_disc(mask: np.ndarray, level: np.ndarray, path: str | Path | None) -> None:
    """Refuse masks that are not a convex disc on a dark surround."""
    from skimage.morphology import convex_hull_image

    fraction = float(mask.mean())
    problem = ""
    if not MIN_FRACTION <= fraction <= MAX_FRACTION:
        problem = f"bright region covers {100 * fraction:.0f} % of the frame"
    elif mask.sum() / max(1, convex_hull_image(mask).sum()) < MIN_SOLIDITY:
        problem = "bright region is not a disc"
    elif _edge_on_ellipse(mask) < MIN_ON_ELLIPSE:
        problem = "bright region is not round"
    elif np.median(level[~mask]) > MAX_RIM_LEVEL:
        problem = "surround of the bright region is not a dark camera rim"
    if problem:
        raise InputError(path, f"no field of view found ({problem}); is this a fundus "
                         "photograph? Pass --fov MASK.png to give one")


def _edge_on_ellipse(mask: np.ndarray, tries: int = 400) -> float:
    """Largest share of the mask's edge within 1 % of one axis-aligned ellipse (RANSAC).

    Edge pixels on the frame are left out (a disc clipped by the frame is still a disc); the
    ellipse, not a circle, admits photographs resized to another aspect ratio; the fit is robust
    so that straight cuts of the disc (dark bands above and below) do not bend it.
    """
    edge = mask & ~ndimage.binary_erosion(mask)
    edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = False
    y, x = np.nonzero(edge)
    if x.size < 20:
        return 1.0
    step = max(1, x.size // 2000)  # a few thousand points decide as well as all of them
    x, y = x[::step].astype(float), y[::step].astype(float)
    half = max(float(np.ptp(x)), float(np.ptp(y)), 1.0) / 2
    x, y = (x - x.mean()) / half, (y - y.mean()) / half
    tol = max(0.01, 1.5 / half)  # at least 1.5 px, for small photographs
    rows = np.c_[x**2, y**2, x, y]  # A x^2 + B y^2 + C x + D y = 1
    rng = np.random.default_rng(0)
    best = 0.0
    for _ in range(tries):
        ellipse = _ellipse_through(rows[rng.choice(x.size, 4, replace=False)])
        if ellipse is not None:
            cx, cy, ax, ay = ellipse
            dev = np.abs(np.hypot((x - cx) / ax, (y - cy) / ay) - 1)
            best = max(best, float(np.mean(dev < tol)))
    return best


def _ellipse_through(rows: np.ndarray) -> tuple[float, float, float, float] | None:
    """Centre and semi-axes of the axis-aligned ellipse through four points, given as rows
    ``(x^2, y^2, x, y)``; ``None`` when they fix no ellipse or a needle (axes ratio over 3)."""
    try:
        a2, b2, c, d = np.linalg.solve(rows, np.ones(4))
    except np.linalg.LinAlgError:
        return None
    if a2 <= 0 or b2 <= 0:
        return None
    cx, cy = -c / (2 * a2), -d / (2 * b2)
    k = 1 + a2 * cx**2 + b2 * cy**2
    ax, ay = np.sqrt(k / a2), np.sqrt(k / b2)
    if not np.isfinite(ax) or not np.isfinite(ay) or max(ax, ay) > 3 * min(ax, ay):
        return None
    return float(cx), float(cy), float(ax), float(ay)


def read_mask(path: str | Path, shape: tuple[int, ...], what: str,
              orientation: int | None = None) -> np.ndarray:
    """A user's mask of the photograph's stored ``(H, W)`` ``shape``, drawn on the photograph
    as viewers show it (its EXIF ``orientation``), from any image: set where its alpha is
    above half (when it has transparency), else where its brightest channel is above half of
    its maximum, so that a mask saved as JPEG, anti-aliased, or drawn in one colour reads as
    drawn.

    Raises:
        InputError: unreadable file, or not the photograph's size (``what`` names the mask).
    """
    mask = read_photo(path)
    data = np.asarray(mask.data)
    if data.shape[2] in (2, 4) and data[..., -1].min() < data[..., -1].max():
        plane = data[..., -1]  # the shape is in the transparency
    else:
        plane = data[..., : 3 if data.shape[2] >= 3 else 1].max(axis=2)
    top = float(plane.max())
    seen = to_display(plane > top / 2 if top > 0 else plane > 0, mask.meta.orientation)
    stored = to_stored(seen, orientation)
    if stored.shape[:2] != tuple(shape[:2]):
        shown = to_display(np.zeros(shape[:2], bool), orientation).shape
        raise InputError(path, f"{what} is {seen.shape[1]}x{seen.shape[0]} as shown, the "
                         f"photograph {shown[1]}x{shown[0]}")
    return np.ascontiguousarray(stored, dtype=bool)


def read_fov(path: str | Path, shape: tuple[int, int], orientation: int | None = None
             ) -> np.ndarray:
    """Read a user's FOV mask (:func:`read_mask`: inside where set) of the photograph's size,
    drawn on the photograph as shown (its EXIF ``orientation``).

    Raises:
        InputError: unreadable file, wrong size or an empty mask.
    """
    mask = read_mask(path, shape, "FOV mask", orientation)
    if mask.sum() < 64:
        raise InputError(path, "FOV mask is empty")
    h, w = mask.shape
    centre = mask[h // 2 - h // 8: h // 2 + h // 8 + 1, w // 2 - w // 8: w // 2 + w // 8 + 1]
    if mask[0, 0] and mask[0, -1] and mask[-1, 0] and mask[-1, -1] and centre.mean() < 0.5:
        # restoring the black rim and leaving the retina as it was is never what was meant
        raise InputError(path, "FOV mask is set in the corners and not at the centre: inverted? "
                               "(set pixels are inside the field of view)")
    return mask


def fov_diameter(mask: np.ndarray) -> float:
    """Diameter in pixels of the disc with the FOV's area (a clipped disc counts its area)."""
    return float(2.0 * np.sqrt(mask.sum() / np.pi))
