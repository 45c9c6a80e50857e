"""Batch bookkeeping: expanding inputs into items, checksums and the run manifest.

The manifest (``batch_manifest.json`` in the output folder) is what ``--resume`` trusts: an item
is skipped only when its output exists and its recorded input, weights and option fingerprints
and its output checksum all still match.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import importlib.metadata
import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from suite.domain import Domain
from suite.errors import InputError, UsageError
from suite.io.atomic import atomic_path
from suite.io.volume import is_nifti_path

MANIFEST = "batch_manifest.json"
RUNNER_KEYS = frozenset(
    {"inputs", "output", "scheduler", "workers", "resume", "quiet", "debug", "func", "command",
     "threads"}
)
"""Arguments that steer the run, not the result; they are left out of the option fingerprint."""
LIBRARIES = (
    "enhance-suite",
    "torch",
    "numpy",
    "rasterio",
    "pydicom",
    "nibabel",
    "monai",
    "dask",
    "distributed",
)


@dataclass(frozen=True)
class Item:
    """One unit of work: an input file or series folder and the output it makes.

    Attributes:
        source: the input file or folder.
        output: the absolute output path under the output folder.
        checksum: SHA-256 of the input (a folder: of its files' relative names and contents).
    """

    source: Path
    output: Path
    checksum: str

    @property
    def name(self) -> str:
        """The output's file name, which keys the item in the manifest."""
        return self.output.name


def _visible_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


SIDECARS = (
    ".json", ".tsv", ".bval", ".bvec",  # BIDS sidecars beside NIfTI volumes
    ".aux.xml", ".tfw", ".tifw", ".jgw", ".pgw", ".wld", ".prj", ".ovr", ".msk",  # GDAL/GIS
    ".txt", ".md", ".csv", ".pdf", ".html", ".log", ".yaml", ".yml", ".sha256", ".md5",
    "thumbs.db", "desktop.ini",
)
"""Names that sit beside images in users' folders and are never an item: a folder or a glob
skips them (a file named on the command line is always an item)."""


def is_sidecar(path: Path) -> bool:
    """Whether ``path`` is a sidecar, note or system file, not an image (:data:`SIDECARS`)."""
    return path.name.lower().endswith(SIDECARS)


def expand_inputs(
    patterns: list[str | Path], domain: Domain, options: argparse.Namespace | None = None,
    skipped: list[Path] | None = None,
) -> list[Path]:
    """Turn files, folders and globs into the list of items' sources, in a stable order.

    A folder is one item where the domain says so for these options
    (:meth:`~suite.domain.Domain.batch_folder_is_item`: a DICOM series, a scene); otherwise it
    stands for the visible files directly inside it. Sidecar files found through a folder or a
    glob (:func:`is_sidecar`) are not items; they are appended to ``skipped`` when given.

    Raises:
        InputError: a pattern matches nothing, or a folder that stands for its files has none.
    """
    per_folder = domain.batch_folder_is_item(options or argparse.Namespace())
    sources: list[Path] = []
    for pattern in map(str, patterns):
        magic = glob.has_magic(pattern)
        matches = sorted(glob.glob(pattern)) if magic else [pattern]
        if not matches or not Path(matches[0]).exists():
            raise InputError(pattern, "no such file or folder (or the glob matched nothing)")
        for match in map(Path, matches):
            if match.is_file():
                found = [match]
            elif per_folder:
                # a folder of NIfTI volumes is not a DICOM series: it stands for its volumes
                found = [f for f in _visible_files(match) if is_nifti_path(f)] or [match]
            else:
                found = _visible_files(match)
                if not found:
                    raise InputError(match, "no files directly inside this folder (sub-folders "
                                            "are not searched; give them or a glob)")
                if skipped is not None:  # said, not silently passed over
                    skipped.extend(sorted(set(match.iterdir()) - set(found)))
            if magic or not match.is_file():
                kept = [f for f in found if not (f.is_file() and is_sidecar(f))]
                if skipped is not None:
                    skipped.extend(f for f in found if f not in kept)
                found = kept
            sources.extend(found)
    return list(dict.fromkeys(sources))


def plan_items(sources: list[Path], out_dir: Path, domain: Domain) -> list[Item]:
    """Give each source its output path and checksum; refuse two sources with one output.

    Raises:
        UsageError: two inputs would write the same output name.
    """
    items: dict[str, Item] = {}
    for src in sources:
        name = domain.batch_output_name(src)
        if name in items:
            raise UsageError(
                f"{items[name].source} and {src} would both write {out_dir / name}; "
                "rename one or run them in separate output folders"
            )
        items[name] = Item(src, (out_dir / name).absolute(), sha256_path(src))
    return list(items.values())


def sha256_path(path: Path) -> str:
    """SHA-256 (hex) of a file, or of a folder's files (relative names and contents, sorted)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if file != path:
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def domain_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options that shape the result, JSON-ready (paths as strings), sorted by name."""
    out: dict[str, Any] = {}
    for key, value in sorted(vars(args).items()):
        if key in RUNNER_KEYS or callable(value):
            continue
        out[key] = str(value) if isinstance(value, Path) else value
    return out


def fingerprint(options: dict[str, Any]) -> str:
    """SHA-256 of the options' canonical JSON."""
    return hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode()).hexdigest()


