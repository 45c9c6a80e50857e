"""A small, explicit training loop: one config, one trainer, resumable checkpoints, DDP.

:class:`Trainer` runs ``config.steps`` optimisation steps. Everything a step depends on is a
function of the step number or is saved in the checkpoint, so ``N`` steps straight equal
``N / 2`` steps plus a resumed ``N / 2``:

- the learning rate is a pure function of the step (:func:`lr_factor`);
- the data are a pure function of the sample index (:mod:`suite.engine.patches`), and the
  indices of step ``s`` are fixed (:class:`~suite.engine.patches.StepSampler`);
- weights, EMA, optimizer state (flattened into safetensors), RNG states and the running
  loss are saved; nothing is pickled.

A GAN trainer overrides :meth:`Trainer.train_step` only (BasicSR style) and registers its
discriminator and second optimizer in ``self.modules`` / ``self.optimizers`` so they are
checkpointed too. Under ``torchrun`` the trainer joins the process group (gloo on CPU, nccl on
CUDA), wraps the model in DDP, gives each rank disjoint samples, and only rank 0 writes.
``batch_size`` is per process.
"""

from __future__ import annotations

import argparse
import copy
import csv
import gc
import json
import math
import os
import shlex
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from suite.config import load_config
from suite.engine.device import amp_dtype, autocast_context, pick_device
from suite.engine.patches import StepSampler
from suite.errors import InputError, UsageError
from suite.io.atomic import atomic_path, readable_like_other_files

LossFn = Callable[[Tensor, Tensor], Tensor]
OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
Validate = Callable[[nn.Module], dict[str, float]]


