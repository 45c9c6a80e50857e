"""The README's Python examples run as written (from a fresh folder) and do what they say."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)


def run_block(code: str, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Execute ``code`` with ``folder`` as the working directory, beside ``sample_data/``."""
    (folder / "sample_data").symlink_to(REPO / "sample_data")
    monkeypatch.chdir(folder)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})


def test_readme_has_the_two_examples() -> None:
    assert len(BLOCKS) == 2


def test_medical_example_denoises_the_bundled_series(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run_block(BLOCKS[0], tmp_path, monkeypatch)
    noisy, clean = (float(v) for v in capsys.readouterr().out.split())
    assert clean > noisy + 3.0  # PSNR in soft tissue, dB: the denoiser must clearly help
    assert (tmp_path / "denoised.nii.gz").stat().st_size > 0


def test_gis_example_pansharpens_the_landsat_pair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_data: Path
) -> None:
    code = BLOCKS[1].replace('"../shared/data', f'"{shared_data}')
    run_block(code, tmp_path, monkeypatch)
    import rasterio

    pan_path = shared_data / "remote/landsat8_LC80200392015216LGN00/l8_B8.tif"
    with rasterio.open(tmp_path / "pansharpened.tif") as out, rasterio.open(pan_path) as pan:
        # the PAN grid, cut to the pixels inside both footprints (docs/pansharpen.md)
        assert (out.count, out.crs, out.res) == (3, pan.crs, pan.res)
        col, row = ~pan.transform @ (out.transform.c, out.transform.f)
        assert col == round(col) and row == round(row)
        assert 0.99 * pan.width <= out.width <= pan.width
