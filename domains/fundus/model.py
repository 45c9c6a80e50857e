"""The restoration network around a 2D lean U-Net: inputs with global context, tiled inference.

A fully convolutional network sees a tile, but haze and uneven illumination are global. The
input therefore carries three context channels beside RGB: a FOV-normalized Gaussian blur of
the whole photograph (sigma = FOV diameter / 16), computed before tiling. The network predicts
a correction that is added to the RGB input.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from domains.fundus.config import FundusConfig, ModelConfig
from domains.fundus.degrade import masked_blur
from domains.fundus.fov import fov_diameter
from suite.engine.device import module_device
from suite.engine.tiling import TileConfig, tiled_inference

CONTEXT_FRACTION = 1 / 16


def model_arguments(cfg: FundusConfig) -> dict[str, Any]:
    """Keyword arguments of ``create_model("unet", ...)`` for this recipe."""
    out = 6 if cfg.model.output == "affine" else 3
    return {"spatial_dims": 2, "in_channels": 6, "out_channels": out,
            "channels": list(cfg.model.channels), "residual": False, "backend": "lean"}


def model_input(img: np.ndarray, fov: np.ndarray) -> np.ndarray:
    """``(6, H, W)`` float32: RGB ``[0, 1]`` and its FOV-normalized low-pass context."""
    ctx = masked_blur(img, fov, fov_diameter(fov) * CONTEXT_FRACTION) * fov[..., None]
    return np.concatenate([img, ctx], axis=2).transpose(2, 0, 1).astype(np.float32)


def forward(net: nn.Module, x: Tensor) -> Tensor:
    """``(B, 6, H, W) -> (B, 3, H, W)``: the RGB input corrected by the network.

    A 3-channel network adds its output to the RGB input. A 6-channel one (``model.output:
    affine``) predicts a gain and an offset per pixel and channel, ``rgb (1 + g) + b``:
    illumination and haze are affine per pixel (``I = J l t + veil (1 - t)``), so undoing them
    takes a smooth gain field that also restores the contrast that the veil took.
    """
    y = net(x)
    if y.shape[1] == 6:
        return x[:, :3] * (1 + y[:, :3]) + y[:, 3:]
    return x[:, :3] + y


def restore(net: nn.Module, img: np.ndarray, fov: np.ndarray, tiling: ModelConfig,
            progress: bool = False) -> np.ndarray:
    """Restore ``(H, W, 3)`` ``[0, 1]`` tile by tile; pixels outside the FOV are kept.

    Tiles of ``tiling.patch`` pixels with ``tiling.halo`` pixels of context on each side and
    ``tiling.overlap`` pixels blended with a Gaussian window, so any size runs without seams.
    """
    x = torch.from_numpy(model_input(img, fov))[None]
    # zero padding, as the network's own: tiled output then equals whole-image output
    config = TileConfig(patch_size=tiling.patch, overlap=tiling.overlap, halo=tiling.halo,
                        batch_size=2, pad_mode="constant")
    net = net.eval()
    device = module_device(net)
    out = tiled_inference(x, lambda t: forward(net, t.to(device)).cpu(), config,
                          progress=progress)
    rgb = np.clip(out[0].numpy().transpose(1, 2, 0), 0, 1)
    return np.where(fov[..., None], rgb, img).astype(np.float32)
