"""Worker for the DDP test: ``torchrun --nproc_per_node 2 --standalone tests/ddp_worker.py OUT``.

Trains a tiny model for a few steps on gloo and writes each rank's final weights to
``OUT/rank{r}.safetensors`` so the test can compare them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from suite.engine import PairedPatchDataset, TrainConfig, Trainer


def add_noise(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Degradation for the tiny task: Gaussian noise of sigma 0.1."""
    return clean + 0.1 * rng.standard_normal(clean.shape).astype(np.float32)


def main(out: Path) -> None:
    """Train 4 steps on 2 ranks and write this rank's weights."""
    torch.set_num_threads(1)
    images = [np.random.default_rng(i).random((1, 16, 16), dtype=np.float32) for i in range(2)]
    data = PairedPatchDataset(images, degrade=add_noise, patch_size=8)
    torch.manual_seed(int(__import__("os").environ["RANK"]))  # different inits per rank
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 3, padding=1))
    config = TrainConfig(steps=4, batch_size=2, lr=1e-2, ema_decay=0.5, checkpoint_every=2,
                         validate_every=2, progress=False, device="cpu")
    trainer = Trainer(net, F.mse_loss, torch.optim.Adam, data, out / "run", config)
    trainer.fit()
    # the DDP wrapper must be gone once fit() has left the process group (see Trainer._finish)
    if isinstance(trainer.net, DistributedDataParallel):
        raise SystemExit("the trainer still holds its DDP wrapper after fit()")
    state = {k: v.contiguous() for k, v in trainer.model.state_dict().items()}
    save_file(state, str(out / f"rank{trainer.dist.rank}.safetensors"))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
