"""Shared fixtures: where the real data is, and a CLI runner that captures exit code and stderr."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipelines.cli import main

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLE_CT = REPO / "sample_data" / "ct" / "abdomen_ct_dicom"


@pytest.fixture
def shared_data() -> Path:
    """The real data beside the repository; tests that need it skip without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run ``suite ARGS...`` in-process; return (exit code, stdout, stderr)."""

    def run(*args: str | Path) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def read_only() -> Iterator[Callable[[Path], None]]:
    """Make a folder read-only; as root (where mode bits do not bind) deny writes to it by
    patching ``os.access`` as seen by ``suite.io.atomic``, the one place the suite checks."""
    patcher = pytest.MonkeyPatch()
    locked: list[Path] = []

    def lock(folder: Path) -> None:
        folder.chmod(0o555)
        locked.append(folder)
        if os.access(folder, os.W_OK):  # root
            import suite.io.atomic as atomic

            real = os.access

            def access(path: object, mode: int, *args: object, **kwargs: object) -> bool:
                if mode & os.W_OK and Path(str(path)).absolute() in locked:
                    return False
                return real(path, mode, *args, **kwargs)  # type: ignore[arg-type]

            patcher.setattr(atomic.os, "access", access)

    yield lock
    patcher.undo()
    for folder in locked:
        folder.chmod(0o755)


@pytest.fixture
def s2_set(shared_data: Path, tmp_path: Path) -> Path:
    """A copy of one real BigEarthNet Sentinel-2 patch (the ten bands used, 10 m and 20 m)."""
    import shutil

    from domains.sat_sr.sentinel2 import GUIDES, TARGETS

    src = shared_data / "remote" / "bigearthnet_s2" / "S2A_MSIL2A_20171221T112501_56_35"
    folder = tmp_path / "s2"
    folder.mkdir()
    for band in (*GUIDES, *TARGETS):
        shutil.copy(next(src.glob(f"*_{band}.tif")), folder / f"T_{band}.tif")
    return folder
