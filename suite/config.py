"""YAML configs mapped onto typed dataclasses: unknown keys are errors, ``--set a.b=v`` overrides.

Values are parsed with ``yaml.safe_load`` (never ``eval``), then checked against the field's
declared type.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from suite.errors import InputError, UsageError

T = TypeVar("T")


def load_config(
    cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None
) -> T:
    """Build a ``cls`` instance from defaults, an optional YAML file and ``key=value`` overrides.

    Raises:
        InputError: the file is missing, not YAML or has unknown keys / wrong types.
        UsageError: an override is malformed or names an unknown key.
    """
    data: dict[str, Any] = {}
    if path is not None:
        data = _read_yaml(Path(path))
        try:  # the file alone first, so that an error is blamed on whichever is wrong
            from_dict(cls, copy.deepcopy(data))
        except (TypeError, ValueError) as exc:
            raise InputError(path, str(exc)) from None
    for item in overrides or []:
        _apply_override(data, item)
    try:
        return from_dict(cls, data)
    except (TypeError, ValueError) as exc:
        raise UsageError(_blame(overrides or [], str(exc))) from None


def _blame(overrides: list[str], problem: str) -> str:
    """The problem, after the override(s) whose key it names (the file's were checked first)."""
    named = [o for o in overrides if o.partition("=")[0] in problem]
    return f"--set {' '.join(named or overrides)}: {problem}" if overrides else problem


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(path, "config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(path, f"not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise InputError(path, "config must be a mapping at the top level")
    return data


def _apply_override(data: dict[str, Any], item: str) -> None:
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise UsageError(f"--set {item!r}: expected KEY=VALUE")
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UsageError(f"--set {item!r}: {part} is not a section")
    node[parts[-1]] = yaml.safe_load(raw)


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Recursively build dataclass ``cls`` from ``data``, refusing unknown keys and bad types."""
    if not isinstance(data, dict):
        raise TypeError(f"{where or 'config'} must be a mapping")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown config key(s) {', '.join(where + k for k in unknown)}")
    kwargs = {k: _coerce(hints[k], v, f"{where}{k}") for k, v in data.items()}
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return from_dict(hint, value, where + ".")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(hint):
            return None
        return _first_fitting(
            [a for a in typing.get_args(hint) if a is not type(None)], value, where
        )
    if origin is typing.Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise ValueError(f"{where} must be one of {', '.join(map(str, allowed))}, "
                             f"got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise TypeError(f"{where} must be a list")
        args = typing.get_args(hint)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise TypeError(f"{where} must have {len(args)} items")
            return tuple(_coerce(a, v, where) for a, v in zip(args, value, strict=True))
        item = args[0] if args else Any
        items = [_coerce(item, v, where) for v in value]
        return items if origin is list else tuple(items)
    return _scalar(hint, value, where)


def _first_fitting(options: list[Any], value: Any, where: str) -> Any:
    """Coerce to the first member of a union that accepts the value."""
    errors = []
    for option in options:
        try:
            return _coerce(option, value, where)
        except (TypeError, ValueError) as exc:
            errors.append(str(exc))
    raise TypeError(errors[0] if errors else f"{where}: no type fits {value!r}")


def _scalar(hint: Any, value: Any, where: str) -> Any:
    if hint is Any:
        return value
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is Path and isinstance(value, str):
        return Path(value)
    if hint is bool and not isinstance(value, bool):
        raise TypeError(f"{where} must be true or false, got {value!r}")
    if isinstance(hint, type) and not isinstance(value, hint):
        raise TypeError(f"{where} must be {hint.__name__}, got {value!r}")
    return value


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as plain YAML-ready values (paths as strings)."""
    out: dict[str, Any] = dataclasses.asdict(obj)
    return typing.cast(dict[str, Any], _plain(out))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, Path) else value
