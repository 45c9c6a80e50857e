"""The deep method: per-scene normalization, training pairs, target adaptation, inference.

Normalization (saved in the card, recomputed per input scene, invertible): every MS band and the
PAN are standardized by their own mean and standard deviation over the scene's valid pixels,
``x_n = (x - mean) / std``; the fused band is de-standardized with its MS band's statistics.
Scale-free, so 8-bit, 11-bit, 16-bit DN and float reflectance are handled alike.

Target adaptation: before full-resolution inference the network is fine-tuned for a few steps on
the input scene itself degraded by its own ratio (Wald's protocol, the original MS as target), so
it adapts to a sensor, a ratio or a landscape it was not trained on. A second, full-resolution
term (Z-PNN style, no reference needed) keeps the fusion honest at the scale it is used at: its
MTF low-pass must match the upsampled MS's (spectral consistency), and each band must correlate
locally with the PAN at least as much as the MS band correlates with the MTF-low-passed PAN
(scale invariance of the band-to-PAN relation, the assumption behind QNR's D_s). Without it the
network, adapted at reduced resolution only, injects too little PAN detail at full resolution.

References:
    Scarpa, Vitale, Cozzolino, "Target-adaptive CNN-based pansharpening", IEEE TGRS 56(9), 2018
    (A-PNN); Ciotola et al., "Pansharpening by convolutional neural networks in the full
    resolution framework", IEEE TGRS 60, 2022 (Z-PNN).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from domains.pansharpen.net import PanDetailNet
from domains.pansharpen.wald import Scene, full_pair, reduced_pair
from suite.degradations.mtf import mtf_kernel_1d, sensor_mtf
from suite.engine.device import module_device, pick_device
from suite.errors import InputError
from suite.weights import load_state, read_card

WEIGHTS = Path(__file__).with_name("weights") / "pansharpen.safetensors"
NORMALIZATION = {
    "input": "per scene: each MS band and the PAN standardized by its own mean/std over valid "
    "pixels; MS bicubic-upsampled to the PAN grid; channels = C MS bands then PAN",
    "output": "C bands in the standardized units of the MS bands, de-standardized per band",
}


@dataclass(frozen=True)
class Norm:
    """Per-scene standardization: ``(C,)`` MS means/stds and the PAN mean/std."""

    ms_mean: np.ndarray
    ms_std: np.ndarray
    pan_mean: float
    pan_std: float

    def stack(self, ms_up: np.ndarray, pan: np.ndarray) -> np.ndarray:
        """``(C + 1, H, W)`` float32 network input from ``ms_up (C, H, W)`` and ``pan (H, W)``."""
        ms_n = (ms_up - self.ms_mean[:, None, None]) / self.ms_std[:, None, None]
        pan_n = (pan - self.pan_mean) / self.pan_std
        return np.concatenate([ms_n, pan_n[None]]).astype(np.float32)

    def target(self, ms: np.ndarray) -> np.ndarray:
        """Standardized MS ``(C, H, W)``."""
        return ((ms - self.ms_mean[:, None, None]) / self.ms_std[:, None, None]).astype(np.float32)

    def unstack(self, out: np.ndarray) -> np.ndarray:
        """Back to MS units ``(C, H, W)``."""
        return (out * self.ms_std[:, None, None] + self.ms_mean[:, None, None]).astype(np.float32)

    def report(self) -> dict[str, Any]:
        """JSON-friendly values."""
        return {
            "ms_mean": [round(float(v), 4) for v in self.ms_mean],
            "ms_std": [round(float(v), 4) for v in self.ms_std],
            "pan_mean": round(self.pan_mean, 4),
            "pan_std": round(self.pan_std, 4),
        }


def fit_norm(ms: np.ndarray, pan: np.ndarray) -> Norm:
    """Statistics over the finite pixels of ``ms (C, ...)`` and ``pan (...)``."""
    x = np.asarray(ms, dtype=np.float64).reshape(ms.shape[0], -1)
    p = np.asarray(pan, dtype=np.float64).reshape(-1)
    x = x[:, np.isfinite(x).all(axis=0)]
    p = p[np.isfinite(p)]
    return Norm(
        x.mean(axis=1), np.maximum(x.std(axis=1), 1e-6), float(p.mean()), max(float(p.std()), 1e-6)
    )


def wald_arrays(scene: Scene, sensor: str, norm: Norm | None = None) -> tuple[np.ndarray, ...]:
    """Standardized reduced-resolution ``(inputs (C + 1, h, w), target (C, h, w))``."""
    ms_up, pan_lr, ref = reduced_pair(scene, sensor)
    norm = norm or fit_norm(scene.ms, scene.pan)
    return norm.stack(ms_up, pan_lr), norm.target(ref)


def build(arguments: dict[str, Any]) -> PanDetailNet:
    """The network from the card's arguments."""
    return PanDetailNet(**arguments)


