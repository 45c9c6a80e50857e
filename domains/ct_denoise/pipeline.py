"""The CT domain's enhance / degrade / evaluate / demo steps (read, check, run, write)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from torch import nn

from domains.ct_denoise.adapt import adapt_model
from domains.ct_denoise.checks import check_ct_volume
from domains.ct_denoise.config import AdaptConfig, ModelConfig
from domains.ct_denoise.lowdose import simulate_low_dose
from domains.ct_denoise.metrics import ct_metrics
from domains.ct_denoise.volumes import denoise, to_axial, with_noise_channel
from suite.domain import DemoItem
from suite.engine.device import pick_device
from suite.errors import InputError, UsageError
from suite.export import load_runtime_model
from suite.io.volume import Volume, check_same_volume_grid, read_volume, write_volume
from suite.sample import sample_data_dir
from suite.viz import save_png
from suite.weights import read_card

WINDOW = (-160.0, 240.0)


def load_ct_model(
    weights: Path | None, trust: bool = False, runtime: str = "torch", device: str = "auto"
) -> tuple[nn.Module, ModelConfig]:
    """The user's weights (safetensors or .onnx), or the shipped default, on ``runtime``."""
    from domains.ct_denoise import DOMAIN

    path = weights or DOMAIN.default_weights()
    if path is None:
        raise UsageError("no default CT weights are installed; pass --weights")

    def calibration() -> list[Any]:  # int8 only, after the weights and their card loaded
        patches = DOMAIN.calibration_patches(32)
        if takes_noise_channel(read_card(path)):
            return [with_noise_channel(p) for p in patches]
        return patches

    model, card = load_runtime_model(path, runtime, device, trust=trust, calibration=calibration)
    tiling = card.get("inference", {})
    cfg = ModelConfig(
        patch=list(tiling.get("patch", ModelConfig().patch)),
        overlap=list(tiling.get("overlap", ModelConfig().overlap)),
        noise_channel=takes_noise_channel(card),
    )
    return model, cfg  # type: ignore[return-value]  # an OnnxModule is used like a module


def takes_noise_channel(card: dict[str, Any]) -> bool:
    """Whether the carded network was trained with ``model.noise_channel``."""
    return int(card.get("arguments", {}).get("condition_channels", 0)) > 0


def read_ct(path: Path, options: argparse.Namespace) -> Volume:
    """Read and check a CT volume (DICOM series or NIfTI)."""
    vol = read_volume(path, series_uid=getattr(options, "series", None),
                      recursive=getattr(options, "recursive", False),
                      volume=getattr(options, "volume", None))
    check_ct_volume(vol, force=getattr(options, "force", False))
    return vol


def enhance_volume(path: Path, output: Path, options: argparse.Namespace) -> dict[str, Any]:
    """Denoise ``path`` into ``output`` (NIfTI by suffix, else a derived DICOM series)."""
    vol = read_ct(path, options)
    _check_writable_kind(vol, output, path)
    runtime = getattr(options, "runtime", "torch")
    adapt = getattr(options, "adapt", False)
    if adapt and runtime != "torch":
        raise UsageError("--adapt fine-tunes the network, so it needs --runtime torch")
    model, cfg = load_ct_model(options.weights, options.trust_checkpoint, runtime,
                               getattr(options, "device", "auto"))
    axial = to_axial(vol)
    # PyTorch's int8 kernels are CPU kernels; ONNX Runtime picks its own device.
    device = pick_device("cpu" if runtime == "torch-int8" else getattr(options, "device", "auto"))
    out = denoise(model, axial.hu, cfg, progress=not options.quiet, device=device)
    summary: dict[str, Any] = {"voxels": int(out.size)}
    if adapt:
        adapt_cfg = AdaptConfig()
        if options.adapt_steps is not None:
            adapt_cfg.steps = max(1, options.adapt_steps)
        model, info = adapt_model(model, axial.hu, out, axial.pixel_mm, adapt_cfg, path,
                                  device.type, not options.quiet, cfg.noise_channel)
        out = denoise(model, axial.hu, cfg, progress=not options.quiet, device=device)
        summary |= {"adapt_steps": adapt_cfg.steps, "adapt_noise_hu": info["noise_hu"]}
    write_volume(
        output,
        axial.back(out),
        vol.meta,
        description="denoised",
        derivation="low-dose CT denoising, suite ct-denoise (3D U-Net"
        + (", adapted to this scan)" if adapt else ")"),
    )
    return summary


