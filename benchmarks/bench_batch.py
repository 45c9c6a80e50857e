"""Benchmark of ``suite batch``: items per second with 1 and 2 workers, and peak memory per
worker when a raster 10 times the window-group size is split into window groups.

Run it alone (it loads every core):
``flock /tmp/suite_train.lock python benchmarks/bench_batch.py``.

Throughput: 12 real Landsat 8 crops (MS B2-B4 160x160 at 30 m, PAN 320x320 at 15 m) pansharpened
with MTF-GLP by the real pansharpen domain, on a local cluster of 1 then 2 worker processes (one
thread each) started before the clock; items/s = items / wall time of ``batch()`` (submit to
last output, manifest included). Memory: a 5120x2508 float32 raster (the PAN band tiled 4x2)
through a windowed 3x3 box filter (no shipped domain has ``enhance_window`` yet), once as one
task and once split into window groups of 512x2508 pixels (10 groups), 2 workers; peak RSS per
worker is the largest RSS sampled every 5 ms in each worker process, also given above the
worker's RSS once the imports are done.
"""

from __future__ import annotations

import argparse
import builtins
import logging
import sys
import tempfile
import threading
import time
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import rasterio
from affine import Affine
from distributed import Client, LocalCluster
from rasterio.windows import Window
from scipy import ndimage

from domains.pansharpen import DOMAIN as PANSHARPEN
from pipelines.batch import batch
from suite import plugins
from suite.domain import Domain
from suite.io.raster import RasterMeta, read_raster_meta, read_window, write_raster_windows

L8 = Path(__file__).resolve().parents[2] / "shared" / "data" / "remote"
L8 = L8 / "landsat8_LC80200392015216LGN00"
ITEMS = 12
SIDE = 160


class Scenes(Domain):
    """Scene folders (``ms.tif`` + ``pan.tif``) through the real pansharpen domain."""

    name = "bench-scenes"
    input_kinds = ("folder",)

    def batch_output_name(self, item: Path) -> str:
        return f"{item.name}.tif"

    def batch_inputs(self, source: Path, options: argparse.Namespace) -> Any:
        opts = argparse.Namespace(**vars(options), pan=source / "pan.tif")
        return [source / "ms.tif"], opts

    def enhance(self, inputs: list[Path], output: Path, options: argparse.Namespace) -> Any:
        return PANSHARPEN.enhance(inputs, output, options)


class Box(Domain):
    """Windowed 3x3 mean (float32), the split path's stand-in domain."""

    name = "bench-box"
    input_kinds = ("raster",)

    def prepare_windows(self, inputs: list[Path], options: Any) -> tuple[RasterMeta, Any]:
        return read_raster_meta(inputs[0]).updated(dtype="float32", path=None), inputs[0]

    def enhance_window(self, state: Any, window: Window) -> np.ndarray:
        outer = Window(window.col_off - 1, window.row_off - 1, window.width + 2, window.height + 2)
        data = read_window(state, outer, boundless=True).astype(np.float32)
        return ndimage.uniform_filter(data, size=(1, 3, 3), mode="nearest")[:, 1:-1, 1:-1]

    def enhance(self, inputs: list[Path], output: Path, options: Any) -> Any:
        meta, state = self.prepare_windows(inputs, options)
        write_raster_windows(output, meta, lambda w: self.enhance_window(state, w))
        return {}


SCENES, BOX = Scenes(), Box()


def _register() -> None:
    eps = [
        EntryPoint(d.name, f"__main__:{v}", plugins.GROUP)
        for d, v in ((SCENES, "SCENES"), (BOX, "BOX"))
    ]
    plugins.discover.cache_clear()
    plugins.entry_points = lambda group: eps  # type: ignore[assignment]


def _write(path: Path, src: Path, window: Window, bands: list[Path] | None = None) -> None:
    arrays, profile = [], {}
    for band in bands or [src]:
        with rasterio.open(band) as ds:
            arrays.append(ds.read(1, window=window))
            shift = Affine.translation(window.col_off, window.row_off)
            profile = {**ds.profile, "transform": ds.transform @ shift}
    for key in ("blockxsize", "blockysize", "tiled"):
        profile.pop(key, None)
    profile.update(width=int(window.width), height=int(window.height), count=len(arrays))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.stack(arrays))


