"""The contract a domain plugin fulfils; pipelines drive domains only through it.

A domain is an instance of a :class:`Domain` subclass exposed through the ``suite.domains``
entry-point group. Built-in domains are registered exactly as a third party's would be.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from suite.errors import InputError, UsageError


@dataclass
class DemoItem:
    """One before/after result that ``suite demo`` puts in its report.

    Attributes:
        title: a short caption.
        before_png: path of the degraded or input picture.
        after_png: path of the enhanced picture.
        metrics: metric name -> value (the name carries the convention).
        reference_png: optional path of the clean reference picture.
        note: free text shown under the pictures.
    """

    title: str
    before_png: Path
    after_png: Path
    metrics: dict[str, float] = field(default_factory=dict)
    reference_png: Path | None = None
    note: str = ""


FOLDER_KINDS = ("dicom-series", "dicom", "folder")
"""Input kinds whose inputs are folders: a folder given to ``suite batch`` is one item."""


class Domain:
    """Base class of every domain plugin.

    Subclasses set the class attributes and override the operations they support; an operation
    left out raises :class:`NotImplementedError`, which the CLI reports as unsupported.
    """

    name: ClassVar[str] = ""
    task: ClassVar[str] = ""
    input_kinds: ClassVar[tuple[str, ...]] = ()
    runtimes: ClassVar[tuple[str, ...]] = ("torch",)  # what ``enhance --runtime`` may name
    output_suffixes: ClassVar[tuple[str, ...]] = ()
    """Suffixes an ``enhance``/``degrade`` output must end with; empty: the writer chooses
    the format from the path."""
    output_format: ClassVar[str] = ""
    """The format those suffixes name, for the message."""
    volume_output: ClassVar[bool] = False
    """The output is a volume: NIfTI by its suffix, else a DICOM series folder."""

    def check_output(self, output: Path) -> None:
        """Refuse, before any work, an output whose name promises another format (a GeoTIFF
        written to ``out.png`` opens nowhere as a PNG).

        Raises:
            InputError: the output's suffix is not one of :attr:`output_suffixes`, or a
                volume's output names another file format.
        """
        if self.volume_output:
            from suite.io.volume import check_volume_output

            check_volume_output(output)
        if self.output_suffixes and not output.name.lower().endswith(self.output_suffixes):
            raise InputError(output, f"{self.name} writes {self.output_format}; name the output "
                             f"{' or '.join(self.output_suffixes)}")
        if self.output_suffixes and output.is_dir():
            raise InputError(output, f"is a folder; {self.name} writes one {self.output_format} "
                                     "file")

    def check_runtime(self, options: argparse.Namespace) -> None:
        """Refuse a ``--runtime`` this domain does not run, rather than ignore it.

        Raises:
            UsageError: the runtime is not in :attr:`runtimes`.
        """
        runtime = getattr(options, "runtime", "torch")
        if runtime not in self.runtimes:
            raise UsageError(f"{self.name} runs on {', '.join(self.runtimes)} only, not "
                             f"--runtime {runtime}")

    def check_options(self, options: argparse.Namespace) -> None:
        """Refuse, before any input is read or any batch worker started, options that no input
        could make right (by default: the runtime, :meth:`check_runtime`).

        Raises:
            UsageError: an option is missing or out of range.
        """
        self.check_runtime(options)

    def single_input(self, inputs: list[Path], kind: str) -> Path:
        """The one input of a domain that works on one file at a time (``kind``: its noun).

        Raises:
            UsageError: zero or several inputs were given.
        """
        if len(inputs) != 1:
            raise UsageError(f"{self.name} takes one input {kind}, got {len(inputs)}")
        return inputs[0]

    def default_weights(self) -> Path | None:
        """Path of the shipped default weights (safetensors), or ``None`` if there are none."""
        return None

    def add_arguments(self, command: str, parser: argparse.ArgumentParser) -> None:
        """Add this domain's own options to the parser of ``command`` (enhance, degrade, ...)."""

    def enhance(
        self, inputs: list[Path], output: Path, options: argparse.Namespace
    ) -> dict[str, Any]:
        """Enhance ``inputs`` and write ``output`` (already a temporary path; see pipelines)."""
        raise NotImplementedError(f"{self.name} does not support enhance")

    def degrade(
        self, inputs: list[Path], output: Path, options: argparse.Namespace
    ) -> dict[str, Any]:
        """Write a realistically degraded copy of ``inputs`` to ``output``."""
        raise NotImplementedError(f"{self.name} does not support degrade")

    def train(self, options: argparse.Namespace) -> Path:
        """Train from ``options.data`` into ``options.out``; return the weights written."""
        raise NotImplementedError(f"{self.name} does not support train")

    def evaluate(self, pred: Path, ref: Path, options: argparse.Namespace) -> dict[str, float]:
        """Compare a prediction with a reference; metric names carry their conventions."""
        raise NotImplementedError(f"{self.name} does not support evaluate")

    def demo(self, out_dir: Path, options: argparse.Namespace) -> list[DemoItem]:
        """Run on the bundled sample data and return what the demo report shows."""
        raise NotImplementedError(f"{self.name} has no demo")

    def batch_output_name(self, item: Path) -> str:
        """Name of the output for one batch item (a file or a DICOM folder): the item's, with
        the suffix of the domain's output format where it differs (``a.png`` -> ``a.tif``).
        A volume from a single DICOM file (a multi-frame ``ct.dcm``) becomes a series folder
        ``ct``."""
        if self.output_suffixes and not item.name.lower().endswith(self.output_suffixes):
            return item.stem + self.output_suffixes[0]
        if self.volume_output:
            from suite.io.volume import FILE_SUFFIXES, is_nifti_path

            if not is_nifti_path(item) and item.suffix.lower() in FILE_SUFFIXES:
                return item.stem
        return item.name

    def batch_folder_is_item(self, options: argparse.Namespace) -> bool:
        """Whether ``suite batch`` takes a folder as one item (a DICOM series, a scene), rather
        than as the files directly inside it; by default, when an input kind is a folder."""
        return any(kind in FOLDER_KINDS for kind in self.input_kinds)
