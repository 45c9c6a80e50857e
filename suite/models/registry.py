"""A registry of small model factories: ``create_model(name, **kwargs)`` builds any of them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from suite.errors import UsageError

_FACTORIES: dict[str, Callable[..., nn.Module]] = {}
F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(name: str) -> Callable[[F], F]:
    """Decorator that registers a factory under ``name``.

    Raises:
        ValueError: the name is already taken.
    """

    def wrap(factory: F) -> F:
        if name in _FACTORIES:
            raise ValueError(f"model {name!r} is registered twice")
        _FACTORIES[name] = factory
        return factory

    return wrap


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name`` with keyword arguments.

    >>> net = create_model("espcn", in_channels=1, scale=2)
    >>> type(net).__name__
    'ESPCN'
    """
    if name not in _FACTORIES:
        raise UsageError(f"unknown model {name!r} (known: {', '.join(sorted(_FACTORIES))})")
    return _FACTORIES[name](**kwargs)


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_FACTORIES)


def model_origin(name: str) -> str:
    """The module that registered ``name`` (``suite.models...`` or a plugin's own)."""
    if name not in _FACTORIES:
        raise UsageError(f"unknown model {name!r}")
    return _FACTORIES[name].__module__
