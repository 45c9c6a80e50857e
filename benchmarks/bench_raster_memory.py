"""Peak memory of streamed classical pansharpening as the raster grows.

Writes a synthetic 4-band MS (uint16, 40 m) and PAN (10 m) window by window into a temporary
folder, runs ``--method`` (default ``mtf-glp``; ``deep`` with its default adaptation) through the
pansharpen domain in a fresh subprocess per size, and
reports each run's peak RSS (``resource.getrusage``) as a ratio to the smallest case.

Usage: ``python benchmarks/bench_raster_memory.py --sizes 2000 8000`` (PAN side, pixels).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from suite.io.raster import RasterMeta, write_raster_windows

CHILD = """
import argparse, json, resource, sys, time
from pathlib import Path
from domains.pansharpen import DOMAIN
import torch
torch.set_num_threads(2)
ms, pan, out = map(Path, sys.argv[1:4])
t = time.perf_counter()
DOMAIN.enhance([ms], out, argparse.Namespace(pan=pan, method=sys.argv[4], sensor="generic",
                                               register="auto", adapt_steps=None, weights=None,
                                               device="cpu"))
print(json.dumps({"seconds": time.perf_counter() - t,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def synthetic(path: Path, side: int, bands: int, res: float) -> Path:
    """Write a smooth random-looking uint16 raster window by window."""
    meta = RasterMeta(
        {"driver": "GTiff", "count": bands, "width": side, "height": side},
        (None,) * bands,
        None,
        (1.0,) * bands,
        (0.0,) * bands,
        CRS.from_epsg(32633),
        Affine(res, 0, 500000, 0, -res, 4_000_000),
        "uint16",
    )

    def produce(w: Window) -> np.ndarray:
        rows = np.arange(w.row_off, w.row_off + w.height)[:, None] * res
        cols = np.arange(w.col_off, w.col_off + w.width)[None, :] * res
        base = 1000 + 300 * np.sin(rows / 370.0) * np.cos(cols / 230.0) + 0.001 * rows
        return np.stack([base * (1 + 0.1 * b) for b in range(bands)]).astype("uint16")

    return write_raster_windows(path, meta, produce, window_size=1024)


def run(side: int, folder: Path, method: str = "mtf-glp") -> dict[str, float]:
    """Make inputs of PAN side ``side`` and measure one pansharpening run in a subprocess."""
    ms = synthetic(folder / f"ms_{side}.tif", side // 4, 4, 40.0)
    pan = synthetic(folder / f"pan_{side}.tif", side, 1, 10.0)
    out = folder / f"out_{side}.tif"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(ms), str(pan), str(out), method],
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    out.unlink()
    return {"pan_side": side, **result}


def main() -> None:
    """Run the sizes and print a table with ratios to the first size."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--method", default="mtf-glp", help="deep or a classical method")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for side in args.sizes:
            t = time.perf_counter()
            rows.append(run(side, Path(tmp), args.method))
            rows[-1]["wall_with_inputs_s"] = time.perf_counter() - t
            _print_row(rows[-1], rows[0])  # as each size ends, in case a later one times out


def _print_row(r: dict[str, float], first: dict[str, float]) -> None:
    """One line: peak RSS, its ratio to the first size, the pixel ratio and the time."""
    print(
        f"PAN {r['pan_side']:>6}^2  peak RSS {r['peak_rss_mib']:8.1f} MiB "
        f"(x{r['peak_rss_mib'] / first['peak_rss_mib']:.2f}; pixels "
        f"x{(r['pan_side'] / first['pan_side']) ** 2:.0f})  pansharpen {r['seconds']:.1f} s",
        flush=True,
    )

if __name__ == "__main__":
    main()
