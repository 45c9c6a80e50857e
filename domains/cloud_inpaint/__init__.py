"""Cloud and shadow inpainting for optical rasters: masks, synthetic clouds, a residual network.

``suite enhance cloud-inpaint INPUT.tif... -o OUTPUT.tif [--mask M.tif | --qa QA.tif]
[--reference CLEAR_OTHER_DATE.tif]`` fills the pixels under clouds and shadows (mask > 0) and
copies every other pixel bit for bit. ``suite degrade cloud-inpaint INPUT -o OUTPUT --cover 0.3``
draws synthetic clouds over a clear raster and writes the exact mask beside the output.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from suite.domain import DemoItem, Domain

WEIGHTS_DIR = Path(__file__).with_name("weights")
WEIGHTS = WEIGHTS_DIR / "cloud_inpaint.safetensors"
GUIDED_WEIGHTS = WEIGHTS_DIR / "cloud_inpaint_guided.safetensors"


class CloudInpaintDomain(Domain):
    """Cloud inpainting (``cloud-inpaint``)."""

    name = "cloud-inpaint"
    task = ("cloud/shadow inpainting of optical rasters (residual net over a smooth fill, "
            "optional reference date)")
    input_kinds = ("raster",)
    output_suffixes = (".tif", ".tiff")
    output_format = "GeoTIFF"

    def default_weights(self) -> Path | None:
        """The shipped single-date weights (see the model card), or ``None``."""
        return WEIGHTS if WEIGHTS.is_file() else None

    def guided_weights(self) -> Path | None:
        """The shipped weights with temporal guidance, or ``None``."""
        return GUIDED_WEIGHTS if GUIDED_WEIGHTS.is_file() else None

    def add_arguments(self, command: str, parser: argparse.ArgumentParser) -> None:
        """Mask sources and fill options for enhance/batch; cover for degrade."""
        from domains.cloud_inpaint.options import add_degrade_options, add_enhance_options

        if command in ("enhance", "batch"):
            add_enhance_options(parser)
        if command == "degrade":
            add_degrade_options(parser)
        if command == "evaluate":
            parser.add_argument("--mask", type=Path, help="mask raster (> 0 = filled pixels)")

    def enhance(
        self, inputs: list[Path], output: Path, options: argparse.Namespace
    ) -> dict[str, Any]:
        """Fill the masked pixels of one raster, or of single-band files stacked in order."""
        from domains.cloud_inpaint.pipeline import enhance_raster
        from suite.io.raster import stacked_bands

        with stacked_bands(inputs) as raster:
            return enhance_raster(raster, output, options)

    def degrade(
        self, inputs: list[Path], output: Path, options: argparse.Namespace
    ) -> dict[str, Any]:
        """Draw synthetic clouds over one clear raster (mask written beside)."""
        from domains.cloud_inpaint.pipeline import degrade_raster
        from suite.io.raster import stacked_bands

        # refuses a paletted raster, masks by its alpha
        with stacked_bands([self.single_input(inputs, "raster")]) as raster:
            return degrade_raster(raster, output, options)

    def train(self, options: argparse.Namespace) -> Path:
        """Train the residual network on clear scenes with synthetic clouds."""
        from domains.cloud_inpaint.train import train

        return train(options)

    def evaluate(self, pred: Path, ref: Path, options: argparse.Namespace) -> dict[str, float]:
        """PSNR, SSIM, SAM and MAE inside and outside the mask."""
        from domains.cloud_inpaint.pipeline import evaluate_rasters

        return evaluate_rasters(pred, ref, getattr(options, "mask", None))

    def calibration_patches(self, count: int) -> list[Any]:
        """Model inputs (int8 calibration, export checks) of the default (unguided) network:
        the bundled Sentinel-2 excerpt under synthetic clouds (30 % cover, seed 0), standardized
        on its clear pixels, as its five planes per band, 96x96 crops, (5, 96, 96)."""
        import numpy as np
        import torch

        from domains.cloud_inpaint.clouds import apply_clouds, cloud_brightness, make_clouds
        from domains.cloud_inpaint.inpaint import band_planes, clear_stats
        from domains.cloud_inpaint.pipeline import read_scene
        from suite.export import calibration_crops
        from suite.sample import sample_data_dir

        clear = read_scene(sample_data_dir() / "cloud" / "s2_clear_eolearn_ref3.tif").values
        layer = make_clouds(clear.shape[1:], 0.3, np.random.default_rng(0))
        cloudy = apply_clouds(clear, layer, cloud_brightness(clear))
        mu, sd = clear_stats(cloudy, ~layer.mask)
        z = torch.from_numpy(((cloudy - mu) / sd).astype(np.float32))[None]
        mask = torch.from_numpy(layer.mask.astype(np.float32))[None, None]
        with torch.no_grad():
            planes = band_planes(z, mask).numpy()  # (C, 5, H, W), one band per row
        return calibration_crops(list(planes), (96, 96), count)  # sizes divisible by 4

    def demo(self, out_dir: Path, options: argparse.Namespace) -> list[DemoItem]:
        """Synthetic clouds on the bundled clear Sentinel-2 excerpt, filled."""
        from domains.cloud_inpaint.pipeline import run_demo

        return run_demo(out_dir)



DOMAIN = CloudInpaintDomain()