def make_scenes(root: Path) -> list[Path]:
    """``ITEMS`` scene folders cut from the Landsat 8 scene on a 4x3 grid."""
    out = []
    for i in range(ITEMS):
        row, col = 20 + 140 * (i // 4), 20 + 140 * (i % 4)
        folder = root / f"scene{i:02d}"
        folder.mkdir(parents=True)
        ms = [L8 / f"l8_{b}.tif" for b in ("B2", "B3", "B4")]
        _write(folder / "ms.tif", ms[0], Window(col, row, SIDE, SIDE), ms)
        _write(
            folder / "pan.tif",
            L8 / "l8_B8.tif",
            Window(2 * col - 2, 2 * row - 2, 2 * SIDE + 4, 2 * SIDE + 4),
        )
        out.append(folder)
    return out


def make_big(path: Path) -> Path:
    """The PAN band tiled 4 x 2 (rows x columns): 5120 x 2508 uint16."""
    with rasterio.open(L8 / "l8_B8.tif") as ds:
        tile, profile = ds.read(1, window=Window(0, 0, 1254, 1280)), dict(ds.profile)
    data = np.tile(tile, (4, 2))[None]
    profile.update(
        width=data.shape[2],
        height=data.shape[1],
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress="deflate",
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def _rss_mib() -> float:
    return float(psutil.Process().memory_info().rss) / 2**20


def _start_sampler() -> float:
    """Import what every task needs, then sample this worker's RSS every 5 ms (a thread)."""
    import domains.pansharpen  # noqa: F401  (the imports every task pays once)
    import pipelines.batch  # noqa: F401

    state = {"peak": _rss_mib(), "run": True}

    def sample() -> None:
        while state["run"]:
            state["peak"] = max(state["peak"], _rss_mib())
            time.sleep(0.005)

    threading.Thread(target=sample, daemon=True).start()
    builtins.__dict__["_bench_rss"] = state
    return float(state["peak"])


def _stop_sampler() -> float:
    state = builtins.__dict__["_bench_rss"]
    state["run"] = False
    return float(state["peak"])


def run(domain: str, inputs: list[Path], out: Path, workers: int, **extra: Any) -> dict:
    """One batch on a fresh local cluster; wall time and per-worker peak RSS."""
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        base = client.run(_start_sampler)
        args = argparse.Namespace(
            domain=domain,
            inputs=inputs,
            output=out,
            scheduler=cluster.scheduler_address,
            workers=None,
            resume=False,
            weights=None,
            trust_checkpoint=False,
            device="cpu",
            quiet=True,
            method="mtf-glp",
            sensor="landsat8",
            register="auto",
            cog=False,
            **extra,
        )
        start = time.perf_counter()
        code = batch(args)
        wall = time.perf_counter() - start
        peak = client.run(_stop_sampler)
    assert code == 0, f"batch failed with exit code {code}"
    return {
        "wall_s": wall,
        "base_mib": list(base.values()),
        "peak_mib": list(peak.values()),
    }


def main() -> None:
    _register()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        items = make_scenes(root / "in")
        print(
            f"throughput: {ITEMS} Landsat 8 crops, MS {SIDE}x{SIDE} -> {2 * SIDE}x{2 * SIDE}, "
            "pansharpen mtf-glp"
        )
        rates = {}
        for workers in (1, 2):
            r = run("bench-scenes", items, root / f"out{workers}", workers)
            rates[workers] = ITEMS / r["wall_s"]
            print(f"  {workers} worker(s): {r['wall_s']:.2f} s, {rates[workers]:.2f} items/s")
        print(f"  speed-up 2 vs 1 worker: {rates[2] / rates[1]:.2f}x")
        big = make_big(root / "big.tif")
        group = 512 * 2508
        print(
            f"memory: 5120x2508 raster = {5120 * 2508 / group:.0f} x the window group "
            f"({group} px), float32 3x3 box filter, 2 workers"
        )
        for label, extra in (
            ("one task", {"window_group": 10**9}),
            ("split", {"window_group": group}),
        ):
            r = run("bench-box", [big], root / f"big_{label[:3]}", 2, **extra)
            growth = [p - b for p, b in zip(r["peak_mib"], r["base_mib"], strict=True)]
            print(
                f"  {label:>8}: {r['wall_s']:.2f} s; peak RSS per worker "
                + ", ".join(
                    f"{p:.0f} MiB (+{g:.0f} over imports)"
                    for p, g in zip(r["peak_mib"], growth, strict=True)
                )
            )
        size_mib = 5120 * 2508 * 4 / 2**20
        print(
            f"  (the whole float32 output is {size_mib:.0f} MiB; one group "
            f"{group * 4 / 2**20:.1f} MiB + its mask)"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
