"""Size-aware tile batching: batch size from free memory, and shrinking on out-of-memory."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from suite.engine.batching import (
    _meminfo_available,
    choose_batch_size,
    is_oom,
    memory_available,
    shrink_on_oom,
)
from suite.engine.tiling import TileConfig, tiled_inference
from suite.errors import UsageError


class FakeModel:
    """Doubles its input; raises an out-of-memory error above ``max_batch`` patches."""

    def __init__(self, max_batch: int, error: type[BaseException] = RuntimeError) -> None:
        self.max_batch, self.error, self.sizes = max_batch, error, list[int]()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(len(x))
        if len(x) > self.max_batch:
            raise self.error("CUDA out of memory. Tried to allocate 2.00 GiB")
        return 2 * x


def test_batch_size_grows_with_memory_and_shrinks_with_tile() -> None:
    sizes = [choose_batch_size((256, 256), available=gib << 30, max_batch=1000)
             for gib in (1, 2, 4, 8)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    big = choose_batch_size((128, 128, 16), available=8 << 30, max_batch=1000)
    small = choose_batch_size((64, 64, 16), available=8 << 30, max_batch=1000)
    assert small >= 3 * big


def test_batch_size_matches_the_memory_model() -> None:
    per_patch = 32 * 32 * 8 * 64 * 4  # voxels * floats_per_voxel * 4 bytes
    got = choose_batch_size((32, 32, 8), available=per_patch * 20, fraction=0.5)
    assert got == 10


def test_batch_size_bounds() -> None:
    assert choose_batch_size((512, 512, 64), available=1 << 20) == 1
    assert choose_batch_size((8, 8), available=1 << 40, max_batch=16) == 16


@pytest.mark.parametrize("kwargs", [{"fraction": 0.0}, {"fraction": 1.5},
                                    {"floats_per_voxel": 0}, {"max_batch": 0}])
def test_batch_size_refuses_bad_arguments(kwargs: dict[str, float]) -> None:
    with pytest.raises(UsageError):
        choose_batch_size((32, 32), available=1 << 30, **kwargs)  # type: ignore[arg-type]


def test_memory_available_on_cpu_is_plausible() -> None:
    free = memory_available("cpu")
    assert 0 < free < 1 << 50


def test_meminfo_fallback_parses_kilobytes(tmp_path: Path) -> None:
    path = tmp_path / "meminfo"
    path.write_text("MemTotal:  16000000 kB\nMemFree: 100 kB\nMemAvailable:  2048 kB\n")
    assert _meminfo_available(path) == 2048 * 1024
    path.write_text("MemTotal: 1 kB\n")
    assert _meminfo_available(path) == 0
    assert _meminfo_available(tmp_path / "missing") == 0


@pytest.mark.parametrize("error", [RuntimeError, torch.cuda.OutOfMemoryError, MemoryError])
def test_shrink_on_oom_splits_and_remembers(error: type[BaseException]) -> None:
    fake = FakeModel(max_batch=3, error=error)
    run = shrink_on_oom(fake)
    x = torch.arange(10.0).reshape(10, 1, 1, 1)
    assert torch.equal(run(x), 2 * x)
    assert run.limit is not None and run.limit <= 3 and run.shrinks >= 1
    fake.sizes.clear()
    assert torch.equal(run(x), 2 * x)
    assert max(fake.sizes) <= 3  # the smaller size is kept: no failing call the second time


def test_shrink_on_oom_starts_from_a_limit() -> None:
    fake = FakeModel(max_batch=100)
    run = shrink_on_oom(fake, limit=4)
    run(torch.zeros(10, 1, 2, 2))
    assert fake.sizes == [4, 4, 2]


def test_shrink_on_oom_reraises_other_errors_and_oom_at_one() -> None:
    def broken(x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        shrink_on_oom(broken)(torch.zeros(4, 1, 2, 2))
    with pytest.raises(RuntimeError, match="out of memory"):
        shrink_on_oom(FakeModel(max_batch=0))(torch.zeros(4, 1, 2, 2))
    with pytest.raises(UsageError):
        shrink_on_oom(broken, limit=0)


def test_is_oom_recognises_cpu_and_onnxruntime_messages() -> None:
    assert is_oom(RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: "
                               "can't allocate memory: you tried to allocate 8 GB"))
    assert is_oom(Exception("onnxruntime: Failed to allocate memory for requested buffer"))
    assert not is_oom(ValueError("bad value"))


def test_tiled_inference_survives_oom_with_same_result() -> None:
    x = torch.rand(1, 1, 40, 36)
    config = TileConfig(patch_size=16, overlap=4, batch_size=8)
    fake = FakeModel(max_batch=2)
    out = tiled_inference(x, shrink_on_oom(fake), config)
    reference = tiled_inference(x, lambda t: 2 * t, config)
    assert torch.allclose(out, reference, atol=1e-6)
    assert 8 in fake.sizes and max(s for s in fake.sizes if s <= 2) == 2


def test_runner_options_do_not_change_the_result_fingerprint() -> None:
    """A --threads given to a resumed batch made it redo every item."""
    import argparse

    from pipelines.batch_items import domain_options, fingerprint

    base = {"inputs": ["a"], "output": "o", "weights": None, "scale": 2}
    plain = fingerprint(domain_options(argparse.Namespace(**base)))
    runner = argparse.Namespace(**base, threads=1, workers=2, quiet=True, resume=True)
    assert fingerprint(domain_options(runner)) == plain
    assert fingerprint(domain_options(argparse.Namespace(**{**base, "scale": 4}))) != plain
