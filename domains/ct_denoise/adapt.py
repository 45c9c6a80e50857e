"""Self-supervised adaptation to the low-dose input itself (``enhance --adapt``), after R2R.

The default weights come from one 20-slice training series; on other anatomy they remove some
real texture with the noise (``docs/ct_denoise.md``). No clean image of the input exists, but
Recorrupted-to-Recorrupted gives an unbiased training signal from the noisy scan alone: with
``z`` an independent draw of noise of the same law as the scan's own noise ``n``, the pair
``(y + z, y - z)`` has input noise ``n + z`` and target noise ``n - z``, which are uncorrelated
for Gaussian noise of equal covariance, so regressing ``y - z`` on ``y + z`` learns the clean
image. Here ``z`` comes from the suite's own projection-domain simulator (the same correlated
FBP texture as real low-dose noise), at the level the default model removes from the input.

References:
    Pang, Zhan, Cui, Ji, "Recorrupted-to-Recorrupted: Unsupervised Deep Learning for Image
    Denoising", CVPR 2021.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from domains.ct_denoise.config import HU_SCALE, AdaptConfig
from domains.ct_denoise.lowdose import padding_as_air, simulate_low_dose, soft_tissue_mask
from domains.ct_denoise.volumes import with_noise_channel
from suite.engine.patches import PairedPatchDataset, random_flips
from suite.engine.train import TrainConfig, Trainer
from suite.errors import InputError
from suite.losses import l1_loss


def removed_noise_hu(noisy: np.ndarray, denoised: np.ndarray) -> float:
    """Std (HU) of what the model removed, in soft tissue: the input's noise level estimate."""
    mask = np.stack([soft_tissue_mask(denoised[..., z]) for z in range(denoised.shape[-1])], -1)
    removed = (noisy - denoised)[mask] if mask.any() else noisy - denoised
    return float(removed.std())


def central_slab(hu: np.ndarray, slices: int) -> np.ndarray:
    """The central ``slices`` axial slices (all of them when there are fewer)."""
    z0 = max(0, hu.shape[-1] // 2 - slices // 2)
    return hu[..., z0 : z0 + slices]


def recorrupted_pairs(
    noisy: np.ndarray, pixel_mm: float, noise_hu: float, cfg: AdaptConfig
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``(y + z, y - z)`` for ``cfg.draws`` simulated noise draws ``z``, as (1, X, Y, Z) model
    units. The photon count is calibrated once and reused, so each draw costs one simulation."""
    first = simulate_low_dose(noisy, pixel_mm, 2, noise_hu=noise_hu, seed=cfg.seed)
    draws = [first.noisy - noisy]
    for k in range(1, cfg.draws):
        again = simulate_low_dose(noisy, pixel_mm, 2, photons=first.photons, seed=cfg.seed + k)
        draws.append(again.noisy - noisy)
    inputs = [((noisy + z) / HU_SCALE)[None].astype(np.float32) for z in draws]
    targets = [((noisy - z) / HU_SCALE)[None].astype(np.float32) for z in draws]
    return inputs, targets


def adapt_model(
    model: nn.Module,
    noisy: np.ndarray,
    denoised: np.ndarray,
    pixel_mm: float,
    cfg: AdaptConfig,
    path: Path,
    device: str = "cpu",
    progress: bool = False,
    noise_channel: bool = False,
) -> tuple[nn.Module, dict[str, float]]:
    """Fine-tune a copy of ``model`` on recorrupted pairs of the input for ``cfg.steps`` steps.

    Args:
        model: the pretrained residual 3D network (left unchanged).
        noisy: the input, (X, Y, Z) HU with Z axial.
        denoised: the pretrained model's output on it (the noise level is read from it).
        pixel_mm: in-plane pixel size.
        cfg: step budget, learning rate, draws, patch, slab size.
        path: the input, for error messages.
        device: where to train (``cpu`` or ``cuda``).
        progress: a progress bar over the steps.
        noise_channel: the network takes the noise-level channel (``model.noise_channel``).

    Returns:
        The adapted model (eval mode) and ``{"noise_hu": estimated input noise}``.
    """
    slab = padding_as_air(central_slab(noisy, cfg.slices))
    patch = [min(p, s - s % 4) for p, s in zip(cfg.patch, slab.shape, strict=True)]
    if min(patch[:2]) < 16 or patch[2] < 4:
        raise InputError(path, f"volume {noisy.shape} is too small for --adapt (needs at least "
                         "16 x 16 x 4 voxels)")
    level = removed_noise_hu(noisy, denoised)
    inputs, targets = recorrupted_pairs(slab, pixel_mm, level, cfg)
    if noise_channel:
        inputs = [with_noise_channel(x) for x in inputs]
    dataset = PairedPatchDataset(targets, inputs=inputs, patch_size=patch,
                                 augment=random_flips, seed=cfg.seed)
    train_cfg = TrainConfig(steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr,
                            lr_schedule="constant", checkpoint_every=0, validate_every=0,
                            amp=False, progress=progress, device=device, seed=cfg.seed)
    with tempfile.TemporaryDirectory(prefix="ct_adapt_") as tmp:
        trainer = Trainer(copy.deepcopy(model).train(), l1_loss, torch.optim.Adam,
                          dataset, Path(tmp), train_cfg)
        trainer.fit()
    return trainer.model.eval(), {"noise_hu": round(level, 1)}
