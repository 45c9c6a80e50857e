"""The pansharpening recipe as typed dataclasses; ``default.yaml`` beside it is the shipped one."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from suite.engine.train import TrainConfig

DEFAULT_YAML = Path(__file__).with_name("default.yaml")


@dataclass
class ModelConfig:
    """The band-shared detail network (:class:`domains.pansharpen.net.PanDetailNet`)."""

    width: int = 32
    depth: int = 4
    highpass: int = 5


@dataclass
class DataConfig:
    """How Wald training pairs are made from one or more real MS/PAN scenes.

    Attributes:
        ms_bands: MS file names inside each ``--data`` folder (one file per band).
        pan: PAN file name inside each ``--data`` folder.
        train_cols: fractions ``(start, stop)`` of the scene width used (the rest is held out).
        val_rows: the last fraction of rows of the training strip kept for validation.
        ratios: PAN/MS ratios simulated (a ratio above the native one first coarsens the MS).
        sensor: MTF gains used by the degradation (:data:`suite.degradations.mtf.SENSORS`).
        patch: training patch side (pixels of the reduced-resolution grid).
    """

    ms_bands: list[str] = field(
        default_factory=lambda: ["l8_B2.tif", "l8_B3.tif", "l8_B4.tif", "l8_B5.tif"]
    )
    pan: str = "l8_B8.tif"
    train_cols: list[float] = field(default_factory=lambda: [0.0, 2.0 / 3.0])
    val_rows: float = 0.2
    ratios: list[int] = field(default_factory=lambda: [2, 4])
    sensor: str = "landsat8"
    patch: int = 40


@dataclass
class AdaptConfig:
    """Target adaptation defaults used by ``suite enhance`` (recorded in the card)."""

    steps: int = 300
    lr: float = 4e-4
    patch: int = 48
    batch: int = 8
    full_weight: float = 0.03
    structure: float = 10.0
    full_patch: int = 64
    window: int = 9


@dataclass
class PansharpenConfig:
    """The whole recipe."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
