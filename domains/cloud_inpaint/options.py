"""Command-line options of the cloud-inpaint domain."""

from __future__ import annotations

import argparse
from pathlib import Path

from domains.cloud_inpaint.masks import QA_KINDS


def add_enhance_options(parser: argparse.ArgumentParser) -> None:
    """Mask source (mask, QA band or the simple detector), dilation, reference, fallback."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--mask", type=Path, help="mask raster on the image grid (> 0 = fill)")
    source.add_argument("--qa", type=Path, help="quality band (Landsat BQA/QA_PIXEL, S2 SCL)")
    parser.add_argument("--qa-kind", choices=QA_KINDS, default="auto",
                        help="QA product generation (auto: from the name and the MTL file)")
    parser.add_argument("--qa-confidence", choices=("low", "medium", "high"), default="high",
                        help="lowest Landsat cloud/cirrus/shadow confidence masked")
    parser.add_argument("--dilate", type=int, default=0, help="grow the mask by N pixels")
    parser.add_argument("--reference", type=Path,
                        help="clear acquisition of another date (same CRS and bands)")
    parser.add_argument("--method", choices=("model", "biharmonic", "mean"), default="model",
                        help="filler (model falls back to biharmonic when no weights exist)")
    parser.add_argument("--write-mask", action="store_true",
                        help="also write the mask used as OUTPUT_mask.tif")


def add_degrade_options(parser: argparse.ArgumentParser) -> None:
    """Cloud cover of the synthetic clouds."""
    parser.add_argument("--cover", type=float, default=0.3,
                        help="masked fraction (clouds and shadows), in (0, 1)")
