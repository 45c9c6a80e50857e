"""sat-sr ``--gan``: the adversarial fine-tuning step and the CLI refusal / use of its weights."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from domains.sat_sr import nets as _nets  # noqa: F401
from domains.sat_sr import sr
from domains.sat_sr.config import GanConfig
from domains.sat_sr.train import SrGanTrainer, _adam
from suite.engine.train import TrainConfig
from suite.losses import l1_loss
from suite.models import create_model
from suite.weights import save_weights

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data" / "sat" / "landsat8_LC80200392015216_excerpt.tif"
Cli = Callable[..., tuple[int, str, str]]
TINY = {"in_channels": 1, "scale": 2, "features": 8, "num_blocks": 1}


class _Pairs(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Random (low 8x8, high 16x16) single-band pairs."""

    def __len__(self) -> int:
        return 64

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(i)
        return torch.rand(1, 8, 8, generator=g), torch.rand(1, 16, 16, generator=g)


def test_one_gan_step_updates_generator_and_discriminator(tmp_path: Path) -> None:
    gen = create_model("edsr", **TINY)
    disc = create_model("patchgan", in_channels=1, features=8, num_layers=2, norm="none",
                        spectral_norm=True)
    cfg = TrainConfig(steps=1, batch_size=2, lr=1e-2, device="cpu", progress=False)
    trainer = SrGanTrainer(gen, l1_loss, _adam, _Pairs(), tmp_path, cfg)
    trainer.setup_gan(disc, GanConfig(steps=1, adversarial=0.1))
    g0 = {k: v.clone() for k, v in gen.state_dict().items()}
    d0 = {k: v.clone() for k, v in disc.state_dict().items()}
    values = trainer.train_step(next(iter(torch.utils.data.DataLoader(_Pairs(), 2))))
    assert {"loss", "l1", "d_loss"} <= set(values)
    assert any(not torch.equal(g0[k], v) for k, v in gen.state_dict().items())
    assert any(not torch.equal(d0[k], v) for k, v in disc.state_dict().items()
               if "weight" in k)


def _tiny_gan(folder: Path) -> Path:
    card = {"architecture": "edsr", "arguments": TINY, "normalization": {},
            "training": {"gan": {"warning": "invents detail"}}, "validation": {},
            "inference": {"tiling": {"patch": 64, "overlap": 8, "halo": 8}}}
    return save_weights(folder / "default_x2_gan.safetensors", create_model("edsr", **TINY),
                        card)


def test_gan_without_weights_is_refused(run_cli: Cli, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "weights"
    empty.mkdir()
    monkeypatch.setattr(sr, "WEIGHTS_DIR", empty)
    out = tmp_path / "out.tif"
    code, _, err = run_cli("enhance", "sat-sr", SAMPLE, "-o", out, "--scale", "2", "--gan",
                           "--quiet")
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error:")
    assert "--gan" in err and "x2" in err
    assert not out.exists() and list(tmp_path.iterdir()) == [empty]


def test_gan_with_tiny_weights_runs_through_the_cli(run_cli: Cli, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "weights"
    folder.mkdir()
    _tiny_gan(folder)
    monkeypatch.setattr(sr, "WEIGHTS_DIR", folder)
    out = tmp_path / "out.tif"
    code, _, err = run_cli("enhance", "sat-sr", SAMPLE, "-o", out, "--scale", "2", "--gan",
                           "--quiet")
    assert code == 0, err
    import rasterio

    with rasterio.open(SAMPLE) as src, rasterio.open(out) as dst:
        assert (dst.width, dst.height) == (src.width * 2, src.height * 2)
        assert dst.count == src.count
        assert np.isfinite(dst.read().astype(np.float64)).all()
    # x4 has no GAN weights here: refused, and the message names what is installed
    code, _, err = run_cli("enhance", "sat-sr", SAMPLE, "-o", tmp_path / "o4.tif", "--scale",
                           "4", "--gan", "--quiet")
    assert code == 2 and "installed: x2" in err


def test_gan_flag_is_documented_with_its_warning(capsys: pytest.CaptureFixture[str]) -> None:
    from pipelines.cli import main

    with pytest.raises(SystemExit):
        main(["enhance", "sat-sr", "--help"])
    out = capsys.readouterr().out
    assert "--gan" in out and "INVENTS DETAIL" in " ".join(out.split())
