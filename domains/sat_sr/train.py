"""Training recipe: every shipped sat-sr network, on real imagery degraded by Wald's protocol.

``suite train sat-sr --data DIR...`` trains, one after the other, the default residual network
(RCAN-style EDSR) and ESPCN for each scale of the recipe, and the DSen2-style Sentinel-2
network at reduced resolution (10 m -> 20 m guides, 20 m -> 40 m targets, 20 m truth).
Single-band training images: the reflectance bands of every ``*.npz`` with an ``img`` array
(ukis-csmask scenes) and the 10 m band files (B02, B03, B04, B08) of pixel size <= 10 m.
Sentinel-2 scenes: every folder holding the ten bands; a scene whose name holds
``s2_holdout`` keeps only its upper half for training (the lower half is the benchmark's).

Optional (``--set gan.steps=N``, off by default): ESRGAN-style adversarial fine-tuning of the
default network (L1 + a small hinge term against a PatchGAN), saved as
``default_x2_gan.safetensors``. It invents detail; ``enhance --gan`` is the only way to use it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from domains.sat_sr import nets as _nets  # noqa: F401  (registers dsen2, espcn_residual)
from domains.sat_sr.blocks import BandScale
from domains.sat_sr.config import DEFAULT_YAML, GanConfig, SatConfig
from domains.sat_sr.guided import reduced_inputs
from domains.sat_sr.sentinel2 import GUIDES, S2_SCHEME, TARGETS, band_name
from domains.sat_sr.sr import WEIGHTS_DIR, Tiling
from suite.config import to_dict
from suite.degradations.mtf import mtf_decimate
from suite.engine.patches import PairedPatchDataset, random_flips
from suite.engine.train import (
    Trainer,
    hardware_description,
    recipe_from_args,
    training_command,
)
from suite.errors import InputError, UsageError
from suite.io.raster import read_window
from suite.losses import discriminator_loss, generator_loss, l1_loss
from suite.models import create_model
from suite.weights import load_model, save_weights

S2_HOLDOUT = "29RKH"


def percentile_scale(band: np.ndarray) -> np.ndarray:
    """One band ``(H, W)`` -> model units with its own 1-99 % percentiles (as at inference)."""
    low, high = np.percentile(band, [1, 99])
    norm = BandScale(np.array([low]), np.array([max(high, low + 1e-6)]))
    return norm.forward(band[None])


def single_band_images(roots: list[Path]) -> list[np.ndarray]:
    """``(1, H, W)`` training bands in model units from every root folder (recursively)."""
    images: list[np.ndarray] = []
    for root in roots:
        for npz in sorted(root.rglob("*.npz")):
            with np.load(npz) as z:
                if "img" in z.files:
                    cube = np.moveaxis(np.asarray(z["img"], np.float64), -1, 0)
                    images += [percentile_scale(b) for b in cube]
        for tif in sorted(root.rglob("*.tif")):
            if _is_10m_guide(tif):
                images.append(percentile_scale(read_window(tif, None)[0].astype(np.float64)))
    if not images:
        raise InputError(roots[0], "no training imagery (*.npz with 'img', 10 m band files)")
    return images


def _is_10m_guide(path: Path) -> bool:
    try:
        name = band_name(path)
    except InputError:
        return False
    from suite.io.raster import read_raster_meta

    return name in GUIDES and read_raster_meta(path).res[0] <= 10.5


def wald_pair_fn(scale: int, gain: float, noise_max: float
                 ) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    """On-the-fly degradation of a ``(1, P, P)`` patch: MTF blur, decimation, noise."""

    def degrade(patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        low = mtf_decimate(patch, gain, scale)
        return (low + rng.normal(0, 1, low.shape) * rng.uniform(0, noise_max)).astype(np.float32)

    return degrade


def sr_arguments(arch: str, scale: int, cfg: SatConfig) -> dict[str, Any]:
    """``create_model`` arguments of a single-band network."""
    if arch == "espcn":
        return {"in_channels": 1, "scale": scale, "features": cfg.model.espcn_features}
    return {"in_channels": 1, "scale": scale, "features": cfg.model.features,
            "num_blocks": cfg.model.num_blocks, "attention": cfg.model.attention,
            "global_residual": True}


def s2_scenes(roots: list[Path]) -> list[dict[str, Path]]:
    """Folders (under the roots) holding the ten bands, as ``{band: file}``."""
    scenes = []
    for root in roots:
        for folder in sorted({p.parent for p in root.rglob("*.tif")}):
            bands: dict[str, Path] = {}
            for tif in folder.glob("*.tif"):
                try:
                    bands[band_name(tif)] = tif
                except InputError:
                    continue
            if all(b in bands for b in (*GUIDES, *TARGETS)):
                scenes.append(bands)
    return scenes


def s2_pairs(bands: dict[str, Path], gain: float, levels: int
             ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Reduced-resolution pairs ``(input (10, h, w), truth (6, h, w))`` of one scene.

    Level 1 is the protocol itself (guides 10 m -> 20 m, targets 20 m -> 40 m, truth the real
    20 m bands); level ``k`` first degrades the scene ``k - 1`` more times by 2 (more, coarser
    pairs from the same scene). Inputs are the standardized guides and classical estimate
    (:func:`domains.sat_sr.guided.reduced_inputs`); a held-out scene keeps its upper half.
    """
    guide = np.concatenate([read_window(bands[b], None) for b in GUIDES]) / 10000.0
    target = np.concatenate([read_window(bands[b], None) for b in TARGETS]) / 10000.0
    if S2_HOLDOUT in str(bands[GUIDES[0]]):
        guide, target = guide[:, : guide.shape[1] // 2], target[:, : target.shape[1] // 2]
    pairs = []
    for _ in range(levels):
        if min(target.shape[1:]) < 32:
            break
        inputs, truth, _ = reduced_inputs(guide.astype(np.float32), target.astype(np.float32),
                                          gain)
        pairs.append((inputs, truth))
        guide, target = mtf_decimate(guide, gain, 2), mtf_decimate(target, gain, 2)
    return pairs


def run_one(name: str, model: nn.Module, dataset: PairedPatchDataset, cfg: SatConfig,
            steps: int, out: Path) -> tuple[nn.Module, float]:
    """Train one network with the engine's loop; return its EMA and the seconds spent."""
    start = time.time()
    tcfg = type(cfg.train)(**{**to_dict(cfg.train), "steps": steps})
    trainer = Trainer(model, l1_loss, torch.optim.AdamW, dataset, out / name, tcfg)
    trainer.fit(resume=False)
    module = trainer.ema.module if trainer.ema is not None else trainer.model
    return module.cpu().eval(), time.time() - start


def model_card(arch: str, arguments: dict[str, Any], cfg: SatConfig, args: argparse.Namespace,
               seconds: float, extra: dict[str, Any]) -> dict[str, Any]:
    """The JSON card saved beside one weights file."""
    return {
        "domain": "sat-sr", "architecture": arch, "arguments": arguments,
        "normalization": extra.pop("normalization"),
        "inference": {"tiling": to_dict_tiling()},
        "training": {"data": [str(p) for p in args.data], "recipe": to_dict(cfg),
                     "seconds": round(seconds), "threads": torch.get_num_threads(),
                     "command": training_command("sat-sr", args),
                     "hardware": hardware_description(cfg.train.device),
                     "pairs": extra.pop("pairs")},
        "validation": {"benchmark": "benchmarks/bench_sat_sr.py (docs/sat_sr.md) on the "
                       "held-out Landsat 8 scene LC80200392015216LGN00 and the lower half of "
                       "Sentinel-2 29RKH; no validation data is seen in training"},
    }


def to_dict_tiling() -> dict[str, int]:
    """The inference tiling written into every card."""
    t = Tiling()
    return {"patch": t.patch, "overlap": t.overlap, "halo": t.halo}


SINGLE_NORM = {"input": "per band (x - p1) / (p99 - p1), percentiles of the valid pixels of "
               "the whole raster (decimated read), inverted after the network",
               "output": "same units as the input (model predicts detail over bicubic)"}


def train_single(images: list[np.ndarray], arch: str, scale: int, cfg: SatConfig,
                 args: argparse.Namespace, steps: int) -> Path:
    """Train and save one single-band network (``default`` or ``espcn``) for ``scale``."""
    arguments = sr_arguments(arch, scale, cfg)
    registry = "espcn_residual" if arch == "espcn" else "edsr"
    dataset = PairedPatchDataset(images, degrade=wald_pair_fn(scale, cfg.data.mtf_gain,
                                                              cfg.data.noise_max),
                                 patch_size=cfg.data.patch_lr * scale, augment=random_flips,
                                 seed=cfg.train.seed + scale)
    model, seconds = run_one(f"{arch}_x{scale}", create_model(registry, **arguments), dataset,
                             cfg, steps, Path(args.out))
    pairs = (f"Wald protocol: MTF Gaussian (gain {cfg.data.mtf_gain} at Nyquist), decimation "
             f"x{scale}, noise std up to {cfg.data.noise_max} of the band span")
    card = model_card(registry, arguments, cfg, args, seconds,
                      {"normalization": SINGLE_NORM, "pairs": pairs})
    return save_weights(Path(args.out) / f"{arch}_x{scale}.safetensors", model, card)


def train_s2(roots: list[Path], cfg: SatConfig, args: argparse.Namespace) -> Path:
    """Train and save the DSen2-style Sentinel-2 network at reduced resolution."""
    scenes = s2_scenes(roots)
    if not scenes:
        raise InputError(roots[0], "no folder holds the ten Sentinel-2 bands for s2 training")
    pairs = [p for s in scenes for p in s2_pairs(s, cfg.data.mtf_gain, cfg.data.s2_levels)]
    dataset = PairedPatchDataset([p[1] for p in pairs], inputs=[p[0] for p in pairs],
                                 patch_size=cfg.data.s2_patch, augment=random_flips,
                                 seed=cfg.train.seed)
    arguments = {"guide_bands": len(GUIDES), "target_bands": len(TARGETS),
                 "features": cfg.model.s2_features, "num_blocks": cfg.model.s2_blocks,
                 "zero_tail": True}
    model, seconds = run_one("s2", create_model("dsen2", **arguments), dataset, cfg,
                             cfg.s2_steps, Path(args.out))
    norm = {"input": f"reflectance, standardized per scene and band (mean/std of the input "
                     f"scene): guides {GUIDES}, then the classical guided estimate of {TARGETS} "
                     "(bicubic + least-squares high-pass injection, gains fitted one level down)",
            "output": f"{TARGETS} on the 10 m grid in the targets' standardized units "
                      "(network = classical estimate + learned correction)",
            "scheme": S2_SCHEME}
    note = (f"reduced resolution on {len(scenes)} scenes, {len(pairs)} pairs (levels "
            f"1-{cfg.data.s2_levels}): 10 m -> 20 m guides, 20 m -> 40 m targets (MTF gain "
            f"{cfg.data.mtf_gain}), truth the real 20 m bands")
    card = model_card("dsen2", arguments, cfg, args, seconds, {"normalization": norm,
                                                               "pairs": note})
    card["adaptation"] = {"steps": cfg.s2_adapt_steps, "lr": 2e-4, "patch": 48, "batch": 8}
    return save_weights(Path(args.out) / "s2_dsen2.safetensors", model, card)


class SrGanTrainer(Trainer):
    """Alternating PatchGAN / generator steps (as ``InpaintGanTrainer``); the rest is the
    engine's loop."""

    def setup_gan(self, disc: nn.Module, gan: GanConfig) -> None:
        """Register the discriminator and its optimizer (checkpointed with the generator)."""
        self.disc, self.gan = disc.to(self.device), gan
        self.modules["disc"] = self.disc
        self.optimizers["disc"] = self._make_optimizer(_adam, self.disc)
        self.history: list[tuple[int, float, float, float]] = []

    def train_step(self, batch: Sequence[Tensor]) -> dict[str, float]:
        """Discriminator on (real high-res, super-resolved), then generator on L1 + adversarial."""
        low, high = self.to_device(batch)
        pred = self.net(low)
        d_loss = discriminator_loss(self.disc(high), self.disc(pred.detach()), self.gan.kind)
        self.optimize(d_loss, "disc")
        l1 = l1_loss(pred, high)
        self.disc.requires_grad_(False)  # the generator step must not touch D's gradients
        adv = generator_loss(self.disc(pred), self.gan.kind)
        self.disc.requires_grad_(True)
        g_loss = l1 + self.gan.adversarial * adv
        self.optimize(g_loss, "model")
        values = {"loss": float(g_loss.detach()), "l1": float(l1.detach()),
                  "d_loss": float(d_loss.detach())}
        self.history.append((self.step + 1, values["loss"], values["l1"], values["d_loss"]))
        return values


def _adam(params: Any) -> torch.optim.Optimizer:
    """Adam with the ESRGAN momentum (0.9, 0.99)."""
    return torch.optim.Adam(params, betas=(0.9, 0.99))


def gan_init(cfg: SatConfig, out: Path) -> Path:
    """Weights the fine-tuning starts from: ``gan.init``, this run's default, or the shipped."""
    scale = cfg.gan.scale
    if cfg.gan.init:
        return Path(cfg.gan.init)
    if scale in cfg.data.scales:
        return out / f"default_x{scale}.safetensors"
    return WEIGHTS_DIR / f"default_x{scale}.safetensors"


def train_gan(images: list[np.ndarray], cfg: SatConfig, args: argparse.Namespace) -> Path:
    """Fine-tune the default network adversarially; save ``default_x{scale}_gan``."""
    gan, scale, out = cfg.gan, cfg.gan.scale, Path(args.out)
    init = gan_init(cfg, out)
    if not init.is_file():
        raise UsageError(f"gan.init: no weights to fine-tune at {init}")
    start = time.time()
    model, card = load_model(init)
    if card.get("architecture") != "edsr" or int(card["arguments"]["scale"]) != scale:
        raise UsageError(f"gan.init {init}: not a default (edsr) x{scale} network")
    disc = create_model("patchgan", in_channels=1, features=gan.disc_features,
                        num_layers=gan.disc_layers, norm="none", spectral_norm=True)
    dataset = PairedPatchDataset(images, degrade=wald_pair_fn(scale, cfg.data.mtf_gain,
                                                              cfg.data.noise_max),
                                 patch_size=cfg.data.patch_lr * scale, augment=random_flips,
                                 seed=cfg.train.seed + 100 + scale)
    tcfg = type(cfg.train)(**{**to_dict(cfg.train), "steps": gan.steps, "lr": gan.lr,
                              "lr_schedule": "constant", "warmup_steps": 0})
    name = f"default_x{scale}_gan"
    trainer = SrGanTrainer(model.train(), l1_loss, _adam, dataset, out / name, tcfg)
    trainer.setup_gan(disc, gan)
    trainer.fit(resume=False)
    module = trainer.ema.module if trainer.ema is not None else trainer.model
    seconds = time.time() - start
    pairs = (f"Wald protocol: MTF Gaussian (gain {cfg.data.mtf_gain} at Nyquist), decimation "
             f"x{scale}, noise std up to {cfg.data.noise_max} of the band span")
    new = model_card("edsr", dict(card["arguments"]), cfg, args, seconds,
                     {"normalization": SINGLE_NORM, "pairs": pairs})
    new["training"]["gan"] = {
        "warning": "adversarial fine-tuning INVENTS DETAIL: sharper-looking texture that is "
                   "not in the data; lower PSNR than the default network; not for "
                   "measurement. Used only with `enhance --gan`",
        "start_weights": str(init), "steps": gan.steps, "l1_weight": 1.0,
        "adversarial_weight": gan.adversarial, "adversarial_loss": gan.kind, "lr": gan.lr,
        "optimizer": "Adam (0.9, 0.99), constant lr, both networks",
        "discriminator": f"PatchGAN on the high-res band, {gan.disc_features} features, "
                         f"{gan.disc_layers} layers, spectral norm, no norm layers",
        "final_losses": dict(zip(("step", "loss", "l1", "d_loss"),
                                 trainer.history[-1], strict=True)) if trainer.history else {},
    }
    return save_weights(out / f"{name}.safetensors", module.cpu().eval(), new)


def train(args: argparse.Namespace) -> Path:
    """``suite train sat-sr``: every shipped network; returns the last weights written."""
    cfg = recipe_from_args(SatConfig, DEFAULT_YAML, args, "folders of real imagery")
    roots = [Path(p) for p in args.data]
    images = single_band_images(roots)
    last = Path(args.out)
    for scale in cfg.data.scales:
        train_single(images, "default", scale, cfg, args, cfg.train.steps)
        last = train_single(images, "espcn", scale, cfg, args, cfg.espcn_steps)
    if cfg.s2_steps > 0:
        last = train_s2(roots, cfg, args)
    if cfg.gan.steps > 0:
        last = train_gan(images, cfg, args)
    return last
