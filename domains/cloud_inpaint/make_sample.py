"""Write sample_data/cloud/ from the eo-learn EOPatch in ../shared/data (run from the repo root)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

SRC = Path("../shared/data/remote/eolearn_eopatch/REFERENCE_SCENES.npy")
LEFT, RIGHT = 465181.0522318204, 466180.53145382757
BOTTOM, TOP = 5079244.8912012065, 5080254.63349641
NAMES = ("B02 blue", "B03 green", "B04 red", "B08 NIR")


def main() -> None:
    """Two clear dates (reference scenes 3 and 4), bands B02, B03, B04, B08, float32."""
    scenes = np.load(SRC)
    transform = from_origin(LEFT, TOP, (RIGHT - LEFT) / 100, (TOP - BOTTOM) / 101)
    for index in (3, 4):
        data = np.moveaxis(scenes[index][..., [1, 2, 3, 7]], -1, 0).astype(np.float32)
        path = Path(f"sample_data/cloud/s2_clear_eolearn_ref{index}.tif")
        with rasterio.open(path, "w", driver="GTiff", width=100, height=101, count=4,
                           dtype="float32", crs=CRS.from_epsg(32633), transform=transform,
                           compress="deflate") as dst:
            dst.write(data)
            for band, name in enumerate(NAMES, start=1):
                dst.set_band_description(band, name)


if __name__ == "__main__":
    main()
