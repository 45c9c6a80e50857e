"""Training recipe: normal-dose volumes, low-dose inputs simulated in the projection domain."""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from domains.ct_denoise.checks import check_ct_volume
from domains.ct_denoise.config import DEFAULT_YAML, HU_SCALE, CtConfig, ModelConfig
from domains.ct_denoise.lowdose import simulate_low_dose
from domains.ct_denoise.metrics import ct_metrics
from domains.ct_denoise.volumes import Axial, denoise, to_axial, with_noise_channel
from suite.config import to_dict
from suite.engine.patches import PairedPatchDataset, random_flips, sampling_probabilities
from suite.engine.train import (
    Trainer,
    hardware_description,
    recipe_from_args,
    training_command,
)
from suite.errors import InputError, UsageError
from suite.io.volume import read_volume
from suite.losses import frequency_loss, l1_loss, ssim_loss
from suite.models import create_model
from suite.viz import save_png, side_by_side, to_uint8
from suite.weights import card_path, load_state, read_card, save_weights

WINDOW = (-160.0, 240.0)


def build_model(cfg: CtConfig) -> nn.Module:
    """The residual 3D U-Net of the recipe."""
    return create_model("unet", **model_arguments(cfg))


def model_arguments(cfg: CtConfig) -> dict[str, Any]:
    """Keyword arguments of ``create_model("unet", ...)`` for this recipe."""
    args: dict[str, Any] = {
        "spatial_dims": 3,
        "in_channels": 2 if cfg.model.noise_channel else 1,
        "out_channels": 1,
        "channels": list(cfg.model.channels),
        "residual": True,
        "backend": cfg.model.backend,
    }
    if cfg.model.backend == "monai":
        args["num_res_units"] = cfg.model.num_res_units
    if cfg.model.unshuffle is not None:
        args["unshuffle"] = list(cfg.model.unshuffle)
    # The lean network's options only when changed, so that cards written before an option
    # existed still match the arguments of the same network.
    default = ModelConfig()
    for key in ("gated_levels", "resample_kernel", "head_kernel", "norm_levels",
                "residual_levels"):
        if getattr(cfg.model, key) != getattr(default, key):
            args[key] = getattr(cfg.model, key)
    if cfg.model.noise_channel:
        args["condition_channels"] = 1
    return args


def load_axial(paths: list[Path]) -> list[Axial]:
    """Read and check normal-dose CT volumes (files or DICOM folders)."""
    out = []
    for path in paths:
        vol = read_volume(path)
        check_ct_volume(vol)
        out.append(to_axial(vol))
    return out


LOW_NAMES = ("low", "low_dose", "quarter_dose")
FULL_NAMES = ("full", "full_dose", "normal", "normal_dose")


def _volume_name(path: Path) -> str:
    name = path.name.lower()
    for suffix in (".nii.gz", ".nii"):
        name = name.removesuffix(suffix)
    return name


def pair_sources(folder: Path) -> tuple[Path, Path]:
    """The low- and full-dose volumes of a pair folder: ``low`` and ``full`` entries, each a
    DICOM series folder or a NIfTI file (also ``low_dose``/``quarter_dose`` and
    ``full_dose``/``normal``/``normal_dose``, as in the Mayo low-dose CT data).

    Raises:
        InputError: not a folder, or not exactly one low-dose and one full-dose entry.
    """
    if not folder.is_dir():
        raise InputError(folder, "paired training takes folders holding 'low' and 'full' "
                                 "volumes (DICOM folders or NIfTI files)")
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    found = []
    for names, what in ((LOW_NAMES, "low-dose"), (FULL_NAMES, "full-dose")):
        hits = [p for p in entries if _volume_name(p) in names]
        if len(hits) != 1:
            raise InputError(folder, f"expected one {what} volume named {' or '.join(names)} "
                                     f"(a DICOM folder or .nii/.nii.gz), found {len(hits)}")
        found.append(hits[0])
    return found[0], found[1]


