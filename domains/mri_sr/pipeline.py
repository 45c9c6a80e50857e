"""The MRI SR domain's enhance / degrade / evaluate / demo steps (read, check, run, write)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any, cast

import numpy as np
from torch import nn

from domains.mri_sr.adapt import adapt_model
from domains.mri_sr.checks import (
    check_mr,
    check_output_kind,
    check_scale,
    check_volume,
    pick_axis,
)
from domains.mri_sr.config import DEFAULT_YAML, MriSrConfig
from domains.mri_sr.degrade import Acquisition, acquire
from domains.mri_sr.geometry import Profile, sr_affine
from domains.mri_sr.metrics import convention, sr_metrics
from domains.mri_sr.sr import super_resolve
from suite.bf16 import to_bfloat16, warn_if_emulated
from suite.config import load_config
from suite.domain import DemoItem
from suite.errors import InputError, UsageError
from suite.io.volume import Volume, VolumeMeta, read_volume, write_volume
from suite.sample import sample_data_dir
from suite.viz import save_png
from suite.weights import load_model

SAMPLE = Path("mri") / "stroke_t1_excerpt.nii.gz"


def read_mri(path: Path, options: argparse.Namespace) -> Volume:
    """Read one 3D volume (a 4D series needs ``--volume``) and check it."""
    vol = read_volume(path, series_uid=getattr(options, "series", None),
                      recursive=getattr(options, "recursive", False),
                      volume=getattr(options, "volume", None))
    check_volume(vol)
    check_mr(vol, force=getattr(options, "force", False))
    return vol


def _prepare(path: Path, output: Path, options: argparse.Namespace,
             thin_input: bool = False) -> tuple[Volume, int, float]:
    """Everything that can be refused, before any work: output kind, scale, volume, axis."""
    scale = check_scale(options.scale)
    vol = read_mri(path, options)
    check_output_kind(output, vol)
    return vol, pick_axis(vol, options.axis, thin_input), scale


def _with_affine(meta: VolumeMeta, affine: np.ndarray) -> VolumeMeta:
    spacing = tuple(float(s) for s in np.linalg.norm(affine[:3, :3], axis=0))
    return dataclasses.replace(meta, affine=affine, spacing=spacing)


def load_sr_model(weights: Path | None, trust: bool = False,
                  device: str = "auto") -> nn.Module | None:
    """The user's weights, else the shipped default, on ``device``; else ``None`` (cubic)."""
    from domains.mri_sr import DOMAIN

    path = weights or DOMAIN.default_weights()
    if path is None:
        return None
    model, _card = load_model(path, trust=trust, device=device)
    return model


def enhance_volume(path: Path, output: Path, options: argparse.Namespace) -> dict[str, Any]:
    """Super-resolve ``path`` through-plane into the NIfTI ``output``."""
    vol, axis, scale = _prepare(path, output, options)
    device = getattr(options, "device", "auto")
    model = load_sr_model(options.weights, options.trust_checkpoint, device)
    method = _method(model, options)
    if model is not None and options.adapt:
        cfg = load_config(MriSrConfig, DEFAULT_YAML)
        if options.adapt_steps is not None:
            cfg.adapt.steps = max(1, options.adapt_steps)
        model = adapt_model(model, vol.data, axis, scale, cfg.adapt, cfg.loss, path,
                            progress=not getattr(options, "quiet", False))
    if model is not None and getattr(options, "runtime", "torch") == "torch-bf16":
        # after --adapt, which trains in fp32: only the inference runs in bf16
        warn_if_emulated(device)
        model = to_bfloat16(model)
        method += ", bfloat16"  # recorded in the output's derivation
    out = super_resolve(model, vol.data, axis, scale)
    if float(vol.data.min()) >= 0:  # a magnitude image: the cubic spline and the network
        out = np.maximum(out, 0.0)  # overshoot below 0 beside sharp edges, which is no signal
    meta = _with_affine(vol.meta, sr_affine(vol.meta.affine, axis, vol.data.shape[axis], scale))
    write_volume(output, out, meta, description=f"through-plane SR x{scale:g}",
                 derivation=f"suite mri-sr axis {axis}: {method}")
    return {"axis": axis, "scale": scale, "shape": "x".join(map(str, out.shape)),
            "method": method}


def _method(model: nn.Module | None, options: argparse.Namespace) -> str:
    if model is not None:
        return "2.5D U-Net, self-adapted" if options.adapt else "2.5D U-Net"
    if options.adapt:
        raise UsageError("--adapt fine-tunes weights, and none are installed; pass --weights")
    if not options.quiet:
        print("warning: no mri-sr weights installed: CUBIC B-SPLINE INTERPOLATION ONLY",
              file=sys.stderr)
    return "cubic B-spline fallback (no weights)"