def _check_writable_kind(vol: Volume, output: Path, path: Path) -> None:
    from suite.io.volume import is_nifti_path

    if not is_nifti_path(output) and vol.meta.source_format != "dicom":
        raise InputError(
            path,
            "DICOM output needs a DICOM input (its patient and study headers);"
            " give an output ending in .nii or .nii.gz",
        )


def degrade_volume(path: Path, output: Path, options: argparse.Namespace) -> dict[str, Any]:
    """Write a simulated low-dose copy of ``path``."""
    vol = read_ct(path, options)
    _check_writable_kind(vol, output, path)
    level = _dose_level(options)
    axial = to_axial(vol)
    result = simulate_low_dose(axial.hu, axial.pixel_mm, 2, seed=options.seed,
                               progress=not getattr(options, "quiet", False), **level)
    write_volume(
        output,
        axial.back(result.noisy),
        vol.meta,
        description="simulated low dose",
        derivation=f"simulated low-dose CT, I0={result.photons:.4g} photons/bin/view",
    )
    return {"photons": result.photons, "added_noise_hu": result.added_noise_hu}


def _dose_level(options: argparse.Namespace) -> dict[str, float]:
    if options.noise_hu is not None:
        return {"noise_hu": options.noise_hu}
    if options.photons is not None:
        return {"photons": options.photons}
    dose = 0.25 if options.dose is None else options.dose
    if not 0.0 < dose < 1.0:
        raise UsageError(f"--dose must be a fraction in (0, 1), got {dose}")
    return {"dose": dose}


def evaluate_volumes(pred: Path, ref: Path, force: bool = False) -> dict[str, float]:
    """Metrics of ``pred`` against ``ref`` (same grid required); HU windows, so the reference
    must be CT (unless ``force``)."""
    reference, predicted = read_volume(ref), read_volume(pred)
    check_ct_volume(reference, force=force)
    if predicted.data.shape != reference.data.shape:
        raise InputError(pred, f"shape {predicted.data.shape} differs from the reference "
                               f"{reference.data.shape}")
    check_same_volume_grid(pred, predicted.meta.affine, reference.meta.affine)
    p, r = to_axial(predicted), to_axial(reference)
    return ct_metrics(p.hu, r.hu)


def run_demo(out_dir: Path) -> list[DemoItem]:
    """Simulate a low dose on the bundled CT excerpt (about 50 HU added) and denoise it."""
    src = sample_data_dir() / "ct" / "abdomen_ct_dicom"
    axial = to_axial(read_volume(src))
    noisy = simulate_low_dose(axial.hu, axial.pixel_mm, 2, noise_hu=50.0, seed=0)
    model, cfg = load_ct_model(None)
    out = denoise(model, noisy.noisy, cfg)
    z = axial.hu.shape[-1] // 2
    # (X, Y) holds columns then rows (DICOM order), so the transpose shows the usual view.
    pics = [
        save_png(out_dir / f"{name}.png", a[..., z].T, *WINDOW)
        for name, a in (("low_dose", noisy.noisy), ("denoised", out), ("reference", axial.hu))
    ]
    before = ct_metrics(noisy.noisy, axial.hu)
    after = ct_metrics(out, axial.hu)
    metrics = {f"input_{k}": v for k, v in before.items()} | {
        f"denoised_{k}": v for k, v in after.items()
    }
    return [
        DemoItem(
            "Abdominal CT, simulated low dose (about 50 HU added noise)",
            pics[0],
            pics[1],
            metrics,
            reference_png=pics[2],
            note="Window [-160, 240] HU. PSNR/SSIM on HU clipped to the soft window "
            "(range 400) and [-1000, 1000] (range 2000), SSIM averaged over slices. "
            "These slices belong to the series the default weights were trained on.",
        )
    ]