def load_pairs(folders: list[Path]) -> tuple[list[Axial], list[Axial]]:
    """(low-dose, full-dose) axial volumes of each pair folder, checked to share one grid
    (shape and affine: the same voxels at the same place, within 0.01 mm)."""
    lows, fulls = [], []
    for folder in folders:
        low, full = (read_volume(p) for p in pair_sources(folder))
        for vol in (low, full):
            check_ct_volume(vol)
        if low.data.shape != full.data.shape or not np.allclose(
                low.meta.affine, full.meta.affine, atol=0.01):
            raise InputError(folder, f"low- and full-dose volumes are not on one grid: "
                                     f"{low.data.shape} vs {full.data.shape} voxels, or "
                                     "their affines (position, spacing) differ")
        lows.append(to_axial(low))
        fulls.append(to_axial(full))
    return lows, fulls


def binned_copies(volumes: list[Axial], factors: list[int]) -> list[Axial]:
    """Each volume at each in-plane block-averaging factor (pixel size times the factor).

    Real scans come at 0.5-3 mm pixels and the FBP noise texture scales with the pixel, so
    training on binned copies lets one model serve several reconstruction grids.
    """
    out = []
    for vol in volumes:
        for f in factors:
            x, y = (vol.hu.shape[0] // f) * f, (vol.hu.shape[1] // f) * f
            hu = vol.hu[:x, :y].reshape(x // f, f, y // f, f, -1).mean(axis=(1, 3))
            out.append(Axial(hu.astype(np.float32), vol.axis, vol.pixel_mm * f))
    return out


def simulated_pairs(
    volumes: list[Axial], cfg: CtConfig
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(inputs, targets) as (1, X, Y, Z) arrays in HU / 1000, one per volume, level and draw.

    Each draw has its own fixed seed, so the pairs are the same whatever ``data.workers`` is;
    draw ``d`` takes ``data.attenuation_scales[d % len(...)]``.
    """
    scales = cfg.data.attenuation_scales
    jobs = [
        (v_index, level, 1000 * v_index + 10 * draw + int(level), scales[draw % len(scales)])
        for v_index in range(len(volumes))
        for level in cfg.data.noise_levels_hu
        for draw in range(cfg.data.realizations)
    ]
    noisy = _run_simulations(volumes, jobs, cfg.data.workers, cfg.data.cache)
    inputs = [n[None] / HU_SCALE for n in noisy]
    targets = [volumes[v_index].hu[None] / HU_SCALE for v_index, *_ in jobs]
    return inputs, targets


def check_level_weights(cfg: CtConfig) -> None:
    """Refuse ``data.level_weights`` for paired training, or unless one weight >= 0 per noise
    level, not all 0."""
    weights, levels = cfg.data.level_weights, cfg.data.noise_levels_hu
    if weights is None:
        return
    if cfg.data.paired:
        raise UsageError("data.level_weights weighs the simulated noise levels; paired "
                         "training has none")
    if len(weights) != len(levels):
        raise UsageError(f"data.level_weights needs one weight per noise level {levels}, "
                         f"got {weights}")
    sampling_probabilities(weights, len(levels), "data.level_weights")


def check_attenuation_scales(cfg: CtConfig) -> None:
    """Refuse ``data.attenuation_scales`` unless a non-empty list of scales in (0, 2], no
    longer than the draws that take them, and other than ``[1.0]`` for paired training."""
    scales = cfg.data.attenuation_scales
    if cfg.data.paired and list(scales) != [1.0]:
        raise UsageError("data.attenuation_scales shapes the simulated noise; paired training "
                         "has none")
    if not scales or any(not 0.0 < float(x) <= 2.0 for x in scales):
        raise UsageError(f"data.attenuation_scales needs scales in (0, 2] (1 keeps the "
                         f"volume's own attenuation), got {scales}")
    if len(scales) > cfg.data.realizations:  # a scale no draw takes would be silently lost
        raise UsageError(f"data.attenuation_scales gives each noise draw one scale: {len(scales)} "
                         f"scales need data.realizations >= {len(scales)}, got "
                         f"{cfg.data.realizations}")


def level_weights(cfg: CtConfig, pairs: int) -> list[float] | None:
    """Sampling weight of each of ``pairs`` simulated pairs, in the order of
    :func:`simulated_pairs` (volume, then level, then draw); ``None`` when not set."""
    weights, levels = cfg.data.level_weights, len(cfg.data.noise_levels_hu)
    if weights is None:
        return None
    return [float(weights[(i // cfg.data.realizations) % levels]) for i in range(pairs)]


def spaced_weights(weights: list[float] | None, steps: list[int]) -> list[float] | None:
    """Pair weights repeated as :func:`spaced_pairs` repeats the pairs."""
    if weights is None:
        return None
    return [w for k in steps for w in weights for _ in range(k)]


def spaced_pairs(
    inputs: list[np.ndarray], targets: list[np.ndarray], steps: list[int]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The pairs with every k-th axial slice only, for each k in ``steps`` and each phase.

    The training series has 2 mm slice spacing; scans at 3-5 mm change more from one slice to
    the next, and a network that only saw 2 mm learns to average across slices more than such
    scans allow (it over-smooths them). Step 1 is the pair itself. The results are strided
    views, not copies: patches are cropped and copied later anyway.
    """
    out_in: list[np.ndarray] = []
    out_target: list[np.ndarray] = []
    for k in steps:
        for noisy, clean in zip(inputs, targets, strict=True):
            for phase in range(k):
                out_in.append(noisy[..., phase::k])
                out_target.append(clean[..., phase::k])
    return out_in, out_target


def teacher_targets(inputs: list[np.ndarray], targets: list[np.ndarray], teacher: Path,
                    mix: float, device: str = "auto", progress: bool = False
                    ) -> list[np.ndarray]:
    """Targets blended with a teacher network's denoising of each input (distillation).

    The teacher's output is the conditional mean a smaller student can fit more easily than the
    clean volume, whose remaining detail the noise has made unrecoverable.
    """
    from domains.ct_denoise.pipeline import load_ct_model

    if not 0.0 <= mix <= 1.0:
        raise UsageError(f"data.teacher_mix must be in [0, 1], got {mix}")
    model, tiling = load_ct_model(teacher, device=device)
    out = []
    for noisy, clean in tqdm(list(zip(inputs, targets, strict=True)), desc="teacher",
                             leave=False, disable=not progress):
        taught = denoise(model, noisy[0] * HU_SCALE, tiling)[None] / HU_SCALE
        out.append((mix * taught + (1.0 - mix) * clean).astype(np.float32))
    return out


def _check_depth(volumes: list[Axial], cfg: CtConfig) -> None:
    """Refuse patches deeper than the thinnest training pair after slice subsampling."""
    schedule = cfg.train.patch_schedule
    sizes = [size for _, size in schedule]
    if not any(step == 0 for step, _ in schedule):  # the recipe's patch is used until then
        sizes.append(cfg.model.patch)
    deepest = max(int(size[-1]) if not isinstance(size, int) else size for size in sizes)
    # The last phase of every k-th slice has the fewest: floor(depth / k).
    thinnest = min(v.hu.shape[-1] // k for v in volumes for k in cfg.data.slice_steps)
    if deepest > thinnest:
        raise UsageError(
            f"training patches are {deepest} slices deep but the thinnest training pair has "
            f"{thinnest} (data.slice_steps {cfg.data.slice_steps} subsample the slices); "
            "use shallower patches in train.patch_schedule or smaller slice steps"
        )


def _initial_model(cfg: CtConfig) -> nn.Module:
    """The recipe's network, with ``data.init``'s weights when given; bad settings -> exit 2."""
    try:
        model = build_model(cfg)
    except ValueError as exc:  # the model factory's own check of backend and arguments
        raise UsageError(f"model settings: {exc}") from None
    if cfg.data.init is not None:
        try:
            model.load_state_dict(load_state(cfg.data.init))
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise UsageError(f"{cfg.data.init}: weights do not fit the recipe's model ({first})"
                             ) from None
    return model


def _simulate(hu: np.ndarray, pixel_mm: float, level: float, seed: int, scale: float
              ) -> np.ndarray:
    return simulate_low_dose(hu, pixel_mm, 2, noise_hu=level, seed=seed,
                             attenuation_scale=scale).noisy


Job = tuple[int, float, int, float]  # volume index, noise level (HU), seed, attenuation scale
SimArgs = tuple[np.ndarray, float, float, int, float]


def _run_simulations(
    volumes: list[Axial], jobs: list[Job], workers: int, cache: Path | None
) -> list[np.ndarray]:
    args = [(volumes[v].hu, volumes[v].pixel_mm, level, seed, scale)
            for v, level, seed, scale in jobs]
    files = [_cache_file(cache, *a) if cache is not None else None for a in args]
    todo = [i for i, f in enumerate(files) if f is None or not f.exists()]
    done = _simulate_all([args[i] for i in todo], workers)
    out: list[np.ndarray | None] = [None] * len(args)
    for i, noisy in zip(todo, done, strict=True):
        out[i] = noisy
        file = files[i]
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
            tmp = file.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, noisy)
            tmp.replace(file)  # atomic: a concurrent reader never sees half a file
    return [_cached(o, f) for o, f in zip(out, files, strict=True)]


def _cached(fresh: np.ndarray | None, file: Path | None) -> np.ndarray:
    if fresh is not None:
        return fresh
    assert file is not None  # not simulated now means it was found in the cache
    return np.asarray(np.load(file))


def _cache_file(cache: Path, hu: np.ndarray, pixel_mm: float, level: float, seed: int,
                scale: float) -> Path:
    key = hashlib.sha1(np.ascontiguousarray(hu, dtype=np.float32).tobytes())
    key.update(f"{hu.shape}|{pixel_mm:.6f}|{level:.3f}|{seed}".encode())
    if scale != 1.0:  # only then: the files simulated before the scale existed stay valid
        key.update(f"|{scale:.4f}".encode())
    return cache / f"ct_lowdose_{key.hexdigest()[:20]}.npy"


def _simulate_all(
    args: list[SimArgs], workers: int
) -> list[np.ndarray]:
    if workers <= 1 or len(args) <= 1:
        return [_simulate(*a) for a in args]
    # spawn, not fork: the parent already runs torch's thread pools, which fork can deadlock.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        return list(pool.map(_simulate, *zip(*args, strict=True)))


def make_loss(cfg: CtConfig) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """L1 plus SSIM on the soft-tissue window plus the frequency loss, weights from the config."""
    lo, hi = WINDOW[0] / HU_SCALE, WINDOW[1] / HU_SCALE

    def loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = cfg.loss.l1 * l1_loss(pred, target)
        if cfg.loss.window_l1:
            # Unclamped error, masked by the reference: clamping the prediction would cut the
            # gradient of a voxel pushed out of the window.
            inside = ((target >= lo) & (target <= hi)).to(pred.dtype)
            total = total + cfg.loss.window_l1 * ((pred - target).abs() * inside).mean()
        if cfg.loss.ssim:
            # 2D SSIM on axial slices, as in the evaluation convention (and patches are thin).
            total = total + cfg.loss.ssim * ssim_loss(
                _slices(pred.clamp(lo, hi)), _slices(target.clamp(lo, hi)), data_range=hi - lo
            )
        if cfg.loss.frequency:
            # Per axial slice too: the FBP noise is correlated within slices, not across them.
            total = total + cfg.loss.frequency * frequency_loss(
                _slices(pred), _slices(target), spatial_dims=2,
                phase_weight=cfg.loss.frequency_phase)
        return total

    return loss


def _slices(volume: torch.Tensor) -> torch.Tensor:
    """(B, C, X, Y, Z) -> (B * Z, C, X, Y)."""
    b, c, x, y, z = volume.shape
    return volume.permute(0, 4, 1, 2, 3).reshape(b * z, c, x, y)


class CtTrainer(Trainer):
    """The engine's loop with batches in ``channels_last_3d``, the fast CPU layout."""

    def to_device(self, batch: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Move the batch and switch its memory format."""
        return [
            t.contiguous(memory_format=torch.channels_last_3d) for t in super().to_device(batch)
        ]


class Validator:
    """Denoise a held-out volume (at a fixed simulated dose, or its real low-dose scan); log
    metrics and a PNG strip."""

    def __init__(self, volume: Axial, cfg: CtConfig, out_dir: Path,
                 noisy: np.ndarray | None = None) -> None:
        self.clean, self.cfg, self.out_dir = volume.hu, cfg, out_dir / "validation"
        if noisy is None:
            noisy = simulate_low_dose(
                volume.hu, volume.pixel_mm, 2, noise_hu=cfg.data.val_noise_hu, seed=12345
            ).noisy
        self.noisy = noisy
        self.calls = 0

    def __call__(self, model: nn.Module) -> dict[str, float]:
        out = denoise(model, self.noisy, self.cfg.model)
        self.calls += 1
        self._picture(out)
        return {f"val_{k}": v for k, v in ct_metrics(out, self.clean).items()}

    def _picture(self, out: np.ndarray) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        z = self.clean.shape[-1] // 2
        strip = [to_uint8(a[..., z].T, *WINDOW) for a in (self.noisy, out, self.clean)]
        save_png(self.out_dir / f"val_{self.calls:04d}.png", side_by_side(strip), 0, 255)


def train(args: argparse.Namespace) -> Path:
    """``suite train ct-denoise``: returns the path of the final weights with their card."""
    if getattr(args, "paired", False):  # the flag is data.paired; so the card's command says
        args.overrides = [*(getattr(args, "overrides", None) or []), "data.paired=true"]
    cfg = recipe_from_args(CtConfig, DEFAULT_YAML, args, "normal-dose DICOM folders or NIfTI")
    if cfg.data.val is None:
        raise UsageError("set data.val (a held-out normal-dose volume, or with --paired a "
                         "held-out pair folder), e.g. --set data.val=PATH")
    started = time.time()
    model = _initial_model(cfg)  # before the data: a bad model or init fails in seconds
    check_level_weights(cfg)  # before the minutes of simulation
    check_attenuation_scales(cfg)
    pairs = _training_pairs(list(args.data), cfg)
    weights = spaced_weights(level_weights(cfg, len(pairs[0])), cfg.data.slice_steps)
    inputs, targets = spaced_pairs(*pairs, cfg.data.slice_steps)
    if cfg.data.teacher is not None:
        targets = teacher_targets(inputs, targets, cfg.data.teacher, cfg.data.teacher_mix,
                                  cfg.train.device, cfg.train.progress)
    if cfg.model.noise_channel:  # after the teacher, which takes the image alone
        inputs = [with_noise_channel(x) for x in inputs]
    dataset = PairedPatchDataset(
        targets,
        inputs=inputs,
        patch_size=cfg.model.patch,
        augment=random_flips,
        seed=cfg.train.seed,
        weights=weights,
    )
    out_dir = Path(args.out)
    trainer = CtTrainer(
        model,
        make_loss(cfg),
        torch.optim.AdamW,
        dataset,
        out_dir,
        cfg.train,
        validate=_validator(cfg, out_dir),
    )
    metrics = trainer.fit(resume=args.resume)
    return _export(trainer, cfg, args, metrics, time.time() - started + trainer.earlier_seconds)


def _training_pairs(
    data: list[Path], cfg: CtConfig
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(inputs, targets) in HU / 1000: real pairs (``data.paired``) or simulated low dose."""
    if cfg.data.paired:
        lows, fulls = load_pairs(data)
        lows = binned_copies(lows, cfg.data.inplane_bins)
        fulls = binned_copies(fulls, cfg.data.inplane_bins)
        _check_depth(fulls, cfg)
        return [v.hu[None] / HU_SCALE for v in lows], [v.hu[None] / HU_SCALE for v in fulls]
    volumes = binned_copies(load_axial(data), cfg.data.inplane_bins)
    _check_depth(volumes, cfg)  # before the minutes of simulation
    return simulated_pairs(volumes, cfg)


def _validator(cfg: CtConfig, out_dir: Path) -> Validator:
    """Validation on a held-out pair folder (paired training) or a simulated dose."""
    assert cfg.data.val is not None  # checked first thing in train()
    if _val_is_pair(cfg):
        lows, fulls = load_pairs([cfg.data.val])
        return Validator(fulls[0], cfg, out_dir, noisy=lows[0].hu)
    return Validator(load_axial([cfg.data.val])[0], cfg, out_dir)


def _val_is_pair(cfg: CtConfig) -> bool:
    """Whether ``data.val`` is a pair folder (paired training: it holds a ``low`` entry), not
    one normal-dose volume."""
    val = cfg.data.val
    return bool(cfg.data.paired and val is not None and val.is_dir()
                and any(_volume_name(p) in LOW_NAMES for p in val.iterdir()))


def _export(
    trainer: Trainer,
    cfg: CtConfig,
    args: argparse.Namespace,
    metrics: dict[str, float],
    seconds: float,
) -> Path:
    module = trainer.ema.module if trainer.ema is not None else trainer.model
    card = model_card(cfg, args, metrics, seconds)
    path = save_weights(Path(args.out) / "ct_denoise.safetensors", module.cpu(), card)
    (Path(args.out) / "config.yaml.json").write_text(json.dumps(to_dict(cfg), indent=2))
    return path


def model_card(
    cfg: CtConfig, args: argparse.Namespace, metrics: dict[str, float], seconds: float
) -> dict[str, Any]:
    """The JSON card saved beside the weights."""
    data = [str(p) for p in args.data]
    card: dict[str, Any] = {
        "domain": "ct-denoise",
        "architecture": "unet",
        "arguments": model_arguments(cfg),
        "normalization": {
            "input": "HU / 1000 (water 0, air -1), no clipping"
            + ("; channel 2: the volume's estimated noise in HU / 100 (volume_noise_hu)"
               if cfg.model.noise_channel else ""),
            "output": "HU / 1000, residual (input + predicted correction)",
        },
        "inference": {
            "patch": cfg.model.patch,
            "overlap": cfg.model.overlap,
            "axes": "(X, Y, Z) with Z the axial slice axis",
        },
        "training": {
            "data": data,
            "validation_volume": str(cfg.data.val),
            "init": str(cfg.data.init) if cfg.data.init is not None else None,
            "recipe": to_dict(cfg),
            "seconds": round(seconds),
            "command": training_command("ct-denoise", args),
            "hardware": hardware_description(cfg.train.device),
            "low_dose": "real low-dose scans paired with full-dose ones (data.paired)"
            if cfg.data.paired else "projection-domain Poisson + electronic noise, FBP; noise "
            f"levels {cfg.data.noise_levels_hu} HU in soft tissue",
        },
        "validation": {
            "metrics": metrics,
            "convention": ("held-out low/full-dose pair; " if _val_is_pair(cfg)
                           else f"held-out volume, added noise {cfg.data.val_noise_hu} HU; ")
            + "PSNR/SSIM on HU clipped to [-160, 240] (range 400) and [-1000, 1000] "
            "(range 2000), SSIM 11x11 Gaussian sigma 1.5 averaged over axial slices",
        },
    }
    if cfg.data.init is not None and card_path(cfg.data.init).exists():
        # A fine-tuning stage: keep how its starting weights were made, so the card names
        # every command that reproduces the result.
        card["training"]["init_training"] = read_card(cfg.data.init).get("training")
    return card


def ensure_volume(path: Path) -> Path:
    """Refuse a path that does not exist, naming it."""
    if not path.exists():
        raise InputError(path, "no such file or folder")
    return path
