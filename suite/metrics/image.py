"""Full-reference image metrics (PSNR, SSIM 2D/3D) and a flat-region noise estimate.

Conventions follow scikit-image: ``data_range`` is always explicit, SSIM uses an 11-tap
Gaussian window (sigma 1.5) with population covariance and is averaged over the region
unaffected by padding.
"""

from __future__ import annotations

import numpy as np
import torch

from suite.errors import ShapeError
from suite.losses.ssim import ssim_map

ArrayLike = np.ndarray | torch.Tensor


def _to_double(x: ArrayLike) -> torch.Tensor:
    """A detached float64 CPU tensor view of a NumPy array or tensor."""
    t = x.detach() if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
    return t.to(device="cpu", dtype=torch.float64)


def _pair(pred: ArrayLike, ref: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Both inputs as float64 tensors, raising ShapeError when their shapes differ."""
    p, r = _to_double(pred), _to_double(ref)
    if p.shape != r.shape:
        raise ShapeError("ref", f"same as pred {tuple(p.shape)}", tuple(r.shape))
    return p, r


def psnr(pred: ArrayLike, ref: ArrayLike, data_range: float) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range^2 / MSE)``.

    Args:
        pred: any shape, NumPy or torch.
        ref: same shape.
        data_range: max minus min of the data's possible values (e.g. 1.0, 255, 400 HU
            for a [-160, 240] window).

    Returns:
        PSNR in dB (``inf`` when the inputs are equal).

    >>> round(psnr(np.zeros(4), np.full(4, 0.1), data_range=1.0), 2)
    20.0
    """
    p, r = _pair(pred, ref)
    mse = float(torch.mean((p - r) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(data_range**2 / mse))


def _channels_first(x: torch.Tensor, channel_axis: int | None) -> torch.Tensor:
    """``(*spatial)`` or channel-bearing array -> ``(C, *spatial)``."""
    return x.unsqueeze(0) if channel_axis is None else torch.movedim(x, channel_axis, 0)


def ssim(
    pred: ArrayLike,
    ref: ArrayLike,
    data_range: float,
    *,
    slice_axis: int | None = None,
    channel_axis: int | None = None,
    sigma: float = 1.5,
) -> float:
    """Mean structural similarity of a 2D image or a 3D volume.

    Args:
        pred: ``(H, W)`` or ``(D, H, W)`` (plus a channel axis if ``channel_axis`` is given),
            NumPy or torch.
        ref: same shape.
        data_range: explicit range of the data, as in scikit-image.
        slice_axis: for 3D input, average 2D SSIM over slices along this axis (e.g. 0 for
            axial slices of a ``(D, H, W)`` volume); ``None`` computes true 3D SSIM.
            Counted without the channel axis.
        channel_axis: axis holding channels (averaged), or ``None``.
        sigma: Gaussian window sigma (window radius ``int(3.5 * sigma + 0.5)``).

    Returns:
        SSIM in ``[-1, 1]``; equals ``skimage.metrics.structural_similarity(...,
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``.

    References:
        Wang, Bovik, Sheikh, Simoncelli, IEEE TIP 2004.
    """
    p, r = (_channels_first(t, channel_axis) for t in _pair(pred, ref))
    if p.ndim not in (3, 4):
        raise ShapeError("pred", "(H, W) or (D, H, W), plus an optional channel axis", p.shape)
    if slice_axis is not None:
        if p.ndim != 4:
            raise ShapeError("pred", "(D, H, W) when slice_axis is given", p.shape[1:])
        # (C, S, H, W) with the slice axis second, then slices become the batch
        p, r = (torch.movedim(t, slice_axis % 3 + 1, 1).transpose(0, 1) for t in (p, r))
        return float(ssim_map(p, r, data_range, sigma).mean())
    return float(ssim_map(p.unsqueeze(0), r.unsqueeze(0), data_range, sigma).mean())


def noise_std_flat(image: ArrayLike, mask: ArrayLike) -> float:
    """Standard deviation (population, ddof 0) of ``image`` inside a boolean ``mask``.

    Use a region that is flat in the clean image (e.g. a uniform phantom insert, liver, or
    water) so that the spread is the noise; the value is in the image's units (e.g. HU).

    Args:
        image: any shape, NumPy or torch.
        mask: boolean, same shape, selecting at least two elements.
    """
    img = _to_double(image)
    m = _to_double(mask).bool()
    if m.shape != img.shape:
        raise ShapeError("mask", f"same as image {tuple(img.shape)}", tuple(m.shape))
    if int(m.sum()) < 2:
        raise ValueError("mask selects fewer than two elements")
    return float(img[m].std(unbiased=False))
