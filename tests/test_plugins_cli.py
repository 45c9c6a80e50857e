"""Plugin discovery, the layer rule and the CLI's exit codes."""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from PIL import Image

from suite import plugins
from suite.domain import Domain

REPO = Path(__file__).resolve().parents[1]


def test_import_suite_pulls_in_no_domain_or_pipeline() -> None:
    code = ("import sys, suite, suite.io.volume, suite.engine.tiling, suite.models, suite.plugins;"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('domains', 'pipelines')];"
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_source_file_in_suite_imports_upper_layers() -> None:
    offenders = [p for p in (REPO / "suite").rglob("*.py")
                 if any(line.lstrip().startswith(("from domains", "import domains",
                                                  "from pipelines", "import pipelines"))
                        for line in p.read_text().splitlines())]
    assert offenders == []


def test_no_domain_imports_another_domain() -> None:
    for folder in (REPO / "domains").iterdir():
        if not (folder / "__init__.py").is_file():
            continue
        for path in folder.rglob("*.py"):
            for line in path.read_text().splitlines():
                line = line.strip()
                if line.startswith(("from domains.", "import domains.")):
                    assert line.split()[1].split(".")[1] == folder.name, f"{path}: {line}"


def _fake_entry_points(monkeypatch: pytest.MonkeyPatch, eps: list[EntryPoint]) -> None:
    plugins.discover.cache_clear()
    monkeypatch.setattr(plugins, "entry_points", lambda group: eps)


class _Good(Domain):
    name = "good"
    task = "a fake domain for tests"
    input_kinds = ("nothing",)


GOOD = _Good()


def test_broken_plugin_is_listed_with_its_error(monkeypatch: pytest.MonkeyPatch,
                                                run_cli) -> None:
    eps = [EntryPoint("good", f"{__name__}:GOOD", plugins.GROUP),
           EntryPoint("broken", "no_such_module_anywhere:DOMAIN", plugins.GROUP)]
    _fake_entry_points(monkeypatch, eps)
    try:
        code, out, _ = run_cli("domains")
        assert code == 0
        assert "good\tok" in out
        assert "broken\tBROKEN\tModuleNotFoundError" in out
        code, _, err = run_cli("enhance", "broken", "x", "-o", "y")
        assert code == 2
        assert "broken" in err and len(err.strip().splitlines()) == 1
    finally:
        plugins.discover.cache_clear()


class _BadOptions(Domain):
    name = "bad-options"
    task = "a fake domain whose options need a missing library"
    input_kinds = ("nothing",)

    def add_arguments(self, command: str, parser: argparse.ArgumentParser) -> None:
        raise ImportError("no module named 'missing_library'")


BAD_OPTIONS = _BadOptions()


def test_plugin_with_broken_options_leaves_the_cli_working(monkeypatch: pytest.MonkeyPatch,
                                                            run_cli) -> None:
    eps = [EntryPoint("good", f"{__name__}:GOOD", plugins.GROUP),
           EntryPoint("bad-options", f"{__name__}:BAD_OPTIONS", plugins.GROUP)]
    _fake_entry_points(monkeypatch, eps)
    try:
        code, out, _ = run_cli("domains")
        assert code == 0 and "good\tok" in out
        code, _, err = run_cli("enhance", "bad-options", "x", "-o", "y")
        assert code == 2
        assert "missing_library" in err and len(err.strip().splitlines()) == 1
    finally:
        plugins.discover.cache_clear()


def test_duplicate_plugin_names_warn_and_keep_the_first(monkeypatch: pytest.MonkeyPatch) -> None:
    eps = [EntryPoint("good", f"{__name__}:GOOD", plugins.GROUP),
           EntryPoint("good", "elsewhere:DOMAIN", plugins.GROUP)]
    _fake_entry_points(monkeypatch, eps)
    try:
        with pytest.warns(RuntimeWarning, match="duplicate domain"):
            found = plugins.discover()
        assert found["good"].value.endswith(":GOOD")
    finally:
        plugins.discover.cache_clear()


def test_builtin_ct_domain_is_discovered_through_entry_points() -> None:
    entry = plugins.discover()["ct-denoise"]
    assert entry.ok, entry.error


def test_usage_error_is_one_line_exit_2(run_cli) -> None:
    code, _, err = run_cli("enhance", "no-such-domain", "x", "-o", "y")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error:")


def test_missing_input_names_the_file(run_cli, tmp_path: Path) -> None:
    missing = tmp_path / "nothing_here.nii.gz"
    code, _, err = run_cli("enhance", "ct-denoise", missing, "-o", tmp_path / "out.nii.gz")
    assert code == 2
    assert str(missing) in err and "no such file" in err
    assert not (tmp_path / "out.nii.gz").exists()


