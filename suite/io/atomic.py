"""Atomic output: write under a temporary name beside the target, rename at the end.

A failed run therefore leaves no partial output, and the target is replaced in one step.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from suite.errors import InputError

NAME_KEPT = 40
"""Characters of the target's name kept in its temporary name (for a person listing the folder)."""

NAME_MAX = 255
"""Bytes in one file name on Linux and macOS file systems."""

SERIES_FILE = re.compile(r"IM\d{5,}\.dcm")
"""Names of the files of a DICOM series this suite wrote (``suite.io.dicom``): a folder holding
only these is an earlier output, and a new series may replace it."""


def check_output_path(
    output: str | Path, inputs: Sequence[str | Path] = (),
    container: bool = False,
) -> Path:
    """Refuse an output path that cannot be written or that would overwrite an input.

    Args:
        output: the target file or folder.
        inputs: input paths that must not be touched.
        container: the output is a folder that the caller writes files into (a batch, the
            demo), keeping what else is there; otherwise the output replaces the target whole.

    Returns:
        The output as an absolute :class:`~pathlib.Path`.

    Raises:
        InputError: the parent folder is missing or read-only, the output is an input, or it
            is a folder holding files that replacing it would delete.
    """
    out = Path(output).absolute()
    # resolved, so that 'a/../scan.nii.gz' or a link to the input is seen to be the input
    real = out.parent.resolve() / out.name
    for item in inputs:
        src = Path(item).resolve()
        if real.resolve() == src or (src.is_dir() and src in real.parents):
            raise InputError(
                output, "output path is the input (or inside it); inputs are never modified"
            )
    if len(out.name.encode()) > NAME_MAX:
        raise InputError(output, f"file name is {len(out.name.encode())} bytes long; the file "
                                 f"system allows {NAME_MAX}")
    parent = out.parent
    if not parent.is_dir():
        raise InputError(output, f"output folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise InputError(output, f"output folder {parent} is not writable")
    if not container:
        _check_replaceable(out)
    return out


def _check_replaceable(target: Path) -> None:
    """Refuse a target folder whose replacement would delete files this suite did not write."""
    if target.is_dir() and not target.is_symlink():
        if any(not (e.is_file() and SERIES_FILE.fullmatch(e.name)) for e in target.iterdir()):
            raise InputError(target, "is a folder holding other files, which the output would "
                                     "replace; name a new or an empty folder")


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success move it onto ``target``.

    Works for files and folders. On any exception the temporary is removed and the target is
    left as it was.
    """
    target = Path(target)
    # The real suffix stays last, so that format detection by extension still works; the name
    # is shortened, so that nested atomic writes stay within the 255-byte name limit.
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name[:NAME_KEPT]}.", suffix=f".partial{_format_suffix(target)}",
        dir=target.parent,
    )
    os.close(fd)
    os.unlink(tmp_name)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _replace(tmp, target)
    finally:
        _remove(tmp)


def _format_suffix(target: Path) -> str:
    """``.nii.gz`` for a gzipped format, else the last suffix (``""`` for a folder name)."""
    suffixes = target.suffixes
    if len(suffixes) >= 2 and suffixes[-1].lower() == ".gz":
        return "".join(suffixes[-2:])
    return target.suffix


def _replace(tmp: Path, target: Path) -> None:
    if tmp.is_dir():
        if target.is_symlink():
            raise InputError(target, "is a symbolic link; name a new folder for the series")
        if target.is_file():
            raise InputError(target, "is a file; a DICOM series is written to a folder")
        _check_replaceable(target)  # checked before the work too, but the folder may have grown
        if target.exists():
            _remove(target)
    elif target.is_dir() and not target.is_symlink():
        raise InputError(target, "is a folder; name an output file")
    os.replace(tmp, target)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def readable_like_other_files(path: str | Path) -> None:
    """Give a file the mode any new file gets (``0o666`` less the umask).

    safetensors creates its files owner-only (0600), so colleagues on a shared cluster could
    not read weights that the JSON card beside them lets them read.
    """
    mask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


OUTPUT_OPTIONS = ("output", "json", "out")  # the command-line options that name what is written
RASTER_SUFFIXES = (".tif", ".tiff")


def read_paths(options: argparse.Namespace) -> list[Path]:
    """Every existing path among a command's parsed options but its outputs: the inputs and
    every path-valued option (a PAN band, a mask, a reference date, weights...), so that no
    output may replace one of them."""
    found: list[Path] = []
    for name, value in vars(options).items():
        if name in OUTPUT_OPTIONS:
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, Path) and item.exists():
                found.append(item)
    return found


def side_output(output: str | Path, tag: str, options: argparse.Namespace) -> Path:
    """The file ``NAME_TAG.tif`` written beside ``NAME.tif`` (a mask, a reference), checked like
    the output itself: it may not replace an input.

    ``scene.v2.tif`` gives ``scene.v2_TAG.tif``, so that outputs named apart keep their side
    files apart too.
    """
    out = Path(output)
    name = out.name
    stem = name[: -len(out.suffix)] if out.suffix.lower() in RASTER_SUFFIXES else name
    return check_output_path(out.with_name(f"{stem}_{tag}.tif"), read_paths(options))
