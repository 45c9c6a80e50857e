"""Weights as safetensors plus a JSON model card; pickled checkpoints only on explicit trust.

The card sits beside the weights with the same stem (``model.safetensors`` + ``model.json``)
and says everything needed to rebuild and use the model: architecture and arguments,
normalization, training data and recipe, validation metrics with their conventions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from suite.engine.device import pick_device
from suite.errors import InputError
from suite.io.atomic import readable_like_other_files
from suite.models.registry import create_model

CARD_KEYS = ("architecture", "arguments", "normalization", "training", "validation")
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl")


def card_path(weights: str | Path) -> Path:
    """Path of the model card that belongs to ``weights``."""
    return Path(weights).with_suffix(".json")


def save_weights(path: str | Path, model: nn.Module, card: dict[str, Any]) -> Path:
    """Write ``model``'s state as safetensors and ``card`` as JSON beside it.

    Raises:
        ValueError: the card lacks one of :data:`CARD_KEYS`.
    """
    missing = [k for k in CARD_KEYS if k not in card]
    if missing:
        raise ValueError(f"model card lacks {missing}")
    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"architecture": str(card["architecture"])})
    readable_like_other_files(path)
    card_path(path).write_text(json.dumps(card, indent=2, sort_keys=True, default=str) + "\n")
    return path


def read_card(path: str | Path) -> dict[str, Any]:
    """Read the model card of a weights file.

    Raises:
        InputError: the weights or their card are missing, or the card is not valid JSON.
    """
    cpath = card_path(path)
    if not Path(path).exists():
        raise InputError(path, "weights file not found")
    if not cpath.is_file():
        raise InputError(path, f"no model card {cpath.name} beside the weights")
    try:
        card: dict[str, Any] = json.loads(cpath.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(cpath, f"model card is not valid JSON ({exc.msg})") from None
    return card


def check_card_domain(path: str | Path, domain: str) -> dict[str, Any]:
    """The card of ``path``, if its weights were trained for ``domain``.

    Another domain's network would fail deep inside the model (a shape or an argument error)
    or, worse, run and write nonsense; the card says which domain trained it.

    Raises:
        InputError: the card is missing or names another domain.
    """
    if Path(path).suffix.lower() == ".onnx" and not card_path(path).is_file():
        from suite.export import read_onnx_card  # the card travels inside an ONNX export

        card = read_onnx_card(path)
    else:
        card = read_card(path)
    owner = card.get("domain")
    if owner is not None and owner != domain:
        raise InputError(path, f"these weights are for {owner}, not {domain}")
    if "export" in card and Path(path).suffix.lower() != ".onnx":
        source = card["export"].get("source_weights", "the .safetensors it came from")
        raise InputError(path, "is a TorchScript export, for your own PyTorch code; the suite "
                               f"runs the weights it was exported from ({source}) or an ONNX "
                               "export with --runtime onnxruntime")
    return card


def load_state(path: str | Path, trust: bool = False) -> dict[str, torch.Tensor]:
    """Load a state dict from safetensors, or from a pickled checkpoint when ``trust`` is set.

    Raises:
        InputError: missing file, unreadable file, or a pickled checkpoint without ``trust``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "weights file not found")
    if path.suffix in PICKLE_SUFFIXES:
        if not trust:
            raise InputError(path, "pickled checkpoints can run code when loaded; convert to "
                             "safetensors or pass --trust-checkpoint")
        # Even with the user's trust, only tensors and plain containers are unpickled: a state
        # dict never needs arbitrary objects, and those could run code.
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            first = str(exc).splitlines()[0]
            raise InputError(path, f"not a plain state-dict checkpoint ({first})") from None
        state = obj.get("model", obj) if isinstance(obj, dict) else obj
        return dict(state)
    try:
        return load_file(str(path))
    except Exception as exc:
        raise InputError(path, f"not a readable safetensors file ({exc})") from None


def load_model(path: str | Path, trust: bool = False,
               device: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model described by the card beside ``path`` and load its weights.

    Args:
        path: the ``.safetensors`` file (or a ``.pt``/``.pth`` state dict with ``trust``).
        trust: allow pickled checkpoints (loaded with ``weights_only=True``).
        device: ``cpu``, ``cuda`` or ``auto`` (CUDA when present), as ``--device`` takes it.

    Returns:
        The model in eval mode on ``device``, and its card.
    """
    card = read_card(path)
    model = create_model(card["architecture"], **card.get("arguments", {}))
    state = load_state(path, trust=trust)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise InputError(path, f"weights do not fit {card['architecture']}: {first}") from None
    return model.eval().to(pick_device(device)), card
