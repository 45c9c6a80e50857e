"""Training curves as a PNG drawn with NumPy and Pillow (matplotlib is not a dependency)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

W, H, PAD = 360, 220, 36
COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44))


def _panel(title: str, series: dict[str, tuple[np.ndarray, np.ndarray]]) -> Image.Image:
    """One line chart: axes box, min/max labels, a legend line per series."""
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    d.rectangle([PAD, PAD // 2, W - 8, H - PAD], outline="black")
    d.text((PAD, 2), title, fill="black")
    series = {k: v for k, v in series.items() if v[0].size}
    xs = np.concatenate([x for x, _ in series.values()] or [np.zeros(1)])
    ys = np.concatenate([y for _, y in series.values()] or [np.zeros(1)])
    ys = ys[np.isfinite(ys)] if np.isfinite(ys).any() else np.zeros(1)
    x0, x1 = float(xs.min()), float(max(xs.max(), xs.min() + 1))
    y0, y1 = float(ys.min()), float(max(ys.max(), ys.min() + 1e-6))
    d.text((2, PAD // 2), f"{y1:.3g}", fill="black")
    d.text((2, H - PAD - 10), f"{y0:.3g}", fill="black")
    d.text((W - 60, H - PAD + 4), f"step {x1:.0f}", fill="black")
    for i, (name, (x, y)) in enumerate(series.items()):
        px = PAD + (x - x0) / (x1 - x0) * (W - 8 - PAD)
        py = H - PAD - (y - y0) / (y1 - y0) * (H - PAD - PAD // 2)
        pts = [(float(a), float(b)) for a, b in zip(px, py, strict=True) if np.isfinite(b)]
        colour = COLOURS[i % len(COLOURS)]
        if len(pts) > 1:
            d.line(pts, fill=colour, width=2)
        d.text((PAD + 6 + 120 * i, H - PAD + 16), name, fill=colour)
    return img


def smooth(y: np.ndarray, n: int = 20) -> np.ndarray:
    """Running mean over ``n`` steps (shorter at the start)."""
    c = np.cumsum(np.insert(y, 0, 0.0))
    k = np.minimum(np.arange(1, y.size + 1), n)
    return (c[1:] - c[np.arange(1, y.size + 1) - k]) / k


def read_column(log: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(step, value)`` of a column of the engine's ``log.csv`` (empty when absent)."""
    if not log.is_file():
        return np.zeros(0), np.zeros(0)
    with log.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get(name)]
    return np.array([float(r["step"]) for r in rows]), np.array([float(r[name]) for r in rows])


def draw_curves(path: Path, history: list[tuple[int, float, float]], log: Path) -> Path:
    """Generator and discriminator losses (running mean of 20 steps) and validation PSNR."""
    h = np.array(history, dtype=np.float64).reshape(-1, 3)
    losses = {"generator": (h[:, 0], smooth(h[:, 1])), "discriminator": (h[:, 0], smooth(h[:, 2]))}
    val = {"val PSNR in mask (dB)": read_column(log, "val_psnr_in_mask")}
    left, right = _panel("losses (running mean, 20 steps)", losses), _panel("validation", val)
    canvas = Image.new("RGB", (2 * W, H), "white")
    canvas.paste(left, (0, 0))
    canvas.paste(right, (W, 0))
    canvas.save(path)
    return path
