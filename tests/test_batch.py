"""``suite batch`` on Dask distributed: a real scheduler and workers on loopback, a worker killed
mid-batch, a corrupt input among good ones, ``--resume``, and a raster split into window groups.

The rasters are small crops of the real Landsat 8 scene (MS B2-B4 at 30 m, PAN B8 at 15 m) run
through the real pansharpen domain (MTF-GLP). Its batch wiring (one scene folder = MS + PAN) is a
thin test domain here, ``pansharpen-scenes`` (a scene folder of ``ms.tif`` + ``pan.tif`` and a
delay option for the worker-kill test);
the window-group path uses a fake 3x3 box-filter domain because no real domain provides
``prepare_windows``/``enhance_window`` yet.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.windows import Window
from scipy import ndimage

from domains.pansharpen import DOMAIN as PANSHARPEN
from pipelines.batch_items import MANIFEST, expand_inputs
from suite import plugins
from suite.domain import Domain
from suite.io.raster import RasterMeta, read_raster_meta, read_window, write_raster_windows

REPO = Path(__file__).resolve().parents[1]
L8 = REPO.parent / "shared" / "data" / "remote"
L8 = L8 / "landsat8_LC80200392015216LGN00"
RunCli = Callable[..., tuple[int, str, str]]

# The workers are other processes that cannot import this test module: ship its domains by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


class ScenePansharpen(Domain):
    """Real pansharpening of scene folders (``ms.tif`` + ``pan.tif``), with an optional delay."""

    name = "pansharpen-scenes"
    task = "test wiring of the pansharpen domain for batches"
    input_kinds = ("folder",)

    def add_arguments(self, command: str, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--method", default="mtf-glp")
        parser.add_argument("--sensor", default="landsat8")
        parser.add_argument("--delay", type=float, default=0.0)
        parser.add_argument("--marker-dir", type=Path)

    def batch_output_name(self, item: Path) -> str:
        return f"{item.name}.tif"

    def batch_inputs(self, source: Path, options: argparse.Namespace) -> Any:
        opts = argparse.Namespace(**vars(options), pan=source / "pan.tif", register="auto")
        return [source / "ms.tif"], opts

    def enhance(self, inputs: list[Path], output: Path, options: argparse.Namespace) -> Any:
        if options.marker_dir is not None:
            # Which process runs which item, written before the delay so a kill lands mid-task.
            (options.marker_dir / f"{inputs[0].parent.name}.{os.getpid()}").touch()
        time.sleep(options.delay)
        return PANSHARPEN.enhance(inputs, output, options)


class BoxFilter(Domain):
    """Fake windowed domain: a 3x3 mean (halo 1, zeros outside), float32, window by window."""

    name = "box3"
    task = "fake windowed domain"
    input_kinds = ("raster",)

    def prepare_windows(self, inputs: list[Path], options: Any) -> tuple[RasterMeta, Any]:
        meta = read_raster_meta(inputs[0])
        return meta.updated(dtype="float32", path=None), inputs[0]

    def enhance_window(self, state: Any, window: Window) -> np.ndarray:
        outer = Window(window.col_off - 1, window.row_off - 1, window.width + 2, window.height + 2)
        data = read_window(state, outer, boundless=True).astype(np.float32)
        return ndimage.uniform_filter(data, size=(1, 3, 3), mode="nearest")[:, 1:-1, 1:-1]

    def enhance(self, inputs: list[Path], output: Path, options: Any) -> Any:
        meta, state = self.prepare_windows(inputs, options)
        write_raster_windows(output, meta, lambda w: self.enhance_window(state, w))
        return {}


SCENES = ScenePansharpen()
BOX = BoxFilter()


@pytest.fixture
def fake_domains(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    eps = [
        EntryPoint(d.name, f"{__name__}:{var}", plugins.GROUP)
        for d, var in ((SCENES, "SCENES"), (BOX, "BOX"))
    ]
    plugins.discover.cache_clear()
    monkeypatch.setattr(plugins, "entry_points", lambda group: eps)
    yield
    plugins.discover.cache_clear()


def _crop(src: Path, window: Window, bands: list[Path] | None = None) -> tuple[Any, np.ndarray]:
    profile: dict[str, Any] = {}
    arrays = []
    for path in bands or [src]:
        with rasterio.open(path) as ds:
            arrays.append(ds.read(1, window=window))
            shift = Affine.translation(window.col_off, window.row_off)
            profile = {**ds.profile, "transform": ds.transform @ shift}
    for key in ("blockxsize", "blockysize", "tiled"):
        profile.pop(key, None)
    profile.update(width=int(window.width), height=int(window.height), count=len(arrays))
    return profile, np.stack(arrays)


def make_scene(folder: Path, row: int, col: int, side: int = 48) -> Path:
    """A scene folder: MS B2-B4 (``side``^2 at 30 m) and the PAN B8 covering it (15 m)."""
    folder.mkdir(parents=True)
    ms_bands = [L8 / f"l8_{b}.tif" for b in ("B2", "B3", "B4")]
    for name, win, bands in (
        ("ms.tif", Window(col, row, side, side), ms_bands),
        ("pan.tif", Window(2 * col - 2, 2 * row - 2, 2 * side + 4, 2 * side + 4), None),
    ):
        profile, data = _crop(L8 / "l8_B8.tif", win, bands)
        with rasterio.open(folder / name, "w", **profile) as dst:
            dst.write(data)
    return folder


def scenes(root: Path, count: int) -> list[Path]:
    return [make_scene(root / f"scene{i}", 60 + 70 * i, 40 + 90 * i) for i in range(count)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A real ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1."""
    if not L8.is_dir():
        pytest.skip("../shared/data is not present")
    from distributed import Client

    address = f"tcp://127.0.0.1:{_free_port()}"
    common = ["--no-dashboard"]
    spawn: dict[str, Any] = {
        "start_new_session": True,
        "stdout": subprocess.DEVNULL,
        "stderr": subprocess.DEVNULL,
        # The domains of this module are found by reference too (``tests.test_batch``).
        "cwd": REPO,
        "env": {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path[1:]])},
    }
    procs = [
        subprocess.Popen(
            [
                "dask",
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                address.rsplit(":", 1)[1],
                *common,
            ],
            **spawn,
        )
    ]
    try:
        for k in range(2):
            procs.append(
                subprocess.Popen(
                    [
                        "dask",
                        "worker",
                        address,
                        "--host",
                        "127.0.0.1",
                        "--nthreads",
                        "1",
                        "--name",
                        f"w{k}",
                        "--death-timeout",
                        "60",
                        *common,
                    ],
                    **spawn,
                )
            )
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        _stop(procs)


