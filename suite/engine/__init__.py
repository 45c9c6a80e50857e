"""Engines: tiled (sliding-window) inference, paired patch datasets, the training loop, devices."""

from __future__ import annotations

from suite.engine.device import autocast_context, pick_device
from suite.engine.patches import PairedPatchDataset, StepSampler, random_flips
from suite.engine.tiling import TileConfig, blend_window, tile_grid, tiled_inference
from suite.engine.train import EMA, TrainConfig, Trainer, lr_factor

__all__ = [
    "EMA",
    "PairedPatchDataset",
    "StepSampler",
    "TileConfig",
    "TrainConfig",
    "Trainer",
    "autocast_context",
    "blend_window",
    "lr_factor",
    "pick_device",
    "random_flips",
    "tile_grid",
    "tiled_inference",
]
