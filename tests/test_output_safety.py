"""Outputs never destroy what the user did not ask to replace, and misnamed outputs are refused
before any work: exit 2, one line naming the path, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from suite.errors import InputError
from suite.io.atomic import atomic_path
from tests import fixtures_dicom as fx

REPO = Path(__file__).resolve().parents[1]
SERIES = REPO / "sample_data" / "ct" / "abdomen_ct_dicom"
FUNDUS_WEIGHTS = REPO / "domains" / "fundus" / "weights" / "fundus.safetensors"


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_a_series_never_replaces_a_folder_holding_other_files(tmp_path: Path, run_cli) -> None:
    """A DICOM series written to an existing folder deleted everything in it (``-o .`` too)."""
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me\n")
    before = fx.tree_hash(folder)
    code, _, err = run_cli("convert", SERIES, "-o", folder, "--quiet")
    assert code == 2 and "holding other files" in _one_line(err)
    assert fx.tree_hash(folder) == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "results"]


def test_a_series_replaces_an_earlier_series_of_the_suite(tmp_path: Path, run_cli) -> None:
    out = tmp_path / "series"
    assert run_cli("convert", SERIES, "-o", out, "--quiet")[0] == 0
    first = sorted(p.name for p in out.iterdir())
    assert first and all(n.endswith(".dcm") for n in first)
    assert run_cli("convert", SERIES, "-o", out, "--quiet")[0] == 0
    assert sorted(p.name for p in out.iterdir()) == first


@pytest.mark.parametrize("name", ["out.png", "out.dcm", "out.tif", "scan.gz"])
def test_a_volume_output_named_like_a_file_format_is_refused(tmp_path: Path, run_cli,
                                                             name: str) -> None:
    """From a DICOM input any such name became a series folder called ``out.png``."""
    for command in (("convert",), ("enhance", "ct-denoise"), ("degrade", "mri-sr")):
        code, _, err = run_cli(*command, SERIES, "-o", tmp_path / name, "--quiet")
        line = _one_line(err)
        assert code == 2 and name in line and ".nii.gz" in line, (command, line)
    assert list(tmp_path.iterdir()) == []


def test_weights_of_another_domain_are_refused_by_name(tmp_path: Path, run_cli) -> None:
    """They failed deep in the network with an internal error (exit 1)."""
    out = tmp_path / "out.nii.gz"
    code, _, err = run_cli("enhance", "ct-denoise", SERIES, "-o", out, "--weights",
                           FUNDUS_WEIGHTS, "--quiet")
    line = _one_line(err)
    assert code == 2 and "fundus.safetensors" in line and "for fundus, not ct-denoise" in line
    code, _, err = run_cli("enhance", "ct-denoise", SERIES, "-o", out, "--weights",
                           tmp_path / "none.safetensors", "--quiet")
    assert code == 2 and "none.safetensors: weights file not found" in _one_line(err)
    code, _, err = run_cli("batch", "ct-denoise", SERIES, "-o", tmp_path / "batch", "--weights",
                           FUNDUS_WEIGHTS, "--quiet")
    assert code == 2 and "for fundus, not ct-denoise" in _one_line(err)
    assert list(tmp_path.iterdir()) == []


def test_a_misspelt_demo_domain_writes_nothing(tmp_path: Path, run_cli) -> None:
    code, _, err = run_cli("demo", "--domains", "fundas", "-o", tmp_path / "demo", "--quiet")
    assert code == 2 and "fundas" in _one_line(err) and "fundus" in err
    assert list(tmp_path.iterdir()) == []


def test_atomic_replacement_keeps_files_and_folders_apart(tmp_path: Path) -> None:
    file_target, folder_target = tmp_path / "a.nii.gz", tmp_path / "series"
    file_target.write_text("old")
    folder_target.mkdir()
    with pytest.raises(InputError, match="is a file"), atomic_path(file_target) as tmp:
        tmp.mkdir()
    with pytest.raises(InputError, match="is a folder"), atomic_path(folder_target) as tmp:
        tmp.write_text("new")
    assert file_target.read_text() == "old" and folder_target.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.nii.gz", "series"]


def test_a_file_output_named_like_an_existing_folder_is_refused_before_any_work(
        tmp_path: Path, run_cli) -> None:
    raster = REPO / "sample_data" / "sat" / "landsat8_LC80200392015216_excerpt.tif"
    for args, folder in ((("enhance", "sat-sr", raster, "--scale", "2"), "out.tif"),
                         (("convert", SERIES), "out.nii.gz")):
        (tmp_path / folder).mkdir()
        code, _, err = run_cli(*args, "-o", tmp_path / folder, "--quiet")
        assert code == 2 and "is a folder" in _one_line(err)
        assert list((tmp_path / folder).iterdir()) == []


def test_the_input_reached_by_another_spelling_is_never_replaced(tmp_path: Path,
                                                                   run_cli) -> None:
    """'-o folder/../scan.nii.gz' or a link to the input replaced the input."""
    src = tmp_path / "scan 1.nii.gz"
    src.write_bytes((REPO / "sample_data" / "mri" / "stroke_t1_excerpt.nii.gz").read_bytes())
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.nii.gz").symlink_to(src)
    before = fx.tree_hash(src)
    for given, output in ((src, tmp_path / "sub" / ".." / "scan 1.nii.gz"),
                          (tmp_path / "link.nii.gz", src), (src, tmp_path / "link.nii.gz")):
        code, _, err = run_cli("convert", given, "-o", output, "--quiet")
        assert code == 2 and "output path is the input" in _one_line(err), (given, output)
    assert fx.tree_hash(src) == before


def test_a_file_name_longer_than_the_file_system_allows_is_an_input_error(
        tmp_path: Path, run_cli) -> None:
    code, _, err = run_cli("convert", SERIES, "-o", tmp_path / ("y" * 260 + ".nii.gz"))
    assert code == 2 and "267 bytes long" in _one_line(err)  # was an internal OSError


def test_sigterm_unwinds_like_ctrl_c_and_leaves_no_temporary(
        tmp_path: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM (a cancelled cluster job) ended Python at once and left the '.partial' file."""
    import os
    import signal

    import nibabel as nib

    real_save = nib.save

    def save_then_terminated(img, path):  # type: ignore[no-untyped-def]
        real_save(img, path)  # half way: the temporary exists
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(nib, "save", save_then_terminated)
    before = signal.getsignal(signal.SIGTERM)
    code, _, err = run_cli("convert", SERIES, "-o", tmp_path / "out.nii.gz", "--quiet")
    assert code == 128 + signal.SIGTERM and _one_line(err) == "error: terminated"
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) == before  # handed back after the command
