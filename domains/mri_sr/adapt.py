"""Self-supervised adaptation to the input scan (``--adapt``), in the spirit of SMORE.

The scan's in-plane axes are already at the target resolution, so thick slices simulated along
each in-plane axis (same profile, same factor) with the cubic B-spline back give training pairs
whose restored axis is an in-plane one. The default weights are fine-tuned on them for a fixed
step budget, then applied through-plane.

References:
    Zhao, Dewey, Carass, Woo, Prince et al., "SMORE: A Self-Supervised Anti-Aliasing and
    Super-Resolution Algorithm for MRI Using Deep Learning", IEEE TMI 40(3), 2021 (arXiv 2020).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from domains.mri_sr.config import AdaptConfig, LossConfig
from domains.mri_sr.sr import intensity_scale
from domains.mri_sr.train import PlaneTrainer, make_loss, plane_dataset, sr_pair
from suite.engine.device import module_device
from suite.engine.train import TrainConfig
from suite.errors import InputError


def in_plane_pairs(
    data: np.ndarray, axis: int, scale: float
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Pairs ``(1, A, N, B)`` restoring each in-plane axis; N (the slice index) stays in the
    middle so a ``(P, 1, P)`` crop is one in-plane image."""
    moved = np.moveaxis(data, axis, -1)
    norm = intensity_scale(data)
    inputs, targets = [], []
    for restored in (0, 1):
        x, y = sr_pair(moved, restored, scale, "gaussian", norm)
        # sr_pair put the restored axis last: (other, N, restored)
        inputs.append(x[None])
        targets.append(y[None])
    return inputs, targets


def adapt_model(
    model: nn.Module,
    data: np.ndarray,
    axis: int,
    scale: float,
    cfg: AdaptConfig,
    loss: LossConfig,
    path: Path,
    progress: bool = False,
) -> nn.Module:
    """Fine-tune ``model`` on the scan's own in-plane pairs for ``cfg.steps`` steps.

    Args:
        model: the pretrained 2D residual network (modified in place and returned).
        data: ``(I, J, K)`` input volume, scanner units.
        axis: its slice axis.
        scale: the through-plane factor asked for.
        cfg: step budget, batch, lr and patch size.
        loss: loss weights (the recipe's).
        path: the input, for error messages.
        progress: a progress bar over the steps.

    Returns:
        The adapted model in eval mode.
    """
    inputs, targets = in_plane_pairs(data, axis, scale)
    small = min(min(t.shape[1], t.shape[3]) for t in targets)
    patch = min(cfg.patch, small - small % 4)
    if patch < 16:
        raise InputError(path, f"in-plane size {small} is too small for --adapt (needs 16)")
    train_cfg = TrainConfig(steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr,
                            lr_schedule="constant", amp=False, progress=progress,
                            device=str(module_device(model)))
    with tempfile.TemporaryDirectory(prefix="mri_sr_adapt_") as tmp:
        trainer = PlaneTrainer(model.train(), make_loss(loss.l1, loss.frequency, loss.phase),
                               torch.optim.AdamW, plane_dataset(inputs, targets, patch, 0),
                               Path(tmp), train_cfg)
        trainer.fit()
    return trainer.model.eval()
