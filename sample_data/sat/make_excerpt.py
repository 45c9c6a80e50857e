"""Cut the bundled Landsat 8 excerpt from ../shared/data (run from the repository root).

Bands B2, B3, B4, B5 (30 m, uint16 DN) of LC80200392015216LGN00, rows 160-415 and columns
0-255 of the scene cut, with the TOA reflectance scale/offset of the MTL file (2e-5, -0.1) as
GeoTIFF band scales/offsets and the band names as descriptions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

SRC = Path("../shared/data/remote/landsat8_LC80200392015216LGN00")
OUT = Path("sample_data/sat/landsat8_LC80200392015216_excerpt.tif")
BANDS = ("B2", "B3", "B4", "B5")
NAMES = ("B2 blue", "B3 green", "B4 red", "B5 NIR")
WINDOW = Window(0, 160, 256, 256)

if __name__ == "__main__":
    arrays = []
    for band in BANDS:
        with rasterio.open(SRC / f"l8_{band}.tif") as ds:
            arrays.append(ds.read(1, window=WINDOW))
            profile = dict(ds.profile, transform=ds.window_transform(WINDOW))
    profile.update(count=len(BANDS), width=256, height=256, tiled=True, blockxsize=256,
                   blockysize=256, compress="deflate", predictor=2)
    with rasterio.open(OUT, "w", **profile) as dst:
        dst.write(np.stack(arrays))
        dst.scales, dst.offsets = (2e-5,) * len(BANDS), (-0.1,) * len(BANDS)
        for i, name in enumerate(NAMES, start=1):
            dst.set_band_description(i, name)
