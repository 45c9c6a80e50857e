"""Large rasters in a batch: split into window groups, processed in parallel, assembled once.

A domain opts in by providing two methods (checked with ``hasattr``, see :class:`WindowedDomain`):
``prepare_windows`` fits whatever is global to the scene once and gives the output metadata;
``enhance_window`` makes the pixels of one output window from that state. The batch then cuts
the output into horizontal strips ("window groups") of whole 512-pixel windows, each group task
writes its strip to its own temporary ``.npy`` pair (no two tasks touch one file), and a single
final task streams the strips into one tiled GeoTIFF/COG with
:func:`suite.io.raster.write_raster_windows`. Because the windows asked of ``enhance_window``
are exactly those the domain's own ``enhance`` would ask, the assembled file equals the
unsplit one.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from rasterio.windows import Window

from suite.io.raster import BLOCK, RasterMeta, iter_windows, write_raster_windows

WINDOW = 2 * BLOCK
"""Side (pixels) of the windows asked of ``enhance_window`` (that of ``write_raster_windows``)."""
GROUP_PIXELS = 4096 * 4096
"""Default window-group size (output pixels); an input raster larger than this is split."""


@runtime_checkable
class WindowedDomain(Protocol):
    """The optional protocol of a domain whose rasters can be split into window groups."""

    def prepare_windows(self, inputs: list[Path], options: Any) -> tuple[RasterMeta, Any]:
        """Fit what is global to the scene; return the output metadata and a picklable state."""
        ...

    def enhance_window(self, state: Any, window: Window) -> np.ndarray:
        """Return the ``(C, h, w)`` output of one output-pixel window (masked array for nodata)."""
        ...


def is_windowed(domain: object) -> bool:
    """Whether ``domain`` provides both methods of :class:`WindowedDomain`."""
    return callable(getattr(domain, "prepare_windows", None)) and callable(
        getattr(domain, "enhance_window", None)
    )


def group_strips(meta: RasterMeta, group_pixels: int, window: int = WINDOW) -> list[Window]:
    """Cut the output into full-width strips of about ``group_pixels`` pixels.

    Strip heights are multiples of ``window`` so that every write window lies in one strip.
    """
    rows = max(window, group_pixels // max(meta.width, 1) // window * window)
    return [
        Window(0, r, meta.width, min(rows, meta.height - r)) for r in range(0, meta.height, rows)
    ]


def _save_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def write_group(
    domain: Any, prepared: tuple[RasterMeta, Any], strip: Window, part: Path
) -> dict[str, Any]:
    """Run ``enhance_window`` over one strip; save data and mask to ``part`` (+ ``.mask.npy``).

    Memory: one strip, ``C x strip.height x width`` values of the output dtype, plus its mask.
    """
    start = time.perf_counter()
    meta, state = prepared
    shape = (meta.count, int(strip.height), meta.width)
    data = np.zeros(shape, dtype=meta.dtype)
    mask = np.zeros(shape, dtype=bool)
    for _, win in iter_windows(meta.width, int(strip.height), WINDOW):
        target = Window(win.col_off, win.row_off + strip.row_off, win.width, win.height)
        block = domain.enhance_window(state, target)
        block = block[None] if np.ndim(block) == 2 else block
        rs = slice(int(win.row_off), int(win.row_off + win.height))
        cs = slice(int(win.col_off), int(win.col_off + win.width))
        data[:, rs, cs] = np.ma.getdata(block)
        mask[:, rs, cs] = np.ma.getmaskarray(block)
    part.parent.mkdir(parents=True, exist_ok=True)
    _save_atomic(part.with_suffix(".mask.npy"), mask)
    _save_atomic(part, data)
    return {"part": str(part), "seconds": time.perf_counter() - start}


def _strip_reader(strips: list[Window], parts: list[Path]) -> Any:
    """Producer for ``write_raster_windows`` that cuts each window out of its strip file."""

    def produce(win: Window) -> np.ndarray:
        k = next(i for i, s in enumerate(strips) if s.row_off <= win.row_off < s.row_off + s.height)
        r0 = int(win.row_off - strips[k].row_off)
        rs = slice(r0, r0 + int(win.height))
        cs = slice(int(win.col_off), int(win.col_off + win.width))
        data = np.array(np.load(parts[k], mmap_mode="r")[:, rs, cs])
        mask = np.array(np.load(parts[k].with_suffix(".mask.npy"), mmap_mode="r")[:, rs, cs])
        return np.ma.MaskedArray(data, mask=mask) if mask.any() else data

    return produce


def assemble(
    meta: RasterMeta,
    strips: list[Window],
    groups: list[dict[str, Any]],
    output: Path,
    cog: bool,
) -> dict[str, Any]:
    """Stream the strip files into ``output`` (atomic), then delete them.

    Returns:
        The seconds spent here plus those of the group tasks, and the number of groups.
    """
    start = time.perf_counter()
    parts = [Path(g["part"]) for g in groups]
    write_raster_windows(output, meta, _strip_reader(strips, parts), cog=cog, window_size=WINDOW)
    shutil.rmtree(parts[0].parent, ignore_errors=True)
    seconds = time.perf_counter() - start + sum(float(g["seconds"]) for g in groups)
    return {"seconds": seconds, "groups": len(groups)}
