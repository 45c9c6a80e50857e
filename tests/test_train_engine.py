"""Training engine: exact resume, schedules, checkpoints without pickles, GAN override, DDP."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor, nn
from torch.utils.data import DataLoader

from suite.engine import (
    PairedPatchDataset,
    StepSampler,
    TrainConfig,
    Trainer,
    lr_factor,
    pick_device,
    random_flips,
)
from suite.engine.device import autocast_context, module_device
from suite.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]


def add_noise(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return clean + 0.1 * rng.standard_normal(clean.shape).astype(np.float32)


def tiny_data() -> PairedPatchDataset:
    images = [np.random.default_rng(i).random((1, 20, 20), dtype=np.float32) for i in range(3)]
    return PairedPatchDataset(images, degrade=add_noise, patch_size=8, augment=random_flips)


def test_sampling_weights_pick_arrays_in_proportion_and_refuse_bad_weights() -> None:
    images = [np.full((1, 8, 8), v, np.float32) for v in (0.0, 1.0, 2.0)]

    def picked(weights: list[float]) -> np.ndarray:
        data = PairedPatchDataset(images, inputs=images, patch_size=4, weights=weights)
        return np.array([int(data[i][1][0, 0, 0]) for i in range(3000)])

    counts = np.bincount(picked([3.0, 0.0, 1.0]), minlength=3)
    assert counts[1] == 0 and abs(counts[0] / 3000 - 0.75) < 0.03
    uniform = PairedPatchDataset(images, inputs=images, patch_size=4)
    assert np.bincount([int(uniform[i][1][0, 0, 0]) for i in range(3000)]).min() > 900
    for bad in ([1.0, 1.0], [1.0, -1.0, 1.0], [0.0, 0.0, 0.0], [1.0, float("nan"), 1.0]):
        with pytest.raises(UsageError, match="sampling weights"):
            PairedPatchDataset(images, inputs=images, patch_size=4, weights=bad)


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Dropout(0.2),
                         nn.Conv2d(4, 1, 3, padding=1))


def val_mse(model: nn.Module) -> dict[str, float]:
    # validators get the model where it trains: inputs go to it, as the domains' validators do
    x = torch.linspace(0, 1, 144).reshape(1, 1, 12, 12).to(module_device(model))
    return {"mse": float(F.mse_loss(model(x), x))}


def make_trainer(out: Path, **overrides: object) -> Trainer:
    options: dict[str, object] = dict(
        steps=8, batch_size=2, lr=1e-2, weight_decay=1e-4, warmup_steps=2, grad_clip=0.5,
        ema_decay=0.8, patch_schedule=[(0, 8), (5, 12)], checkpoint_every=3, validate_every=2,
        progress=False, device="cpu", seed=3,
    )
    options.update(overrides)
    config = TrainConfig(**options)  # type: ignore[arg-type]
    return Trainer(tiny_net(), F.l1_loss, torch.optim.AdamW, tiny_data(), out, config, val_mse)


def test_resume_equals_straight_run(tmp_path: Path) -> None:
    straight = make_trainer(tmp_path / "a")
    straight.fit()
    first = make_trainer(tmp_path / "b")
    first.fit(stop_after=4)
    assert first.step == 4
    second = make_trainer(tmp_path / "b")
    second.fit(resume=True)
    assert second.step == 8 and second.dataset.patch_size == (12, 12)  # type: ignore[attr-defined]
    for name, module in (("model", "model"), ("ema", "ema")):
        ref = straight.ema.module if module == "ema" else straight.model  # type: ignore[union-attr]
        got = second.ema.module if module == "ema" else second.model  # type: ignore[union-attr]
        for (key, a), b in zip(ref.state_dict().items(), got.state_dict().values(), strict=True):
            torch.testing.assert_close(b, a, atol=1e-6, rtol=0, msg=f"{name}.{key}")
    assert (tmp_path / "a/log.csv").read_text() == (tmp_path / "b/log.csv").read_text()
    final_a, final_b = load_file(tmp_path / "a/final.safetensors"), load_file(
        tmp_path / "b/final.safetensors")
    for key, value in final_a.items():
        torch.testing.assert_close(final_b[key], value, atol=1e-6, rtol=0)


def test_resumed_run_counts_the_training_time_of_the_processes_before_it(
    tmp_path: Path,
) -> None:
    """A model card's training time must not shrink to the last process's share."""
    first = make_trainer(tmp_path, checkpoint_every=4)
    first.fit(stop_after=4)
    state_file = tmp_path / "checkpoints/step_00000004/state.json"
    state = json.loads(state_file.read_text())
    assert state["seconds"] > 0
    state["seconds"] = 5000.0  # as if the first process had trained for that long
    state_file.write_text(json.dumps(state))
    second = make_trainer(tmp_path, checkpoint_every=4)
    assert second.earlier_seconds == 0.0
    second.fit(resume=True)
    assert second.earlier_seconds == 5000.0
    final = json.loads((tmp_path / "checkpoints/step_00000008/state.json").read_text())
    assert final["seconds"] > 5000.0  # the earlier process's time, plus this one's
    del state["seconds"]  # checkpoints written before the field existed still resume
    state_file.write_text(json.dumps(state))
    shutil.rmtree(tmp_path / "checkpoints/step_00000008")
    third = make_trainer(tmp_path, checkpoint_every=4)
    third.fit(resume=True)
    assert third.earlier_seconds == 0.0 and third.step == 8


def test_checkpoints_hold_no_pickles_and_log_has_metrics(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, steps=6, keep_checkpoints=2)
    metrics = trainer.fit()
    folders = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert folders == ["step_00000003", "step_00000006"]
    files = {p.suffix for p in (tmp_path / "checkpoints").rglob("*") if p.is_file()}
    assert files == {".safetensors", ".json"}
    tensors = load_file(tmp_path / "checkpoints/step_00000006/state.safetensors")
    assert any(k.startswith("ema.") for k in tensors)
    assert any(k.startswith("optim.model.") for k in tensors)
    with (tmp_path / "log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [2, 4, 6]
    assert set(rows[0]) == {"step", "loss", "lr", "mse"}
    assert metrics == pytest.approx({"mse": float(rows[-1]["mse"])})


def test_lr_schedules() -> None:
    cos = TrainConfig(steps=10, lr=1.0, warmup_steps=2, min_lr_ratio=0.1)
    assert lr_factor(0, cos) == pytest.approx(0.5)
    assert lr_factor(2, cos) == pytest.approx(1.0)
    assert lr_factor(10, cos) == pytest.approx(0.1)
    step = TrainConfig(lr_schedule="step", lr_step_size=3, lr_gamma=0.5)
    assert [lr_factor(s, step) for s in (0, 2, 3, 7)] == [1.0, 1.0, 0.5, 0.25]


class GanTrainer(Trainer):
    """Generator and discriminator alternate; only the optimisation step is overridden."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.disc = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.modules["disc"] = self.disc
        self.optimizers["disc"] = self._make_optimizer(torch.optim.Adam, self.disc)

    def train_step(self, batch: Sequence[Tensor]) -> dict[str, float]:
        inputs, target = self.to_device(batch)
        fake = self.net(inputs)
        real_logit, fake_logit = self.disc(target), self.disc(fake.detach())
        d_loss = F.softplus(-real_logit).mean() + F.softplus(fake_logit).mean()
        self.optimize(d_loss, "disc")
        g_loss = F.l1_loss(fake, target) + 0.01 * F.softplus(-self.disc(fake)).mean()
        self.optimize(g_loss, "model")
        return {"loss": float(g_loss.detach()), "d_loss": float(d_loss.detach())}


