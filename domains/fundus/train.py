"""Training recipe: good photographs (left halves) and synthetic fundus images, degraded."""

from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from domains.fundus.config import DEFAULT_YAML, FundusConfig
from domains.fundus.degrade import degrade_fundus
from domains.fundus.losses import fundus_loss
from domains.fundus.metrics import fundus_metrics
from domains.fundus.model import forward, model_arguments, model_input, restore
from domains.fundus.photos import FORMATS, read_fundus, read_label_mask
from domains.fundus.synthetic import synthetic_fundus
from domains.fundus.vessels import vesselness
from suite.config import to_dict
from suite.engine.patches import PairedPatchDataset, random_flips
from suite.engine.train import Trainer, recipe_from_args, training_command
from suite.errors import InputError, UsageError
from suite.models import create_model
from suite.weights import save_weights

Pairs = tuple[list[np.ndarray], list[np.ndarray]]


def make_pairs(img: np.ndarray, fov: np.ndarray, severities: list[float], seed: int,
               region: str, vessels: np.ndarray | None = None) -> Pairs:
    """Inputs ``(6, H, W)`` and packed targets ``(5, H, W)`` (RGB, FOV, vessel map).

    Degradation and context use the whole photograph (they are global); the pair is then
    cropped to ``region``. The vessel map is ``vessels`` (a label mask) when given, else the
    clean photograph's vesselness.
    """
    cols = slice(0, img.shape[1] // 2) if region == "left" else slice(None)
    vessel_map = vesselness(img, fov) if vessels is None else vessels.astype(np.float32)
    target = np.concatenate([img, fov[..., None], vessel_map[..., None]], axis=2)
    target = np.ascontiguousarray(target.transpose(2, 0, 1)[:, :, cols], np.float32)
    inputs = []
    for k, sev in enumerate(severities):
        low, _ = degrade_fundus(img, fov, sev, np.random.default_rng([seed, k]))
        inputs.append(np.ascontiguousarray(model_input(low, fov)[:, :, cols]))
    return inputs, [target] * len(inputs)


def photo_files(paths: list[Path]) -> list[Path]:
    """The photographs named by ``paths``: files as given, folders as the photos directly in
    them (by suffix: ``.png``, ``.jpg``, ``.jpeg``, ``.tif``, ``.tiff``, ``.dcm``), sorted.

    Raises:
        InputError: a folder holds no photograph.
    """
    files: list[Path] = []
    for path in paths:
        if not path.is_dir():
            files.append(path)
            continue
        found = sorted(p for p in path.iterdir() if p.is_file()
                       and not p.name.startswith(".") and p.suffix.lower() in FORMATS)
        if not found:
            raise InputError(path, f"no photographs ({', '.join(FORMATS)}) directly in it")
        files.extend(found)
    return files


def label_file(folder: Path, photo: Path) -> Path:
    """The vessel label mask of ``photo`` in ``folder``: the one file with the photo's stem.

    Raises:
        InputError: none, or several, in the folder.
    """
    found = [p for p in folder.iterdir() if p.is_file() and p.stem == photo.stem] \
        if folder.is_dir() else []
    if len(found) != 1:
        raise InputError(photo, f"{len(found)} vessel label masks named {photo.stem}.* in "
                                f"{folder} (data.vessel_labels); expected one")
    return found[0]


def training_pairs(paths: list[Path], cfg: FundusConfig) -> Pairs:
    """All pairs: the photographs' ``region`` and the synthetic images."""
    if cfg.data.region not in ("left", "all"):
        raise UsageError(f"data.region must be 'left' or 'all', got {cfg.data.region!r}")
    inputs: list[np.ndarray] = []
    targets: list[np.ndarray] = []
    for i, path in enumerate(photo_files(paths)):
        try:
            photo = read_fundus(path, None)
        except InputError as exc:  # train has no --fov; its advice would send the user astray
            raise InputError(path, exc.problem.replace(
                "Pass --fov MASK.png to give one", "training takes fundus photographs only")
            ) from None
        labels = None
        if cfg.data.vessel_labels is not None:
            labels = read_label_mask(label_file(cfg.data.vessel_labels, path),
                                     photo.fov.shape, photo.photo.meta.orientation)
        x, y = make_pairs(photo.rgb, photo.fov, cfg.data.severities, i, cfg.data.region, labels)
        inputs, targets = inputs + x, targets + y
    for j in range(cfg.data.synthetic):
        img, fov = synthetic_fundus(cfg.data.synthetic_size, np.random.default_rng(100 + j))
        x, y = make_pairs(img, fov, cfg.data.synthetic_severities, 100 + j, "all")
        inputs, targets = inputs + x, targets + y
    return inputs, targets


def flips_and_cast(inputs: np.ndarray, target: np.ndarray, rng: np.random.Generator,
                   jitter: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Random flips, then per-channel gains ``1 +- jitter`` on the input's RGB and on its
    context channels alike (the context is a linear blur of the RGB, so it takes the same
    gain); the target keeps its colour."""
    inputs, target = random_flips(inputs, target, rng)
    if jitter:
        gains = (1.0 + jitter * rng.uniform(-1.0, 1.0, 3)).astype(np.float32)
        inputs = inputs * np.tile(gains, 2)[:, None, None]
    return inputs, target


class Validator:
    """Restore a held-out synthetic image (never trained on) at severity 0.6."""

    def __init__(self, cfg: FundusConfig) -> None:
        self.cfg = cfg
        self.clean, self.fov = synthetic_fundus(384, np.random.default_rng(999))
        self.low, _ = degrade_fundus(self.clean, self.fov, 0.6, np.random.default_rng(999))

    def __call__(self, model: nn.Module) -> dict[str, float]:
        out = restore(model, self.low, self.fov, self.cfg.model)
        return {f"val_{k}": v for k, v in fundus_metrics(out, self.clean, self.fov).items()}


class FundusTrainer(Trainer):
    """The engine's loop; the network's output is the RGB input plus its correction."""

    def train_step(self, batch: Any) -> dict[str, float]:
        """One step on ``(input (B, 6, h, w), packed target (B, 5, h, w))``."""
        inputs, target = self.to_device(batch)
        with self.autocast():
            loss = self.loss_fn(forward(self.net, inputs), target)
        self.optimize(loss)
        return {"loss": float(loss.detach())}


def train(args: argparse.Namespace) -> Path:
    """``suite train fundus``: returns the path of the final weights with their card."""
    cfg = recipe_from_args(FundusConfig, DEFAULT_YAML, args, "good fundus photographs")
    if not 0.0 <= cfg.data.cast_jitter < 1.0:
        raise UsageError(f"data.cast_jitter must be in [0, 1), got {cfg.data.cast_jitter}")
    started = time.time()
    inputs, targets = training_pairs(list(args.data), cfg)
    augment = functools.partial(flips_and_cast, jitter=cfg.data.cast_jitter)
    dataset = PairedPatchDataset(targets, inputs=inputs, patch_size=96, augment=augment,
                                 seed=cfg.train.seed)
    loss = functools.partial(_loss, gain=cfg.loss.vessel_gain, cldice=cfg.loss.cldice,
                             ridge=cfg.loss.ridge, contrast=cfg.loss.contrast)
    trainer = FundusTrainer(create_model("unet", **model_arguments(cfg)), loss,
                            torch.optim.AdamW, dataset, Path(args.out), cfg.train,
                            validate=Validator(cfg))
    metrics = trainer.fit(resume=args.resume)
    return _export(trainer, cfg, args, metrics, time.time() - started + trainer.earlier_seconds)


def _loss(pred: Tensor, target: Tensor, gain: float, cldice: float, ridge: float,
          contrast: float) -> Tensor:
    return fundus_loss(pred, target, gain, cldice, ridge, contrast)


def _export(trainer: Trainer, cfg: FundusConfig, args: argparse.Namespace,
            metrics: dict[str, float], seconds: float) -> Path:
    module = trainer.ema.module if trainer.ema is not None else trainer.model
    card = model_card(cfg, args, metrics, seconds)
    path = save_weights(Path(args.out) / "fundus.safetensors", module.cpu(), card)
    (Path(args.out) / "config.yaml.json").write_text(json.dumps(to_dict(cfg), indent=2))
    return path


def model_card(cfg: FundusConfig, args: argparse.Namespace, metrics: dict[str, float],
               seconds: float) -> dict[str, Any]:
    """The JSON card saved beside the weights."""
    data = [str(p) for p in args.data]
    return {
        "domain": "fundus",
        "architecture": "unet",
        "arguments": model_arguments(cfg),
        "normalization": {
            "input": "RGB / (2^bits - 1) in [0, 1], plus 3 context channels: FOV-normalized "
                     "Gaussian blur of the RGB input, sigma = FOV diameter / 16",
            "output": ("RGB in [0, 1] = input RGB x (1 + predicted gain) + predicted offset"
                       if cfg.model.output == "affine" else
                       "RGB in [0, 1] = input RGB + predicted correction") + "; outside FOV kept",
        },
        "inference": {"patch": cfg.model.patch, "overlap": cfg.model.overlap,
                      "halo": cfg.model.halo},
        "training": {
            "data": data,
            "region": f"{cfg.data.region} half of each photograph (the right half is the "
                      "held-out benchmark region)" if cfg.data.region == "left" else "all",
            "synthetic": f"{cfg.data.synthetic} procedural synthetic fundus images "
                         f"({cfg.data.synthetic_size} px, domains/fundus/synthetic.py)",
            "vessel_map": f"label masks from {cfg.data.vessel_labels}"
                          if cfg.data.vessel_labels is not None
                          else "Sato vesselness of each clean photograph (no labels)",
            "recipe": to_dict(cfg),
            "seconds": round(seconds),
            "threads": torch.get_num_threads(),
            "command": training_command("fundus", args),
        },
        "validation": {
            "metrics": metrics,
            "convention": "held-out synthetic fundus image (384 px, seed 999), severity 0.6; "
                          "PSNR/SSIM inside the FOV, data range 1; PSNR on the 12 % most "
                          "vessel-like FOV pixels of the reference (Sato); vessel AUC",
        },
    }
