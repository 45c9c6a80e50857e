"""MRI through-plane super-resolution: thick-slice simulation and a 2.5D residual network.

``suite enhance mri-sr INPUT -o OUTPUT.nii.gz --scale 4 [--axis auto|0|1|2] [--adapt]`` reads a
NIfTI volume or DICOM series, makes its slice axis ``scale`` times finer (cubic B-spline onto the
thin grid, then the network's correction) and writes NIfTI whose affine overlays the input.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from suite.domain import DemoItem, Domain

WEIGHTS = Path(__file__).with_name("weights") / "mri_sr.safetensors"


class MriSrDomain(Domain):
    """Through-plane MRI super-resolution (``mri-sr``)."""

    name = "mri-sr"
    task = "MRI through-plane super-resolution (2.5D residual U-Net, factors 2-4)"
    input_kinds = ("dicom-series", "nifti")
    volume_output = True
    runtimes = ("torch", "torch-bf16")

    def default_weights(self) -> Path | None:
        """The shipped weights, trained by ``default.yaml`` (see the model card)."""
        return WEIGHTS if WEIGHTS.is_file() else None

    def add_arguments(self, command: str, parser: argparse.ArgumentParser) -> None:
        """``--scale``/``--axis``/``--volume``/``--series``/``--recursive``; ``--adapt`` for
        enhance; the acquisition model for degrade."""
        if command not in ("enhance", "degrade", "batch"):
            return
        parser.add_argument("--scale", type=float, help="through-plane factor in (1, 8], e.g. 4")
        parser.add_argument("--axis", choices=("auto", "0", "1", "2"), default="auto",
                            help="slice axis (auto: the largest spacing; refused if isotropic)")
        parser.add_argument("--volume", type=int,
                            help="which volume of a 4D NIfTI or a multi-volume series (0-based)")
        parser.add_argument("--series",
                            help="SeriesInstanceUID or number, when a folder holds several")
        parser.add_argument("--recursive", action="store_true",
                            help="read DICOM files in sub-folders too (e.g. a CD export)")
        parser.add_argument("--force", action="store_true",
                            help="run on a non-MR modality or values that look like CT")
        if command in ("enhance", "batch"):
            parser.add_argument("--adapt", action="store_true",
                                help="fine-tune on the input's own in-plane slices first (SMORE)")
            parser.add_argument("--adapt-steps", type=int, default=None,
                                help="step budget of --adapt (default: the recipe's, 300)")
        if command == "degrade":
            parser.add_argument("--profile", choices=("gaussian", "box"), default="gaussian")
            parser.add_argument("--kspace", type=float, nargs="?", const=0.75, default=1.0,
                                help="keep this central fraction of in-plane k-space (0.75)")
            parser.add_argument("--noise", type=float, default=0.0,
                                help="Rician sigma as a fraction of the 99.5th percentile")

    def enhance(
        self, inputs: list[Path], output: Path, options: argparse.Namespace
    ) -> dict[str, Any]:
        """Super-resolve one volume through-plane; write NIfTI, or DICOM from a DICOM input."""
        from domains.mri_sr.pipeline import enhance_volume

        return enhance_volume(self.single_input(inputs, "volume"), output, options)

    def degrade(
        self, inputs: list[Path], output: Path, options: argparse.Namespace
    ) -> dict[str, Any]:
        """Simulate a thick-slice acquisition of one thin-slice volume."""
        from domains.mri_sr.pipeline import degrade_volume

        return degrade_volume(self.single_input(inputs, "volume"), output, options)

    def train(self, options: argparse.Namespace) -> Path:
        """Train on high-resolution volumes with simulated thick-slice inputs."""
        from domains.mri_sr.train import train

        return train(options)

    def evaluate(self, pred: Path, ref: Path, options: argparse.Namespace) -> dict[str, float]:
        """PSNR (masked) and 3D SSIM on normalized intensities."""
        from domains.mri_sr.pipeline import evaluate_volumes

        return evaluate_volumes(pred, ref)

    def calibration_patches(self, count: int) -> list[Any]:
        """Model inputs (int8 calibration, export checks): 48x48 planes of the bundled excerpt
        thickened by 2 and 4 along axis 2 and cubic-upsampled back, in the network's units
        (intensity / 99.5th percentile), (1, 48, 48), the restored axis last."""
        import numpy as np

        from domains.mri_sr.sr import intensity_scale
        from domains.mri_sr.train import sr_pair
        from suite.export import calibration_crops
        from suite.io.volume import read_volume
        from suite.sample import sample_data_dir

        data = read_volume(sample_data_dir() / "mri" / "stroke_t1_excerpt.nii.gz").data
        norm = intensity_scale(data)
        planes = []
        for scale in (2.0, 4.0):
            up, _ = sr_pair(data, 2, scale, "gaussian", norm)  # (I, J, K), K restored
            middle = up.shape[1] // 2  # an (I, K) plane through the middle of the head
            planes.append(np.ascontiguousarray(up[:, middle, :])[None])
        return calibration_crops(planes, (48, 48), count)

    def demo(self, out_dir: Path, options: argparse.Namespace) -> list[DemoItem]:
        """Thick slices at factor 4 from the bundled excerpt, restored."""
        from domains.mri_sr.pipeline import run_demo

        return run_demo(out_dir)

    def check_options(self, options: argparse.Namespace) -> None:
        """The runtime, and a ``--scale`` in range (a batch refused every item without it)."""
        from domains.mri_sr.checks import check_scale

        super().check_options(options)
        if hasattr(options, "scale"):
            check_scale(options.scale)

    def batch_output_name(self, item: Path) -> str:
        """NIfTI name for every item (a DICOM folder ``x`` becomes ``x.nii.gz``)."""
        name = item.name
        return name if name.lower().endswith((".nii", ".nii.gz")) else f"{Path(name).stem}.nii.gz"



DOMAIN = MriSrDomain()
