"""Training recipe: Wald's protocol on real MS/PAN scenes (degrade both by the ratio, recover MS).

``suite train pansharpen --data SCENE_DIR [...] --out RUN`` reads each folder's MS band files and
PAN file (names from the config), keeps the configured vertical strip (the rest of the scene is
held out for the benchmark), and for every ratio makes the reduced-resolution pair: for a ratio
above the scene's native one the MS is first coarsened with its MTF. The last rows of the strip
validate.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from domains.pansharpen import deep
from domains.pansharpen.config import DEFAULT_YAML, PansharpenConfig
from domains.pansharpen.net import parameter_count
from domains.pansharpen.wald import Scene, degrade_ms, load_scene
from suite.config import to_dict
from suite.engine.patches import PairedPatchDataset, random_flips
from suite.engine.train import Trainer, hardware_description, recipe_from_args, training_command
from suite.errors import InputError, UsageError
from suite.metrics.spectral import ergas, sam
from suite.weights import save_weights


def scenes_at_ratios(scene: Scene, cfg: PansharpenConfig) -> list[Scene]:
    """The scene at every configured ratio (MS coarsened when the ratio asks for it)."""
    out = []
    for ratio in cfg.data.ratios:
        if ratio % scene.ratio:
            raise UsageError(f"ratio {ratio} is not a multiple of the native ratio {scene.ratio}")
        factor = ratio // scene.ratio
        out.append(scene if factor == 1 else degrade_ms(scene, factor, cfg.data.sensor))
    return out


def split_rows(arrays: tuple[np.ndarray, ...], val_rows: float) -> tuple[list, list]:
    """Split ``(C, h, w)`` arrays into top (training) and bottom (validation) rows."""
    cut = round(arrays[0].shape[1] * (1.0 - val_rows))
    return [a[:, :cut] for a in arrays], [a[:, cut:] for a in arrays]


def load_pairs(folders: list[Path], cfg: PansharpenConfig) -> tuple[list, list]:
    """Training and validation ``(inputs, target)`` standardized pairs from every folder."""
    train, val = [], []
    for folder in folders:
        paths = [folder / name for name in (*cfg.data.ms_bands, cfg.data.pan)]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise InputError(missing[0], "missing (set data.ms_bands / data.pan in the config)")
        cols = (cfg.data.train_cols[0], cfg.data.train_cols[1])
        scene = load_scene(paths[:-1], paths[-1], cols)
        for s in scenes_at_ratios(scene, cfg):
            t, v = split_rows(deep.wald_arrays(s, cfg.data.sensor), cfg.data.val_rows)
            train.append(t)
            val.append((*v, s.ratio))
    return train, val


class Validator:
    """SAM and ERGAS (standardized units) of the network on the held-out rows, per ratio."""

    def __init__(self, pairs: list[tuple[np.ndarray, np.ndarray, int]]) -> None:
        self.pairs = pairs

    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        out: dict[str, float] = {}
        for inputs, target, ratio in self.pairs:
            pred = deep.run(model.eval(), inputs)
            # standardized units have negative values; shift both so SAM/ERGAS stay defined
            p, t = pred + 10.0, target + 10.0
            out[f"val_ratio{ratio}_l1"] = float(np.abs(pred - target).mean())
            out[f"val_ratio{ratio}_ergas_shift10"] = ergas(p, t, ratio)
            out[f"val_ratio{ratio}_sam_deg_shift10"] = sam(p, t)
            out[f"val_ratio{ratio}_l1_upsampled"] = float(np.abs(inputs[:-1] - target).mean())
        model.train()
        return out


def train(args: argparse.Namespace) -> Path:
    """``suite train pansharpen``: returns the path of the final weights with their card."""
    cfg = recipe_from_args(PansharpenConfig, DEFAULT_YAML, args, "folders of MS band and PAN files")
    started = time.time()
    pairs, val = load_pairs([Path(p) for p in args.data], cfg)
    dataset = PairedPatchDataset(
        [t for _, t in pairs], inputs=[i for i, _ in pairs], patch_size=cfg.data.patch,
        augment=random_flips, seed=cfg.train.seed,
    )
    model = deep.build(model_arguments(cfg))
    trainer = Trainer(
        model, F.l1_loss, torch.optim.AdamW, dataset, Path(args.out), cfg.train,
        validate=Validator(val),
    )
    metrics = trainer.fit(resume=args.resume)
    module = trainer.ema.module if trainer.ema is not None else trainer.model
    seconds = time.time() - started + trainer.earlier_seconds
    card = model_card(cfg, args, metrics, seconds, parameter_count(module))
    path = save_weights(Path(args.out) / "pansharpen.safetensors", module.cpu(), card)
    (Path(args.out) / "config.yaml.json").write_text(json.dumps(to_dict(cfg), indent=2))
    return path


def model_arguments(cfg: PansharpenConfig) -> dict[str, Any]:
    """Keyword arguments of :class:`domains.pansharpen.net.PanDetailNet`."""
    return {"width": cfg.model.width, "depth": cfg.model.depth, "highpass": cfg.model.highpass}


def model_card(
    cfg: PansharpenConfig, args: argparse.Namespace, metrics: dict[str, float],
    seconds: float, params: int,
) -> dict[str, Any]:
    """The JSON card saved beside the weights."""
    data = [str(p) for p in args.data]
    return {
        "domain": "pansharpen",
        "architecture": "pan_detail_net",
        "arguments": model_arguments(cfg),
        "parameters": params,
        "normalization": deep.NORMALIZATION,
        "adaptation": to_dict(cfg.adapt),
        "inference": {"in_channels": len(cfg.data.ms_bands) + 1,
                      "note": "any band count works; exports are traced at the trained MS "
                              "bands plus the PAN"},
        "training": {
            "data": data,
            "bands": cfg.data.ms_bands,
            "pan": cfg.data.pan,
            "scene_columns_used": cfg.data.train_cols,
            "held_out": "columns outside scene_columns_used (benchmark), and the last "
            f"{cfg.data.val_rows:.0%} rows of the strip (validation)",
            "protocol": f"Wald: MS and PAN MTF-degraded ({cfg.data.sensor} gains) by ratios "
            f"{cfg.data.ratios}, target the original MS",
            "recipe": to_dict(cfg),
            "seconds": round(seconds),
            "command": training_command("pansharpen", args),
            "hardware": hardware_description(cfg.train.device),
        },
        "validation": {
            "metrics": metrics,
            "convention": "held-out rows of the training strip, Wald reduced resolution per "
            "ratio; values in standardized units (per-band z-scores); SAM (degrees) and ERGAS on "
            "z-scores shifted by +10 so they stay positive; *_l1_upsampled is plain upsampling",
        },
    }
