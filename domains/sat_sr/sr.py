"""Single-image super-resolution of a GeoTIFF, window by window, with any number of bands.

The shipped networks are single-band: every band is scaled to model units by its own
percentiles (:class:`~domains.sat_sr.blocks.BandScale`, computed once per file so that windows
agree), and the bands of a window travel through the network as a batch. One set of weights
therefore serves 3-band RGB, 4-band VNIR or 7-band Landsat rasters alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from rasterio.windows import Window
from torch import nn

from domains.sat_sr.blocks import (
    BandScale,
    band_scale,
    cast_to,
    fill_invalid,
    output_window,
    read_haloed,
)
from suite.engine.tiling import TileConfig, tiled_inference
from suite.errors import InputError, UsageError
from suite.export import load_runtime_model
from suite.io.raster import RasterMeta, read_raster_meta, write_raster_windows

WEIGHTS_DIR = Path(__file__).with_name("weights")
MODELS = ("default", "espcn")


@dataclass(frozen=True)
class Tiling:
    """Inference tiling in input pixels: patch, blended overlap, and halo (context)."""

    patch: int = 128
    overlap: int = 16
    halo: int = 16


def shipped_weights(model: str, scale: int) -> Path:
    """Path of the shipped ``model`` weights for ``scale`` (``default_x2.safetensors``...).

    Raises:
        UsageError: unknown model, a scale with no shipped weights, or weights not installed.
    """
    if model not in MODELS:
        raise UsageError(f"unknown --model {model!r}; choose from {', '.join(MODELS)}")
    path = WEIGHTS_DIR / f"{model}_x{scale}.safetensors"
    if not path.is_file():
        found = WEIGHTS_DIR.glob(f"{model}_x*.safetensors")
        have = sorted({int(p.stem.split("_x")[1]) for p in found})
        raise UsageError(f"--scale {scale}: the {model} model is trained for scales "
                         f"{', '.join(map(str, have)) or 'none (no weights installed)'} only")
    return path


def gan_weights(scale: int) -> Path:
    """Path of the adversarially fine-tuned default weights for ``scale`` (``--gan``).

    Raises:
        UsageError: no GAN weights are installed for ``scale``.
    """
    path = WEIGHTS_DIR / f"default_x{scale}_gan.safetensors"
    if not path.is_file():
        have = sorted(int(p.stem.split("_x")[1].split("_")[0])
                      for p in WEIGHTS_DIR.glob("default_x*_gan.safetensors"))
        raise UsageError(f"--gan --scale {scale}: no GAN fine-tuned weights for x{scale} "
                         f"(installed: {', '.join(f'x{h}' for h in have) or 'none'}); train "
                         "them with `suite train sat-sr --set gan.steps=N --set gan.scale="
                         f"{scale}`")
    return path


def load_sr(weights: Path, scale: int, trust: bool = False, runtime: str = "torch",
            device: str = "auto") -> tuple[nn.Module, Tiling]:
    """Load single-band SR weights on ``runtime`` and check they were trained for ``scale``.

    ``weights`` may be an exported ``.onnx`` (fp32 or int8) with ``runtime="onnxruntime"``.

    Raises:
        InputError: the card says another scale or another band count than one.
    """
    loaded, card = load_runtime_model(weights, runtime, device, trust=trust)
    model = cast(nn.Module, loaded)  # an OnnxModule is called like a module
    args = card.get("arguments", {})
    if int(args.get("scale", 0)) != scale:
        raise InputError(weights, f"these weights are trained for x{args.get('scale')}, "
                         f"not for --scale {scale}")
    if int(args.get("in_channels", 1)) != 1:
        raise InputError(weights, "sat-sr weights must be single-band (in_channels 1)")
    tiling = Tiling(**card.get("inference", {}).get("tiling", {}))
    return model, tiling


def sr_block(model: nn.Module, block: np.ndarray, scale: int, tiling: Tiling) -> np.ndarray:
    """Super-resolve ``(C, h, w)`` model units -> ``(C, s h, s w)``; bands as a batch.

    Patches of ``tiling.patch`` pixels with ``tiling.halo`` context are blended over
    ``tiling.overlap`` (Gaussian weights) by :func:`suite.engine.tiling.tiled_inference`.
    """
    x = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))[:, None]
    config = TileConfig(tiling.patch, tiling.overlap, tiling.halo, batch_size=4, scale=scale,
                        pad_mode="replicate")
    return tiled_inference(x, model, config)[:, 0].numpy()


def sr_meta(meta: RasterMeta, scale: int) -> RasterMeta:
    """Output metadata: ``scale`` times the pixels, transform scaled by ``1 / scale``."""
    return meta.resampled(scale, meta.width * scale, meta.height * scale)


class SrProducer:
    """Producer of output windows for :func:`suite.io.raster.write_raster_windows`.

    Reads the input under each output window with a halo, fills nodata with the band median,
    runs the network, crops the halo, and carries the validity mask over by nearest neighbour.
    """

    def __init__(self, path: Path, meta: RasterMeta, model: nn.Module, scale: int,
                 tiling: Tiling) -> None:
        self.path, self.meta, self.model, self.scale, self.tiling = path, meta, model, scale, tiling
        self.norm: BandScale = band_scale(path, meta)
        self.fill = (self.norm.low + self.norm.high) / 2
        self.halo = tiling.halo

    def __call__(self, out_window: Window) -> np.ndarray:
        core = output_window(out_window, self.scale)
        data, valid = read_haloed(self.path, core, self.halo)
        units = self.norm.forward(fill_invalid(data.astype(np.float64), valid, self.fill))
        out = self.norm.inverse(sr_block(self.model, units, self.scale, self.tiling))
        h = self.halo * self.scale
        out = out[:, h:h + int(out_window.height), h:h + int(out_window.width)]
        mask = np.repeat(np.repeat(~valid, self.scale, 0), self.scale, 1)
        mask = mask[h:h + int(out_window.height), h:h + int(out_window.width)]
        return np.ma.MaskedArray(cast_to(out, self.meta.dtype),
                                 mask=np.broadcast_to(mask, out.shape))


def enhance_raster(path: Path, output: Path, model: nn.Module, scale: int,
                   tiling: Tiling, progress: bool = False, cog: bool = False) -> dict[str, Any]:
    """Super-resolve the GeoTIFF ``path`` into ``output`` (already a temporary path), a
    Cloud-Optimized GeoTIFF with ``cog``."""
    meta = read_raster_meta(path)
    producer = SrProducer(path, meta, model, scale, tiling)
    out_meta = sr_meta(meta, scale)
    write_raster_windows(output, out_meta, producer, cog=cog, progress=progress)
    return {"bands": meta.count, "width": out_meta.width, "height": out_meta.height}
