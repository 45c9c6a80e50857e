"""Fundus photograph restoration: haze, uneven illumination, blur, colour cast and noise.

``suite enhance fundus INPUT -o OUTPUT [--fov MASK.png]`` restores a colour fundus photograph
(PNG, JPEG, TIFF; 8 or 16 bits) inside its field of view with a tiled 2D U-Net; pixels outside
the FOV are written back unchanged. ``suite degrade fundus`` makes realistic degraded copies.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from suite.domain import DemoItem, Domain

WEIGHTS = Path(__file__).with_name("weights") / "fundus.safetensors"


class FundusDomain(Domain):
    """Fundus photograph restoration (``fundus``)."""

    name = "fundus"
    task = "fundus photograph restoration (haze, illumination, blur; tiled 2D U-Net)"
    input_kinds = ("photo",)
    runtimes = ("torch", "torch-bf16")
    output_suffixes = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm")
    output_format = "PNG, JPEG, TIFF or DICOM"

    def batch_output_name(self, item: Path) -> str:
        """The item's name; a DICOM photo named without a suffix gets ``.dcm`` (its headers
        are kept), any other unknown suffix ``.png``."""
        from suite.io.volume import is_dicom_file

        if not item.name.lower().endswith(self.output_suffixes) and is_dicom_file(item):
            return item.name + ".dcm"
        return super().batch_output_name(item)

    def default_weights(self) -> Path | None:
        """The shipped weights, trained by ``default.yaml`` (see the model card)."""
        return WEIGHTS if WEIGHTS.is_file() else None

    def add_arguments(self, command: str, parser: argparse.ArgumentParser) -> None:
        """``--fov MASK`` everywhere; ``--severity`` for degrade; ``--vessels`` for evaluate."""
        if command in ("enhance", "degrade", "evaluate", "batch"):
            parser.add_argument("--fov", type=Path, help="field-of-view mask (non-zero = inside)"
                                "; estimated from the photograph when absent")
        if command == "degrade":
            parser.add_argument("--severity", type=float, default=0.5,
                                help="0 (mild) to 1 (very poor), default 0.5")
        if command == "evaluate":
            parser.add_argument("--vessels", type=Path,
                                help="vessel label mask; default: vesselness of the reference")

    def enhance(self, inputs: list[Path], output: Path,
                options: argparse.Namespace) -> dict[str, Any]:
        """Restore one photograph and write it in the format of the output suffix."""
        from domains.fundus.pipeline import enhance_photo

        return enhance_photo(self.single_input(inputs, "photograph"), output, options)

    def degrade(self, inputs: list[Path], output: Path,
                options: argparse.Namespace) -> dict[str, Any]:
        """Write a degraded copy of one good photograph."""
        from domains.fundus.pipeline import degrade_photo

        return degrade_photo(self.single_input(inputs, "photograph"), output, options)

    def train(self, options: argparse.Namespace) -> Path:
        """Train on good photographs and synthetic fundus images with simulated degradation."""
        from domains.fundus.train import train

        return train(options)

    def evaluate(self, pred: Path, ref: Path, options: argparse.Namespace) -> dict[str, float]:
        """PSNR/SSIM inside the FOV, PSNR on vessel pixels, vessel AUC."""
        from domains.fundus.pipeline import evaluate_photos

        return evaluate_photos(pred, ref, options)

    def calibration_patches(self, count: int) -> list[Any]:
        """Model inputs (int8 calibration, export checks): 128x128 crops of the bundled retina
        photograph degraded at severity 0.5, RGB [0, 1] plus its context channels, (6, 128, 128)."""
        import numpy as np

        from domains.fundus.degrade import degrade_fundus
        from domains.fundus.fov import estimate_fov
        from domains.fundus.model import model_input
        from suite.export import calibration_crops
        from suite.io.photo import read_photo
        from suite.sample import sample_data_dir

        rgb = read_photo(sample_data_dir() / "fundus" / "retina_700.png").data[..., :3] / 255.0
        fov = estimate_fov(rgb)
        poor, _ = degrade_fundus(rgb.astype(np.float32), fov, 0.5, np.random.default_rng(0))
        return calibration_crops([model_input(poor, fov)], (128, 128), count)

    def demo(self, out_dir: Path, options: argparse.Namespace) -> list[DemoItem]:
        """Degrade and restore the bundled downscaled CC0 retina photograph."""
        from domains.fundus.pipeline import run_demo

        return run_demo(out_dir)



DOMAIN = FundusDomain()
