"""Spectral and spatial quality indexes of multiband images: SAM, ERGAS, Q, Q2n, sCC, QNR.

All images are ``(C, H, W)`` float arrays in the same units (reflectance or DN); ``pred`` is the
fused image and ``ref`` the reference. Conventions follow the pansharpening toolbox of Vivone et
al. (IEEE TGRS 53(5), 2015) unless stated: Q on 32x32 sliding windows (step 1, ``qindex.m``), Q2n
on 32x32 blocks with step 32 (``q2n.m``), image sides mirrored up to a whole number of blocks and
the band count zero-padded to a power of two.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from suite.errors import ShapeError


def _check_pair(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cast to float64 and check both are ``(C, H, W)`` with equal shapes."""
    p, r = np.asarray(pred, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if p.ndim != 3:
        raise ShapeError("pred", "(C, H, W)", p.shape)
    if r.shape != p.shape:
        raise ShapeError("ref", str(p.shape), r.shape)
    return p, r


def sam(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Spectral Angle Mapper in degrees, mean over valid pixels.

    Pixels where either spectrum has zero norm, or ``mask`` ``(H, W)`` is False, are left out.

    References:
        Yuhas, Goetz, Boardman, "Discrimination among semi-arid landscape endmembers using the
        Spectral Angle Mapper (SAM) algorithm", JPL AVIRIS workshop, 1992.
    """
    p, r = _check_pair(pred, ref)
    dot = np.sum(p * r, axis=0)
    norms = np.linalg.norm(p, axis=0) * np.linalg.norm(r, axis=0)
    valid = norms > 0
    if mask is not None:
        valid &= np.asarray(mask, dtype=bool)
    if not valid.any():
        return float("nan")
    cos = np.clip(dot[valid] / norms[valid], -1.0, 1.0)
    return float(np.degrees(np.mean(np.arccos(cos))))


def ergas(pred: np.ndarray, ref: np.ndarray, ratio: float, mask: np.ndarray | None = None) -> float:
    """ERGAS: ``100 / ratio * sqrt(mean_k RMSE_k^2 / mean(ref_k)^2)`` (0 is perfect).

    Args:
        pred: ``(C, H, W)`` fused image.
        ref: ``(C, H, W)`` reference.
        ratio: resolution ratio PAN/MS (e.g. 4); the factor ``h / l`` of Wald is ``1 / ratio``.
        mask: optional ``(H, W)`` valid pixels.

    References:
        Wald, "Quality of high resolution synthesised images: is there a simple criterion?",
        Fusion of Earth Data, 2000.
    """
    p, r = _check_pair(pred, ref)
    valid = np.ones(p.shape[1:], bool) if mask is None else np.asarray(mask, dtype=bool)
    err = np.mean((p[:, valid] - r[:, valid]) ** 2, axis=1)
    means = np.mean(r[:, valid], axis=1)
    return float(100.0 / ratio * np.sqrt(np.mean(err / means**2)))


def _window_sums(img: np.ndarray, size: int) -> np.ndarray:
    """Sums over every ``size x size`` window fully inside ``img`` (``'valid'``), shape shrinks."""
    c = np.pad(np.cumsum(np.cumsum(img, axis=0), axis=1), ((1, 0), (1, 0)))
    return c[size:, size:] - c[:-size, size:] - c[size:, :-size] + c[:-size, :-size]


def _q_map(x: np.ndarray, y: np.ndarray, size: int) -> np.ndarray:
    """UIQI of every ``size x size`` window of two ``(H, W)`` images (``qindex.m``)."""
    n = float(size * size)
    sx, sy = _window_sums(x, size), _window_sums(y, size)
    sxx, syy, sxy = _window_sums(x * x, size), _window_sums(y * y, size), _window_sums(x * y, size)
    mul, sq = sx * sy, sx * sx + sy * sy
    den1 = n * (sxx + syy) - sq
    den = den1 * sq
    q = np.ones_like(den)
    flat = (den1 == 0) & (sq != 0)
    q[flat] = 2 * mul[flat] / sq[flat]
    ok = den != 0
    q[ok] = 4 * (n * sxy[ok] - mul[ok]) * mul[ok] / den[ok]
    return q


def q_index(pred: np.ndarray, ref: np.ndarray, block_size: int | None = 32,
            mask: np.ndarray | None = None) -> float:
    """Universal Image Quality Index (Q), averaged over bands (1 is perfect).

    Args:
        pred: ``(H, W)`` or ``(C, H, W)``.
        ref: same shape as ``pred``.
        block_size: side of the sliding window (step 1) whose Q values are averaged; ``None`` for
            one global Q per band. Images smaller than the window use a global Q.
        mask: ``(H, W)`` valid pixels, or ``None`` (all): only windows wholly inside it are
            averaged (the global Q takes its pixels), so nodata never enters the score.

    References:
        Wang, Bovik, "A universal image quality index", IEEE SPL 9(3), 2002.
    """
    p = np.asarray(pred, dtype=np.float64)
    r = np.asarray(ref, dtype=np.float64)
    if p.shape != r.shape:
        raise ShapeError("ref", str(p.shape), r.shape)
    p, r = (p[None], r[None]) if p.ndim == 2 else (p, r)
    valid = _valid(mask, p.shape[1:])
    p, r = np.where(valid, p, 0.0), np.where(valid, r, 0.0)
    values = []
    for a, b in zip(p, r, strict=True):
        if block_size is None or block_size >= min(a.shape):
            values.append(_q_global(a[valid], b[valid]))
        else:
            inside = _window_sums(valid.astype(np.float64), block_size) > block_size**2 - 0.5
            values.append(float(_q_map(a, b, block_size)[inside].mean()) if inside.any()
                          else float("nan"))
    return float(np.mean(values))


def _valid(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """The ``(H, W)`` validity map: ``mask``, or every pixel."""
    return np.ones(shape, bool) if mask is None else np.asarray(mask, dtype=bool)


def _q_global(x: np.ndarray, y: np.ndarray) -> float:
    """UIQI of two whole ``(H, W)`` images: the window formula with one window."""
    n = float(x.size)
    sx, sy = x.sum(), y.sum()
    mul, sq = sx * sy, sx * sx + sy * sy
    den1 = n * (np.sum(x * x) + np.sum(y * y)) - sq
    if den1 * sq != 0:
        return float(4 * (n * np.sum(x * y) - mul) * mul / (den1 * sq))
    return float(2 * mul / sq) if (den1 == 0 and sq != 0) else 1.0


# ---------------------------------------------------------------- hypercomplex Q2n


def cd_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cayley-Dickson product of hypercomplex numbers along axis 0 (length a power of two).

    ``(p, q) (r, s) = (p r - conj(s) q, s p + q conj(r))``; length 4 gives quaternions, 8
    octonions. Any trailing shape broadcasts.
    """
    n = a.shape[0]
    if n == 1:
        return a * b
    h = n // 2
    p, q, r, s = a[:h], a[h:], b[:h], b[h:]
    first = cd_multiply(p, r) - cd_multiply(cd_conj(s), q)
    second = cd_multiply(s, p) + cd_multiply(q, cd_conj(r))
    return np.concatenate([first, second], axis=0)


def cd_conj(a: np.ndarray) -> np.ndarray:
    """Hypercomplex conjugate along axis 0: negate every part but the real one."""
    out = -a
    out[0] = a[0]
    return out


def _normalize_blocks(ref: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per block and band: ``(x - mean_ref) / std_ref + 1`` for both (``onions_quality.m``).

    ``ref``/``pred`` are ``(C, B, n)`` (bands, blocks, pixels); std is the unbiased one.
    """
    m = ref.mean(axis=2, keepdims=True)
    s = ref.std(axis=2, ddof=1, keepdims=True)
    s = np.where(s == 0, 1e-10, s)
    r = (ref - m) / s + 1
    p = np.where(m == 0, pred - m + 1, (pred - m) / s + 1)
    return r, p


def _onion_quality(ref: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Q2n of each block; ``ref``/``pred`` are ``(C, B, n)``; returns ``(B,)`` moduli."""
    r, p = _normalize_blocks(ref, pred)
    n = r.shape[2]
    k = n / (n - 1.0)
    mr, mp = r.mean(axis=2), p.mean(axis=2)
    mod_mr2, mod_mp2 = np.sum(mr**2, axis=0), np.sum(mp**2, axis=0)
    energy = np.mean(np.sum(r**2, axis=0), axis=1) + np.mean(np.sum(p**2, axis=0), axis=1)
    var_sum = k * energy - k * (mod_mr2 + mod_mp2)
    mean_bias = 2 * np.sqrt(mod_mr2 * mod_mp2) / (mod_mr2 + mod_mp2)
    cov = k * cd_multiply(r, cd_conj(p)).mean(axis=2) - k * cd_multiply(mr, cd_conj(mp))
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.linalg.norm(cov, axis=0) * mean_bias * 2 / var_sum
    return np.where(var_sum == 0, mean_bias, q)


def _blocks(img: np.ndarray, size: int) -> np.ndarray:
    """Mirror ``(C, H, W)`` up to multiples of ``size`` and cut into ``(C, B, size*size)``."""
    c, h, w = img.shape
    ph, pw = (-h) % size, (-w) % size
    img = np.pad(img, ((0, 0), (0, ph), (0, pw)), mode="symmetric")
    nh, nw = img.shape[1] // size, img.shape[2] // size
    b = img.reshape(c, nh, size, nw, size).transpose(0, 1, 3, 2, 4)
    return b.reshape(c, nh * nw, size * size)


def q2n(pred: np.ndarray, ref: np.ndarray, block_size: int = 32,
        mask: np.ndarray | None = None) -> float:
    """Hypercomplex quality index Q2n (Q4 for 4 bands, Q8 for 8), mean over blocks (1 perfect).

    Bands are zero-padded up to a power of two (as ``q2n.m``); the image is cut into
    non-overlapping ``block_size`` blocks after mirroring its sides up to whole blocks; in each
    block both images are normalized by the reference's band means and standard deviations.
    With ``mask`` (``(H, W)`` valid pixels) only the blocks wholly inside it are averaged.

    References:
        Garzelli, Nencini, "Hypercomplex quality assessment of multi/hyperspectral images",
        IEEE GRSL 6(4), 2009; Alparone et al., "A global quality measurement of pan-sharpened
        multispectral imagery", IEEE GRSL 1(4), 2004 (Q4).
    """
    p, r = _check_pair(pred, ref)
    valid = _valid(mask, p.shape[1:])
    p, r = np.where(valid, p, 0.0), np.where(valid, r, 0.0)
    c = p.shape[0]
    n = 1 << max(0, (c - 1).bit_length())
    if n > c:
        zeros = np.zeros((n - c, *p.shape[1:]))
        p, r = np.concatenate([p, zeros]), np.concatenate([r, zeros])
    quality = _onion_quality(_blocks(r, block_size), _blocks(p, block_size))
    whole = _blocks(valid[None].astype(np.float64), block_size)[0].min(axis=1) > 0.5
    return float(np.mean(quality[whole])) if whole.any() else float("nan")


def scc(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Spatial correlation coefficient: Pearson correlation of Laplacian details, band mean;
    with ``mask`` (``(H, W)`` valid pixels), over the pixels whose neighbours are valid too.

    References:
        Zhou, Civco, Silander, "A wavelet transform method to merge Landsat TM and SPOT
        panchromatic data", IJRS 19(4), 1998.
    """
    p, r = _check_pair(pred, ref)
    valid = _valid(mask, p.shape[1:])
    # the Laplacian reads each pixel's 4 neighbours: only pixels whose neighbours have data
    inner = ndimage.binary_erosion(valid, border_value=1) if mask is not None else valid
    p, r = np.where(valid, p, 0.0), np.where(valid, r, 0.0)
    values = []
    for a, b in zip(p, r, strict=True):
        da = ndimage.laplace(a, mode="reflect")[inner]
        db = ndimage.laplace(b, mode="reflect")[inner]
        values.append(np.corrcoef(da, db)[0, 1])
    return float(np.mean(values))


# ---------------------------------------------------------------- full resolution


def d_lambda(fused: np.ndarray, ms: np.ndarray, p: int = 1, block_size: int | None = 32,
             mask: np.ndarray | None = None, mask_lr: np.ndarray | None = None) -> float:
    """Spectral distortion D_lambda: change of band-to-band Q from MS to fused image.

    Args:
        fused: ``(C, H, W)`` pansharpened image.
        ms: ``(C, h, w)`` original multispectral image.
        p: exponent.
        block_size: Q window.
        mask: ``(H, W)`` valid pixels of ``fused``; mask_lr: ``(h, w)`` of ``ms``.

    References:
        Alparone et al., "Multispectral and panchromatic data fusion assessment without
        reference", PE&RS 74(2), 2008.
    """
    c = fused.shape[0]
    total = 0.0
    for i in range(c):
        for j in range(i + 1, c):
            q_f = q_index(fused[i], fused[j], block_size, mask)
            q_m = q_index(ms[i], ms[j], block_size, mask_lr)
            total += 2 * abs(q_f - q_m) ** p
    return float((total / (c * (c - 1))) ** (1.0 / p))


def d_s(
    fused: np.ndarray,
    ms: np.ndarray,
    pan: np.ndarray,
    pan_lr: np.ndarray,
    q: int = 1,
    block_size: int | None = 32,
    mask: np.ndarray | None = None,
    mask_lr: np.ndarray | None = None,
) -> float:
    """Spatial distortion D_s: change of band-to-PAN Q between full and MS resolution.

    Args:
        fused: ``(C, H, W)`` pansharpened image.
        ms: ``(C, h, w)`` original multispectral image.
        pan: ``(H, W)`` panchromatic image.
        pan_lr: ``(h, w)`` PAN degraded to MS resolution (toolbox: MTF-filtered and decimated).
        q: exponent.
        block_size: Q window.
        mask: ``(H, W)`` valid pixels of ``fused`` and ``pan``; mask_lr: ``(h, w)`` of the rest.

    References:
        Alparone et al., PE&RS 74(2), 2008.
    """
    total = 0.0
    for k in range(fused.shape[0]):
        q_hr = q_index(fused[k], pan, block_size, mask)
        q_lr = q_index(ms[k], pan_lr, block_size, mask_lr)
        total += abs(q_hr - q_lr) ** q
    return float((total / fused.shape[0]) ** (1.0 / q))


def qnr(
    fused: np.ndarray,
    ms: np.ndarray,
    pan: np.ndarray,
    pan_lr: np.ndarray,
    alpha: float = 1.0,
    beta: float = 1.0,
    block_size: int | None = 32,
    mask: np.ndarray | None = None,
    mask_lr: np.ndarray | None = None,
) -> dict[str, float]:
    """Quality with No Reference: ``(1 - D_lambda)^alpha (1 - D_s)^beta`` (1 is perfect).

    ``mask`` / ``mask_lr``: valid pixels at full and at MS resolution (:func:`d_s`).

    Returns:
        ``{"qnr": ..., "d_lambda": ..., "d_s": ...}``.

    References:
        Alparone et al., PE&RS 74(2), 2008.
    """
    dl = d_lambda(fused, ms, block_size=block_size, mask=mask, mask_lr=mask_lr)
    ds = d_s(fused, ms, pan, pan_lr, block_size=block_size, mask=mask, mask_lr=mask_lr)
    return {"qnr": float((1 - dl) ** alpha * (1 - ds) ** beta), "d_lambda": dl, "d_s": ds}