@dataclass
class TrainConfig:
    """Training recipe; maps one-to-one onto the ``train`` section of a YAML config.

    Attributes:
        steps: optimisation steps in total.
        batch_size: samples per step and per process.
        lr: peak learning rate (the optimizer factory's own lr is overwritten).
        weight_decay: written into every parameter group.
        lr_schedule: ``"cosine"`` (to ``min_lr_ratio * lr``), ``"step"`` or ``"constant"``.
        warmup_steps: linear warm-up from ``lr / warmup_steps``.
        lr_step_size: steps between decays for ``"step"``.
        lr_gamma: decay factor for ``"step"``.
        min_lr_ratio: final lr of ``"cosine"`` as a fraction of ``lr``.
        grad_clip: max global gradient norm, or ``None``.
        ema_decay: decay of the weight EMA (e.g. 0.999), or ``None``; the EMA is validated
            and saved.
        amp: mixed precision (bf16, or fp16 with loss scaling); only ever on CUDA.
        patch_schedule: ``[(start_step, patch_size), ...]`` applied to ``dataset.patch_size``.
        checkpoint_every: steps between checkpoints (0: only at the end).
        keep_checkpoints: how many checkpoints to keep.
        validate_every: steps between validations and log rows (0: only at the end).
        seed: seeds torch, the trainer's NumPy generator and the DataLoader.
        num_workers: DataLoader workers.
        deterministic: call ``torch.use_deterministic_algorithms(True)``.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        progress: show a tqdm bar (rank 0 only).
    """

    steps: int = 1000
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_schedule: Literal["cosine", "step", "constant"] = "cosine"
    warmup_steps: int = 0
    lr_step_size: int = 1000
    lr_gamma: float = 0.5
    min_lr_ratio: float = 0.0
    grad_clip: float | None = None
    ema_decay: float | None = None
    amp: bool = True
    patch_schedule: list[tuple[int, int | tuple[int, ...]]] = field(default_factory=list)
    checkpoint_every: int = 0
    keep_checkpoints: int = 2
    validate_every: int = 0
    seed: int = 0
    num_workers: int = 0
    deterministic: bool = False
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        # a config error, not a crash deep in the data loader or the optimizer
        if self.batch_size < 1:
            raise ValueError(f"train.batch_size must be at least 1, got {self.batch_size}")
        for name in ("steps", "warmup_steps", "checkpoint_every", "validate_every",
                     "num_workers"):
            if getattr(self, name) < 0:
                raise ValueError(f"train.{name} must not be negative, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"train.lr must be positive, got {self.lr}")
        if self.ema_decay is not None and not 0 <= self.ema_decay < 1:
            raise ValueError(f"train.ema_decay must be in [0, 1), got {self.ema_decay}")


def lr_factor(step: int, config: TrainConfig) -> float:
    """Multiplier of ``config.lr`` at ``step`` (0-based): warm-up, then the chosen decay."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.lr_schedule == "constant":
        return 1.0
    if config.lr_schedule == "step":
        return float(config.lr_gamma ** (step // config.lr_step_size))
    if config.lr_schedule == "cosine":
        span = max(1, config.steps - config.warmup_steps)
        t = min(1.0, (step - config.warmup_steps) / span)
        return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))
    raise UsageError(f"unknown lr_schedule {config.lr_schedule!r} (cosine, step, constant)")


def schedule_position(step: int, schedule: Sequence[tuple[int, Any]]) -> int:
    """Index of the patch-schedule entry in force at ``step`` (-1 before the first one)."""
    position = -1
    for i, (start, _) in enumerate(sorted(schedule, key=lambda e: e[0])):
        if start <= step:
            position = i
    return position


class EMA:
    """Exponential moving average of a model's parameters (buffers are copied).

    Args:
        model: the model to follow; a deep copy is kept in ``self.module`` (eval mode).
        decay: weight of the old average per update, e.g. 0.999.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s current weights."""
        for avg, p in zip(self.module.parameters(), model.parameters(), strict=True):
            avg.lerp_(p.detach(), 1.0 - self.decay)
        for avg_b, b in zip(self.module.buffers(), model.buffers(), strict=True):
            avg_b.copy_(b)


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in a (possibly single-process) run."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """True on the process that writes logs and checkpoints."""
        return self.rank == 0


def init_distributed(device: torch.device) -> tuple[DistInfo, bool]:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1).

    Returns:
        The rank information and whether this call created the process group.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), False
    info = DistInfo(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")), world)
    if dist.is_initialized():
        return info, False
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return info, True


def flatten_optimizer(
    name: str, state: dict[str, Any]
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into safetensors-ready tensors and JSON-ready values."""
    tensors: dict[str, Tensor] = {}
    plain: dict[str, Any] = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, Tensor):
                tensors[f"optim.{name}.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                plain[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "plain": plain}


def unflatten_optimizer(
    name: str, tensors: dict[str, Tensor], meta: dict[str, Any]
) -> dict[str, Any]:
    """Inverse of :func:`flatten_optimizer`: a dict for ``optimizer.load_state_dict``."""
    state: dict[int, dict[str, Any]] = {}
    prefix = f"optim.{name}."
    for key, value in tensors.items():
        if key.startswith(prefix):
            index, item = key[len(prefix):].split(".", 1)
            state.setdefault(int(index), {})[item] = value
    for key, value in meta["plain"].items():
        index, item = key.split(".", 1)
        state.setdefault(int(index), {})[item] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def rng_state(generator: np.random.Generator) -> dict[str, Any]:
    """Torch (CPU and CUDA) and NumPy RNG states as JSON-ready lists and dicts."""
    state: dict[str, Any] = {"torch": torch.get_rng_state().tolist(),
                             "numpy": generator.bit_generator.state}
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any], generator: np.random.Generator) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    generator.bit_generator.state = state["numpy"]
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def latest_checkpoint(folder: Path) -> Path | None:
    """The ``step_*`` checkpoint folder with the highest step, or ``None``."""
    found = sorted(folder.glob("step_*[0-9]"), key=lambda p: int(p.name.split("_")[1]))
    return found[-1] if found else None


class CsvLog:
    """Append-only CSV of ``step, loss, lr, metrics...``; the header is fixed by the first row."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after ``step`` (a run killed after its last checkpoint)."""
        if not self.path.is_file():
            return
        with self.path.open(newline="") as f:
            rows = list(csv.reader(f))
        kept = rows[:1] + [r for r in rows[1:] if int(r[0]) <= step]
        with self.path.open("w", newline="") as f:
            csv.writer(f).writerows(kept)

    def _header(self) -> list[str]:
        """Column names of the existing log."""
        with self.path.open(newline="") as f:
            return next(csv.reader(f))

    def append(self, row: dict[str, float | int]) -> None:
        """Append one row (keys not in the header are dropped, missing ones left empty)."""
        new = not self.path.is_file()
        header = list(row) if new else self._header()
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, header, restval="", extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)


