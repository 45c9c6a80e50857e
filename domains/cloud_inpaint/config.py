"""The cloud-inpainting recipe as typed dataclasses; ``default.yaml`` and ``guided.yaml`` beside
it are the shipped ones (without and with temporal guidance)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from suite.engine.train import TrainConfig

DEFAULT_YAML = Path(__file__).with_name("default.yaml")
GUIDED_YAML = Path(__file__).with_name("guided.yaml")


@dataclass
class ModelConfig:
    """Band-wise residual ResNet generator with self-attention, and the PatchGAN discriminator.

    Attributes:
        guided: take a clear reference date as a second input.
        residual: correct a classical fill (harmonic, or the Poisson clone of the reference)
            inside the mask (``cloud_residual_inpainter``, 5 or 7 planes); ``false`` is the
            earlier plain generator (``resnet_generator``, 3 or 5 planes, no prior).
        prior_sweeps: biharmonic sweeps after the harmonic solve of the prior (0 = harmonic).
        features: generator stem width (bottleneck ``4 * features``).
        num_blocks: generator residual blocks (a self-attention block in their middle).
        disc_features: PatchGAN first-layer width (spectral norm, no normalization).
        disc_layers: PatchGAN stride-2 layers.
    """

    guided: bool = False
    residual: bool = True
    prior_sweeps: int = 20
    features: int = 16
    num_blocks: int = 4
    disc_features: int = 16
    disc_layers: int = 2


@dataclass
class LossConfig:
    """Loss weights (standardized band units): masked L1, L1 on clear pixels, GAN, frequency."""

    hole_l1: float = 1.0
    valid_l1: float = 0.1
    adversarial: float = 0.01
    kind: str = "hinge"
    frequency: float = 0.0


@dataclass
class DataConfig:
    """How training pairs are drawn.

    Attributes:
        patch: training patch side (pixels, multiple of 4).
        cover: ``[min, max]`` masked fraction of the synthetic clouds per patch.
        windows: side of the clear windows cut from cloudy scenes (pixels).
        val_windows: clear Landsat windows held out for validation (taken last).
    """

    patch: int = 48
    cover: list[float] = field(default_factory=lambda: [0.05, 0.6])
    windows: int = 48
    val_windows: int = 2


@dataclass
class CloudConfig:
    """The whole recipe."""

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