def _pixels(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    with rasterio.open(path) as ds:
        return ds.read(), {**ds.profile, "descriptions": ds.descriptions}


def assert_same_outputs(a: Path, b: Path, names: list[str]) -> None:
    for name in names:
        data_a, prof_a = _pixels(a / name)
        data_b, prof_b = _pixels(b / name)
        assert prof_a == prof_b, name
        np.testing.assert_array_equal(data_a, data_b, err_msg=name)


def _manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / MANIFEST).read_text())


def _kill_first_marked(markers: Path, killed: list[int]) -> None:
    """Wait (bounded) for the first task to start, then SIGKILL the worker process running it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = sorted(markers.iterdir())
        if found:
            pid = int(found[0].name.rsplit(".", 1)[1])
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.02)


def test_distributed_equals_local_and_survives_a_killed_worker(
    tmp_path: Path, cluster: str, fake_domains: None, run_cli: RunCli
) -> None:
    items = scenes(tmp_path / "in", 4)
    names = [f"{p.name}.tif" for p in items]
    code, _, err = run_cli(
        "batch", "pansharpen-scenes", *items, "-o", tmp_path / "local", "--workers", "1", "--quiet"
    )
    assert code == 0, err
    code, _, err = run_cli(
        "batch",
        "pansharpen-scenes",
        str(tmp_path / "in" / "scene*"),
        "-o",
        tmp_path / "dist",
        "--scheduler",
        cluster,
        "--quiet",
    )
    assert code == 0, err
    assert_same_outputs(tmp_path / "local", tmp_path / "dist", names)

    markers = tmp_path / "markers"
    markers.mkdir()
    killed: list[int] = []
    killer = threading.Thread(target=_kill_first_marked, args=(markers, killed))
    killer.start()
    code, _, err = run_cli(
        "batch",
        "pansharpen-scenes",
        *items,
        "-o",
        tmp_path / "killed",
        "--scheduler",
        cluster,
        "--delay",
        "1.0",
        "--marker-dir",
        markers,
        "--quiet",
    )
    killer.join(timeout=90)
    assert code == 0, err
    assert len(killed) == 1
    assert_same_outputs(tmp_path / "local", tmp_path / "killed", names)
    runs = sorted(m.name.split(".")[0] for m in markers.iterdir())
    assert len(runs) == 5 and len(set(runs)) == 4  # the killed item ran again, elsewhere
    assert all(e["status"] == "ok" for e in _manifest(tmp_path / "killed")["items"].values())
    assert not list((tmp_path / "killed").glob(".*partial*"))


def test_one_corrupt_input_fails_alone_with_exit_code_2(
    tmp_path: Path, cluster: str, fake_domains: None, run_cli: RunCli
) -> None:
    items = scenes(tmp_path / "in", 5)
    bad = items[2] / "ms.tif"
    bad.write_bytes(b"this is not a GeoTIFF" * 10)
    code, _, err = run_cli(
        "batch",
        "pansharpen-scenes",
        *items,
        "-o",
        tmp_path / "out",
        "--scheduler",
        cluster,
        "--quiet",
    )
    assert code == 2
    written = sorted(p.name for p in (tmp_path / "out").glob("*.tif"))
    assert written == [f"{p.name}.tif" for p in items if p != items[2]]
    failures = [line for line in err.splitlines() if line.startswith("failed:")]
    assert len(failures) == 1 and str(bad) in failures[0] and "not a readable raster" in err
    # --quiet: the failure once at the end, no line per item as it finishes
    assert err.strip().splitlines() == failures
    entries = _manifest(tmp_path / "out")["items"]
    assert entries["scene2.tif"]["status"] == "failed"
    assert sum(e["status"] == "ok" for e in entries.values()) == 4


def test_resume_skips_only_what_is_done_and_unchanged(
    tmp_path: Path, cluster: str, fake_domains: None, run_cli: RunCli
) -> None:
    items = scenes(tmp_path / "in", 3)
    out = tmp_path / "out"
    argv = ["batch", "pansharpen-scenes", *items, "-o", out, "--scheduler", cluster, "--quiet"]
    assert run_cli(*argv)[0] == 0
    first = _manifest(out)
    assert first["weights"]["sha256"] is None and first["library_versions"]["distributed"]
    assert first["options"]["method"] == "mtf-glp"
    assert all(len(e["output_sha256"]) == 64 and e["seconds"] > 0 for e in first["items"].values())
    assert run_cli(*argv, "--resume")[0] == 0
    assert {e["status"] for e in _manifest(out)["items"].values()} == {"skipped"}
    make_scene(tmp_path / "other", 300, 300)
    for name in ("ms.tif", "pan.tif"):  # same name, new content: that item only runs again
        (items[1] / name).write_bytes((tmp_path / "other" / name).read_bytes())
    assert run_cli(*argv, "--resume")[0] == 0
    status = {k: e["status"] for k, e in _manifest(out)["items"].items()}
    assert status == {"scene0.tif": "skipped", "scene1.tif": "ok", "scene2.tif": "skipped"}
    assert run_cli(*argv, "--resume", "--sensor", "generic")[0] == 0  # other options: all run
    assert {e["status"] for e in _manifest(out)["items"].values()} == {"ok"}


def _float_raster(path: Path, height: int, width: int) -> Path:
    profile, data = _crop(L8 / "l8_B8.tif", Window(0, 0, width, height))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def test_large_raster_split_into_window_groups_equals_the_single_task(
    tmp_path: Path, cluster: str, fake_domains: None, run_cli: RunCli
) -> None:
    src = _float_raster(tmp_path / "big.tif", 1200, 700)
    common = ["batch", "box3", src, "--scheduler", cluster, "--quiet"]
    assert run_cli(*common, "-o", tmp_path / "whole")[0] == 0
    code, _, err = run_cli(*common, "-o", tmp_path / "split", "--window-group", "200000")
    assert code == 0, err
    assert _manifest(tmp_path / "split")["items"]["big.tif"]["groups"] == 3
    assert "groups" not in _manifest(tmp_path / "whole")["items"]["big.tif"]
    assert_same_outputs(tmp_path / "whole", tmp_path / "split", ["big.tif"])
    assert not (tmp_path / "split" / ".batch_parts").exists()


def test_inputs_expand_from_files_folders_and_globs(tmp_path: Path) -> None:
    for name in ("a.tif", "b.tif", ".hidden.tif"):
        (tmp_path / name).write_bytes(b"x")
    assert expand_inputs([tmp_path], BOX) == [tmp_path / "a.tif", tmp_path / "b.tif"]
    assert expand_inputs([str(tmp_path / "b*")], BOX) == [tmp_path / "b.tif"]
    assert expand_inputs([tmp_path], SCENES) == [tmp_path]  # "folder" inputs: one item


def test_sidecars_in_a_folder_or_glob_are_skipped_but_named_files_are_items(
    tmp_path: Path
) -> None:
    """A BIDS folder's JSON sidecars, a GIS folder's .aux.xml and a notes file are not items
    (each failed as unreadable and made the run exit 2)."""
    names = ("sub-01_T1w.nii.gz", "sub-01_T1w.json", "scene.tif", "scene.tif.aux.xml",
             "notes.txt", "Thumbs.db")
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / ".DS_Store").write_bytes(b"x")  # hidden files and sub-folders: named as skipped
    (tmp_path / "older").mkdir()
    skipped: list[Path] = []
    assert expand_inputs([tmp_path], BOX, skipped=skipped) == [tmp_path / "scene.tif",
                                                               tmp_path / "sub-01_T1w.nii.gz"]
    assert sorted(p.name for p in skipped) == sorted([*names[1:2], *names[3:], ".DS_Store",
                                                      "older"])
    assert expand_inputs([str(tmp_path / "sub-01_*")], BOX) == [tmp_path / "sub-01_T1w.nii.gz"]
    assert expand_inputs([tmp_path / "notes.txt"], BOX) == [tmp_path / "notes.txt"]


def test_a_folder_without_files_is_refused_not_an_empty_run(
    tmp_path: Path, fake_domains: None, run_cli: RunCli
) -> None:
    (tmp_path / "scenes" / "deeper").mkdir(parents=True)
    code, _, err = run_cli("batch", "box3", tmp_path / "scenes", "-o", tmp_path / "o")
    assert code == 2 and "no files directly inside" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_bad_usage_is_one_line_and_exit_2(
    tmp_path: Path, fake_domains: None, run_cli: RunCli
) -> None:
    code, _, err = run_cli("batch", "box3", str(tmp_path / "none*.tif"), "-o", tmp_path / "o")
    assert code == 2 and "matched nothing" in err and len(err.strip().splitlines()) == 1
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "same.tif").write_bytes(b"x")
    code, _, err = run_cli("batch", "box3", tmp_path / "x", tmp_path / "y", "-o", tmp_path / "o")
    assert code == 2 and "would both write" in err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_local_batch_on_cuda_without_cuda_is_refused_before_starting(
    tmp_path: Path, fake_domains: None, run_cli: RunCli
) -> None:
    # It used to start the workers and fail every item with the same message.
    (tmp_path / "a.tif").write_bytes(b"x")
    out = tmp_path / "o"
    code, _, err = run_cli("--quiet", "batch", "box3", tmp_path / "a.tif", "-o", out,
                           "--device", "cuda")
    assert code == 2 and "CUDA is not available" in err and not out.exists()


def test_local_workers_leave_ctrl_c_to_the_main_process() -> None:
    """Ctrl-C reaches the whole process group: every worker printed a KeyboardInterrupt
    traceback while the main process shut the cluster down."""
    import argparse
    import signal

    from pipelines.batch import connect

    before = signal.getsignal(signal.SIGINT)
    args = argparse.Namespace(scheduler=None, workers=1)
    with connect(args) as client:
        ignored = client.run(lambda: signal.getsignal(signal.SIGINT) == signal.SIG_IGN)
    assert list(ignored.values()) == [True]
    assert signal.getsignal(signal.SIGINT) == before  # the main process still stops on Ctrl-C


def test_a_run_without_resume_keeps_earlier_entries_of_the_folder(
    tmp_path: Path, cluster: str, fake_domains: None, run_cli: RunCli
) -> None:
    """Two runs over different scenes into one folder: the second rewrote the manifest with its
    own items only, leaving the first run's outputs in the folder unrecorded."""
    items = scenes(tmp_path / "in", 3)
    out = tmp_path / "out"
    base = ["batch", "pansharpen-scenes", "-o", out, "--scheduler", cluster, "--quiet"]
    assert run_cli(*base[:2], *items[:2], *base[2:])[0] == 0
    code, _, err = run_cli(*base[:2], items[2], *base[2:-1])
    assert code == 0, err
    entries = _manifest(out)["items"]
    assert sorted(entries) == ["scene0.tif", "scene1.tif", "scene2.tif"]
    assert {e["status"] for e in entries.values()} == {"ok"}
    assert "1 ok" in err and "kept 2 entry(ies) of earlier runs" in err
