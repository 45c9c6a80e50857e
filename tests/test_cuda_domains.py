"""Every domain's ``enhance --device cuda`` runs on the GPU and agrees with ``--device cpu``.

GPU-only (``pytest -m gpu``). A device check once found four domains running on the CPU
whatever ``--device`` said, and cloud-inpaint failing with a device mismatch; the peak-memory
assertion is what tells a silent CPU run from a GPU one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from suite.sample import sample_data_dir

pytestmark = pytest.mark.gpu

SAMPLES = sample_data_dir()


def load(path: Path) -> np.ndarray:
    if path.name.endswith(".nii.gz"):
        import nibabel as nib

        return np.asarray(nib.load(path).dataobj, dtype=np.float64)
    if path.suffix == ".png":
        from PIL import Image

        return np.asarray(Image.open(path), dtype=np.float64)
    import rasterio

    with rasterio.open(path) as src:
        return src.read().astype(np.float64)


def prepared(run_cli, tmp: Path, domain: str) -> tuple[list[str], str]:  # type: ignore[no-untyped-def]
    """The enhance arguments (input and options) for ``domain`` and the output suffix."""
    degrade = {
        "ct-denoise": ([SAMPLES / "ct" / "abdomen_ct_dicom", "--dose", "0.25"], "nii.gz", []),
        "mri-sr": ([SAMPLES / "mri" / "stroke_t1_excerpt.nii.gz", "--scale", "4", "--axis",
                    "2"], "nii.gz", ["--scale", "4", "--axis", "2"]),
        "fundus": ([SAMPLES / "fundus" / "retina_700.png", "--severity", "0.6"], "png", []),
        "sat-sr": ([SAMPLES / "sat" / "landsat8_LC80200392015216_excerpt.tif", "--scale",
                    "2"], "tif", ["--scale", "2"]),
        "cloud-inpaint": ([SAMPLES / "cloud" / "s2_clear_eolearn_ref3.tif"], "tif", []),
    }
    if domain == "pansharpen":
        folder = SAMPLES / "pansharpen"
        return [str(folder / "l8_ms_b2-b5.tif"), "--pan", str(folder / "l8_pan_b8.tif"),
                "--adapt-steps", "20"], "tif"
    source, suffix, options = degrade[domain]
    low = tmp / f"low.{suffix}"
    code, _, err = run_cli("--quiet", "degrade", domain, *source, "-o", low)
    assert code == 0, err
    if domain == "cloud-inpaint":
        options = ["--mask", str(tmp / "low_mask.tif")]
    return [str(low), *options], suffix


@pytest.mark.parametrize("domain", ["ct-denoise", "mri-sr", "fundus", "sat-sr", "cloud-inpaint",
                                    "pansharpen"])
def test_enhance_on_cuda_uses_the_gpu_and_matches_cpu(run_cli, tmp_path: Path,
                                                      domain: str) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    args, suffix = prepared(run_cli, tmp_path, domain)
    outputs = {}
    for device in ("cpu", "cuda"):
        held = torch.cuda.memory_allocated()  # what earlier tests may still hold
        torch.cuda.reset_peak_memory_stats()
        out = tmp_path / f"{device}.{suffix}"
        code, _, err = run_cli("--quiet", "enhance", domain, *args, "-o", out, "--device", device)
        assert code == 0, err
        grew = torch.cuda.max_memory_allocated() - held
        assert (grew > 0) == (device == "cuda"), f"{domain} on {device}: {grew} bytes on the GPU"
        outputs[device] = load(out)
    ref = outputs["cpu"]
    scale = float(np.ptp(ref)) or 1.0
    # TF32 and other kernels differ from the CPU's; adaptation (pansharpen) amplifies that.
    tolerance = 5e-2 if domain == "pansharpen" else 1e-2
    assert np.abs(outputs["cuda"] - ref).mean() / scale < tolerance
