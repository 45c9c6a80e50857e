"""Training recipe: 1 mm isotropic MRI, thick slices simulated along every axis at factors 2-4."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from skimage.measure import block_reduce
from torch import nn

from domains.mri_sr.config import DEFAULT_YAML, MriSrConfig
from domains.mri_sr.geometry import Profile, cubic_upsample, thick_slices
from domains.mri_sr.metrics import convention, sr_metrics
from domains.mri_sr.sr import NORM_PERCENTILE, intensity_scale, super_resolve
from suite.config import to_dict
from suite.engine.patches import PairedPatchDataset, random_flips
from suite.engine.train import Trainer, hardware_description, recipe_from_args, training_command
from suite.io.volume import read_volume
from suite.losses import frequency_loss, l1_loss
from suite.models import create_model
from suite.weights import load_state, save_weights

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def model_arguments(cfg: MriSrConfig) -> dict[str, Any]:
    """Keyword arguments of ``create_model("unet", ...)``: 2D lean residual U-Net."""
    return {"spatial_dims": 2, "in_channels": 1, "out_channels": 1,
            "channels": list(cfg.model.channels), "residual": True, "backend": "lean"}


def build_model(cfg: MriSrConfig) -> nn.Module:
    """The recipe's network (about 0.34 M parameters with the default widths)."""
    return create_model("unet", **model_arguments(cfg))


def foreground_crop(data: np.ndarray, margin: int = 4) -> np.ndarray:
    """Crop to the bounding box of voxels above 1 % of the maximum, plus ``margin``."""
    idx = np.argwhere(data > 0.01 * float(data.max()))
    lo = np.maximum(idx.min(0) - margin, 0)
    hi = np.minimum(idx.max(0) + 1 + margin, data.shape)
    return np.ascontiguousarray(data[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))])