def test_gan_trainer_overrides_only_the_step(tmp_path: Path) -> None:
    config = TrainConfig(steps=2, batch_size=2, progress=False, device="cpu")
    trainer = GanTrainer(tiny_net(), F.l1_loss, torch.optim.Adam, tiny_data(), tmp_path, config)
    trainer.fit()
    tensors = load_file(tmp_path / "checkpoints/step_00000002/state.safetensors")
    assert any(k.startswith("disc.") for k in tensors)
    assert any(k.startswith("optim.disc.") for k in tensors)
    resumed = GanTrainer(tiny_net(), F.l1_loss, torch.optim.Adam, tiny_data(), tmp_path, config)
    resumed.fit(resume=True)
    torch.testing.assert_close(resumed.disc[0].weight, trainer.disc[0].weight)


def test_patch_dataset_is_a_function_of_the_index() -> None:
    data = tiny_data()
    a, b = data[5], data[5]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[0].shape == a[1].shape == (1, 8, 8)
    data.patch_size = 12
    assert data[5][1].shape == (1, 12, 12)
    with pytest.raises(UsageError):
        data.patch_size = (4, 4, 4)
    sampler = StepSampler(0, 3, 2)
    serial = [torch.cat(x) for x in DataLoader(data, batch_size=2, sampler=sampler)]
    parallel = [torch.cat(x) for x in DataLoader(data, batch_size=2, sampler=sampler,
                                                 num_workers=2)]
    assert all(torch.equal(s, p) for s, p in zip(serial, parallel, strict=True))


