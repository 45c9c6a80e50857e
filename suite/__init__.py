"""Shared core of the enhancement suite: I/O, models, losses, metrics, engines, registry.

The core never imports ``domains`` or ``pipelines``; domains are discovered through the
``suite.domains`` entry-point group (see :mod:`suite.plugins`).
"""

from __future__ import annotations

__version__ = "0.1.0"

from suite.errors import InputError, SuiteError, UsageError

__all__ = ["InputError", "SuiteError", "UsageError", "__version__"]
