"""Low-dose CT simulation in the projection domain (Poisson counts + electronic noise, then FBP).

Only the noise is added to the input, so the input's own sharpness is kept: because filtered
back-projection is linear, ``FBP(p_noisy) - FBP(p_clean) = FBP(p_noisy - p_clean)``, and one
back-projection of the sinogram noise gives the image noise exactly.

The photon budget is calibrated per input (see :func:`calibrate_photons`), because at a fixed
count the noise depends strongly on the patient's size (a head vs an abdomen differ by a factor
of about six at the same I0; ``../shared/NOTES.md``).

References:
    Zeng et al., "A simple low-dose x-ray CT simulation from high-dose scan", IEEE TNS 2015.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.restoration import estimate_sigma
from skimage.transform import iradon, radon
from tqdm.auto import tqdm

MU_WATER_PER_MM = 0.0192  # linear attenuation of water at about 70 keV effective energy
ELECTRONIC_SIGMA = 10.0  # counts, the electronic noise of the NOTES' reference simulation
N_VIEWS = 360
SINOGRAM_DOWNSAMPLE = 4  # line integrals are smooth: project a 4x smaller image, interpolate
SOFT_TISSUE_HU = (-100.0, 200.0)
PADDING_BELOW_HU = -1500.0
"""Values below this are the scanner's padding outside the reconstruction circle (written as
-2000, -2048, -3024 or -32768), not air: air is -1000 HU, and even strong low-dose noise keeps
it far above. Padding is never denoised or made noisy; it is written back as it was."""
AIR_HU = -1024.0  # what padding stands in for while a network or the simulator looks at it


def padding_mask(hu: np.ndarray) -> np.ndarray | None:
    """Where ``hu`` holds scanner padding, or ``None`` when it holds none (the usual case)."""
    mask = np.asarray(hu) < PADDING_BELOW_HU
    return mask if mask.any() else None


def padding_as_air(hu: np.ndarray) -> np.ndarray:
    """``hu`` with its padding set to air (``hu`` itself when there is none)."""
    mask = padding_mask(hu)
    return hu if mask is None else np.where(mask, AIR_HU, hu).astype(hu.dtype)


@dataclass(frozen=True)
class LowDoseResult:
    """The noisy volume and what was simulated.

    Attributes:
        noisy: (I, J, K) float32 HU, input plus simulated noise.
        photons: incident photons per detector bin and view (I0) that were used.
        added_noise_hu: standard deviation of the added noise in soft tissue (HU).
    """

    noisy: np.ndarray
    photons: float
    added_noise_hu: float


def _angles() -> np.ndarray:
    return np.linspace(0.0, 180.0, N_VIEWS, endpoint=False)


def line_integrals(slice_hu: np.ndarray, pixel_mm: float) -> np.ndarray:
    """Sinogram of line integrals of attenuation, (bins, views), at full detector sampling.

    The slice is projected at 1/4 resolution (the attenuation line integrals vary slowly across
    bins) and interpolated back onto the bins that ``skimage.transform.radon`` gives for the
    full-size square slice.
    """
    side = max(slice_hu.shape)
    square = _pad_square(np.clip(slice_hu, -1000, None), side, fill=-1000.0)
    mu = MU_WATER_PER_MM * (1.0 + square / 1000.0)
    f = SINOGRAM_DOWNSAMPLE
    small = (
        mu.reshape(side // f, f, side // f, f).mean(axis=(1, 3))
        if side % f == 0
        else ndimage.zoom(mu, 1.0 / f, order=1)
    )
    scale = side / small.shape[0]
    sino_small = radon(small, _angles(), circle=False) * pixel_mm * scale
    full_bins = radon(np.zeros((side, side)), [0.0], circle=False).shape[0]
    pos_small = (np.arange(sino_small.shape[0]) - sino_small.shape[0] // 2) * scale
    pos_full = np.arange(full_bins) - full_bins // 2
    return np.stack(
        [np.interp(pos_full, pos_small, col, left=0.0, right=0.0) for col in sino_small.T], axis=1
    )


def _pad_square(image: np.ndarray, side: int, fill: float) -> np.ndarray:
    out = np.full((side, side), fill, dtype=np.float64)
    out[: image.shape[0], : image.shape[1]] = image
    return out


def slice_noise(
    slice_hu: np.ndarray,
    pixel_mm: float,
    photons: float,
    rng: np.random.Generator,
    attenuation_scale: float = 1.0,
) -> np.ndarray:
    """Image noise (HU) of one axial slice at ``photons`` incident counts per bin and view.

    ``attenuation_scale`` multiplies the line integrals before the counts are drawn: below 1 the
    noise is that of a less attenuating patient, whose views differ less in counts, so it is less
    streaky and puts more of its power at the finest scale (see :func:`simulate_low_dose`).
    """
    p = attenuation_scale * line_integrals(slice_hu, pixel_mm)
    expected = photons * np.exp(-p)
    counts = rng.poisson(expected) + rng.normal(0.0, ELECTRONIC_SIGMA, size=p.shape)
    # Detectors never report below one count: the log would blow up (the clipping that makes
    # noise grow faster than 1/sqrt(I0) at very low dose).
    noisy_p = -np.log(np.maximum(counts, 1.0) / photons)
    side = max(slice_hu.shape)
    noise_mu = (
        iradon(noisy_p - p, _angles(), circle=False, output_size=side, filter_name="ramp")
        / pixel_mm
    )
    return (1000.0 * noise_mu / MU_WATER_PER_MM)[: slice_hu.shape[0], : slice_hu.shape[1]]


def soft_tissue_mask(slice_hu: np.ndarray) -> np.ndarray:
    """Water-like pixels (HU in [-100, 200]) away from edges: where noise is measured."""
    lo, hi = SOFT_TISSUE_HU
    smooth = ndimage.uniform_filter(slice_hu, 5)
    return ndimage.binary_erosion((smooth > lo) & (smooth < hi), iterations=3)


def estimate_input_noise(slice_hu: np.ndarray) -> float:
    """Noise of the input itself in HU (wavelet MAD, Donoho), inside soft tissue.

    CT noise is correlated, so this underestimates slightly; it only sets the scale of the
    ``--dose`` fraction, which is documented as approximate.
    """
    mask = soft_tissue_mask(slice_hu)
    clipped = np.clip(slice_hu, *SOFT_TISSUE_HU)
    if mask.sum() < 100:
        return float(estimate_sigma(clipped))
    rows, cols = np.nonzero(mask)
    box = clipped[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    return float(estimate_sigma(box))


def volume_noise_hu(hu: np.ndarray, slices: int = 4) -> float:
    """Noise of an (X, Y, Z) HU volume: the median of :func:`estimate_input_noise` over up to
    ``slices`` evenly spaced axial slices (a few suffice; each costs a wavelet transform)."""
    picks = np.unique(np.linspace(0, hu.shape[-1] - 1, min(slices, hu.shape[-1])).round())
    return float(np.median([estimate_input_noise(padding_as_air(hu[..., int(z)]))
                            for z in picks]))


def calibrate_photons(
    slice_hu: np.ndarray,
    pixel_mm: float,
    target_hu: float,
    seed: int = 0,
    bracket: tuple[float, float] = (1e2, 1e12),
    attenuation_scale: float = 1.0,
) -> float:
    """Find I0 whose added noise in soft tissue is ``target_hu`` on this slice.

    Noise falls monotonically with I0 but bends sharply where electronic noise and count
    clipping take over, so a multiplicative 1/sqrt(I0) update oscillates there; a bisection in
    log I0 (with the same noise draw at every step) converges to about 1% in 16 steps over
    ten decades.
    """
    mask = soft_tissue_mask(slice_hu)
    if mask.sum() < 100:
        mask = np.ones_like(mask)
    lo, hi = np.log(bracket[0]), np.log(bracket[1])
    for _ in range(16):
        mid = 0.5 * (lo + hi)
        rng = np.random.default_rng(seed)
        noise = slice_noise(slice_hu, pixel_mm, float(np.exp(mid)), rng, attenuation_scale)
        measured = float(noise[mask].std())
        lo, hi = (mid, hi) if measured > target_hu else (lo, mid)
    return float(np.exp(0.5 * (lo + hi)))


def simulate_low_dose(
    volume_hu: np.ndarray,
    pixel_mm: float,
    axis: int,
    *,
    dose: float | None = None,
    noise_hu: float | None = None,
    photons: float | None = None,
    seed: int = 0,
    progress: bool = False,
    attenuation_scale: float = 1.0,
) -> LowDoseResult:
    """Add projection-domain low-dose noise to every slice along ``axis``.

    Exactly one of ``dose`` (fraction of the input's dose, in (0, 1)), ``noise_hu`` (target
    added noise in soft tissue) or ``photons`` (I0 per bin and view) sets the level.

    Args:
        volume_hu: (I, J, K) HU.
        pixel_mm: in-plane pixel size in millimetres (square pixels assumed).
        axis: the slice axis (axial slices are taken across it).
        progress: a progress bar over the slices (a 300-slice series takes minutes).
        attenuation_scale: scales the line integrals that set the counts (1: the volume's own).
            The texture of CT noise depends on the patient: through a large abdomen the lateral
            views carry far fewer counts than the others, and their noise dominates as streaks;
            through a smaller patient the views are more alike and the noise is finer. Below 1
            this gives the input the noise texture of a less attenuating patient at the same
            noise level; the anatomy is the volume's own.
    """
    rng = np.random.default_rng(seed)
    vol = np.moveaxis(np.asarray(volume_hu, dtype=np.float64), axis, 0)
    middle = vol[len(vol) // 2]
    if photons is None:
        target = noise_hu if noise_hu is not None else _dose_to_noise(middle, dose)
        photons = calibrate_photons(middle, pixel_mm, target, seed,
                                    attenuation_scale=attenuation_scale)
    slices = tqdm(vol, desc="simulating slices", unit="slice", disable=not progress)
    noise = np.stack([slice_noise(s, pixel_mm, photons, rng, attenuation_scale)
                      for s in slices])
    pad = padding_mask(vol)
    if pad is not None:
        noise[pad] = 0.0  # padding is not a measurement: it stays exactly as it was
    masks = np.stack([soft_tissue_mask(s) for s in vol])
    added = float(noise[masks].std()) if masks.any() else float(noise.std())
    noisy = np.moveaxis(vol + noise, 0, axis).astype(np.float32)
    return LowDoseResult(noisy=noisy, photons=photons, added_noise_hu=added)


def _dose_to_noise(slice_hu: np.ndarray, dose: float | None) -> float:
    """Quantum noise variance scales as 1/dose: added variance = sigma_in^2 (1/dose - 1)."""
    if dose is None or not 0.0 < dose < 1.0:
        raise ValueError(f"dose must be a fraction in (0, 1), got {dose}")
    sigma_in = max(estimate_input_noise(slice_hu), 1.0)
    return sigma_in * float(np.sqrt(1.0 / dose - 1.0))