def weights_record(domain: Domain, args: argparse.Namespace) -> dict[str, Any]:
    """Path, SHA-256 and model card of the weights the run uses (``--weights`` or the default)."""
    path = getattr(args, "weights", None) or domain.default_weights()
    if path is None:
        return {"path": None, "sha256": None, "card": None}
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "weights file not found")
    from suite.weights import card_path

    card_file = card_path(path)
    card = json.loads(card_file.read_text()) if card_file.is_file() else None
    if path.suffix.lower() == ".onnx":  # its own card, inside it: a sidecar may be another's
        from suite.export import read_onnx_card

        card = read_onnx_card(path)
    return {"path": str(path), "sha256": sha256_path(path), "card": card}


def library_versions() -> dict[str, str]:
    """Versions of Python and of the libraries that can change a result."""
    versions = {"python": platform.python_version()}
    for lib in LIBRARIES:
        try:
            versions[lib] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


class Manifest:
    """The run manifest: run-level facts plus one entry per item, saved atomically.

    Args:
        out_dir: the batch output folder.
        header: run-level facts (domain, options, weights, library versions, scheduler).
    """

    def __init__(self, out_dir: Path, header: dict[str, Any]) -> None:
        self.path = out_dir / MANIFEST
        self.header = header
        self.items: dict[str, dict[str, Any]] = {}
        self.earlier: dict[str, dict[str, Any]] = {}  # kept entries of earlier runs

    def load_previous(self) -> dict[str, dict[str, Any]]:
        """Entries of an earlier run in the same folder (empty when there is none)."""
        if not self.path.is_file():
            return {}
        try:
            items: dict[str, dict[str, Any]] = json.loads(self.path.read_text()).get("items", {})
        except (json.JSONDecodeError, AttributeError):
            return {}
        return items

    def is_done(self, entry: dict[str, Any] | None, item: Item, expected: dict[str, Any]) -> bool:
        """Whether a previous ``entry`` still stands for ``item`` under the ``expected`` facts."""
        if not entry or entry.get("status") not in ("ok", "skipped") or not item.output.exists():
            return False
        same = all(entry.get(k) == v for k, v in expected.items())
        return (
            same
            and entry.get("input_sha256") == item.checksum
            and entry.get("output_sha256") == sha256_path(item.output)
        )

    def keep_earlier(self, names: set[str]) -> int:
        """Keep the entries of earlier runs in this folder for items this run does not touch
        whose outputs are still there, so the manifest keeps describing the folder; returns
        how many were kept. Each entry carries its own options and weights fingerprints."""
        for name, entry in self.load_previous().items():
            output = entry.get("output")
            done = entry.get("status") in ("ok", "skipped")
            if name not in names and done and output and Path(output).exists():
                self.earlier[name] = entry
        return len(self.earlier)

    def record(self, name: str, entry: dict[str, Any]) -> None:
        """Set an item's entry and save the manifest (so a crash keeps what is done)."""
        self.items[name] = entry
        self.save()

    def save(self) -> None:
        """Write the manifest atomically."""
        body = {**self.header, "items": dict(sorted({**self.earlier, **self.items}.items()))}
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(body, indent=2, sort_keys=True, default=str) + "\n")