def test_paired_arrays_with_scale() -> None:
    high = np.random.default_rng(0).random((1, 16, 16, 8), dtype=np.float32)
    low = high[:, :, :, ::4].copy()  # through-plane SR pairs, scale (1, 1, 4)
    data = PairedPatchDataset([high], inputs=[low], patch_size=(8, 8, 8), scale=(1, 1, 4))
    inputs, target = data[2]
    assert inputs.shape == (1, 8, 8, 2) and target.shape == (1, 8, 8, 8)
    torch.testing.assert_close(inputs, target[..., ::4])
    assert sorted(StepSampler(1, 2, 2, rank=1, world_size=2)) == [6, 7]


def test_devices() -> None:
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(UsageError):
        pick_device("tpu")
    if not torch.cuda.is_available():
        assert pick_device("auto") == torch.device("cpu")
        with pytest.raises(UsageError):
            pick_device("cuda")
    with autocast_context(torch.device("cpu")):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_ddp_two_cpu_ranks_end_identical(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--standalone", str(ROOT / "tests/ddp_worker.py"), str(tmp_path)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    rank0, rank1 = (load_file(tmp_path / f"rank{r}.safetensors") for r in (0, 1))
    for key, value in rank0.items():
        torch.testing.assert_close(rank1[key], value, atol=0, rtol=0)
    assert (tmp_path / "run/log.csv").is_file()
    assert (tmp_path / "run/checkpoints/step_00000004/state.json").is_file()


@pytest.mark.gpu
def test_cuda_amp_training_runs(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, device="cuda", amp=True, steps=4)
    trainer.fit()
    assert next(trainer.model.parameters()).device.type == "cuda"
    assert (tmp_path / "final.safetensors").is_file()


def test_training_command_keeps_every_override_and_quotes_them() -> None:
    import argparse
    import shlex

    from suite.engine.train import hardware_description, training_command

    args = argparse.Namespace(data=[Path("a b.nii.gz")], config=None, out=Path("runs/x"),
                              overrides=["train.steps=10", "model.channels=[8, 16]"])
    command = training_command("ct-denoise", args)
    assert shlex.split(command) == [
        "suite", "train", "ct-denoise", "--data", "a b.nii.gz", "--set", "train.steps=10",
        "--set", "model.channels=[8, 16]", "--out", "runs/x"]
    assert hardware_description("cpu").startswith("CPU, ")


def test_module_device_is_where_the_parameters_are() -> None:
    from suite.engine.device import module_device

    assert module_device(nn.Conv2d(1, 1, 1)) == torch.device("cpu")
    assert module_device(lambda x: x) == torch.device("cpu")  # e.g. an ONNX Runtime session
    assert module_device(nn.ReLU()) == torch.device("cpu")  # no parameters at all
    if torch.cuda.is_available():
        assert module_device(nn.Conv2d(1, 1, 1).cuda()).type == "cuda"


def test_a_recipe_seeds_torch_before_the_domain_builds_its_network() -> None:
    import argparse

    from domains.fundus.config import DEFAULT_YAML, FundusConfig
    from suite.engine.train import recipe_from_args

    calls = iter(range(1000, 1010))

    def first_weights(seed: int) -> Tensor:
        torch.manual_seed(next(calls))  # a different process state before every call
        args = argparse.Namespace(data=[Path("x.png")], config=None, quiet=True,
                                  overrides=[f"train.seed={seed}"])
        recipe_from_args(FundusConfig, DEFAULT_YAML, args, "photos")
        return nn.Conv2d(3, 4, 3).weight.detach().clone()

    assert torch.equal(first_weights(5), first_weights(5))
    assert not torch.equal(first_weights(5), first_weights(6))


def test_resuming_with_another_network_is_one_line_naming_the_checkpoint(tmp_path: Path) -> None:
    """PyTorch's state-dict error (kilobytes on one line) came out as an internal error."""
    from suite.errors import InputError

    make_trainer(tmp_path / "run").fit(stop_after=3)
    wider = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Dropout(0.2),
                          nn.Conv2d(8, 1, 3, padding=1))
    config = make_trainer(tmp_path / "unused").config
    trainer = Trainer(wider, F.l1_loss, torch.optim.AdamW, tiny_data(), tmp_path / "run", config)
    with pytest.raises(InputError, match=r"step_0+3: does not fit this recipe's network") as info:
        trainer.fit(resume=True)
    assert "\n" not in str(info.value) and len(str(info.value)) < 400


def test_a_recipe_refuses_to_start_over_an_earlier_run(tmp_path: Path) -> None:
    from suite.engine.train import check_run_folder
    from suite.errors import InputError

    check_run_folder(tmp_path / "new", resume=False)  # absent: fine
    make_trainer(tmp_path / "run").fit(stop_after=3)
    with pytest.raises(InputError, match="holds an earlier run"):
        check_run_folder(tmp_path / "run", resume=False)
    check_run_folder(tmp_path / "run", resume=True)
