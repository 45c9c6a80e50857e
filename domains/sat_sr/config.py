"""The sat-sr recipe as typed dataclasses; ``default.yaml`` beside it is the shipped one."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from suite.engine.train import TrainConfig

DEFAULT_YAML = Path(__file__).with_name("default.yaml")


@dataclass
class ModelConfig:
    """Widths of the three networks (all single-band SR nets take any band count)."""

    features: int = 32
    num_blocks: int = 4
    attention: bool = True
    espcn_features: int = 32
    s2_features: int = 48
    s2_blocks: int = 4


@dataclass
class DataConfig:
    """How training pairs are made (Wald protocol on real imagery).

    Attributes:
        scales: SR factors to train (one network per factor and architecture).
        mtf_gain: MTF gain at Nyquist of the simulated sensor (``generic`` 0.3).
        noise_max: largest noise std added to inputs, in units of each band's 1-99 % span.
        patch_lr: low-resolution patch side (pixels) of the single-band networks.
        s2_patch: 10 m-grid patch side of the Sentinel-2 network at reduced resolution.
        s2_levels: reduced-resolution levels per Sentinel-2 scene (1: the protocol; 2 adds the
            scene degraded once more by 2).
    """

    scales: list[int] = field(default_factory=lambda: [2, 4])
    mtf_gain: float = 0.3
    noise_max: float = 0.005
    patch_lr: int = 32
    s2_patch: int = 48
    s2_levels: int = 2


@dataclass
class GanConfig:
    """Optional ESRGAN-style adversarial fine-tuning of the default network (off: ``steps`` 0).

    Attributes:
        steps: fine-tuning steps (0: off). It invents detail: never the default at inference.
        scale: which default network to fine-tune.
        init: weights to start from; empty: the ``default_x{scale}`` trained in the same run,
            else the shipped one.
        adversarial: weight of the adversarial term next to L1 (weight 1).
        kind: adversarial loss of ``suite.losses`` (``hinge`` or ``lsgan``).
        lr: learning rate of both generator and discriminator (constant).
        disc_features: width of the PatchGAN (spectral norm, no normalization layers).
        disc_layers: strided layers of the PatchGAN.
    """

    steps: int = 0
    scale: int = 2
    init: str = ""
    adversarial: float = 0.005
    kind: str = "hinge"
    lr: float = 1e-4
    disc_features: int = 32
    disc_layers: int = 3


@dataclass
class SatConfig:
    """The whole recipe: one ``train`` section per network family."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    espcn_steps: int = 600
    s2_steps: int = 600
    s2_adapt_steps: int = 100
    gan: GanConfig = field(default_factory=GanConfig)
