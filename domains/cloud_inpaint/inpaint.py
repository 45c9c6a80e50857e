"""Filling masked pixels: the band-wise residual network, and the classical baselines.

The network sees one band at a time (so any band set works) with spectral context: planes ``[band *
clear, mean of bands * clear, mask, prior, mean of priors]``, plus ``[reference band, mean of
reference bands]`` with temporal guidance (:func:`band_planes`). The prior is the classical starting
point the network corrects: the smooth fill of the band
(:func:`domains.cloud_inpaint.fill.smooth_fill`: harmonic, then a few biharmonic sweeps), or with a
reference date its Poisson clone into the hole (smooth fill of the band plus the reference minus its
own smooth fill). Every band is standardized by the mean and standard deviation of its own clear
pixels (the reference by its own, over the same pixels). Whatever the filler, pixels outside the
mask are copied from the input untouched. Weights of the earlier plain generator
(``resnet_generator`` cards, 3 or 5 planes, no prior) still load and run through
:func:`band_inputs`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from skimage.restoration import inpaint_biharmonic
from torch import Tensor, nn

from domains.cloud_inpaint.fill import SMOOTH_SWEEPS, smooth_fill
from domains.cloud_inpaint.net import ResidualInpainter
from suite.engine.device import module_device
from suite.engine.tiling import PadMode, TileConfig, tiled_inference

Filler = Callable[[np.ndarray, np.ndarray], np.ndarray]


def clear_stats(image: np.ndarray, clear: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and std ``(C, 1, 1)`` over clear pixels (std floored at 1e-6)."""
    pix = image[:, clear]
    return pix.mean(1)[:, None, None], np.maximum(pix.std(1), 1e-6)[:, None, None]


def band_inputs(z: np.ndarray, mask: np.ndarray, ref: np.ndarray | None = None) -> np.ndarray:
    """Generator input ``(C, K, H, W)`` (K = 3, or 5 with a reference) from standardized bands.

    Args:
        z: ``(C, H, W)`` standardized image.
        mask: ``(H, W)`` bool, True where pixels are to be filled.
        ref: ``(C, H, W)`` standardized reference date, or ``None``.
    """
    keep = (~mask).astype(np.float32)
    hidden = z * keep
    c = z.shape[0]
    parts = [hidden, np.broadcast_to(hidden.mean(0), z.shape), np.broadcast_to(1 - keep, z.shape)]
    if ref is not None:
        parts += [ref, np.broadcast_to(ref.mean(0), z.shape)]
    return np.stack(parts, axis=1).astype(np.float32).reshape(c, len(parts), *z.shape[1:])


def classical_prior(z: Tensor, mask: Tensor, ref: Tensor | None = None,
                    sweeps: int = SMOOTH_SWEEPS) -> Tensor:
    """The starting point inside the mask, in standardized units ``(B, C, H, W)``.

    Args:
        z: ``(B, C, H, W)`` standardized bands (values under the mask ignored).
        mask: ``(B, 1, H, W)``, 1 where pixels are to be filled.
        ref: ``(B, C, H, W)`` standardized reference date, or ``None``.
        sweeps: biharmonic sweeps after the harmonic solve (:func:`smooth_fill`).

    Returns:
        ``z`` outside the mask; inside, the smooth fill of ``z``, plus ``ref`` minus its own
        smooth fill with a reference (the Poisson clone of the reference into the hole: its
        detail, anchored to the target's values along the hole's edge).

    References:
        Perez, Gangnet, Blake, "Poisson Image Editing", SIGGRAPH 2003.
    """
    prior = smooth_fill(z, mask, sweeps)
    if ref is not None:
        prior = prior + mask * (ref - smooth_fill(ref, mask, sweeps))
    return prior


def band_planes(z: Tensor, mask: Tensor, ref: Tensor | None = None,
                sweeps: int = SMOOTH_SWEEPS, prior: Tensor | None = None) -> Tensor:
    """Residual-network input ``(B*C, K, H, W)``, K = 5 (7 with a reference), one band per row.

    Planes: ``[band * clear, mean of bands * clear, mask, prior, mean of priors]`` (+ ``[reference
    band, mean of reference bands]``); the prior is :func:`classical_prior` unless given.

    Args:
        z: ``(B, C, H, W)`` standardized bands.
        mask: ``(B, 1, H, W)``, 1 where pixels are to be filled.
        ref: ``(B, C, H, W)`` standardized reference date, or ``None``.
        sweeps: biharmonic sweeps of the prior (:func:`smooth_fill`).
        prior: ``(B, C, H, W)``, the prior when the caller made it (a window of a large scene,
            whose holes run past its edges: :mod:`domains.cloud_inpaint.windows`).
    """
    b, c, h, w = z.shape
    hidden = z * (1 - mask)
    if prior is None:
        prior = classical_prior(hidden, mask, ref, sweeps)
    parts = [hidden, hidden.mean(1, keepdim=True).expand_as(z), mask.expand_as(z), prior,
             prior.mean(1, keepdim=True).expand_as(z)]
    if ref is not None:
        parts += [ref, ref.mean(1, keepdim=True).expand_as(z)]
    return torch.stack(parts, 2).reshape(b * c, len(parts), h, w)


