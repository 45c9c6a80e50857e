"""Satellite super-resolution: Wald-protocol degradation, single-band SR networks for rasters
of any band count, and a DSen2-style Sentinel-2 mode (20 m bands to 10 m).

``suite enhance sat-sr INPUT.tif -o OUTPUT.tif --scale 2|4 [--model default|espcn] [--gan]``
(``--gan``: adversarially fine-tuned default network; it invents detail) writes a
GeoTIFF with the CRS kept, the transform scaled by ``1 / scale``, the nodata mask carried over
by nearest neighbour and the band descriptions kept, window by window with a halo.
``suite enhance sat-sr B02.tif ... B12.tif -o OUT.tif --sentinel2`` sharpens B5, B6, B7, B8A,
B11, B12 to 10 m.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from suite.domain import DemoItem, Domain
from suite.errors import UsageError

WEIGHTS_DIR = Path(__file__).with_name("weights")


class SatSrDomain(Domain):
    """Multispectral raster super-resolution (``sat-sr``)."""

    name = "sat-sr"
    task = "multispectral GeoTIFF super-resolution x2/x4 and Sentinel-2 20 m -> 10 m"
    input_kinds = ("geotiff", "sentinel2-band-set")
    output_suffixes = (".tif", ".tiff")
    output_format = "GeoTIFF"
    runtimes = ("torch", "torch-bf16", "onnxruntime")

    def default_weights(self) -> Path | None:
        """The shipped default network for x2 (others: ``default_x4``, ``espcn_x*``, ``s2``)."""
        path = WEIGHTS_DIR / "default_x2.safetensors"
        return path if path.is_file() else None

    def batch_folder_is_item(self, options: argparse.Namespace) -> bool:
        """With ``--sentinel2`` a folder (of band files, or a ``.SAFE`` product) is one scene."""
        return bool(getattr(options, "sentinel2", False))

    def batch_output_name(self, item: Path) -> str:
        """The input's name for a raster; ``SCENE_10m.tif`` for a Sentinel-2 scene folder."""
        if item.is_dir():
            return f"{item.name.removesuffix('.SAFE').removesuffix('.safe')}_10m.tif"
        return super().batch_output_name(item)

    def calibration_patches(self, count: int) -> list[Any]:
        """Model inputs for int8 calibration: 64x64 crops of the bundled Landsat 8 excerpt,
        one band each in turn, in the network's per-band 1-99 % units, (1, 64, 64)."""
        import numpy as np

        from domains.sat_sr.blocks import band_scale
        from suite.export import calibration_crops
        from suite.io.raster import read_raster_meta, read_window
        from suite.sample import sample_data_dir

        path = sample_data_dir() / "sat" / "landsat8_LC80200392015216_excerpt.tif"
        units = band_scale(path, read_raster_meta(path)).forward(
            read_window(path, None).astype(np.float64))
        return calibration_crops([band[None] for band in units], (64, 64), count)

    def add_arguments(self, command: str, parser: argparse.ArgumentParser) -> None:
        """``--scale`` for enhance/degrade; model and Sentinel-2 options; sensor and noise."""
        if command in ("enhance", "degrade", "batch", "evaluate"):
            parser.add_argument("--scale", type=int, default=2, help="2 or 4 (default 2)")
        if command in ("enhance", "batch"):
            parser.add_argument("--cog", action="store_true",
                                help="write a Cloud-Optimized GeoTIFF")
            parser.add_argument("--model", default="default", help="default (RCAN-style "
                                "residual net) or espcn (small and fast)")
            parser.add_argument("--sentinel2", action="store_true", help="inputs are the "
                                "band files (or a folder) of one Sentinel-2 scene: sharpen B5, "
                                "B6, B7, B8A, B11, B12 to 10 m with B2, B3, B4, B8")
            parser.add_argument("--s2-offset", default="auto", help="DN offset before / 10000: "
                                "auto (from metadata), 0, or -1000 (baseline >= 04.00)")
            parser.add_argument("--s2-method", default="network", help="Sentinel-2: network "
                                "(default: guided network adapted to the scene) or classical "
                                "(bicubic + least-squares high-pass injection)")
            parser.add_argument("--s2-adapt-steps", type=int, default=None, help="Sentinel-2: "
                                "target-adaptation steps (default: the card's, 100; 0: off)")
            parser.add_argument("--gan", action="store_true", help="WARNING: INVENTS DETAIL. "
                                "Use the default network after ESRGAN-style adversarial "
                                "fine-tuning (default_x2_gan; x2 only unless trained): "
                                "sharper-looking, lower PSNR, texture not in the data; "
                                "for viewing, never for measurement")
        if command == "degrade":
            parser.add_argument("--sensor", default="generic", help="MTF gains of this sensor "
                                "(suite.degradations.mtf; default generic: 0.3)")
            parser.add_argument("--noise", type=float, default=0.0, help="Gaussian noise std "
                                "as a fraction of each band's 1-99 %% span (default 0)")

    def enhance(self, inputs: list[Path], output: Path, options: argparse.Namespace
                ) -> dict[str, Any]:
        """Super-resolve one GeoTIFF, or one Sentinel-2 band set with ``--sentinel2``."""
        from domains.sat_sr.pipeline import enhance

        return enhance(inputs, output, options)

    def degrade(self, inputs: list[Path], output: Path, options: argparse.Namespace
                ) -> dict[str, Any]:
        """Wald-protocol low-resolution copy: MTF blur, decimation, optional noise."""
        from domains.sat_sr.degrade import degrade_raster
        from suite.io.raster import stacked_bands

        if len(inputs) != 1:
            raise UsageError(f"sat-sr degrade takes one raster, got {len(inputs)}")
        with stacked_bands(inputs) as raster:  # refuses a paletted raster, masks by its alpha
            return degrade_raster(raster, output, options.scale, options.sensor, options.noise,
                                  options.seed)

    def train(self, options: argparse.Namespace) -> Path:
        """Train every shipped network with the shipped recipe."""
        from domains.sat_sr.train import train

        return train(options)

    def evaluate(self, pred: Path, ref: Path, options: argparse.Namespace) -> dict[str, float]:
        """PSNR, SSIM (per band, averaged) and SAM of ``pred`` against ``ref``."""
        from domains.sat_sr.pipeline import evaluate_rasters

        return evaluate_rasters(pred, ref, getattr(options, "scale", 2))

    def demo(self, out_dir: Path, options: argparse.Namespace) -> list[DemoItem]:
        """Degrade and super-resolve the bundled Landsat 8 excerpt."""
        from domains.sat_sr.pipeline import run_demo

        return run_demo(out_dir)


DOMAIN = SatSrDomain()
