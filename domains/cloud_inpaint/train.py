"""Training recipe: synthetic clouds over clear real scenes, masked L1 + PatchGAN (hinge).

``suite train cloud-inpaint --data FOLDERS... [--config guided.yaml]``. Pairs are made on the
fly: a clear patch is standardized per band on the pixels left clear, a synthetic cloud mask is
drawn (:func:`domains.cloud_inpaint.clouds.make_clouds`), and for the guided model a reference
date is simulated (smooth per-band gain and offset, sub-pixel shift, noise and land-cover
change blobs). The engine's :class:`~suite.engine.train.Trainer` runs the loop; only the step
is overridden (discriminator, then generator).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor, nn

from domains.cloud_inpaint.clouds import fractal_noise, make_clouds
from domains.cloud_inpaint.config import DEFAULT_YAML, CloudConfig
from domains.cloud_inpaint.curves import draw_curves
from domains.cloud_inpaint.data import load_scenes
from domains.cloud_inpaint.inpaint import band_planes, clear_stats, model_filler
from domains.cloud_inpaint.metrics import masked_metrics
from suite.config import to_dict
from suite.engine.patches import PairedPatchDataset, random_flips
from suite.engine.train import Trainer, recipe_from_args, training_command
from suite.errors import UsageError
from suite.losses import discriminator_loss, frequency_loss, generator_loss
from suite.models import create_model
from suite.weights import save_weights

BANDS = 4


def architecture(cfg: CloudConfig) -> str:
    """Registered name of the generator."""
    return "cloud_residual_inpainter" if cfg.model.residual else "resnet_generator"


def generator_arguments(cfg: CloudConfig) -> dict[str, Any]:
    """Keyword arguments of ``create_model(architecture(cfg), ...)``."""
    common = {"features": cfg.model.features, "num_blocks": cfg.model.num_blocks,
              "attention": True}
    if cfg.model.residual:
        return {"in_channels": 7 if cfg.model.guided else 5, **common,
                "prior_sweeps": cfg.model.prior_sweeps}
    return {"in_channels": 5 if cfg.model.guided else 3, "out_channels": 1, **common,
            "tanh": False}


def build_models(cfg: CloudConfig) -> tuple[nn.Module, nn.Module]:
    """Generator and PatchGAN (input: composite band + mask, spectral norm)."""
    gen = create_model(architecture(cfg), **generator_arguments(cfg))
    disc = create_model("patchgan", in_channels=2, features=cfg.model.disc_features,
                        num_layers=cfg.model.disc_layers, norm="none", spectral_norm=True)
    return gen, disc


def simulate_reference(z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Another date of a standardized ``(C, H, W)`` patch: gain/offset drift, shift, change."""
    shape = z.shape[1:]
    gain = rng.uniform(0.7, 1.3, (z.shape[0], 1, 1)) + 0.1 * fractal_noise(shape, rng)
    ref = gain * z + rng.normal(0, 0.3, (z.shape[0], 1, 1))
    ref = ndimage.shift(ref, (0, *rng.uniform(-0.7, 0.7, 2)), order=1, mode="nearest")
    change = fractal_noise(shape, rng) > rng.uniform(1.0, 2.5)
    ref = np.where(change, np.roll(ref, shape[0] // 2, axis=1), ref)
    return ref + rng.normal(0, 0.05, ref.shape)


def make_degrade(cfg: CloudConfig):  # type: ignore[no-untyped-def]
    """``degrade(clean, rng) -> [standardized clean (C), mask (1), reference (C if guided)]``."""

    def degrade(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        layer = make_clouds(clean.shape[1:], float(rng.uniform(*cfg.data.cover)), rng)
        mu, sd = clear_stats(clean, ~layer.mask)
        z = (clean - mu) / sd
        parts = [z, layer.mask[None].astype(np.float32)]
        if cfg.model.guided:
            ref = simulate_reference(z, rng)
            rmu, rsd = clear_stats(ref, ~layer.mask)
            parts.append((ref - rmu) / rsd)
        return np.concatenate(parts).astype(np.float32)

    return degrade


def band_batch(x: Tensor, guided: bool, residual: bool = True, sweeps: int = 20
               ) -> tuple[Tensor, Tensor, Tensor]:
    """``(B, 2C+1 or C+1, H, W)`` -> generator input ``(B*C, K, H, W)``, target and mask."""
    b, _, h, w = x.shape
    z, m = x[:, :BANDS], x[:, BANDS: BANDS + 1]
    if residual:
        ref = x[:, BANDS + 1:] if guided else None
        inputs = band_planes(z, m, ref, sweeps)
        return inputs, z.reshape(b * BANDS, 1, h, w), m.expand_as(z).reshape(b * BANDS, 1, h, w)
    hidden = z * (1 - m)
    parts = [hidden, hidden.mean(1, keepdim=True).expand_as(z), m.expand_as(z)]
    if guided:
        ref = x[:, BANDS + 1:]
        parts += [ref, ref.mean(1, keepdim=True).expand_as(ref)]
    inputs = torch.stack(parts, 2).reshape(b * BANDS, len(parts), h, w)
    return inputs, z.reshape(b * BANDS, 1, h, w), m.expand_as(z).reshape(b * BANDS, 1, h, w)


class InpaintGanTrainer(Trainer):
    """Alternating PatchGAN / generator steps; the rest is the engine's loop."""

    def setup_gan(self, disc: nn.Module, cfg: CloudConfig) -> None:
        """Register the discriminator and its optimizer (checkpointed with the generator)."""
        self.disc, self.cfg = disc.to(self.device), cfg
        self.modules["disc"] = self.disc
        self.optimizers["disc"] = self._make_optimizer(_adam, self.disc)
        self.history: list[tuple[int, float, float]] = []

    def train_step(self, batch: Sequence[Tensor]) -> dict[str, float]:
        """Discriminator on (real, composite), then generator on masked L1 + adversarial."""
        x, _ = self.to_device(batch)
        model = self.cfg.model
        inputs, target, mask = band_batch(x, model.guided, model.residual, model.prior_sweeps)
        pred = self.net(inputs)
        comp = target * (1 - mask) + pred * mask
        loss = self.cfg.loss
        d_loss = torch.zeros(())
        if loss.adversarial > 0:
            real, fake = torch.cat([target, mask], 1), torch.cat([comp.detach(), mask], 1)
            d_loss = discriminator_loss(self.disc(real), self.disc(fake), loss.kind)
            self.optimize(d_loss, "disc")
        g_loss = self._generator_loss(pred, comp, target, mask)
        self.optimize(g_loss, "model")
        values = {"loss": float(g_loss.detach()), "d_loss": float(d_loss.detach())}
        self.history.append((self.step + 1, values["loss"], values["d_loss"]))
        return values

    def _generator_loss(self, pred: Tensor, comp: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        loss = self.cfg.loss
        err = (pred - target).abs()
        total = loss.hole_l1 * (err * mask).sum() / mask.sum().clamp_min(1.0)
        total = total + loss.valid_l1 * (err * (1 - mask)).mean()
        if loss.adversarial > 0:
            self.disc.requires_grad_(False)  # the generator step must not touch D's gradients
            logits = self.disc(torch.cat([comp, mask], 1))
            total = total + loss.adversarial * generator_loss(logits, loss.kind)
            self.disc.requires_grad_(True)
        if loss.frequency > 0:
            total = total + loss.frequency * frequency_loss(comp, target)
        return total


def _adam(params: Any) -> torch.optim.Optimizer:
    """Adam with GAN momentum (beta1 0.5)."""
    return torch.optim.Adam(params, betas=(0.5, 0.999))


class Validator:
    """Fill fixed synthetic clouds (30 % cover) on held-out clear windows; PSNR inside the mask."""

    def __init__(self, scenes: list[np.ndarray], cfg: CloudConfig) -> None:
        rng = np.random.default_rng(12345)
        self.cases = []
        for scene in scenes:
            layer = make_clouds(scene.shape[1:], 0.3, rng)
            ref = None
            if cfg.model.guided:
                ref = simulate_reference(scene, rng).astype(np.float32)
            self.cases.append((scene, layer.mask, ref))

    def __call__(self, model: nn.Module) -> dict[str, float]:
        # model_filler runs the model where it is (CPU, or CUDA while training there)
        values = [masked_metrics(model_filler(model, ref)(scene, mask), scene, mask)
                  for scene, mask, ref in self.cases]
        psnr = float(np.mean([v["psnr_in_mask"] for v in values]))
        return {"val_psnr_in_mask": psnr}


def split_data(
    paths: Sequence[Path], cfg: CloudConfig
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Training scenes, and the last ``val_windows`` Landsat/other windows for validation."""
    scenes = [s for p in paths for s in load_scenes(Path(p), cfg.data.windows)]
    if len(scenes) <= cfg.data.val_windows:
        raise UsageError(f"found {len(scenes)} clear scenes/windows in --data; need more than "
                         f"{cfg.data.val_windows}")
    cut = len(scenes) - cfg.data.val_windows
    return scenes[:cut], scenes[cut:]


def train(args: argparse.Namespace) -> Path:
    """``suite train cloud-inpaint``: returns the weights written (card and curves beside)."""
    cfg = recipe_from_args(CloudConfig, DEFAULT_YAML, args, "clear scenes; see the docs")
    started = time.time()
    scenes, val = split_data(args.data, cfg)
    dataset = PairedPatchDataset(scenes, degrade=make_degrade(cfg), patch_size=cfg.data.patch,
                                 augment=random_flips, seed=cfg.train.seed)
    gen, disc = build_models(cfg)
    trainer = InpaintGanTrainer(gen, torch.nn.functional.l1_loss, _adam, dataset, args.out,
                                cfg.train, validate=Validator(val, cfg))
    trainer.setup_gan(disc, cfg)
    metrics = trainer.fit(resume=args.resume)
    out = Path(args.out)
    draw_curves(out / "curves.png", trainer.history, out / "log.csv")
    return _export(trainer, cfg, args, metrics, time.time() - started + trainer.earlier_seconds,
                   len(scenes))


def _export(trainer: Trainer, cfg: CloudConfig, args: argparse.Namespace,
            metrics: dict[str, float], seconds: float, n_scenes: int) -> Path:
    module = trainer.ema.module if trainer.ema is not None else trainer.model
    name = "cloud_inpaint_guided" if cfg.model.guided else "cloud_inpaint"
    card = model_card(cfg, args, metrics, seconds, n_scenes)
    path = save_weights(Path(args.out) / f"{name}.safetensors", module.cpu(), card)
    (Path(args.out) / "config.yaml.json").write_text(json.dumps(to_dict(cfg), indent=2))
    return path


def _input_description(cfg: CloudConfig) -> str:
    """The card's description of the input planes."""
    planes = ["band * clear", "mean of bands * clear", "mask"]
    if cfg.model.residual:
        planes += ["prior", "mean of priors"]
    if cfg.model.guided:
        planes += ["reference band", "mean of reference bands"]
    text = ("one band at a time, standardized by the mean and std of its clear pixels; "
            f"planes [{', '.join(planes)}]")
    if cfg.model.guided:
        text += "; the reference standardized by its own stats over the same clear pixels"
    if cfg.model.residual:
        text += ("; prior = torch harmonic fill of the band plus "
                 f"{cfg.model.prior_sweeps} biharmonic sweeps (domains/cloud_inpaint/fill.py)"
                 + (" plus the reference minus its own such fill (Poisson clone)"
                    if cfg.model.guided else "") + "; output = prior + mask * network")
    return text


def model_card(cfg: CloudConfig, args: argparse.Namespace, metrics: dict[str, float],
               seconds: float, n_scenes: int) -> dict[str, Any]:
    """The JSON card saved beside the weights."""
    data = [str(p) for p in args.data]
    return {
        "domain": "cloud-inpaint",
        "architecture": architecture(cfg),
        "arguments": generator_arguments(cfg),
        "guided": cfg.model.guided,
        "normalization": {
            "input": _input_description(cfg),
            "output": "the standardized band; de-standardized, used inside the mask only",
        },
        "training": {
            "data": data,
            "clear_scenes_or_windows": n_scenes,
            "recipe": to_dict(cfg),
            "seconds": round(seconds),
            "command": training_command("cloud-inpaint", args),
            "pairs": "synthetic fractal clouds (thick, thin, displaced shadows), cover "
            f"{cfg.data.cover}, {cfg.data.patch}-pixel patches, bands B, G, R, NIR",
            "discriminator": f"PatchGAN on (composite, mask), {cfg.loss.kind} loss, weight "
            f"{cfg.loss.adversarial}",
        },
        "validation": {
            "metrics": metrics,
            "convention": "held-out clear Landsat 8 windows (last of --data), synthetic clouds "
            "at 30 % cover (seed 12345); PSNR inside the mask, data range = max - min of the "
            "clear window over all bands",
        },
    }
