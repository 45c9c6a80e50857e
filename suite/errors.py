"""Typed errors that the CLI maps onto exit codes (2 for bad input or usage, 1 otherwise)."""

from __future__ import annotations

from pathlib import Path


class SuiteError(Exception):
    """Base class of every error the suite raises on purpose."""

    exit_code = 1


class InputError(SuiteError):
    """A file or folder given by the user cannot be used; the message names it and says why.

    Args:
        path: the offending file or folder (or ``None`` when the problem is not a file).
        problem: one line saying what is wrong.
    """

    exit_code = 2

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(problem if path is None else f"{path}: {problem}")


class UsageError(SuiteError):
    """Options that contradict each other or are out of range."""

    exit_code = 2


class ShapeError(SuiteError, ValueError):
    """A tensor or array whose shape is not what an operation needs.

    Args:
        what: name of the argument.
        expected: the expected shape, written like ``(B, C, H, W)``.
        actual: the shape that was given.
    """

    def __init__(self, what: str, expected: str, actual: tuple[int, ...]) -> None:
        super().__init__(f"{what}: expected shape {expected}, got {tuple(actual)}")
