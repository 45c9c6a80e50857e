"""The ``suite`` command line: one console script, subcommands, exit codes 0 / 2 / 1.

Exit codes: 0 done; 2 bad input or usage (one line on stderr naming the file and the problem);
1 internal error (traceback only with ``--debug``).
"""

from __future__ import annotations

import argparse
import difflib
import os
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Sequence
from typing import Any

from pipelines import commands
from suite import __version__
from suite.errors import SuiteError, UsageError

EPILOG = """examples:
  suite demo -o demo_out
  suite domains
  suite enhance ct-denoise path/to/dicom_folder -o denoised_series/
  suite enhance ct-denoise scan.nii.gz -o denoised.nii.gz --weights my.safetensors
  suite degrade ct-denoise scan.nii.gz -o low_dose.nii.gz --dose 0.25 --seed 1
  suite evaluate ct-denoise --pred denoised.nii.gz --ref scan.nii.gz --json metrics.json
  suite train ct-denoise --data scan.nii.gz --out runs/ct --set train.steps=2000
  suite convert path/to/dicom_folder -o volume.nii.gz
  suite info suite_weights.safetensors
"""


def _quiet_notices() -> None:
    """Hide library notices that would print as extra stderr lines around a clean run.

    rasterio warns on every open and write of a raster without georeferencing (a PNG, a JPEG,
    a plain TIFF); such a raster is enhanced in pixel coordinates, which is what the user has.
    Matched by message, so ``suite --help`` need not import rasterio.
    """
    for message in (r"Dataset has no geotransform", r"The given matrix is equal to Affine"):
        warnings.filterwarnings("ignore", message=message)


class Terminated(Exception):
    """SIGTERM (a job scheduler's cancel, ``timeout``, ``kill``) raised in the main thread."""


def _terminate_like_interrupt() -> Any:
    """Let SIGTERM unwind like Ctrl-C, so that temporary outputs are removed; return the
    handler it replaces (``None`` off the main thread, where handlers cannot be set).

    By default SIGTERM ends Python at once, skipping every ``finally``: a cancelled cluster
    job left its half-written ``.partial`` output beside the target.
    """
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum: int, frame: object) -> None:
        raise Terminated()

    return signal.signal(signal.SIGTERM, stop)


class OneLineParser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    """Build the full parser, with each installed domain's own options."""
    parser = OneLineParser(
        prog="suite",
        description="Enhance medical volumes and satellite rasters.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands.add_shared_options(parser)
    parser.add_argument("--version", action="version", version=f"suite {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name, (helptext, adder) in commands.COMMANDS.items():
        cmd = sub.add_parser(
            name,
            help=helptext,
            description=helptext,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        commands.add_shared_options(cmd, repeated=True)
        adder(cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    _quiet_notices()
    previous = _terminate_like_interrupt()
    try:
        return _run(args_list, debug="--debug" in args_list)
    finally:
        if previous is not None:  # the CLI may run inside another program (tests, a notebook)
            signal.signal(signal.SIGTERM, previous)


def _run(args_list: list[str], debug: bool) -> int:
    try:
        parser = build_parser()
        args, extras = parser.parse_known_args(args_list)
        if extras:
            raise UsageError(_unrecognized(parser, args, extras))
        if args.command is None:
            build_parser().print_help()
            return 2
        args.quiet = getattr(args, "quiet", False)
        if getattr(args, "threads", None):
            import torch  # here, not at the top: ``suite --help`` stays fast

            torch.set_num_threads(args.threads)
        return int(args.func(args) or 0)
    except SuiteError as exc:
        return _fail(exc, exc.exit_code, debug)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("error: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except BrokenPipeError:
        # `suite info x.tif | head`: the reader left, as it may; like other tools, stop quietly
        # (and keep Python from complaining again when it flushes stdout at exit)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except Exception as exc:
        return _fail(exc, 1, debug, prefix="internal error: ")


def _unrecognized(parser: argparse.ArgumentParser, args: argparse.Namespace,
                  extras: list[str]) -> str:
    """Name the command the extras were given to, and its nearest option for a typo."""
    names = [str(v) for v in (getattr(args, "command", None), getattr(args, "domain", None)) if v]
    text = f"{' '.join(['suite', *names])}: unrecognized arguments: {' '.join(extras)}"
    target = parser
    for name in names:  # down to the parser that took the last name
        target = _sub_commands(target).get(name, target)
    first = next((e.split("=")[0] for e in extras if e.startswith("--")), None)
    options = sorted(o for a in target._actions for o in a.option_strings if o.startswith("--"))
    close = difflib.get_close_matches(first, options, n=1) if first else []
    return text + (f" (did you mean {close[0]}?)" if close else "")


def _sub_commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    # argparse keeps no public map of a parser's sub-commands
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _fail(exc: BaseException, code: int, debug: bool, prefix: str = "error: ") -> int:
    if debug:
        traceback.print_exc()
    text = " ".join(str(exc).split()) or type(exc).__name__
    if prefix.startswith("internal"):
        text = f"{type(exc).__name__}: {text} (rerun with --debug for the traceback)"
    print(f"{prefix}{text}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
