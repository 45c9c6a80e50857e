"""Classical guided 20 m -> 10 m sharpening and the pieces the Sentinel-2 network shares with it.

The classical method (high-pass injection with least-squares gains): every coarse band is
upsampled by bicubic interpolation and receives a linear combination of the high-pass of the
fine guide bands, ``t_hi = up(t_lo) + sum_k c_k hp(g_k)`` with ``hp(g) = g - up(down(g))``,
``down`` the MTF blur-and-decimate of Wald's protocol. The gains ``c`` of each band are fitted
by least squares on the input itself one level down (guides and targets both degraded once
more by 2), so no reference is ever needed, and are kept for the whole scene (no seams).

The same estimate is the base the Sentinel-2 network corrects, and :func:`reduced_inputs`
makes the network's input from one scene level so that training, target adaptation and
inference build it identically.

References:
    Aiazzi et al., "MTF-tailored multiscale fusion of high-resolution MS and Pan imagery",
    PE&RS 72(5), 2006 (MTF-GLP, high-pass injection with regression gains); Lanaras et al.,
    ISPRS J. Photogramm. 146, 2018 (DSen2, the reduced-resolution protocol for Sentinel-2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from suite.degradations.mtf import mtf_decimate
from suite.errors import ShapeError

MTF_GAIN = 0.3  # generic sensor MTF gain at Nyquist, as in the degradation model


def upsample2(block: np.ndarray) -> np.ndarray:
    """Bicubic x2 of ``(C, h, w)`` (PyTorch, ``align_corners=False``)."""
    x = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))[None]
    return F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)[0].numpy()


def upsample_to(block: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bicubic x2 of ``(C, h, w)`` cut or edge-padded to ``shape`` ``(H, W)`` (float32)."""
    up = upsample2(block)[:, : shape[0], : shape[1]]
    pad = ((0, 0), (0, shape[0] - up.shape[1]), (0, shape[1] - up.shape[2]))
    return np.pad(up, pad, mode="edge") if any(p[1] for p in pad) else up


def highpass(guides: np.ndarray, gain: float = MTF_GAIN) -> np.ndarray:
    """``g - up(down(g))`` of ``(C, H, W)``: the detail a coarse band lacks (float32)."""
    g = np.asarray(guides, dtype=np.float32)
    return g - upsample_to(mtf_decimate(g, gain, 2), g.shape[1:])


def _design(detail: np.ndarray) -> np.ndarray:
    """``(N, C + 1)`` least-squares design: the guides' high-pass and a constant."""
    flat = detail.reshape(detail.shape[0], -1).T.astype(np.float64)
    return np.concatenate([flat, np.ones((flat.shape[0], 1))], axis=1)


def fit_gains(guides: np.ndarray, targets: np.ndarray, gain: float = MTF_GAIN) -> np.ndarray:
    """Injection gains ``(T, G + 1)`` fitted one level below ``guides``/``targets``.

    Args:
        guides: ``(G, 2h, 2w)`` fine bands (any consistent unit).
        targets: ``(T, h, w)`` coarse bands on a grid exactly twice as coarse.
        gain: MTF gain at Nyquist of the simulated degradation.

    Returns:
        Per target band the gains of the ``G`` guide high-passes and an offset.

    Raises:
        ShapeError: the grids are not in a 2:1 ratio.
    """
    if guides.shape[1:] != (2 * targets.shape[1], 2 * targets.shape[2]):
        raise ShapeError("guides", f"(G, {2 * targets.shape[1]}, {2 * targets.shape[2]})",
                         tuple(guides.shape))
    g_lo = mtf_decimate(guides, gain, 2)
    t_lo = np.asarray(targets, dtype=np.float32)
    t_lo = t_lo[:, : g_lo.shape[1], : g_lo.shape[2]]
    detail = t_lo - upsample_to(mtf_decimate(t_lo, gain, 2), t_lo.shape[1:])
    design = _design(highpass(g_lo, gain))
    return np.stack([np.linalg.lstsq(design, d.ravel().astype(np.float64), rcond=None)[0]
                     for d in detail])


