"""CT denoising: low-dose CT simulation in the projection domain and a residual 3D U-Net.

``suite enhance ct-denoise INPUT -o OUTPUT`` reads a DICOM series or a NIfTI volume in HU,
denoises it with sliding-window inference and writes a derived DICOM series (a folder path) or
NIfTI (a ``.nii``/``.nii.gz`` path) with every header carried over.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from suite.domain import DemoItem, Domain

WEIGHTS = Path(__file__).with_name("weights") / "ct_denoise.safetensors"


class CtDenoiseDomain(Domain):
    """Low-dose CT denoising (``ct-denoise``)."""

    name = "ct-denoise"
    task = "low-dose CT denoising (3D residual U-Net, HU in and out)"
    input_kinds = ("dicom-series", "nifti")
    volume_output = True
    runtimes = ("torch", "torch-int8", "torch-bf16", "onnxruntime")

    def default_weights(self) -> Path | None:
        """The shipped weights, trained by ``default.yaml`` (see the model card)."""
        return WEIGHTS if WEIGHTS.is_file() else None

    def add_arguments(self, command: str, parser: argparse.ArgumentParser) -> None:
        """Domain options: ``--series``, ``--volume`` and ``--recursive`` for enhance/degrade;
        ``--force`` for those and evaluate; dose for degrade; ``--paired`` for train."""
        if command in ("enhance", "degrade", "batch"):
            parser.add_argument("--series",
                                help="SeriesInstanceUID or number, when a folder holds several")
            parser.add_argument("--volume", type=int, help="which volume of a 4D NIfTI or a "
                                "multi-volume series (0-based)")
            parser.add_argument("--recursive", action="store_true",
                                help="read DICOM files in sub-folders too (e.g. a CD export)")
        if command in ("enhance", "degrade", "batch", "evaluate"):
            parser.add_argument(
                "--force",
                action="store_true",
                help="run on non-CT modalities or values that do not look like HU",
            )
        if command in ("enhance", "batch"):
            parser.add_argument("--adapt", action="store_true",
                                help="fine-tune on this scan first (self-supervised, R2R; about "
                                "a minute on a CPU, see docs/ct_denoise.md)")
            parser.add_argument("--adapt-steps", type=int, default=None,
                                help="step budget of --adapt (default 100)")
        if command == "degrade":
            level = parser.add_mutually_exclusive_group()
            level.add_argument("--dose", type=float, help="dose fraction of the input, in (0, 1)")
            level.add_argument(
                "--noise-hu",
                type=float,
                help="added noise std in soft tissue (HU) instead of a dose",
            )
            level.add_argument("--photons", type=float, help="incident photons per bin and view")
        if command == "train":
            parser.add_argument(
                "--paired", action="store_true",
                help="each --data folder holds real 'low' and 'full' dose volumes (DICOM "
                "folders or NIfTI) to train on, instead of simulated low dose")

    def enhance(
        self, inputs: list[Path], output: Path, options: argparse.Namespace
    ) -> dict[str, Any]:
        """Denoise one volume and write it with its metadata."""
        from domains.ct_denoise.pipeline import enhance_volume

        return enhance_volume(self.single_input(inputs, "volume"), output, options)

    def calibration_patches(self, count: int) -> list[Any]:
        """Model inputs for int8 calibration: crops of the bundled sample series at 20, 50 and
        100 HU of simulated low-dose noise, (1, 128, 128, 8) in HU / 1000."""
        from domains.ct_denoise.config import HU_SCALE
        from domains.ct_denoise.lowdose import simulate_low_dose
        from domains.ct_denoise.volumes import to_axial
        from suite.export import calibration_crops
        from suite.io.volume import read_volume
        from suite.sample import sample_data_dir

        axial = to_axial(read_volume(sample_data_dir() / "ct" / "abdomen_ct_dicom"))
        levels = (20.0, 50.0, 100.0)
        vols = [simulate_low_dose(axial.hu, axial.pixel_mm, 2, noise_hu=level, seed=1).noisy[None]
                / HU_SCALE for level in levels[: max(1, min(count, 3))]]
        return calibration_crops(vols, (128, 128, 8), count)

    def degrade(
        self, inputs: list[Path], output: Path, options: argparse.Namespace
    ) -> dict[str, Any]:
        """Simulate a low-dose acquisition of one normal-dose volume."""
        from domains.ct_denoise.pipeline import degrade_volume

        return degrade_volume(self.single_input(inputs, "volume"), output, options)

    def train(self, options: argparse.Namespace) -> Path:
        """Train on normal-dose volumes with simulated low-dose inputs."""
        from domains.ct_denoise.train import train

        return train(options)

    def evaluate(self, pred: Path, ref: Path, options: argparse.Namespace) -> dict[str, float]:
        """PSNR/SSIM in two HU windows and the residual noise in soft tissue."""
        from domains.ct_denoise.pipeline import evaluate_volumes

        return evaluate_volumes(pred, ref, force=getattr(options, "force", False))

    def demo(self, out_dir: Path, options: argparse.Namespace) -> list[DemoItem]:
        """Degrade and denoise the bundled CT excerpt."""
        from domains.ct_denoise.pipeline import run_demo

        return run_demo(out_dir)



DOMAIN = CtDenoiseDomain()
