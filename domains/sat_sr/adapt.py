"""Target adaptation of the Sentinel-2 network on the input scene at reduced resolution.

Before a scene is sharpened, a copy of the network is fine-tuned for a bounded number of L1
steps on that scene degraded once more by 2 (guides 10 m -> 20 m, targets 20 m -> 40 m, the
classical estimate made from those), with the input's own 20 m bands as the truth. Only the
input scene is read; no reference ever enters (the pansharpen domain adapts the same way).

References:
    Scarpa, Vitale, Cozzolino, "Target-adaptive CNN-based pansharpening", IEEE TGRS 56(9), 2018.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from domains.sat_sr.guided import MTF_GAIN, reduced_inputs
from suite.engine.device import module_device


@dataclass(frozen=True)
class AdaptConfig:
    """Bounded fine-tuning: steps, Adam learning rate, patch side, batch size, seed."""

    steps: int = 100
    lr: float = 2e-4
    patch: int = 48
    batch: int = 8
    seed: int = 0


def random_crops(inputs: np.ndarray, truth: np.ndarray, cfg: AdaptConfig,
                 rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of paired random crops of ``(C, h, w)`` arrays with random flips/transposes."""
    h, w = truth.shape[1:]
    size = min(cfg.patch, h, w)
    xs, ys = [], []
    for _ in range(cfg.batch):
        r, c = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
        x, y = inputs[:, r:r + size, c:c + size], truth[:, r:r + size, c:c + size]
        if rng.random() < 0.5:
            x, y = x[:, :, ::-1], y[:, :, ::-1]
        if rng.random() < 0.5:
            x, y = x.transpose(0, 2, 1), y.transpose(0, 2, 1)
        xs.append(np.ascontiguousarray(x))
        ys.append(np.ascontiguousarray(y))
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def adapt(model: nn.Module, inputs: np.ndarray, truth: np.ndarray, cfg: AdaptConfig
          ) -> nn.Module:
    """Fine-tune a copy of ``model`` on one reduced-resolution pair (``model`` is untouched).

    Args:
        model: network mapping ``(B, G + T, h, w)`` to ``(B, T, h, w)``.
        inputs: ``(G + T, h, w)`` standardized network input.
        truth: ``(T, h, w)`` standardized truth.
        cfg: steps (0 returns ``model`` itself), learning rate, crops.
    """
    if cfg.steps <= 0:
        return model
    tuned = copy.deepcopy(model).train()
    opt = torch.optim.Adam(tuned.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = module_device(tuned)
    for _ in range(cfg.steps):
        x, y = (t.to(device) for t in random_crops(inputs, truth, cfg, rng))
        loss = F.l1_loss(tuned(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return tuned.eval()


def adapt_to_scene(model: nn.Module, guides: np.ndarray, targets: np.ndarray,
                   cfg: AdaptConfig, gain: float = MTF_GAIN) -> nn.Module:
    """Adapt ``model`` to the scene ``guides (G, 2h, 2w)``, ``targets (T, h, w)`` (reflectance).

    The pair is the scene one level down (:func:`domains.sat_sr.guided.reduced_inputs`), so the
    only data seen are the scene's own bands.
    """
    inputs, truth, _ = reduced_inputs(guides, targets, gain)
    return adapt(model, inputs, truth, cfg)