def inject(targets_up: np.ndarray, guides: np.ndarray, gains: np.ndarray,
           gain: float = MTF_GAIN) -> np.ndarray:
    """``up(t) + c . hp(g)`` for ``targets_up (T, H, W)``, ``guides (G, H, W)`` (float32)."""
    detail = np.tensordot(gains[:, :-1], highpass(guides, gain), axes=1) + gains[:, -1, None, None]
    return (targets_up + detail).astype(np.float32)


def guided_sharpen(guides: np.ndarray, targets: np.ndarray, gain: float = MTF_GAIN
                   ) -> np.ndarray:
    """Classical guided x2 of ``targets (T, h, w)`` with ``guides (G, 2h, 2w)`` -> ``(T, 2h, 2w)``.

    >>> g = np.random.default_rng(0).random((2, 32, 32)).astype(np.float32)
    >>> guided_sharpen(g, g[:1, ::2, ::2]).shape
    (1, 32, 32)
    """
    gains = fit_gains(guides, targets, gain)
    return inject(upsample_to(targets, guides.shape[1:]), guides, gains, gain)


@dataclass(frozen=True)
class SceneNorm:
    """Per-scene, per-band standardization of the guides and the targets (invertible)."""

    guide_mean: np.ndarray
    guide_std: np.ndarray
    target_mean: np.ndarray
    target_std: np.ndarray

    @classmethod
    def fit(cls, guides: np.ndarray, targets: np.ndarray) -> SceneNorm:
        """Means and standard deviations of ``guides (G, ...)`` and ``targets (T, ...)``."""
        def stats(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            flat = np.asarray(a, dtype=np.float64).reshape(a.shape[0], -1)
            return flat.mean(axis=1), np.maximum(flat.std(axis=1), 1e-6)

        return cls(*stats(guides), *stats(targets))

    def guides(self, g: np.ndarray) -> np.ndarray:
        """Standardized guides."""
        return ((g - self.guide_mean[:, None, None]) / self.guide_std[:, None, None]).astype(
            np.float32)

    def targets(self, t: np.ndarray) -> np.ndarray:
        """Standardized targets."""
        return ((t - self.target_mean[:, None, None]) / self.target_std[:, None, None]).astype(
            np.float32)

    def untargets(self, t: np.ndarray) -> np.ndarray:
        """Standardized targets back to the input unit."""
        return (t * self.target_std[:, None, None] + self.target_mean[:, None, None]).astype(
            np.float32)


def network_input(guides: np.ndarray, base: np.ndarray, norm: SceneNorm) -> np.ndarray:
    """``(G + T, H, W)``: standardized guides, then the standardized classical estimate."""
    return np.concatenate([norm.guides(guides), norm.targets(base)])


def reduced_inputs(guides: np.ndarray, targets: np.ndarray, gain: float = MTF_GAIN
                   ) -> tuple[np.ndarray, np.ndarray, SceneNorm]:
    """One level down: the network's ``(G + T, h, w)`` input whose truth is ``targets``.

    ``guides (G, 2h, 2w)`` and ``targets (T, h, w)`` (a scene as given) are both degraded by 2;
    the classical estimate of the targets is made from those (gains fitted one level further
    down), all standardized with the statistics of the degraded inputs.

    Returns:
        ``(inputs, truth)`` both standardized, and the normalization used.
    """
    g_lo = mtf_decimate(guides, gain, 2)
    t_lo = mtf_decimate(targets, gain, 2)
    norm = SceneNorm.fit(g_lo, t_lo)
    base = guided_sharpen(g_lo, t_lo, gain)
    h, w = base.shape[1:]
    return network_input(g_lo, base, norm), norm.targets(targets[:, :h, :w]), norm
