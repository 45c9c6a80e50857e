"""The fundus domain's enhance / degrade / evaluate / demo steps (read, check, run, write)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from domains.fundus.classical import clahe_luminance
from domains.fundus.config import ModelConfig
from domains.fundus.degrade import degrade_fundus
from domains.fundus.metrics import fundus_metrics
from domains.fundus.model import restore
from domains.fundus.photos import (
    check_output_format,
    read_fundus,
    read_label_mask,
    write_like,
)
from suite.domain import DemoItem
from suite.errors import InputError, UsageError
from suite.export import load_runtime_model
from suite.io.photo import read_photo
from suite.sample import sample_data_dir
from suite.viz import save_png


def load_fundus_model(weights: Path | None, trust: bool = False, runtime: str = "torch",
                      device: str = "auto") -> tuple[nn.Module, ModelConfig]:
    """The user's weights, or the shipped default, on ``runtime`` and ``device``; with the
    card's tiling."""
    from domains.fundus import DOMAIN

    path = weights or DOMAIN.default_weights()
    if path is None:
        raise UsageError("no default fundus weights are installed; pass --weights")
    model, card = load_runtime_model(path, runtime, device, trust=trust)
    if not isinstance(model, nn.Module):  # the runtimes above are all PyTorch
        raise UsageError(f"fundus runs on torch or torch-bf16, not {runtime}")
    tiling = card.get("inference", {})
    default = ModelConfig()
    cfg = ModelConfig(patch=int(tiling.get("patch", default.patch)),
                      overlap=int(tiling.get("overlap", default.overlap)),
                      halo=int(tiling.get("halo", default.halo)))
    return model, cfg


def enhance_photo(path: Path, output: Path, options: argparse.Namespace) -> dict[str, Any]:
    """Restore one fundus photograph into ``output`` (PNG, JPEG, TIFF or DICOM by suffix)."""
    src = read_fundus(path, getattr(options, "fov", None))
    check_output_format(output, src, path)
    model, tiling = load_fundus_model(options.weights, options.trust_checkpoint,
                                      getattr(options, "runtime", "torch"),
                                      getattr(options, "device", "auto"))
    out = restore(model, src.rgb, src.fov, tiling, progress=not options.quiet)
    from domains.fundus import DOMAIN

    weights = options.weights or DOMAIN.default_weights()
    write_like(output, out, src, "restored",
               f"suite fundus restoration, weights {Path(str(weights)).name}")
    return {"pixels": int(src.fov.size), "fov_fraction": round(float(src.fov.mean()), 3)}


def degrade_photo(path: Path, output: Path, options: argparse.Namespace) -> dict[str, Any]:
    """Write a degraded copy of a good photograph (``--severity``, ``--seed``)."""
    severity = float(getattr(options, "severity", 0.5))
    if not 0.0 <= severity <= 1.0:
        raise UsageError(f"--severity must be in [0, 1], got {severity}")
    src = read_fundus(path, getattr(options, "fov", None))
    check_output_format(output, src, path)
    low, params = degrade_fundus(src.rgb, src.fov, severity, np.random.default_rng(options.seed))
    write_like(output, low, src, "degraded",
               f"suite fundus degradation (simulated), severity {severity}, seed {options.seed}")
    return {"severity": severity, "blur_px": round(params.blur_px, 2),
            "haze": round(params.haze, 3), "jpeg_quality": params.jpeg_quality}


def evaluate_photos(pred: Path, ref: Path, options: argparse.Namespace) -> dict[str, float]:
    """Metrics of ``pred`` against ``ref`` inside the reference's FOV (or ``--fov``)."""
    r = read_fundus(ref, getattr(options, "fov", None))
    p = read_photo(pred)
    if p.data.shape[:2] != r.rgb.shape[:2] or p.data.shape[2] < 3:
        raise InputError(pred, f"shape {p.data.shape} does not match the reference "
                         f"{r.photo.data.shape}")
    if p.meta.orientation != r.photo.meta.orientation:  # stored pixels turned differently
        raise InputError(pred, f"EXIF orientation {p.meta.orientation or 1} differs from the "
                               f"reference's {r.photo.meta.orientation or 1}: their stored "
                               "pixels are not the same places")
    scale = p.meta.full_scale
    labels = getattr(options, "vessels", None)
    vessels = (None if labels is None
               else read_label_mask(labels, r.fov.shape, r.photo.meta.orientation))
    return fundus_metrics(p.data[..., :3].astype(np.float32) / scale, r.rgb, r.fov, vessels)


SAMPLE = "fundus/retina_700.png"


def run_demo(out_dir: Path) -> list[DemoItem]:
    """Degrade (severity 0.6, seed 0) and restore the bundled downscaled CC0 retina."""
    src = read_fundus(sample_data_dir() / SAMPLE, None)
    low, _ = degrade_fundus(src.rgb, src.fov, 0.6, np.random.default_rng(0))
    model, tiling = load_fundus_model(None)
    out = restore(model, low, src.fov, tiling)
    pics = [save_png(out_dir / f"{n}.png", a, 0.0, 1.0)
            for n, a in (("degraded", low), ("restored", out), ("reference", src.rgb))]
    metrics: dict[str, float] = {}
    for name, img in (("input", low), ("clahe", clahe_luminance(low, src.fov)),
                      ("restored", out)):
        metrics |= {f"{name}_{k}": v for k, v in fundus_metrics(img, src.rgb, src.fov).items()}
    note = ("PSNR/SSIM inside the FOV (data range 1), PSNR on vessel pixels (top 12 % Sato "
            "vesselness of the reference), vessel AUC. The left half of this photograph was "
            "used for training; the benchmark scores the right half only.")
    return [DemoItem("Fundus photograph, simulated cataract/illumination/blur (severity 0.6)",
                     pics[0], pics[1], metrics, reference_png=pics[2], note=note)]
