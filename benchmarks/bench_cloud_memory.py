"""Peak memory and time of ``enhance cloud-inpaint`` as the scene grows: whole scene against
window by window (``domains/cloud_inpaint/windows.py``), side by side in one run.

Scene: the decimated Sentinel-2 29RKH excerpt (B02, B03, B04, B08, uint16, 512 x 512), mirrored
into a square of each size. Clouds: the domain's synthetic clouds at 30 % cover over the
top-left 1024 x 1024 pixels (or the whole scene when smaller), the rest clear, as a cloud field
covers part of a scene. Filler: the shipped model. Each fill runs in its own process; peak
memory is that process's maximum resident set size (``ru_maxrss``), time its wall clock, on
``--threads`` threads. The window-by-window path is forced or disabled by setting
``WHOLE_SCENE_PIXELS`` in the child, so both paths run on every size up to ``--whole-up-to``.

    python benchmarks/bench_cloud_memory.py --sizes 1024 2048 4096 --whole-up-to 2048
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
import rasterio

REPO = Path(__file__).resolve().parents[1]
S2 = REPO.parent / "shared" / "data" / "remote" / "sentinel2_S2A_29RKH_20200219_L2A_decimated"

CHILD = """
import argparse, resource, sys, torch
from pathlib import Path
import domains.cloud_inpaint.windows as windows
from domains.cloud_inpaint.pipeline import enhance_raster
torch.set_num_threads({threads})
windows.WHOLE_SCENE_PIXELS = {limit}
options = argparse.Namespace(mask=Path("{mask}"), qa=None, dilate=0, reference=None,
                             method="model", weights=None, write_mask=False,
                             output=Path("{out}"), quiet=True, device="cpu")
print(enhance_raster(Path("{scene}"), Path("{out}"), options)["filler"], file=sys.stderr)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def make_scene(folder: Path, size: int) -> tuple[Path, Path]:
    """The mirrored Sentinel-2 excerpt at ``size`` x ``size`` and its cloud mask."""
    from domains.cloud_inpaint.clouds import make_clouds

    bands = []
    for name in ("B02", "B03", "B04", "B08"):
        with rasterio.open(next(S2.glob(f"*_{name}_crop.tif"))) as ds:
            bands.append(ds.read(1))
            profile = ds.profile
    tile = np.stack(bands)
    reps = -(-size // tile.shape[1])
    data = np.pad(tile, ((0, 0), (0, (reps - 1) * tile.shape[1]), (0, (reps - 1) * tile.shape[2])),
                  mode="symmetric")[:, :size, :size]
    side = min(size, 1024)
    mask = np.zeros((1, size, size), np.uint8)
    mask[0, :side, :side] = make_clouds((side, side), 0.3, np.random.default_rng(0)).mask
    profile.update(width=size, height=size, count=4, tiled=True, blockxsize=256, blockysize=256)
    scene, mask_path = folder / f"s2_{size}.tif", folder / f"mask_{size}.tif"
    with rasterio.open(scene, "w", **profile) as ds:
        ds.write(np.where(mask > 0, 9000, data).astype(np.uint16))
    profile.update(count=1, dtype="uint8", nodata=None)
    with rasterio.open(mask_path, "w", **profile) as ds:
        ds.write(mask)
    return scene, mask_path


def run_fill(scene: Path, mask: Path, out: Path, windowed: bool, threads: int) -> dict:
    """One fill in a child process: its peak resident memory (MB) and wall time (s)."""
    limit = 0 if windowed else 10**12
    code = CHILD.format(threads=threads, limit=limit, mask=mask, out=out, scene=scene)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(proc.stderr)
    peak_kb = int(proc.stdout.split()[-1])  # the child's own ru_maxrss (KB on Linux)
    return {"peak_mb": round(peak_kb / 1024), "seconds": round(seconds, 1),
            "filler": proc.stderr.strip().splitlines()[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--whole-up-to", type=int, default=2048,
                        help="largest size also filled as a whole scene")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = [(size, windowed) for size in sorted(args.sizes) for windowed in (True, False)
                if windowed or size <= args.whole_up_to]
        for size, windowed in runs:
            scene, mask = make_scene(Path(tmp), size)
            row = {"size": size, "path": "windows" if windowed else "whole scene",
                   **run_fill(scene, mask, Path(tmp) / "out.tif", windowed, args.threads)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| scene | path | peak memory (MB) | time (s) |\n|---|---|---|---|")
    for row in sorted(rows, key=lambda r: (r["size"], r["path"])):
        print(f"| {row['size']} x {row['size']} x 4 | {row['path']} | {row['peak_mb']} | "
              f"{row['seconds']} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