@torch.no_grad()
def run_generator(model: nn.Module, x: np.ndarray, progress: bool = False) -> np.ndarray:
    """Run the generator on ``(N, K, H, W)`` on its own device, padding by reflection to a
    multiple of 4.

    Beyond 256 pixels the engine's tiled inference runs 192-pixel tiles with a 32-pixel halo
    (self-attention memory grows with the square of the tile area), with a progress bar over
    the tiles if ``progress``.
    """
    h, w = x.shape[-2:]
    if max(h, w) > 256:
        patch, halo = 192, 32
        # reflection needs more pixels than it pads; a narrow strip (300 x 50) is replicated
        roomy = all(s > halo + max(0, patch - s) for s in (h, w))
        mode: PadMode = "reflect" if roomy else "replicate"
        config = TileConfig(patch_size=patch, overlap=32, halo=halo, batch_size=4, pad_mode=mode)
        t = torch.from_numpy(np.ascontiguousarray(x))
        return tiled_inference(t, model, config, progress=progress)[:, 0].numpy()
    ph, pw = (-h) % 4, (-w) % 4
    t = torch.from_numpy(np.ascontiguousarray(x)).to(module_device(model))
    if ph or pw:
        mode = "reflect" if min(h, w) > max(ph, pw) else "replicate"
        t = F.pad(t, (0, pw, 0, ph), mode=mode)
    return model(t)[:, 0, :h, :w].float().cpu().numpy()


def model_filler(model: nn.Module, ref: np.ndarray | None = None,
                 progress: bool = False) -> Filler:
    """Filler ``(image, mask) -> filled`` from a band-wise generator (``ref`` on the same grid);
    ``progress`` shows a bar over the generator's tiles."""

    def fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        mu, sd = clear_stats(image, ~mask)
        z = (image - mu) / sd
        zr = None
        if ref is not None:
            rmu, rsd = clear_stats(ref, ~mask)
            zr = (ref - rmu) / rsd
        pred = run_generator(model.eval(), _planes(model, z, mask, zr), progress)
        return composite(image, mask, pred * sd + mu)

    return fill


def _planes(model: nn.Module, z: np.ndarray, mask: np.ndarray, zr: np.ndarray | None
            ) -> np.ndarray:
    """The input planes the model was trained on: residual planes, or the legacy ones."""
    if not isinstance(model, ResidualInpainter):
        return band_inputs(z, mask, zr)
    t = torch.from_numpy(np.asarray(z, np.float32))[None]
    m = torch.from_numpy(mask.astype(np.float32))[None, None]
    r = None if zr is None else torch.from_numpy(np.asarray(zr, np.float32))[None]
    with torch.no_grad():
        return band_planes(t, m, r, model.prior_sweeps).numpy()


def composite(image: np.ndarray, mask: np.ndarray, filled: np.ndarray) -> np.ndarray:
    """Input where ``mask`` is False, ``filled`` where it is True (``(C, H, W)``)."""
    return np.where(mask[None], filled, image).astype(image.dtype)


def mean_fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Baseline: every masked pixel gets its band's mean over the clear pixels."""
    mu, _ = clear_stats(image, ~mask)
    return composite(image, mask, np.broadcast_to(mu, image.shape))


def biharmonic_fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Baseline: scikit-image biharmonic inpainting, bands as channels.

    References:
        Damelin & Hoang, "On Surface Completion and Image Inpainting by Biharmonic
        Functions", Int. J. Math. Math. Sci., 2018 (``skimage.restoration.inpaint_biharmonic``).
    """
    out = inpaint_biharmonic(np.moveaxis(image, 0, -1).astype(np.float64), mask, channel_axis=-1)
    return composite(image, mask, np.moveaxis(out, -1, 0))


def matched_reference(ref: np.ndarray, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Baseline: the reference date, each band histogram-matched to the target's clear pixels."""
    clear = ~mask
    out = np.stack([match_values(ref[b], image[b][clear]) for b in range(image.shape[0])])
    return composite(image, mask, out)


def match_values(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Histogram matching of ``source`` (any shape) onto the values ``target`` (1-D).

    Each source value goes to the target quantile of its own quantile, as
    ``skimage.exposure.match_histograms`` does for images of the same shape.
    """
    _, inverse, counts = np.unique(source.ravel(), return_inverse=True, return_counts=True)
    src_q = np.cumsum(counts) / source.size
    tgt = np.sort(target.ravel())
    tgt_q = np.arange(1, tgt.size + 1) / tgt.size
    return np.interp(src_q, tgt_q, tgt)[inverse].reshape(source.shape).astype(source.dtype)