def coarse_copies(volumes: Sequence[np.ndarray], factors: Sequence[int]) -> list[np.ndarray]:
    """Each volume block-averaged by each factor along all three axes (1: unchanged).

    A 2 mm scan at x4 has 8 mm slices and anatomy four times smaller in voxels than a 1 mm
    scan at x4; averaged copies of the 1 mm volumes put that case into the training pairs.
    """
    out = []
    for data in volumes:
        for f in factors:
            # Cropped to whole blocks first: block_reduce would pad partial blocks with zeros.
            cut = data[tuple(slice(0, (n // f) * f) for n in data.shape)]
            out.append(block_reduce(cut, (f, f, f), np.mean).astype(np.float32))
    return out


def sr_pair(
    data: np.ndarray, axis: int, scale: float, profile: Profile, norm: float
) -> tuple[np.ndarray, np.ndarray]:
    """(cubic-upsampled thick input, thin target), normalized, ``axis`` moved last.

    Args:
        data: ``(I, J, K)`` high-resolution volume.
        axis: simulated slice axis.
        scale: thickness factor.
        profile: slice profile.
        norm: intensity normalization constant.

    Returns:
        Two float32 arrays of equal shape with the restored axis last.
    """
    up = cubic_upsample(thick_slices(data, axis, scale, profile), axis, scale)
    target = np.take(data, np.arange(up.shape[axis]), axis=axis)
    return (np.moveaxis(up / norm, axis, -1).astype(np.float32),
            np.moveaxis(target / norm, axis, -1).astype(np.float32))


def training_pairs(
    volumes: Sequence[np.ndarray], cfg: MriSrConfig
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Pairs ``(1, A, B, Z)`` over volumes x axes x scales (profiles in turn), both plane
    orientations (the second as a free transposed view)."""
    inputs, targets = [], []
    turn = 0
    for data in volumes:
        norm = intensity_scale(data)
        for axis in range(3):
            for scale in cfg.data.scales:
                profile = cast(Profile, cfg.data.profiles[turn % len(cfg.data.profiles)])
                turn += 1
                x, y = sr_pair(data, axis, scale, profile, norm)
                for view in (lambda a: a, lambda a: a.swapaxes(0, 1)):
                    inputs.append(view(x)[None])
                    targets.append(view(y)[None])
    return inputs, targets


def make_loss(l1: float, frequency: float, phase: float) -> LossFn:
    """L1 plus the 2D FFT amplitude/phase loss (weights from the recipe)."""

    def loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = l1 * l1_loss(pred, target)
        if frequency:
            total = total + frequency * frequency_loss(
                pred, target, spatial_dims=2, amplitude_weight=1.0, phase_weight=phase)
        return total

    return loss


class PlaneTrainer(Trainer):
    """The engine's loop on 2D planes cut from 3D pairs: ``(B, 1, P, 1, P) -> (B, 1, P, P)``."""

    def to_device(self, batch: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Drop the singleton plane axis and use the fast ``channels_last`` layout."""
        return [t.squeeze(3).contiguous(memory_format=torch.channels_last)
                for t in super().to_device(batch)]


def plane_dataset(inputs: list[np.ndarray], targets: list[np.ndarray], patch: int,
                  seed: int) -> PairedPatchDataset:
    """Random ``(patch, 1, patch)`` crops (one plane) with paired flips."""
    return PairedPatchDataset(targets, inputs=inputs, patch_size=(patch, 1, patch),
                              augment=random_flips, seed=seed)


def train(args: argparse.Namespace) -> Path:
    """``suite train mri-sr``: returns the path of the final weights with their card."""
    cfg = recipe_from_args(MriSrConfig, DEFAULT_YAML, args, "high-resolution NIfTI or DICOM")
    started = time.time()
    volumes = [foreground_crop(read_volume(p).data) for p in args.data]
    inputs, targets = training_pairs(coarse_copies(volumes, cfg.data.coarse), cfg)
    trainer = PlaneTrainer(
        initial_model(cfg), make_loss(cfg.loss.l1, cfg.loss.frequency, cfg.loss.phase),
        torch.optim.AdamW, plane_dataset(inputs, targets, cfg.data.patch, cfg.train.seed),
        Path(args.out), cfg.train)
    trainer.fit(resume=args.resume)
    seconds = time.time() - started + trainer.earlier_seconds
    module = trainer.ema.module if trainer.ema is not None else trainer.model
    metrics = validate(module.cpu(), cfg.data.val)
    card = model_card(cfg, args, metrics, seconds)
    path = save_weights(Path(args.out) / "mri_sr.safetensors", module.cpu(), card)
    (Path(args.out) / "config.yaml.json").write_text(json.dumps(to_dict(cfg), indent=2))
    return path


def initial_model(cfg: MriSrConfig) -> nn.Module:
    """The recipe's network, with ``data.init``'s weights when the recipe is a fine-tuning stage."""
    model = build_model(cfg)
    if cfg.data.init is not None:
        model.load_state_dict(load_state(cfg.data.init))
    return model


def validate(model: nn.Module, path: Path | None) -> dict[str, float]:
    """Held-out volume: thick slices (Gaussian profile) along axis 2 at factors 2 and 4."""
    if path is None:
        return {}
    data = read_volume(path).data
    out: dict[str, float] = {}
    for scale in (2.0, 4.0):
        thick = thick_slices(data, 2, scale, "gaussian")
        for name, net in (("cubic", None), ("model", model)):
            pred = super_resolve(net, thick, 2, scale)
            ref = data[..., : pred.shape[2]]
            for k, v in sr_metrics(pred, ref, 2, scale).items():
                out[f"x{scale:g}_{name}_{k}"] = round(v, 4)
    return out


def model_card(cfg: MriSrConfig, args: argparse.Namespace, metrics: dict[str, float],
               seconds: float) -> dict[str, Any]:
    """The JSON card saved beside the weights."""
    data = [str(p) for p in args.data]
    return {
        "domain": "mri-sr",
        "architecture": "unet",
        "arguments": model_arguments(cfg),
        "parameters": sum(p.numel() for p in build_model(cfg).parameters()),
        "normalization": {
            "input": f"intensity / {NORM_PERCENTILE}th percentile of the input's non-zero "
                     "voxels, after cubic B-spline upsampling onto the thin grid",
            "output": "same units, residual (input + predicted correction), rescaled back",
        },
        "inference": {"planes": "2D, the restored axis last (W); averaged over the two "
                      "orthogonal planes containing the slice axis",
                      "batch_size": cfg.model.batch_size},
        "training": {
            "data": data, "recipe": to_dict(cfg), "seconds": round(seconds),
            "command": training_command("mri-sr", args),
            "pairs": f"thick slices (profiles {cfg.data.profiles}) along each axis at factors "
                     f"{cfg.data.scales}, cubic B-spline back onto the thin grid, of each volume "
                     f"block-averaged by {cfg.data.coarse}",
            "init": str(cfg.data.init) if cfg.data.init is not None else None,
            "hardware": hardware_description(cfg.train.device),
        },
        "validation": {"volume": str(cfg.data.val), "metrics": metrics,
                       "convention": convention()},
    }
