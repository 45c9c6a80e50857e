"""The suite from Python: the command line's operations as functions.

A script over a folder of scans calls these instead of building command lines::

    from pipelines import api

    api.enhance("ct-denoise", "scan.nii.gz", "denoised.nii.gz")
    api.degrade("ct-denoise", "scan.nii.gz", "low.nii.gz", noise_hu=50, seed=1)
    metrics = api.evaluate("ct-denoise", pred="denoised.nii.gz", ref="scan.nii.gz")
    api.enhance("pansharpen", ["B2.tif", "B3.tif", "B4.tif"], "sharp.tif", pan="B8.tif",
                method="mtf-glp")

Options are the command's long options with dashes written as underscores (``--noise-hu 50`` is
``noise_hu=50``, ``--set train.steps=2`` is ``overrides={"train.steps": 2}``); left out, they take
the command line's defaults. Each value is converted and checked by the command's own parser
(types, choices), so the two cannot drift apart. Where the command line prints one line and exits
with code 2, these functions raise :class:`suite.errors.InputError` (naming the file) or
:class:`suite.errors.UsageError`; outputs are written atomically and inputs are left untouched,
exactly as on the command line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pipelines import commands, run
from suite.errors import UsageError

PathLike = str | os.PathLike[str]
Paths = PathLike | Sequence[PathLike]


def enhance(domain: str, inputs: Paths, output: PathLike, **options: Any) -> dict[str, Any]:
    """Enhance ``inputs`` (one path, or a list for multi-file domains) into ``output``.

    Returns:
        The domain's summary of the run (what ``suite enhance`` prints after "wrote").
    """
    args = options_for("enhance", domain, inputs=inputs, output=output, **options)
    with _threads(args):
        return run.write_from_inputs(args, "enhance")[1]


def degrade(domain: str, inputs: Paths, output: PathLike, **options: Any) -> dict[str, Any]:
    """Write a realistically degraded copy of ``inputs`` to ``output`` (see ``suite degrade``)."""
    args = options_for("degrade", domain, inputs=inputs, output=output, **options)
    with _threads(args):
        return run.write_from_inputs(args, "degrade")[1]


def evaluate(domain: str, pred: PathLike, ref: PathLike, **options: Any) -> dict[str, float]:
    """The domain's metrics of ``pred`` against ``ref``; names carry their conventions."""
    args = options_for("evaluate", domain, pred=pred, ref=ref, **options)
    with _threads(args):
        return run.evaluate_metrics(args)


def train(domain: str, **options: Any) -> Path:
    """Train with the domain's recipe (``data=``, ``out=``, ``overrides=``...).

    Returns:
        The weights file written.
    """
    args = options_for("train", domain, **options)
    with _threads(args):
        return run.train_weights(args)


def batch(domain: str, inputs: Paths, output: PathLike, **options: Any) -> dict[str, Any]:
    """Enhance many inputs into the folder ``output`` (see ``suite batch``).

    Local workers are Dask processes that import the calling script again, so a script must
    call this under ``if __name__ == "__main__":`` (without it, every worker reruns the
    script's top level and Dask refuses to start them)::

        if __name__ == "__main__":
            items = api.batch("fundus", ["photos/"], "restored/", workers=2)

    Returns:
        The run manifest's entries, item name -> its record (``status`` ok, skipped, failed or
        error, with the one-line ``reason`` of a failure). A bad item does not raise.
    """
    from pipelines.batch import batch as run_batch
    from pipelines.batch_items import MANIFEST

    args = options_for("batch", domain, inputs=inputs, output=output, **options)
    with _threads(args):
        run_batch(args)
    items: dict[str, Any] = json.loads((Path(args.output) / MANIFEST).read_text())["items"]
    return items


def options_for(command: str, domain: str, **options: Any) -> argparse.Namespace:
    """The namespace ``suite COMMAND DOMAIN`` would parse, from Python values.

    Raises:
        UsageError: an unknown option, a value the option's type or choices refuse, or a
            required one missing.
    """
    parser = commands.domain_parser(command, domain)
    # argparse keeps no public list of a parser's options; _actions is its documented-by-use one.
    actions = {a.dest: a for a in parser._actions if a.dest != argparse.SUPPRESS}
    args = argparse.Namespace(domain=domain, command=command)
    for dest, action in actions.items():
        setattr(args, dest, action.default)
    for key, value in options.items():
        if key not in actions:
            raise UsageError(
                f"{parser.prog}: unknown option {key!r} (known: {', '.join(sorted(actions))})"
            )
        setattr(args, key, _convert(parser.prog, actions[key], value))
    missing = [d for d, a in actions.items() if a.required and getattr(args, d) is None]
    if missing:
        raise UsageError(f"{parser.prog}: missing {', '.join(missing)}")
    _check_exclusive(parser, {k for k, v in options.items() if v is not None})
    return args


def _check_exclusive(parser: argparse.ArgumentParser, given: set[str]) -> None:
    """Refuse two options of one mutually exclusive group, as the command line does."""
    # like _actions above: argparse keeps its groups only in this attribute
    for group in parser._mutually_exclusive_groups:
        both = [a.dest for a in group._group_actions if a.dest in given]
        if len(both) > 1:
            raise UsageError(f"{parser.prog}: {both[1]} is not allowed with {both[0]}")


@contextlib.contextmanager
def _threads(args: argparse.Namespace) -> Iterator[None]:
    """``threads=N`` for this call only: the calling script's own torch setting is restored."""
    if not getattr(args, "threads", None):
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _convert(prog: str, action: argparse.Action, value: Any) -> Any:
    """``value`` as the command line would have parsed it for ``action``."""
    if value is None:
        return None
    if action.nargs == 0:  # a flag
        if not isinstance(value, bool):
            raise UsageError(f"{prog}: {action.dest} takes True or False, got {value!r}")
        return value
    if action.dest == "overrides":
        pairs = value.items() if isinstance(value, dict) else None
        texts = [f"{k}={_yaml_text(v)}" for k, v in pairs] if pairs is not None else value
        return [str(t) for t in _as_list(texts)]
    if action.nargs in ("+", "*") or isinstance(action.nargs, int):
        items = [_one(prog, action, v) for v in _as_list(value)]
        if action.nargs == "+" and not items:
            raise UsageError(f"{prog}: {action.dest} needs at least one value")
        return items
    return _one(prog, action, value)


def _one(prog: str, action: argparse.Action, value: Any) -> Any:
    text = os.fspath(value) if isinstance(value, os.PathLike) else value
    if isinstance(text, float) and text.is_integer() and action.type is int:
        text = int(text)  # scale=2.0 where the option takes a whole number
    converted = text
    if callable(action.type):
        try:
            converted = action.type(str(text))
        except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
            raise UsageError(f"{prog}: {action.dest}: {exc}") from None
    elif action.choices is not None and all(isinstance(c, str) for c in action.choices):
        converted = str(text)  # axis=2 where the choices are "auto", "0", "1", "2"
    if action.choices is not None and converted not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise UsageError(f"{prog}: {action.dest} must be one of {choices}, got {value!r}")
    return converted


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, (str, os.PathLike)) or not isinstance(value, Sequence):
        return [value]
    return list(value)


def _yaml_text(value: Any) -> str:
    """A ``--set`` value as text the config parser reads back as the same Python value."""
    if isinstance(value, (list, dict, bool)) or value is None:
        return json.dumps(value)
    return str(value)
