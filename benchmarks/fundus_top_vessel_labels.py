"""Binary vessel labels from a clean fundus photograph: its top 12 % Sato vesselness.

The metric's own vessel convention (``domains.fundus.vessels.vessel_mask``), taken over the
left-half FOV only, so the labels hold nothing from the benchmark's held-out right half. Written
as a PNG named after the photograph, for ``suite train fundus --set data.vessel_labels=DIR``:
an experiment on whether the loss should weight the metric's binary vessel pixels rather than
the soft vesselness map (docs/fundus_vessel_target.md, "Binary vessel labels").

Usage:
    python benchmarks/fundus_top_vessel_labels.py --out runs/fundus_labels
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from domains.fundus.photos import read_fundus
from domains.fundus.vessels import vessel_mask, vesselness

PHOTO = Path(__file__).resolve().parents[2] / "shared" / "data" / "fundus" / "skimage_retina.jpg"


def left_half_labels(photo: Path) -> tuple[np.ndarray, str]:
    """``(H, W)`` bool: the top 12 % vesselness among the left-half FOV pixels; and a line on
    how much of the shipped loss's pixel weight ``1 + 3 v`` those pixels carry, soft or binary."""
    clean = read_fundus(photo, None)
    left = clean.fov.copy()
    left[:, clean.fov.shape[1] // 2 :] = False
    soft = vesselness(clean.rgb, clean.fov)
    labels = vessel_mask(soft, left)
    weight = 1.0 + 3.0 * soft  # loss.vessel_gain of the shipped recipe
    binary = 1.0 + 3.0 * labels
    line = (f"median soft vesselness on the labels {np.median(soft[labels]):.2f}; their share of "
            f"the pixel weight: soft map {weight[labels].sum() / weight[left].sum():.2f}, "
            f"binary {binary[labels].sum() / binary[left].sum():.2f}")
    return labels, line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=PHOTO)
    parser.add_argument("--out", type=Path, required=True, help="folder for the label PNG")
    args = parser.parse_args()
    labels, line = left_half_labels(args.photo)
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"{args.photo.stem}.png"
    Image.fromarray(labels.astype(np.uint8) * 255).save(target)
    print(f"{target}: {int(labels.sum())} vessel pixels; {line}")


if __name__ == "__main__":
    main()