def load(path: Path | None = None, trust: bool = False,
         device: str = "auto") -> tuple[PanDetailNet, dict[str, Any]]:
    """The user's weights or the shipped ones, on ``device``, with their card."""
    path = path or WEIGHTS
    if not Path(path).is_file():
        raise InputError(path, "no pansharpen weights there; train them with "
                         "`suite train pansharpen` or pick a classical --method")
    card = read_card(path)
    model = build(card.get("arguments", {}))
    try:
        model.load_state_dict(load_state(path, trust=trust))
    except RuntimeError as exc:
        raise InputError(path, f"weights do not fit the pansharpen network: {exc}") from None
    return model.eval().to(pick_device(device)), card


def _patches(
    inputs: np.ndarray, target: np.ndarray, size: int, batch: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of random paired crops with random flips."""
    h, w = target.shape[1:]
    size = min(size, h, w)
    xs, ys = [], []
    for _ in range(batch):
        r, c = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
        x, y = inputs[:, r : r + size, c : c + size], target[:, r : r + size, c : c + size]
        if rng.random() < 0.5:
            x, y = x[:, :, ::-1], y[:, :, ::-1]
        xs.append(np.ascontiguousarray(x))
        ys.append(np.ascontiguousarray(y))
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def _box(x: torch.Tensor, size: int) -> torch.Tensor:
    """Local mean over ``size x size`` windows (mirrored edges), same shape."""
    return F.avg_pool2d(F.pad(x, (size // 2,) * 4, mode="reflect"), size, stride=1)


def local_correlation(a: torch.Tensor, b: torch.Tensor, size: int) -> torch.Tensor:
    """Per-pixel correlation coefficient of ``a`` and ``b`` ``(B, C, H, W)`` in local windows."""
    ma, mb = _box(a, size), _box(b, size)
    va = (_box(a * a, size) - ma * ma).clamp_min(1e-6)
    vb = (_box(b * b, size) - mb * mb).clamp_min(1e-6)
    return (_box(a * b, size) - ma * mb) / torch.sqrt(va * vb)


def mtf_taps(gains: np.ndarray, ratio: int) -> torch.Tensor:
    """``(C, K)`` 1-D MTF-matched Gaussian taps per band, zero-padded to one length."""
    taps = [mtf_kernel_1d(float(g), ratio) for g in gains]
    radius = max(len(t) for t in taps) // 2
    kernel = np.zeros((len(taps), 2 * radius + 1), dtype=np.float32)
    for i, t in enumerate(taps):
        kernel[i, radius - len(t) // 2 : radius + len(t) // 2 + 1] = t
    return torch.from_numpy(kernel)


def mtf_lowpass(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Each band of ``(B, C, H, W)`` blurred separably by its row of ``taps`` (differentiable,
    mirrored edges)."""
    c, radius = x.shape[1], taps.shape[1] // 2
    k = taps.to(x.device)
    x = F.pad(x, (radius,) * 4, mode="reflect")
    x = F.conv2d(x, k.view(c, 1, -1, 1), groups=c)
    return F.conv2d(x, k.view(c, 1, 1, -1), groups=c)


@dataclass(frozen=True)
class FullRes:
    """A scene at full resolution for the reference-free adaptation term.

    ``inputs`` is the standardized network input ``(C + 1, H, W)`` on the PAN grid; ``floor``
    ``(C, H, W)`` the local correlation of each upsampled MS band with the MTF-low-passed PAN,
    the least correlation with the PAN a fused band should keep.
    """

    inputs: np.ndarray
    floor: np.ndarray
    taps: torch.Tensor
    window: int


def full_res(scene: Scene, sensor: str, norm: Norm, window: int = 9) -> FullRes:
    """The full-resolution term's arrays for ``scene`` (``window``: correlation window, px)."""
    ms_up, pan = full_pair(scene)
    inputs = norm.stack(ms_up, pan)
    mtf = sensor_mtf(sensor)
    c = inputs.shape[0] - 1
    x = torch.from_numpy(inputs)[None]
    pan_low = mtf_lowpass(x[:, c:], mtf_taps(np.array([mtf.pan]), scene.ratio))
    # band by band: the local statistics of a 2048 x 2048 region cost ~12 maps per band
    floor = np.concatenate([local_correlation(x[:, i : i + 1], pan_low, window)[0].numpy()
                            for i in range(c)])
    return FullRes(inputs, floor, mtf_taps(mtf.ms_gains(c), scene.ratio), window)


def full_res_loss(model: nn.Module, full: FullRes, x: torch.Tensor,
                  floor: torch.Tensor, structure: float) -> torch.Tensor:
    """Spectral consistency plus ``structure`` times the shortfall of band-to-PAN correlation."""
    out = model(x)
    c = out.shape[1]
    spectral = F.l1_loss(mtf_lowpass(out, full.taps), mtf_lowpass(x[:, :c], full.taps))
    rho = local_correlation(out, x[:, c:].expand_as(out), full.window)
    return spectral + structure * F.relu(floor - rho).mean()


def adapt(
    model: nn.Module,
    inputs: np.ndarray,
    target: np.ndarray,
    steps: int,
    lr: float = 2e-4,
    patch: int = 48,
    batch: int = 8,
    seed: int = 0,
    full: FullRes | None = None,
    full_weight: float = 0.03,
    structure: float = 10.0,
    full_patch: int = 64,
    progress: bool = False,
) -> nn.Module:
    """Fine-tune a copy of ``model`` for ``steps`` steps on one scene.

    Each step: L1 on a batch of the scene's Wald pair, plus (when ``full`` is given)
    ``full_weight`` times the reference-free full-resolution loss on ``batch // 4`` crops of
    ``full_patch`` pixels (see :func:`full_res_loss`).

    Args:
        model: the pre-trained network (left unchanged).
        inputs: ``(C + 1, h, w)`` standardized reduced-resolution input.
        target: ``(C, h, w)`` standardized original MS.
        steps: optimisation steps (0 returns the model as is).
        full: the scene at full resolution (:func:`full_res`), or None for Wald only.
        progress: a progress bar over the steps.
    """
    if steps <= 0:
        return model
    tuned = copy.deepcopy(model).train()
    opt = torch.optim.Adam(tuned.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    device = module_device(tuned)
    for _ in tqdm(range(steps), desc="adapting to the scene", unit="step", disable=not progress):
        x, y = (t.to(device) for t in _patches(inputs, target, patch, batch, rng))
        loss = F.l1_loss(tuned(x), y)
        if full is not None and full_weight > 0:
            xf, floor = (t.to(device) for t in _patches(full.inputs, full.floor, full_patch,
                                                        max(1, batch // 4), rng))
            loss = loss + full_weight * full_res_loss(tuned, full, xf, floor, structure)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return tuned.eval()


ADAPT_KEYS = ("lr", "patch", "batch", "full_weight", "structure", "full_patch")


def adapt_on_scene(model: nn.Module, scene: Scene, sensor: str, norm: Norm,
                   cfg: dict[str, Any], steps: int | None = None,
                   progress: bool = False) -> nn.Module:
    """Target adaptation on ``scene`` with the card's ``adaptation`` settings ``cfg``.

    The full-resolution term is used when ``cfg`` gives a positive ``full_weight`` (cards
    written before it existed adapt on the Wald pair only, as they were measured).
    """
    steps = int(cfg.get("steps", 100) if steps is None else steps)
    inputs, target = wald_arrays(scene, sensor, norm)
    weight = float(cfg.get("full_weight", 0.0))
    full = full_res(scene, sensor, norm, int(cfg.get("window", 9))) if weight > 0 else None
    kwargs = {k: cfg[k] for k in ADAPT_KEYS if k in cfg}
    return adapt(model, inputs, target, steps, full=full, progress=progress, **kwargs)


@torch.no_grad()
def run(model: nn.Module, inputs: np.ndarray) -> np.ndarray:
    """Apply the network to ``(C + 1, H, W)`` on its own device; returns ``(C, H, W)`` float32."""
    x = torch.from_numpy(np.ascontiguousarray(inputs))[None].to(module_device(model))
    with torch.no_grad():
        return model(x)[0].cpu().numpy()


@dataclass
class DeepSharpener:
    """A (possibly adapted) network and the scene's normalization, applied window by window."""

    model: nn.Module
    norm: Norm

    @property
    def halo(self) -> int:
        """Context pixels a window needs (the network's receptive field, doubled for margin)."""
        return 2 * int(getattr(self.model, "halo", 8))

    def apply(self, ms_up: np.ndarray, pan: np.ndarray) -> np.ndarray:
        """Fuse ``ms_up (C, H, W)`` and ``pan (H, W)`` (MS units in and out)."""
        return self.norm.unstack(run(self.model, self.norm.stack(ms_up, pan)))
