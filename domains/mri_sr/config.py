"""The MRI super-resolution recipe as typed dataclasses; ``default.yaml`` is the shipped one."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from suite.engine.train import TrainConfig

DEFAULT_YAML = Path(__file__).with_name("default.yaml")


@dataclass
class ModelConfig:
    """2D lean residual U-Net widths and the number of planes per inference call."""

    channels: list[int] = field(default_factory=lambda: [24, 48, 96])
    batch_size: int = 8


@dataclass
class LossConfig:
    """Loss weights on intensities normalized to the 99.5th percentile.

    Attributes:
        l1: weight of the pixel L1.
        frequency: weight of the 2D FFT amplitude/phase loss (0 turns it off).
        phase: weight of the phase term inside the frequency loss.
    """

    l1: float = 1.0
    frequency: float = 0.1
    phase: float = 0.1


@dataclass
class DataConfig:
    """How training pairs are made from 1 mm isotropic volumes.

    Attributes:
        scales: through-plane factors simulated on every axis of every volume.
        profiles: slice profiles used in turn over (axis, scale) pairs.
        patch: 2D patch size (in-plane, through-plane) in high-resolution voxels.
        coarse: isotropic block-averaging factors; each training volume is also used at each
            (1: as read), so that 2 mm scans are inside the training distribution.
        init: weights to start from (a fine-tuning stage), or ``None`` for random weights.
        val: held-out volume evaluated once at the end (factors 2 and 4), or ``None``.
    """

    scales: list[float] = field(default_factory=lambda: [2.0, 3.0, 4.0])
    profiles: list[str] = field(default_factory=lambda: ["gaussian", "box"])
    patch: int = 48
    coarse: list[int] = field(default_factory=lambda: [1])
    init: Path | None = None
    val: Path | None = None


@dataclass
class AdaptConfig:
    """Self-supervised fine-tuning on the input scan (``--adapt``)."""

    steps: int = 300
    batch_size: int = 8
    lr: float = 5e-4
    patch: int = 48


@dataclass
class MriSrConfig:
    """The whole recipe."""

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
