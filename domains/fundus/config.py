"""The fundus restoration recipe as typed dataclasses; ``default.yaml`` is the shipped one."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from suite.engine.train import TrainConfig

DEFAULT_YAML = Path(__file__).with_name("default.yaml")


@dataclass
class ModelConfig:
    """2D lean U-Net widths (input: RGB + 3 context channels) and the inference tiling.

    ``output``: ``residual`` adds the network's 3 channels to the RGB input; ``affine`` has it
    predict a gain and an offset per pixel, ``rgb (1 + g) + b`` (docs/fundus_vessel_target.md:
    +0.35 dB FOV PSNR at severity 0.4 for the shipped losses, but a smaller vessel gain over
    plain L1 at 0.8, so the shipped recipe keeps ``residual``).
    """

    channels: list[int] = field(default_factory=lambda: [16, 32, 64])
    patch: int = 256
    overlap: int = 32
    halo: int = 16
    output: Literal["residual", "affine"] = "residual"


@dataclass
class LossConfig:
    """Loss weights: ``vessel_gain = cldice = 0`` is plain L1 inside the FOV (the ablation).

    ``ridge`` weighs an L1 between the soft vessel maps of prediction and target; ``contrast``
    an L1 between their local contrast (each pixel minus its FOV surround, sigma 6 px)
    weighted by the vessel map, i.e. how dark each vessel is against its surround, whatever
    the global level. Both are 0 in the shipped recipe (``docs/fundus_vessel_target.md``).
    """

    vessel_gain: float = 3.0
    cldice: float = 0.05
    ridge: float = 0.0
    contrast: float = 0.0


@dataclass
class DataConfig:
    """How training pairs are made.

    Attributes:
        region: part of each ``--data`` photograph used for training: ``left`` (columns
            ``[0, W/2)``; the right half is the benchmark's held-out test region) or ``all``.
        severities: degradation severities simulated per photograph (one draw each).
        synthetic: number of procedurally generated synthetic fundus images added.
        synthetic_size: their side in pixels.
        synthetic_severities: severities simulated per synthetic image.
        vessel_labels: folder of vessel label masks, one per ``--data`` photograph with the
            same file stem (any image format, non-zero = vessel, the photograph's size): the
            vessel map of the losses instead of the clean photograph's vesselness.
        cast_jitter: each training patch's input (RGB and context) is multiplied by one more
            random gain per channel, uniform in ``1 +- cast_jitter``; the target is not. A
            handful of pairs carries only a handful of colour casts; this shows every patch
            a new one. 0 (the shipped recipe) turns it off: at 0.1 it lowered FOV PSNR on the
            benchmark (docs/fundus_vessel_target.md).
    """

    region: str = "left"
    severities: list[float] = field(default_factory=lambda: [0.2, 0.35, 0.5, 0.65, 0.8, 1.0])
    synthetic: int = 3
    synthetic_size: int = 768
    synthetic_severities: list[float] = field(default_factory=lambda: [0.4, 0.8])
    vessel_labels: Path | None = None
    cast_jitter: float = 0.0


@dataclass
class FundusConfig:
    """The whole recipe."""

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
