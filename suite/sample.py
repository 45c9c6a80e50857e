"""Where the bundled sample data lives (the repository's ``sample_data/`` folder)."""

from __future__ import annotations

import os
from pathlib import Path

from suite.errors import InputError


def sample_data_dir() -> Path:
    """Return the sample-data folder: ``$SUITE_SAMPLE_DATA`` or the repository's own.

    Raises:
        InputError: the folder is not there (e.g. a wheel install without the repository).
    """
    env = os.environ.get("SUITE_SAMPLE_DATA")
    path = Path(env) if env else Path(__file__).resolve().parents[1] / "sample_data"
    if not path.is_dir():
        raise InputError(path, "sample data folder not found; set SUITE_SAMPLE_DATA or run "
                         "from a clone of the repository (pip install -e .)")
    return path
