"""Fit the NIQE and BRISQUE-feature pristine models shipped in suite/metrics/data.

Why: the published NIQE parameters (``modelparameters.mat``) and BRISQUE's libsvm model are not
redistributed here, so we fit our own pristine multivariate Gaussians on natural photos that
ship with scikit-image and carry CC0 or public-domain terms (per their ``skimage.data``
docstrings):

- astronaut (NASA, public domain), rocket (SpaceX, public domain),
- camera (CC0, Lav Varshney), coffee (CC0, Rachel Michetti), chelsea (CC0, Stefan van der Walt),
- gravel, grass, brick (CC0 textures).

NIQE: 96x96 patches, keeping those whose mean local deviation is above 0.75 of the sharpest
patch in their image (as in Mittal et al. 2013); mean and covariance of the 36 features.
BRISQUE-feature model: the 36 features of whole random 128x128 crops (40 per image, seed 0).

Usage: ``python benchmarks/fit_niqe.py [--out suite/metrics/data/niqe_pristine.npz]``.
Runs in well under a minute on a laptop CPU.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from skimage import data

from suite.metrics.noref import brisque_features, niqe_patch_features, to_luminance

IMAGES = ("astronaut", "camera", "coffee", "chelsea", "rocket", "gravel", "grass", "brick")
PATCH = 96
CROP, CROPS_PER_IMAGE = 128, 40


def pristine_images() -> dict[str, np.ndarray]:
    """Luminance in [0, 255] of each pristine scikit-image photo."""
    return {name: to_luminance(getattr(data, name)()) for name in IMAGES}


def random_crops(lum: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """``CROPS_PER_IMAGE`` random ``CROP x CROP`` windows of one image."""
    h, w = lum.shape
    ys = rng.integers(0, h - CROP + 1, CROPS_PER_IMAGE)
    xs = rng.integers(0, w - CROP + 1, CROPS_PER_IMAGE)
    return [lum[y : y + CROP, x : x + CROP] for y, x in zip(ys, xs, strict=True)]


def fit(out: Path) -> None:
    """Compute both models and save them with their provenance."""
    lums = pristine_images()
    patches = np.vstack([niqe_patch_features(v, PATCH, sharp_only=True) for v in lums.values()])
    rng = np.random.default_rng(0)
    crops = [c for v in lums.values() for c in random_crops(v, rng)]
    crop_feats = np.vstack([brisque_features(c) for c in crops])
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        out,
        niqe_mu=patches.mean(axis=0),
        niqe_cov=np.cov(patches, rowvar=False),
        brisque_mu=crop_feats.mean(axis=0),
        brisque_cov=np.cov(crop_feats, rowvar=False),
        patch_size=np.int64(PATCH),
        images=np.array(IMAGES),
        n_patches=np.int64(len(patches)),
        n_crops=np.int64(len(crops)),
    )
    print(f"{out}: {len(patches)} sharp patches, {len(crops)} crops from {len(IMAGES)} images")


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("suite/metrics/data/niqe_pristine.npz"))
    fit(parser.parse_args().out)


if __name__ == "__main__":
    main()
