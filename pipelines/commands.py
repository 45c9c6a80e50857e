"""Subcommands of the ``suite`` CLI: argument wiring only; the work lives in the run modules."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from suite import plugins
from suite.errors import UsageError

Adder = Callable[[argparse.ArgumentParser], None]
# suite.export.RUNTIMES, spelled out so that --help does not import torch (a test keeps them equal)
RUNTIMES = ("torch", "torch-int8", "torch-bf16", "onnxruntime")


def _domain_subparsers(
    cmd: argparse.ArgumentParser, command: str, func: Callable[[argparse.Namespace], int]
) -> None:
    """Add one nested parser per installed domain, each with the command's options
    (:data:`DOMAIN_OPTIONS`) and that domain's own."""
    common = DOMAIN_OPTIONS[command]
    sub = cmd.add_subparsers(dest="domain", metavar="DOMAIN", required=True, parser_class=type(cmd))
    for name, entry in plugins.discover().items():
        task = entry.domain.task if entry.domain else "BROKEN"
        kinds = ", ".join(entry.domain.input_kinds) if entry.domain else ""
        built_in = type(entry.domain).__module__.startswith("domains.")
        dom_parser = sub.add_parser(
            name, help=task,
            description=f"{command} {name}: {task}" + (f"; inputs: {kinds}" if kinds else "")
            + (f". See docs/{name.replace('-', '_')}.md in the repository." if built_in else ""))
        add_shared_options(dom_parser, repeated=True)
        common(dom_parser)
        dom_parser.set_defaults(func=func)
        if entry.domain is None:
            continue
        try:
            entry.domain.add_arguments(command, dom_parser)
        except Exception as exc:  # a plugin's options may import a missing library
            # One plugin's broken options must not take the whole CLI down with it.
            dom_parser.description = f"BROKEN: {type(exc).__name__}: {exc}"
            dom_parser.set_defaults(func=_broken(name, exc))


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text) if text.isdigit() else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def add_shared_options(p: argparse.ArgumentParser, repeated: bool = False) -> None:
    """``--debug``, ``--quiet`` and ``--threads``, accepted before or after any subcommand.

    ``repeated``: a subcommand's copy, which leaves the value unset unless given there, so
    ``suite --quiet enhance ...`` is not undone by the subcommand's default.
    """
    unset = {"default": argparse.SUPPRESS} if repeated else {}
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors", **unset)
    p.add_argument("--quiet", action="store_true", help="no progress bars", **unset)
    p.add_argument("--threads", type=positive_int, metavar="N", **unset,
                   help="CPU threads for PyTorch (default: PyTorch's, one per core)")


def _broken(name: str, exc: Exception) -> Callable[[argparse.Namespace], int]:
    def refuse(args: argparse.Namespace) -> int:
        raise UsageError(f"domain {name!r} is broken: {type(exc).__name__}: {exc}")

    return refuse


def _enhance_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                   help="input file, or a folder holding a DICOM series")
    p.add_argument("-o", "--output", type=Path, required=True, help="output file or folder")
    p.add_argument("--weights", type=Path, help="weights (.safetensors with its .json card)")
    p.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow .pt/.pth state-dict checkpoints (tensors only: torch.load weights_only=True)",
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto (default): CUDA when present")
    p.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default="torch",
        help="PyTorch, PyTorch int8 on CPU (quantized once, cached), PyTorch bfloat16 (fast "
        "on CPUs with AVX-512 BF16) or ONNX Runtime (needs the deploy extra); a domain "
        "refuses a runtime it does not run",
    )


def _degrade_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                   help="clean input file, or a folder holding a DICOM series")
    p.add_argument("-o", "--output", type=Path, required=True, help="output file or folder")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def _train_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="YAML config (default: the domain's shipped one)")
    p.add_argument("--data", type=Path, nargs="+", help="training data files or folders")
    p.add_argument("--out", type=Path, default=Path("runs/latest"), help="run folder")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.steps=500",
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")


def _evaluate_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pred", type=Path, required=True, help="enhanced output")
    p.add_argument("--ref", type=Path, required=True, help="clean reference")
    p.add_argument("--json", type=Path,
                   help="also write the metrics as JSON here (an infinite or NaN value as null)")


def _batch_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders or globs")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://host:8786")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="local workers (default: one per core)")
    p.add_argument("--resume", action="store_true", help="skip items already done")
    p.add_argument(
        "--window-group",
        type=int,
        default=4096 * 4096,
        metavar="PIXELS",
        help="split rasters larger than this into window groups run in parallel",
    )
    p.add_argument("--weights", type=Path)
    p.add_argument("--trust-checkpoint", action="store_true")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto (default): CUDA when present, as for enhance")
    p.add_argument("--runtime", choices=RUNTIMES, default="torch")


