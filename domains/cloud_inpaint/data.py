"""Clear training scenes (blue, green, red, NIR) from the kinds of real data the recipe uses.

- a BigEarthNet patch folder (``*_B02.tif`` ... ``*_B08.tif``, 10 m bands): the whole patch;
- a ukis-csmask ``.npz`` (``img`` 6 bands, ``msk``): windows whose pixels are all class 3,
  the clear-land class (judged from its spectra: visible about 0.13, NIR about 0.4);
- a pre-collection Landsat 8 folder (``l8_B2.tif`` ... ``l8_B5.tif``, ``l8_BQA.tif``): windows with
  no cloud or cirrus flag at low confidence or above (values 20480 and 20512 only);
- any other 4-band GeoTIFF, taken as clear.

Every scene is returned in its own units; the trainer standardizes per patch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from domains.cloud_inpaint.masks import decode_qa
from suite.errors import InputError
from suite.io.raster import read_window

S2_BANDS = ("B02", "B03", "B04", "B08")


def clear_windows(image: np.ndarray, clear: np.ndarray, size: int) -> list[np.ndarray]:
    """Non-overlapping ``size`` windows of ``image`` ``(C, H, W)`` where ``clear`` is all True."""
    out = []
    for r in range(0, image.shape[1] - size + 1, size):
        for c in range(0, image.shape[2] - size + 1, size):
            if clear[r: r + size, c: c + size].all():
                out.append(np.ascontiguousarray(image[:, r: r + size, c: c + size]))
    return out


def _bigearthnet(folder: Path) -> list[np.ndarray]:
    bands = [next(folder.glob(f"*_{b}.tif"), None) for b in S2_BANDS]
    if any(b is None for b in bands):
        raise InputError(folder, f"a BigEarthNet folder needs bands {', '.join(S2_BANDS)}")
    return [np.concatenate([read_window(b, None) for b in bands if b]).astype(np.float32)]


def _ukis(path: Path, size: int) -> list[np.ndarray]:
    z = np.load(path)
    image = np.moveaxis(z["img"][..., :4], -1, 0).astype(np.float32)
    return clear_windows(image, z["msk"][..., 0] == 3, size)


def _landsat(folder: Path, size: int) -> list[np.ndarray]:
    image = np.concatenate([read_window(folder / f"l8_B{i}.tif", None) for i in (2, 3, 4, 5)])
    flagged = decode_qa(read_window(folder / "l8_BQA.tif", None)[0], "landsat-pre", "medium")
    return clear_windows(image.astype(np.float32), ~flagged, size)


def load_scenes(path: Path, size: int) -> list[np.ndarray]:
    """Clear ``(4, H, W)`` float32 scenes or windows found at ``path`` (see the module doc)."""
    if path.is_dir() and (path / "l8_BQA.tif").is_file():
        return _landsat(path, size)
    if path.is_dir() and any(path.glob("*_B02.tif")):
        return _bigearthnet(path)
    if path.is_dir():
        return [s for child in sorted(path.iterdir()) for s in load_scenes(child, size)]
    if path.suffix == ".npz":
        return _ukis(path, size)
    if path.suffix.lower() in (".tif", ".tiff"):
        image = read_window(path, None).astype(np.float32)
        if image.shape[0] != 4:
            raise InputError(path, f"training GeoTIFFs need 4 bands (B, G, R, NIR), not "
                             f"{image.shape[0]}")
        return [image]
    return []
