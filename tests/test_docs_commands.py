"""Every complete `suite ...` command in the README and docs parses with today's CLI.

Options get renamed; a documented command that no longer parses is the first thing a new user
copies. Synopsis lines (with ``[...]``, ``<...>`` or ``...``) are skipped; nothing is run.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from pipelines.cli import build_parser
from suite.errors import UsageError

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"```(?:bash|sh|console)?\n(.*?)```", re.S)


def documented_commands() -> list[tuple[str, str]]:
    """``(file, command)`` for each complete ``suite`` command line in a shell code block."""
    found = []
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for block in BLOCK.findall(doc.read_text()):
            for line in re.sub(r"\\\n\s*", " ", block).splitlines():
                line = line.strip().split("  #")[0].split(" # ")[0]
                if line.startswith("suite ") and not any(t in line for t in ("...", "<", "[")):
                    found.append((doc.name, line))
    return found


COMMANDS = documented_commands()


def test_the_docs_show_commands() -> None:
    assert len(COMMANDS) >= 30


@pytest.mark.parametrize(("doc", "command"), COMMANDS, ids=[f"{d}:{c[:60]}" for d, c in COMMANDS])
def test_documented_command_parses(doc: str, command: str) -> None:
    try:
        build_parser().parse_args(shlex.split(command)[1:])
    except (UsageError, SystemExit) as exc:  # argparse exits 0 only for --help
        if not (isinstance(exc, SystemExit) and exc.code == 0):
            pytest.fail(f"{doc}: `{command}` no longer parses: {exc}")