class Trainer:
    """Explicit training loop around a model, a loss, an optimizer factory and a dataset.

    Args:
        model: the network (moved to the configured device).
        loss_fn: ``loss_fn(prediction, target) -> scalar``.
        optimizer_factory: ``factory(parameters) -> optimizer``, e.g.
            ``lambda p: torch.optim.AdamW(p)``; lr and weight decay come from ``config``.
        dataset: yields ``(input, target)``; needs a settable ``patch_size`` when the config
            has a patch schedule.
        out_dir: run folder: ``checkpoints/``, ``log.csv``, ``config.json``, ``final.safetensors``.
        config: the training recipe.
        validate: ``validate(model) -> {metric: value}``, run on rank 0 with the EMA if any.

    >>> # trainer = Trainer(net, F.l1_loss, torch.optim.AdamW, data, "run", TrainConfig())
    >>> # trainer.fit(resume=True)
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, optimizer_factory: OptimizerFactory,
                 dataset: Dataset[Any], out_dir: str | Path, config: TrainConfig,
                 validate: Validate | None = None) -> None:
        self.config, self.loss_fn, self.dataset, self.validate = config, loss_fn, dataset, validate
        self.out_dir = Path(out_dir)
        self.device = pick_device(config.device)
        self.dist, self._owns_group = init_distributed(self.device)
        if self.device.type == "cuda" and self.dist.world_size > 1:
            self.device = torch.device("cuda", self.dist.local_rank)
        self._seed(config)
        self.model = model.to(self.device)
        self.net: nn.Module = self._wrap(self.model)
        self.ema = EMA(self.model, config.ema_decay) if config.ema_decay is not None else None
        self.modules: dict[str, nn.Module] = {"model": self.model}
        self.optimizers = {"model": self._make_optimizer(optimizer_factory, self.model)}
        use_scaler = config.amp and amp_dtype(self.device) == torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        self.step = 0
        self._loss_sum, self._loss_count = 0.0, 0
        # a model card states the training time: a resumed run must count the processes
        # before it, whose time only their checkpoints remember
        self.earlier_seconds, self._born = 0.0, time.monotonic()
        self.log = CsvLog(self.out_dir / "log.csv")
        self.set_lr(0)

    # ----------------------------------------------------------------- set-up pieces

    def _seed(self, config: TrainConfig) -> None:
        """Seed torch and the trainer's own NumPy generator; optional determinism."""
        torch.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        if config.deterministic:
            torch.use_deterministic_algorithms(True)

    def _wrap(self, model: nn.Module) -> nn.Module:
        """DDP-wrap ``model`` in a multi-process run (weights are broadcast from rank 0)."""
        if self.dist.world_size <= 1:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def _make_optimizer(self, factory: OptimizerFactory, model: nn.Module
                        ) -> torch.optim.Optimizer:
        """Build an optimizer and write the config's lr and weight decay into its groups."""
        optimizer = factory(model.parameters())
        for group in optimizer.param_groups:
            group["lr"] = self.config.lr
            group["weight_decay"] = self.config.weight_decay
        return optimizer

    # ----------------------------------------------------------------- one step

    def autocast(self) -> Any:
        """Mixed-precision context for forward passes (a no-op off CUDA or with amp off)."""
        return autocast_context(self.device, self.config.amp)

    def to_device(self, batch: Sequence[Tensor]) -> list[Tensor]:
        """Move every tensor of a batch to the training device."""
        return [t.to(self.device, non_blocking=True) for t in batch]

    def optimize(self, loss: Tensor, name: str = "model") -> None:
        """Backward, (unscale,) clip, step and zero the gradients of optimizer ``name``."""
        optimizer = self.optimizers[name]
        self.scaler.scale(loss).backward()
        if self.config.grad_clip is not None:
            self.scaler.unscale_(optimizer)
            params = [p for g in optimizer.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        self.scaler.step(optimizer)
        self.scaler.update()
        optimizer.zero_grad(set_to_none=True)

    def train_step(self, batch: Sequence[Tensor]) -> dict[str, float]:
        """One optimisation step on ``batch = (input, target)``; override for GANs.

        Returns:
            Scalars to log; ``"loss"`` is averaged into the CSV log.
        """
        inputs, target = self.to_device(batch)
        with self.autocast():
            loss = self.loss_fn(self.net(inputs), target)
        self.optimize(loss)
        return {"loss": float(loss.detach())}

    # ----------------------------------------------------------------- the loop

    def fit(self, resume: bool = False, stop_after: int | None = None) -> dict[str, float]:
        """Train up to ``config.steps`` (or ``stop_after``) steps; checkpoint; validate.

        Args:
            resume: continue from the last checkpoint in ``out_dir`` (if there is one).
            stop_after: stop (with a checkpoint) once this step count is reached, e.g. for
                time-limited jobs; a later ``fit(resume=True)`` continues exactly.

        Returns:
            The last validation metrics (empty without a validation callable).
        """
        self._prepare_run(resume)
        stop = min(self.config.steps, stop_after or self.config.steps)
        metrics: dict[str, float] = {}
        bar = tqdm(total=stop, initial=self.step, desc="train",
                   disable=not (self.config.progress and self.dist.is_main))
        for batch in self._batches(stop):
            values = self.train_step(batch)
            self._after_step(values)
            bar.update()
            bar.set_postfix(loss=f"{values.get('loss', float('nan')):.4g}")
            metrics = self._periodic(stop) or metrics
        bar.close()
        self._finish(stop)
        return metrics

    def _prepare_run(self, resume: bool) -> None:
        """Create the run folder and load the last checkpoint when resuming."""
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.json").write_text(json.dumps(asdict(self.config), indent=2))
        last = latest_checkpoint(self.out_dir / "checkpoints") if resume else None
        if last is not None:
            self.load_checkpoint(last)
            if self.dist.is_main:
                self.log.truncate_after(self.step)

    def _batches(self, stop: int) -> Iterator[Sequence[Tensor]]:
        """Batches for steps ``[self.step, stop)``, one loader per patch-schedule segment."""
        while self.step < stop:
            self._apply_patch_schedule()
            seg_stop = min([stop] + [s for s, _ in self.config.patch_schedule if s > self.step])
            yield from self._loader(self.step, seg_stop)

    def _apply_patch_schedule(self) -> None:
        """Set ``dataset.patch_size`` to the schedule entry in force at the current step."""
        schedule = sorted(self.config.patch_schedule, key=lambda e: e[0])
        position = schedule_position(self.step, schedule)
        if position < 0:
            return
        if not hasattr(self.dataset, "patch_size"):
            raise UsageError("a patch schedule needs a dataset with a settable patch_size")
        setattr(self.dataset, "patch_size", schedule[position][1])  # noqa: B010

    def _loader(self, start: int, stop: int) -> DataLoader[Any]:
        """A DataLoader over the fixed sample indices of steps ``[start, stop)``."""
        sampler = StepSampler(start, stop, self.config.batch_size, self.dist.rank,
                              self.dist.world_size)
        return DataLoader(self.dataset, batch_size=self.config.batch_size, sampler=sampler,
                          num_workers=self.config.num_workers, drop_last=True,
                          pin_memory=self.device.type == "cuda",
                          generator=torch.Generator().manual_seed(self.config.seed + start))

    def _after_step(self, values: dict[str, float]) -> None:
        """Advance the step, the EMA, the running loss and the lr of the next step."""
        self.step += 1
        if self.ema is not None:
            self.ema.update(self.model)
        if "loss" in values:
            self._loss_sum += values["loss"]
            self._loss_count += 1
        self.set_lr(self.step)

    def set_lr(self, step: int) -> None:
        """Write the scheduled learning rate of ``step`` into every optimizer."""
        lr = self.config.lr * lr_factor(step, self.config)
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = lr

    def _periodic(self, stop: int) -> dict[str, float]:
        """Validate/log and checkpoint when their period falls on this step (or at ``stop``)."""
        metrics: dict[str, float] = {}
        every_v, every_c = self.config.validate_every, self.config.checkpoint_every
        if (every_v and self.step % every_v == 0) or self.step == stop:
            metrics = self.run_validation()
        if (every_c and self.step % every_c == 0) or self.step == stop:
            self.save_checkpoint()
        return metrics

    def run_validation(self) -> dict[str, float]:
        """Validate the EMA (or the model) on rank 0 and append a row to the CSV log."""
        if not self.dist.is_main:
            return {}
        metrics: dict[str, float] = {}
        if self.validate is not None:
            module = self.ema.module if self.ema is not None else self.model
            was_training = module.training
            with torch.no_grad():
                metrics = self.validate(module.eval())
            module.train(was_training)
        loss = self._loss_sum / max(1, self._loss_count)
        self._loss_sum, self._loss_count = 0.0, 0
        lr = self.optimizers["model"].param_groups[0]["lr"]
        self.log.append({"step": self.step, "loss": loss, "lr": lr, **metrics})
        return metrics

    def _finish(self, stop: int) -> None:
        """Export the final weights (EMA if any) and leave the process group we created."""
        if self.dist.is_main and stop == self.config.steps:
            module = self.ema.module if self.ema is not None else self.model
            state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
            with atomic_path(self.out_dir / "final.safetensors") as tmp:
                save_file(state, str(tmp))
                readable_like_other_files(tmp)
        if self._owns_group:
            dist.barrier()
            # the DDP wrapper's reducer keeps the process group alive: free it first so that
            # gloo's threads stop here, not at interpreter exit, where they can abort the rank
            self.net = self.model
            gc.collect()
            dist.destroy_process_group()
            self._owns_group = False

    # ----------------------------------------------------------------- checkpoints

    def state_tensors(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """All tensors to checkpoint (modules, EMA, optimizers) and the optimizers' JSON part."""
        tensors: dict[str, Tensor] = {}
        modules = dict(self.modules)
        if self.ema is not None:
            modules["ema"] = self.ema.module
        for name, module in modules.items():
            for key, value in module.state_dict().items():
                tensors[f"{name}.{key}"] = value.detach().cpu().contiguous()
        optim_meta: dict[str, Any] = {}
        for name, optimizer in self.optimizers.items():
            flat, optim_meta[name] = flatten_optimizer(name, optimizer.state_dict())
            tensors.update(flat)
        return tensors, optim_meta

    def save_checkpoint(self) -> Path | None:
        """Write ``checkpoints/step_NNNNNNNN/`` (state.safetensors + state.json) on rank 0."""
        if not self.dist.is_main:
            return None
        tensors, optim_meta = self.state_tensors()
        state = {"step": self.step, "rng": rng_state(self.rng), "optimizers": optim_meta,
                 "schedule_position": schedule_position(self.step, self.config.patch_schedule),
                 "loss_sum": self._loss_sum, "loss_count": self._loss_count,
                 "scaler": self.scaler.state_dict(), "config": asdict(self.config),
                 "seconds": self.earlier_seconds + time.monotonic() - self._born}
        folder = self.out_dir / "checkpoints"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"step_{self.step:08d}"
        with atomic_path(target) as tmp:
            tmp.mkdir()
            save_file(tensors, str(tmp / "state.safetensors"))
            readable_like_other_files(tmp / "state.safetensors")
            (tmp / "state.json").write_text(json.dumps(state, default=_plain))
        self._prune(folder)
        return target

    def _prune(self, folder: Path) -> None:
        """Keep only the newest ``config.keep_checkpoints`` checkpoints."""
        found = sorted(folder.glob("step_*[0-9]"), key=lambda p: int(p.name.split("_")[1]))
        for old in found[: -max(1, self.config.keep_checkpoints)]:
            shutil.rmtree(old, ignore_errors=True)

    def load_checkpoint(self, folder: str | Path) -> None:
        """Restore everything :meth:`save_checkpoint` wrote (on every rank)."""
        folder = Path(folder)
        try:
            tensors = load_file(str(folder / "state.safetensors"))
            state = json.loads((folder / "state.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(folder, f"unreadable checkpoint ({exc})") from None
        try:
            self._load_modules(tensors)
        except RuntimeError as exc:  # PyTorch lists every mismatched tensor: keep the first
            first = str(exc).split("\n")[1].strip() if "\n" in str(exc) else str(exc)
            raise InputError(folder, "does not fit this recipe's network (were model settings "
                                     f"changed since the run began?): {first[:200]}") from None
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(unflatten_optimizer(name, tensors, state["optimizers"][name]))
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"], self.rng)
        self.step = int(state["step"])
        self._loss_sum, self._loss_count = state["loss_sum"], state["loss_count"]
        self.earlier_seconds = float(state.get("seconds", 0.0))  # absent before 2026-11-27
        self.set_lr(self.step)

    def _load_modules(self, tensors: dict[str, Tensor]) -> None:
        """Load every module's (and the EMA's) weights from prefixed checkpoint tensors."""
        modules = dict(self.modules)
        if self.ema is not None:
            modules["ema"] = self.ema.module
        for name, module in modules.items():
            prefix = f"{name}."
            part = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            module.load_state_dict(part)


def _plain(value: Any) -> Any:
    """JSON fallback for tensors and NumPy scalars found in optimizer or scaler states."""
    if isinstance(value, Tensor):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to a JSON checkpoint")


R = TypeVar("R")


def recipe_from_args(cls: type[R], default_yaml: Path, args: argparse.Namespace,
                     data_hint: str) -> R:
    """A domain's training recipe for ``suite train``, the same way in every domain.

    The YAML is ``--config`` or the domain's shipped one, ``--set`` overrides apply, the device
    and the progress bar follow the CLI, and ``--data`` is required.

    Args:
        cls: the recipe dataclass; it must have a ``train`` field of :class:`TrainConfig`.
        default_yaml: the shipped recipe.
        args: the parsed ``suite train`` arguments.
        data_hint: what ``--data`` should hold, for the error message.

    Raises:
        UsageError: no ``--data``.
    """
    cfg = load_config(cls, args.config or default_yaml, args.overrides)
    train_cfg = cfg.train  # type: ignore[attr-defined]
    # --device auto (the CLI default) leaves the recipe's own train.device (e.g. a --set) alone.
    if getattr(args, "device", "auto") != "auto":
        train_cfg.device = args.device
    train_cfg.progress = not getattr(args, "quiet", False)
    if not args.data:
        domain = getattr(args, "domain", "DOMAIN")
        raise UsageError(f"suite train {domain} needs --data ({data_hint})")
    if getattr(args, "out", None) is not None:
        check_run_folder(Path(args.out), resume=bool(getattr(args, "resume", False)))
    # Every domain builds its network after this and before the Trainer seeds torch; without
    # this its initial weights came from torch's per-process random seed, so two runs of the
    # same recipe and train.seed started from different networks.
    torch.manual_seed(train_cfg.seed)
    return cfg


def check_run_folder(out: Path, resume: bool) -> None:
    """Refuse to start a new run in a folder that holds another run's log or checkpoints.

    The two runs' logs would interleave, the old run's later checkpoints would outlive the new
    run's, and a later ``--resume`` would continue the old run.

    Raises:
        InputError: ``out`` holds ``log.csv`` or ``checkpoints/`` and ``resume`` is off.
    """
    if not resume and ((out / "log.csv").exists() or (out / "checkpoints").exists()):
        raise InputError(out, "holds an earlier run (log.csv, checkpoints/); pass --resume to "
                              "continue it, or name a new --out")


def training_command(domain: str, args: argparse.Namespace) -> str:
    """The ``suite train`` command line that reproduces a run, every ``--set`` included."""
    parts = ["suite", "train", domain, "--data", *(str(p) for p in args.data)]
    if getattr(args, "config", None):
        parts += ["--config", str(args.config)]
    for override in getattr(args, "overrides", None) or []:
        parts += ["--set", override]
    parts += ["--out", str(args.out)]
    return shlex.join(parts)


def hardware_description(device: str) -> str:
    """Where a run trained, for the model card: the GPU's name, or the CPU thread count."""
    resolved = pick_device(device)
    if resolved.type == "cuda":
        return f"{torch.cuda.get_device_name(resolved)} (torch {torch.__version__})"
    return f"CPU, {torch.get_num_threads()} threads (torch {torch.__version__})"