def _run(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """Import the run module only when the command runs, keeping ``--help`` fast."""

    def call(args: argparse.Namespace) -> int:
        import importlib

        return int(getattr(importlib.import_module(f"pipelines.{module}"), name)(args) or 0)

    return call


def add_enhance(cmd: argparse.ArgumentParser) -> None:
    _domain_subparsers(cmd, "enhance", _run("run", "enhance"))


def add_degrade(cmd: argparse.ArgumentParser) -> None:
    _domain_subparsers(cmd, "degrade", _run("run", "degrade"))


def add_train(cmd: argparse.ArgumentParser) -> None:
    _domain_subparsers(cmd, "train", _run("run", "train"))


def add_evaluate(cmd: argparse.ArgumentParser) -> None:
    _domain_subparsers(cmd, "evaluate", _run("run", "evaluate"))


def add_batch(cmd: argparse.ArgumentParser) -> None:
    _domain_subparsers(cmd, "batch", _run("batch", "batch"))


def _export_common(p: argparse.ArgumentParser) -> None:
    from pipelines.export import add_arguments

    add_arguments(p)


def add_export(cmd: argparse.ArgumentParser) -> None:
    _domain_subparsers(cmd, "export", _run("export", "export"))


def add_domains(cmd: argparse.ArgumentParser) -> None:
    cmd.set_defaults(func=_run("run", "list_domains"))


def add_convert(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("input", type=Path, help="DICOM folder/file or NIfTI")
    cmd.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="a .nii/.nii.gz file, or a folder for a DICOM series (DICOM input only: "
        "a NIfTI lacks the patient and study headers a series needs)",
    )
    cmd.add_argument("--series", help="SeriesInstanceUID or number, when the folder holds several")
    cmd.add_argument("--volume", type=int,
                     help="which volume of a 4D NIfTI or a multi-volume series (0-based)")
    cmd.add_argument("--recursive", action="store_true", help="search sub-folders for DICOM")
    cmd.set_defaults(func=_run("run", "convert"))


def add_info(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("weights", type=Path, metavar="FILE",
                     help="weights (.safetensors with its .json card, or .onnx), a NIfTI "
                     "volume (its grid and provenance), a DICOM series folder (its grid), or a "
                     "GeoTIFF/JPEG 2000/VRT raster (grid, georeference, bands, tags)")
    cmd.add_argument("--recursive", action="store_true",
                     help="a DICOM folder: also search its sub-folders")
    cmd.set_defaults(func=_run("run", "info"))


def add_demo(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("demo_out"),
        help="output folder (default: demo_out)",
    )
    cmd.add_argument("--domains", nargs="+", help="only these domains")
    cmd.set_defaults(func=_run("demo", "demo"))


DOMAIN_OPTIONS: dict[str, Adder] = {
    "enhance": _enhance_common,
    "degrade": _degrade_common,
    "train": _train_common,
    "evaluate": _evaluate_common,
    "batch": _batch_common,
    "export": _export_common,
}
"""The options every domain's parser of a command has, before the domain adds its own."""


def domain_parser(command: str, domain_name: str) -> argparse.ArgumentParser:
    """A stand-alone parser of ``suite COMMAND DOMAIN`` (the Python API checks options with it).

    Raises:
        UsageError: the domain is not installed or its options cannot be built.
    """
    domain = plugins.get_domain(domain_name)
    parser = argparse.ArgumentParser(prog=f"suite {command} {domain_name}", add_help=False)
    add_shared_options(parser)
    DOMAIN_OPTIONS[command](parser)
    domain.add_arguments(command, parser)
    return parser


def require(condition: bool, message: str) -> None:
    """Raise a usage error unless ``condition`` holds."""
    if not condition:
        raise UsageError(message)


COMMANDS: dict[str, tuple[str, Adder]] = {
    "domains": ("list installed domains and their status", add_domains),
    "enhance": ("enhance an image, volume or raster with a domain's model", add_enhance),
    "degrade": ("make a realistically degraded copy (training pairs, tests)", add_degrade),
    "train": ("train a domain's model", add_train),
    "evaluate": ("compare an enhanced output with a reference", add_evaluate),
    "batch": ("enhance many inputs on a Dask cluster (local by default)", add_batch),
    "export": ("export a domain's model to ONNX (fp32 or int8) or TorchScript", add_export),
    "convert": ("DICOM series to NIfTI (or to DICOM again), keeping geometry and HU", add_convert),
    "info": ("print a weights file's model card, a NIfTI file's grid and provenance, or a "
             "raster's grid and georeference",
             add_info),
    "demo": ("run every installed domain on the bundled sample data and write a report", add_demo),
}