def test_console_script_help_has_examples() -> None:
    result = subprocess.run([sys.executable, "-m", "pipelines.cli", "--help"],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0
    assert "examples:" in result.stdout and "suite demo" in result.stdout


def test_version_is_the_installed_distribution_version() -> None:
    from importlib.metadata import version

    result = subprocess.run([sys.executable, "-m", "pipelines.cli", "--version"],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0
    assert result.stdout.split() == ["suite", version("enhance-suite")]


def test_info_prints_the_card(run_cli, tmp_path: Path) -> None:
    import torch

    from suite.models import create_model
    from suite.weights import save_weights

    net = create_model("espcn", in_channels=1, scale=2)
    card = {"architecture": "espcn", "arguments": {"in_channels": 1, "scale": 2},
            "normalization": "x/255", "training": {"data": "none"}, "validation": {}}
    path = save_weights(tmp_path / "m.safetensors", net, card)
    code, out, _ = run_cli("info", path)
    assert code == 0 and '"architecture": "espcn"' in out
    torch.save(net.state_dict(), tmp_path / "m.pt")
    code, _, err = run_cli("enhance", "ct-denoise", REPO / "sample_data" / "ct" /
                           "abdomen_ct_dicom", "-o", tmp_path / "o.nii.gz",
                           "--weights", tmp_path / "m.pt")
    assert code == 2 and "pickled" in err


def test_info_shows_a_nifti_grid_and_its_dicom_provenance(run_cli, tmp_path: Path) -> None:
    import json

    nifti = tmp_path / "ct.nii.gz"
    assert run_cli("convert", REPO / "sample_data" / "ct" / "abdomen_ct_dicom", "-o", nifti,
                   "--quiet")[0] == 0
    code, out, err = run_cli("info", nifti)
    assert code == 0, err
    shown = json.loads(out)
    assert shown["shape"] == [512, 512, 8] and len(shown["voxel_mm"]) == 3
    assert shown["provenance"]["dicom"]["Modality"] == "CT"
    assert shown["provenance"]["derivations"] == ["converted; format conversion"]
    (tmp_path / "bad.nii.gz").write_bytes(b"not a nifti")
    code, _, err = run_cli("info", tmp_path / "bad.nii.gz")
    assert code == 2 and "bad.nii.gz" in err and len(err.strip().splitlines()) == 1


def test_info_shows_a_raster_and_a_dicom_series(run_cli) -> None:
    """``suite info scene.tif`` said "no model card beside the weights"."""
    import json

    code, out, err = run_cli("info", REPO / "sample_data" / "sat" /
                             "landsat8_LC80200392015216_excerpt.tif")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["size"] == [256, 256] and shown["bands"] == 4 and shown["dtype"] == "uint16"
    assert shown["georeference"]["crs"] == "EPSG:32616"
    assert shown["georeference"]["pixel_size"] == [30.0, 30.0]
    code, out, err = run_cli("info", REPO / "sample_data" / "ct" / "abdomen_ct_dicom")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["shape"] == [512, 512, 8] and shown["modality"] == "CT"


def test_info_shows_a_photograph_and_names_a_file_it_cannot_read(run_cli,
                                                                  tmp_path: Path) -> None:
    """Any other file was taken for weights: "no model card notes.json beside the weights"."""
    import json

    code, out, err = run_cli("info", REPO / "sample_data" / "fundus" / "retina_700.png")
    assert code == 0, err
    shown = json.loads(out)
    assert {k: shown[k] for k in ("format", "width", "height", "mode", "bits", "orientation")
            } == {"format": "PNG", "width": 700, "height": 700, "mode": "RGB", "bits": 8,
                  "orientation": 1}
    broken = tmp_path / "broken.jpg"  # a truncated JPEG was reported as fine
    Image.open(REPO / "sample_data" / "fundus" / "retina_700.png").save(broken)
    broken.write_bytes(broken.read_bytes()[:5000])
    code, _, err = run_cli("info", broken)
    assert code == 2 and "broken.jpg" in err
    (tmp_path / "notes.txt").write_text("a note\n")
    code, _, err = run_cli("info", tmp_path / "notes.txt")
    assert code == 2 and "notes.txt: suite info reads weights" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("domain", ["ct-denoise", "mri-sr", "fundus"])
def test_one_file_domains_refuse_several_inputs(domain: str, run_cli, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    a, b = inputs / "a.nii.gz", inputs / "b.nii.gz"
    a.write_bytes(b"x")
    b.write_bytes(b"x")
    out = tmp_path / "out"
    out.mkdir()
    extra = ["--scale", "2"] if domain == "mri-sr" else []  # checked before the inputs
    name = "result.png" if domain == "fundus" else "result.nii.gz"  # a name each may write
    code, _, err = run_cli("enhance", domain, a, b, "-o", out / name, *extra)
    assert code == 2 and f"{domain} takes one input" in err and "got 2" in err
    assert len(err.strip().splitlines()) == 1 and not list(out.iterdir())


@pytest.mark.parametrize("where", ["before", "after", "domain"])
def test_threads_option_sets_torch_threads(run_cli, where: str) -> None:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)  # so that the option has something to change
    args = {"before": ["--threads", "1", "domains"], "after": ["domains", "--threads", "1"],
            "domain": ["evaluate", "mri-sr", "--pred", "missing.nii.gz", "--ref",
                       "missing.nii.gz", "--threads", "1"]}[where]
    try:
        code, _, _ = run_cli(*args)
        assert code == (2 if where == "domain" else 0)  # parsed, then refused: no such file
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_threads_option_refuses_zero(run_cli) -> None:
    code, _, err = run_cli("--threads", "0", "domains")
    assert code == 2 and "at least 1" in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("domain", ["ct-denoise", "mri-sr", "fundus", "sat-sr", "cloud-inpaint",
                                    "pansharpen"])
def test_device_cuda_without_cuda_is_refused(domain: str, run_cli, tmp_path: Path) -> None:
    # Four domains used to ignore --device and run on the CPU whatever it said.
    from suite.sample import sample_data_dir

    s = sample_data_dir()
    args = {
        "ct-denoise": [s / "ct" / "abdomen_ct_dicom"],
        "mri-sr": [s / "mri" / "stroke_t1_excerpt.nii.gz", "--scale", "2", "--axis", "2"],
        "fundus": [s / "fundus" / "retina_700.png"],
        "sat-sr": [s / "sat" / "landsat8_LC80200392015216_excerpt.tif", "--scale", "2"],
        "cloud-inpaint": [tmp_path / "cloudy.tif", "--mask", tmp_path / "cloudy_mask.tif"],
        "pansharpen": [s / "pansharpen" / "l8_ms_b2-b5.tif", "--pan",
                       s / "pansharpen" / "l8_pan_b8.tif"],
    }[domain]
    if domain == "cloud-inpaint":
        assert run_cli("degrade", domain, s / "cloud" / "s2_clear_eolearn_ref3.tif",
                       "-o", tmp_path / "cloudy.tif")[0] == 0
    out = tmp_path / ("out.nii.gz" if domain in ("ct-denoise", "mri-sr") else
                      "out.png" if domain == "fundus" else "out.tif")
    code, _, err = run_cli("--quiet", "enhance", domain, *args, "-o", out, "--device", "cuda")
    assert code == 2 and "CUDA is not available" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_misspelt_option_names_its_command_and_the_nearest_option(run_cli) -> None:
    """The message said ``suite: unrecognized arguments`` whatever the command."""
    code, _, err = run_cli("enhance", "ct-denoise", "in", "-o", "out.nii.gz", "--adpat")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "suite enhance ct-denoise: unrecognized arguments: --adpat" in err
    assert "did you mean --adapt?" in err
    code, _, err = run_cli("batch", "fundus", "in", "-o", "out", "--workrs", "2")
    assert code == 2 and "suite batch fundus:" in err and "did you mean --workers?" in err


def test_batch_refuses_a_worker_count_below_one(run_cli, tmp_path: Path) -> None:
    """``--workers -1`` started no worker and waited forever; 0 silently meant one per core."""
    for count in ("-1", "0"):
        code, _, err = run_cli("batch", "fundus", REPO / "sample_data" / "fundus" /
                               "retina_700.png", "-o", tmp_path / "out", "--workers", count)
        assert code == 2 and "--workers" in err and "at least 1" in err
    assert list(tmp_path.iterdir()) == []


def test_a_reader_that_leaves_early_is_not_an_internal_error() -> None:
    """`suite info x.tif | head` closes the pipe before the CLI has written everything."""
    raster = REPO / "sample_data" / "pansharpen" / "l8_ms_b2-b5.tif"
    with subprocess.Popen([sys.executable, "-m", "pipelines.cli", "info", str(raster)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # the reader is gone before the CLI prints
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=120)
    assert code in (0, 141) and "internal error" not in err, err
