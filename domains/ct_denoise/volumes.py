"""CT volumes as the model sees them: slice axis last, HU / 1000, with the in-plane pixel size."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from domains.ct_denoise.config import HU_SCALE, NOISE_SCALE, ModelConfig
from domains.ct_denoise.lowdose import AIR_HU, PADDING_BELOW_HU, padding_mask, volume_noise_hu
from suite.engine.device import module_device
from suite.engine.tiling import TileConfig, tiled_inference
from suite.errors import InputError
from suite.io.volume import Volume


@dataclass(frozen=True)
class Axial:
    """A volume reoriented so that axial slices lie across the last axis.

    Attributes:
        hu: (X, Y, Z) float32 HU, Z the slice axis.
        axis: the slice axis in the source array (moved last here).
        pixel_mm: mean in-plane pixel size in millimetres.
    """

    hu: np.ndarray
    axis: int
    pixel_mm: float

    def back(self, data: np.ndarray) -> np.ndarray:
        """Put the slice axis back where the source had it."""
        return np.moveaxis(data, -1, self.axis)


def slice_axis(affine: np.ndarray) -> int:
    """The voxel axis most aligned with the patient's superior-inferior direction."""
    directions = np.abs(affine[:3, :3]) / np.linalg.norm(affine[:3, :3], axis=0)
    return int(np.argmax(directions[2]))


def to_axial(vol: Volume) -> Axial:
    """Reorient ``vol`` with the slice axis last."""
    axis = slice_axis(vol.meta.affine)
    in_plane = [s for i, s in enumerate(vol.meta.spacing[:3]) if i != axis]
    return Axial(np.moveaxis(vol.data, axis, -1), axis, float(np.mean(in_plane)))


def with_noise_channel(inputs: np.ndarray) -> np.ndarray:
    """A (1, X, Y, Z) model input (HU / 1000) with its noise-level channel appended, as
    ``model.noise_channel`` networks are trained on it."""
    level = volume_noise_hu(inputs[0] * HU_SCALE) / NOISE_SCALE
    return np.concatenate([inputs, np.full_like(inputs, level)]).astype(np.float32, copy=False)


def denoise(
    model: nn.Module,
    hu: np.ndarray,
    cfg: ModelConfig,
    progress: bool = False,
    device: torch.device | None = None,
    fit: int | Sequence[int] | None = None,
) -> np.ndarray:
    """Denoise an (X, Y, Z) HU array with sliding-window inference; returns HU float32.

    Scanner padding (below :data:`~domains.ct_denoise.lowdose.PADDING_BELOW_HU`) is shown to
    the network as air and comes back unchanged, so the cliff at the reconstruction circle does
    not leak into the voxels inside it.

    ``device`` defaults to where the model already is, so validation during GPU training
    never moves the training model to the CPU. Patches are shrunk to the smallest multiple of
    ``fit`` that needs as many of them (:func:`suite.engine.tiling.balanced_patch`); ``None``
    takes the network's own size multiple, or the patch sizes' common divisor when the model
    does not say (an ONNX file without the suite's card): the patch sizes themselves divide
    into it.
    """
    bad = int(np.count_nonzero(~np.isfinite(hu)))
    if bad:  # one NaN would spread through every patch that holds it
        raise InputError(None, f"{bad} of {np.size(hu)} voxels are NaN or Inf")
    device = device or module_device(model)
    # The volume goes in as it is and each patch is scaled (and its padding shown as air) on
    # its way to the network: a CT series can hold gigabytes, and a scaled copy of it would
    # be another volume of peak memory.
    volume = np.asarray(hu, dtype=np.float32)
    x = torch.from_numpy(volume if volume.flags.writeable else volume.copy())[None, None]
    fit = fit or getattr(model, "multiple", 0) or math.gcd(*cfg.patch)
    tiles = TileConfig(patch_size=cfg.patch, overlap=cfg.overlap, batch_size=cfg.batch_size,
                       fit=fit)
    net = model.to(device=device, memory_format=torch.channels_last_3d).eval()
    level = volume_noise_hu(volume) / NOISE_SCALE if cfg.noise_channel else None

    def run(batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(device)
        seen = torch.where(batch < PADDING_BELOW_HU, AIR_HU, batch) / HU_SCALE
        if level is not None:  # per volume, so that neighbouring patches agree
            seen = torch.cat([seen, torch.full_like(seen, level)], dim=1)
        return net(seen.contiguous(memory_format=torch.channels_last_3d)).cpu()

    out = tiled_inference(x, run, tiles, progress=progress)[0, 0].numpy()
    del x
    out *= HU_SCALE
    pad = padding_mask(volume)  # the padding is written back unchanged
    if pad is not None:
        out[pad] = volume[pad]
    return out