def degrade_volume(path: Path, output: Path, options: argparse.Namespace) -> dict[str, Any]:
    """Write a simulated thick-slice acquisition of ``path`` (NIfTI)."""
    vol, axis, scale = _prepare(path, output, options, thin_input=True)
    if not 0.0 < options.kspace <= 1.0:
        raise UsageError(f"--kspace must be a fraction in (0, 1], got {options.kspace:g}")
    if not 0.0 <= options.noise < 1.0:
        raise UsageError(f"--noise must be a fraction in [0, 1), got {options.noise:g}")
    acq = Acquisition(scale, axis, cast(Profile, options.profile), options.kspace, options.noise)
    thick, affine = acquire(vol.data, vol.meta.affine, acq, np.random.default_rng(options.seed))
    if thick.shape[axis] < 1:
        raise InputError(path, f"{vol.data.shape[axis]} slices are fewer than the factor {scale}")
    write_volume(output, thick, _with_affine(vol.meta, affine),
                 description=f"simulated thick slices x{scale:g}",
                 derivation=f"{acq.profile} profile axis {axis}, kspace {acq.kspace:g}, "
                            f"noise {acq.noise:g}")
    return {"axis": axis, "scale": scale, "shape": "x".join(map(str, thick.shape))}


def evaluate_volumes(pred: Path, ref: Path) -> dict[str, float]:
    """Metrics of ``pred`` against ``ref`` where their voxels coincide (``metrics.convention``).

    A super-resolved copy of a degraded reference usually lacks the reference's last few slices
    (``suite degrade`` keeps whole thick slices only); when the affines put every voxel of one
    grid on a voxel of the other, the two are compared on their common voxels.
    """
    p, r = read_volume(pred), read_volume(ref)
    start = _grid_offset(p.meta.affine, r.meta.affine)
    if start is None:  # equal shapes are no excuse: the voxels would be other places
        raise InputError(pred, "its voxels do not lie on the reference's grid (the affines "
                               "differ); resample it onto the reference first")
    lo = [max(0, o) for o in start]
    hi = [min(n_r, o + n_p) for o, n_p, n_r in zip(start, p.data.shape, r.data.shape, strict=True)]
    if any(b - a < 8 for a, b in zip(lo, hi, strict=True)):
        raise InputError(pred, "overlaps the reference in fewer than 8 voxels along an axis")
    ref_part = r.data[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
    pred_part = p.data[tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, start, strict=True))]
    return sr_metrics(pred_part, ref_part)


def _grid_offset(pred_affine: np.ndarray, ref_affine: np.ndarray) -> list[int] | None:
    """Integer voxel offset of ``pred``'s grid in ``ref``'s, or None if the grids differ."""
    m = np.linalg.inv(ref_affine) @ pred_affine
    shift = m[:3, 3]
    if not np.allclose(m[:3, :3], np.eye(3), atol=1e-3) or not np.allclose(
            shift, np.round(shift), atol=1e-3):
        return None
    return [int(v) for v in np.round(shift)]


def run_demo(out_dir: Path) -> list[DemoItem]:
    """Thick slices (x4, Gaussian profile) from the bundled excerpt; cubic vs the model."""
    vol = read_volume(sample_data_dir() / SAMPLE)
    thick, _ = acquire(vol.data, vol.meta.affine, Acquisition(4.0, 2), np.random.default_rng(0))
    model = load_sr_model(None)
    cubic = super_resolve(None, thick, 2, 4.0)
    out = super_resolve(model, thick, 2, 4.0) if model is not None else cubic
    ref = vol.data[..., : out.shape[2]]
    y = ref.shape[1] // 2
    hi = float(np.percentile(ref, 99.5))
    pics = [save_png(out_dir / f"{n}.png", _enlarged(np.rot90(a[:, y, :])), 0.0, hi)
            for n, a in (("cubic", cubic), ("super_resolved", out), ("reference", ref))]
    metrics = {f"cubic_{k}": v for k, v in sr_metrics(cubic, ref, 2, 4.0).items()}
    metrics |= {f"sr_{k}": v for k, v in sr_metrics(out, ref, 2, 4.0).items()}
    label = "2.5D U-Net" if model is not None else "cubic fallback: NO WEIGHTS INSTALLED"
    return [DemoItem(f"Brain T1, thick slices x4 restored ({label}), coronal view", pics[0],
                     pics[1], metrics, reference_png=pics[2],
                     note=convention() + ". The excerpt comes from a training volume.")]


def _enlarged(image: np.ndarray, factor: int = 3) -> np.ndarray:
    """Nearest-neighbour enlargement so the small excerpt is visible in the report."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
