"""Typed configs (unknown keys refused, overrides typed) and safetensors weights with cards."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from suite.config import load_config
from suite.engine.train import TrainConfig
from suite.errors import InputError, UsageError
from suite.models import create_model
from suite.weights import load_model, load_state, save_weights


@dataclass
class Inner:
    rate: float = 0.1
    sizes: list[int] = field(default_factory=lambda: [1, 2])


@dataclass
class Outer:
    name: str = "x"
    steps: int = 10
    inner: Inner = field(default_factory=Inner)
    schedule: list[tuple[int, int | tuple[int, ...]]] = field(default_factory=list)
    path: Path | None = None


def test_yaml_and_overrides_map_onto_typed_fields(tmp_path: Path) -> None:
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("steps: 5\ninner:\n  rate: 1\nschedule: [[0, 8], [3, [4, 4]]]\n")
    cfg = load_config(Outer, cfg_file, ["inner.sizes=[3, 4]", "path=/tmp/a"])
    assert cfg.steps == 5 and cfg.inner.rate == 1.0 and isinstance(cfg.inner.rate, float)
    assert cfg.inner.sizes == [3, 4]
    assert cfg.schedule == [(0, 8), (3, (4, 4))]
    assert cfg.path == Path("/tmp/a")


def test_unknown_key_is_an_error_naming_it(tmp_path: Path) -> None:
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("inner:\n  rat: 1\n")
    with pytest.raises(InputError, match=r"inner\.rat"):
        load_config(Outer, cfg_file)


def test_a_bad_override_is_blamed_on_the_override_not_the_file(tmp_path: Path) -> None:
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("steps: 3\n")
    for override, problem in (("inner.rat=1", r"inner\.rat"), ("steps=many", "must be int")):
        with pytest.raises(UsageError, match=problem) as info:
            load_config(Outer, cfg_file, [override])
        assert str(info.value).startswith(f"--set {override}") and "c.yaml" not in str(info.value)


@dataclass
class Recipe:
    steps: int = 10
    train: TrainConfig = field(default_factory=TrainConfig)


def test_only_the_override_at_fault_is_named_and_a_literal_is_checked() -> None:
    with pytest.raises(UsageError) as info:
        load_config(Recipe, None, ["steps=3", "train.lr_schedule=cosin"])
    assert str(info.value) == ("--set train.lr_schedule=cosin: train.lr_schedule must be one "
                               "of cosine, step, constant, got 'cosin'")  # was found at step 15
    with pytest.raises(UsageError, match=r"train\.batch_size must be at least 1, got -2"):
        load_config(Recipe, None, ["train.batch_size=-2"])  # was an internal error


def test_wrong_type_and_bad_override_are_refused() -> None:
    with pytest.raises(UsageError, match="steps must be int"):
        load_config(Outer, None, ["steps=many"])
    with pytest.raises(UsageError, match="KEY=VALUE"):
        load_config(Outer, None, ["steps"])


def test_weights_round_trip_through_the_card(tmp_path: Path) -> None:
    net = create_model("unet", spatial_dims=3, channels=[4, 8], residual=True)
    card = {"architecture": "unet", "arguments": {"spatial_dims": 3, "channels": [4, 8],
                                                  "residual": True},
            "normalization": "HU/1000", "training": {}, "validation": {}}
    path = save_weights(tmp_path / "w.safetensors", net, card)
    again, read = load_model(path)
    x = torch.randn(1, 1, 8, 8, 8)
    assert torch.equal(net.eval()(x), again(x)) and read["architecture"] == "unet"
    # safetensors wrote owner-only files (0600) where the card beside them is readable to all
    (tmp_path / "plain.txt").write_text("x")
    assert path.stat().st_mode & 0o777 == (tmp_path / "plain.txt").stat().st_mode & 0o777


def test_pickled_checkpoint_needs_trust(tmp_path: Path) -> None:
    net = create_model("espcn", in_channels=1, scale=2)
    torch.save(net.state_dict(), tmp_path / "w.pt")
    with pytest.raises(InputError, match="pickled"):
        load_state(tmp_path / "w.pt")
    assert set(load_state(tmp_path / "w.pt", trust=True)) == set(net.state_dict())


def test_card_must_be_complete(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lacks"):
        save_weights(tmp_path / "w.safetensors", create_model("espcn", in_channels=1, scale=2),
                     {"architecture": "espcn"})
