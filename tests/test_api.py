"""The Python API runs the command line's operations with its defaults, checks and errors."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from pipelines import api
from suite.errors import InputError, UsageError


@pytest.fixture
def phantom(tmp_path: Path) -> Path:
    """A small noisy water disc in air, in HU, 1 mm voxels."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    disc = (yy - 32) ** 2 + (xx - 32) ** 2 < 26**2
    hu = np.where(disc, 40.0, -1000.0)[:, :, None] + rng.normal(0, 30, (64, 64, 12))
    path = tmp_path / "phantom.nii.gz"
    nib.save(nib.Nifti1Image(hu.astype(np.float32), np.eye(4)), path)
    return path


def test_enhance_writes_what_the_command_line_writes(phantom: Path, run_cli) -> None:
    summary = api.enhance("ct-denoise", phantom, phantom.with_name("api.nii.gz"), quiet=True)
    code, _, err = run_cli("--quiet", "enhance", "ct-denoise", phantom, "-o",
                           phantom.with_name("cli.nii.gz"))
    assert code == 0, err
    by_api = nib.load(phantom.with_name("api.nii.gz")).get_fdata()
    by_cli = nib.load(phantom.with_name("cli.nii.gz")).get_fdata()
    np.testing.assert_array_equal(by_api, by_cli)
    assert isinstance(summary, dict) and summary


def test_degrade_converts_values_as_the_parser_does(phantom: Path) -> None:
    low = phantom.with_name("low.nii.gz")
    api.degrade("ct-denoise", [str(phantom)], low, noise_hu="50", seed=3, quiet=True)
    again = phantom.with_name("low2.nii.gz")
    api.degrade("ct-denoise", phantom, again, noise_hu=50.0, seed="3", quiet=True)
    np.testing.assert_array_equal(nib.load(low).get_fdata(), nib.load(again).get_fdata())


def test_evaluate_returns_the_metrics_and_writes_the_json(phantom: Path) -> None:
    out = phantom.with_name("metrics.json")
    metrics = api.evaluate("ct-denoise", pred=phantom, ref=phantom, json=out)
    written = {k: (v if np.isfinite(v) else None) for k, v in metrics.items()}  # inf: null
    assert written == json.loads(out.read_text())
    assert metrics["psnr_soft"] > 60  # a volume against itself


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"nosie_hu": 50}, "unknown option 'nosie_hu'"),
        ({"runtime": "tensorrt"}, "runtime must be one of"),
        ({"quiet": "yes"}, "quiet takes True or False"),
        ({"threads": 0}, "threads"),
    ],
)
def test_bad_options_raise_a_usage_error_before_anything_runs(
    phantom: Path, options: dict[str, object], needle: str
) -> None:
    out = phantom.with_name("out.nii.gz")
    with pytest.raises(UsageError, match=needle):
        api.enhance("ct-denoise", phantom, out, **options)
    assert not out.exists()


def test_missing_input_raises_an_input_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.nii\.gz"):
        api.enhance("ct-denoise", tmp_path / "nope.nii.gz", tmp_path / "out.nii.gz")
    assert list(tmp_path.iterdir()) == []


def test_unknown_domain_and_missing_required_option_are_usage_errors(phantom: Path) -> None:
    with pytest.raises(UsageError, match="unknown domain 'ct'"):
        api.enhance("ct", phantom, phantom.with_name("o.nii.gz"))
    with pytest.raises(UsageError, match="missing output"):
        api.enhance("ct-denoise", phantom, None)


def test_overrides_accept_a_mapping_and_read_back_as_the_same_values() -> None:
    import yaml

    args = api.options_for("train", "ct-denoise",
                           overrides={"train.steps": 2, "model.channels": [8, 16],
                                      "data.cache": "/tmp/c", "train.amp": False})
    parsed = dict(text.split("=", 1) for text in args.overrides)
    assert {k: yaml.safe_load(v) for k, v in parsed.items()} == {
        "train.steps": 2, "model.channels": [8, 16], "data.cache": "/tmp/c", "train.amp": False}
    assert args.out == Path("runs/latest") and args.device == "auto"  # the CLI's defaults


def test_batch_returns_the_manifest_entries_with_failures(phantom: Path, tmp_path: Path) -> None:
    bad = tmp_path / "notes.nii.gz"
    bad.write_text("not a volume")
    items = api.batch("ct-denoise", [phantom, bad], tmp_path / "out", workers=1, quiet=True)
    statuses = {name: entry["status"] for name, entry in items.items()}
    assert statuses == {"phantom.nii.gz": "ok", "notes.nii.gz": "failed"}
    assert "notes.nii.gz" in items["notes.nii.gz"]["reason"]


def test_options_the_command_line_refuses_together_are_refused(phantom: Path) -> None:
    low = phantom.with_name("low.nii.gz")
    with pytest.raises(UsageError, match="not allowed with"):
        api.degrade("ct-denoise", phantom, low, dose=0.5, noise_hu=20)
    assert not low.exists()


def test_plain_python_numbers_are_taken_where_the_parser_takes_their_text() -> None:
    args = api.options_for("enhance", "mri-sr", inputs="a.nii", output="b.nii", scale=2, axis=2)
    assert args.axis == "2"
    args = api.options_for("enhance", "sat-sr", inputs="a.tif", output="b.tif", scale=2.0)
    assert args.scale == 2
    with pytest.raises(UsageError):
        api.options_for("enhance", "sat-sr", inputs="a.tif", output="b.tif", scale=2.5)


def test_threads_apply_to_the_call_only(phantom: Path) -> None:
    import torch

    before = torch.get_num_threads()
    api.evaluate("ct-denoise", pred=phantom, ref=phantom, threads=1 if before > 1 else 2)
    assert torch.get_num_threads() == before


def test_evaluate_json_is_strict_json_when_a_metric_is_infinite(phantom: Path) -> None:
    """PSNR of identical volumes is infinite; 'Infinity' is not JSON to strict parsers."""
    out = phantom.with_name("m.json")
    metrics = api.evaluate("ct-denoise", pred=phantom, ref=phantom, json=out)
    assert any(not np.isfinite(v) for v in metrics.values())
    text = out.read_text()
    assert "Infinity" not in text and "NaN" not in text
    assert json.loads(text, parse_constant=lambda c: pytest.fail(c)) is not None
