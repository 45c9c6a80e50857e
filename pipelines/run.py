"""What the single-item CLI commands do: enhance, degrade, train, evaluate, convert, info."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from suite import plugins
from suite.errors import InputError
from suite.io.atomic import atomic_path, check_output_path, read_paths
from suite.weights import check_card_domain


def _say(args: argparse.Namespace, text: str) -> None:
    if not getattr(args, "quiet", False):
        print(text, file=sys.stderr)


def _existing(paths: list[Path]) -> list[Path]:
    for path in paths:
        if not path.exists():
            raise InputError(path, "no such file or folder")
    return paths


def enhance(args: argparse.Namespace) -> int:
    """``suite enhance DOMAIN INPUT... -o OUTPUT``: atomic, inputs untouched."""
    out, summary = write_from_inputs(args, "enhance")
    _say(args, f"wrote {out}" + _fmt(summary))
    return 0


def degrade(args: argparse.Namespace) -> int:
    """``suite degrade DOMAIN INPUT... -o OUTPUT [--seed N]``."""
    out, summary = write_from_inputs(args, "degrade")
    _say(args, f"wrote {out}" + _fmt(summary))
    return 0


def write_from_inputs(args: argparse.Namespace, operation: str) -> tuple[Path, dict[str, Any]]:
    """Run a domain operation that reads ``args.inputs`` and writes ``args.output`` atomically.

    Returns:
        The output path and the domain's summary of the run.
    """
    domain = plugins.get_domain(args.domain)
    if operation == "enhance":
        domain.check_options(args)
        if getattr(args, "weights", None):
            check_card_domain(args.weights, domain.name)
    inputs = _existing(args.inputs)
    out = check_output_path(args.output, [*inputs, *read_paths(args)])
    domain.check_output(Path(args.output))
    with atomic_path(out) as tmp:
        summary = getattr(domain, operation)(inputs, tmp, args)
    return out, dict(summary or {})


def train(args: argparse.Namespace) -> int:
    """``suite train DOMAIN [--config FILE] [--data PATH...] [--out RUN_DIR] [--resume]``."""
    _say(args, f"weights: {train_weights(args)}")
    return 0


def train_weights(args: argparse.Namespace) -> Path:
    """Train ``args.domain`` and return the weights file written."""
    domain = plugins.get_domain(args.domain)
    if args.data:
        _existing(args.data)
    return domain.train(args)


def evaluate(args: argparse.Namespace) -> int:
    """``suite evaluate DOMAIN --pred P --ref R [--json FILE]``: a metric per line."""
    for name, value in evaluate_metrics(args).items():
        print(f"{name}\t{value:.4f}")
    return 0


def evaluate_metrics(args: argparse.Namespace) -> dict[str, float]:
    """The domain's metrics of ``args.pred`` against ``args.ref`` (also to ``args.json``)."""
    domain = plugins.get_domain(args.domain)
    _existing([args.pred, args.ref])
    metrics = domain.evaluate(args.pred, args.ref, args)
    if args.json:
        out = check_output_path(args.json, read_paths(args))
        with atomic_path(out) as tmp:
            # strict JSON has no Infinity (PSNR of identical images) or NaN: written as null
            clean = {k: (v if math.isfinite(v) else None) for k, v in metrics.items()}
            tmp.write_text(json.dumps(clean, indent=2, allow_nan=False) + "\n")
    return metrics


def convert(args: argparse.Namespace) -> int:
    """``suite convert INPUT -o OUTPUT``: DICOM or NIfTI in, NIfTI or a DICOM series out."""
    from suite.io.volume import check_volume_output, read_volume, write_volume

    _existing([args.input])
    out = check_output_path(args.output, [args.input])
    check_volume_output(out)
    vol = read_volume(args.input, series_uid=args.series, recursive=args.recursive,
                      volume=args.volume)
    write_volume(out, vol.data, vol.meta, description="converted", derivation="format conversion")
    _say(args, f"wrote {out} ({'x'.join(map(str, vol.data.shape))} voxels)")
    return 0


def info(args: argparse.Namespace) -> int:
    """``suite info FILE``: a weights file's model card, a NIfTI volume's grid and provenance,
    a DICOM series' grid, or a raster's grid, georeference, bands and tags."""
    from suite.io.volume import is_dicom_file, is_nifti_path

    _existing([args.weights])
    if is_nifti_path(args.weights):
        print(json.dumps(_nifti_info(args.weights), indent=2, sort_keys=True))
        return 0
    if args.weights.suffix.lower() in RASTER_INFO_SUFFIXES:
        print(json.dumps(_raster_info(args.weights), indent=2, sort_keys=True))
        return 0
    path = args.weights
    if path.is_file() and is_dicom_file(path) and _is_dicom_photo(path):
        print(json.dumps(_photo_info(path), indent=2, sort_keys=True))
        return 0
    if path.is_dir() or path.suffix.lower() == ".dcm" or is_dicom_file(path):  # DICOMDIR too
        print(json.dumps(_dicom_info(path, args.recursive), indent=2, sort_keys=True))
        return 0
    if path.suffix.lower() in PHOTO_INFO_SUFFIXES:
        print(json.dumps(_photo_info(path), indent=2, sort_keys=True))
        return 0
    if path.suffix.lower() not in WEIGHTS_SUFFIXES:
        raise InputError(path, "suite info reads weights (.safetensors, .pt, .onnx), NIfTI, "
                               "DICOM, GeoTIFF and photographs (.png, .jpg); not this file")
    from suite.weights import read_card

    print(json.dumps(read_card(args.weights), indent=2, sort_keys=True))
    return 0


RASTER_INFO_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt")
PHOTO_INFO_SUFFIXES = (".png", ".jpg", ".jpeg")
WEIGHTS_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt", ".onnx")


def _is_dicom_photo(path: Path) -> bool:
    """A DICOM file without slice geometry (an ophthalmic or secondary-capture photograph)."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # the volume reader names the problem
        return False
    geometry = ("ImageOrientationPatient", "PerFrameFunctionalGroupsSequence")
    return "Rows" in ds and not any(tag in ds for tag in geometry)  # an image, no DICOMDIR


def _photo_info(path: Path) -> dict[str, Any]:
    """Size, channels, bit depth, orientation and colour profile of a photograph, as the suite
    reads it (decoded, so that a corrupt file is named)."""
    from suite.io.photo import read_photo

    meta = read_photo(path).meta
    return {"file": str(path), "format": meta.format, "width": meta.size[0],
            "height": meta.size[1], "mode": meta.mode, "bits": meta.bits_stored or meta.bit_depth,
            "orientation": meta.orientation or 1, "icc_profile": meta.icc_profile is not None,
            "dpi": list(meta.dpi) if meta.dpi else None}


def _raster_info(path: Path) -> dict[str, Any]:
    """What a GIS user checks before and after a run: grid, georeference, bands, tags."""
    from suite.io.raster import read_raster_meta

    meta = read_raster_meta(path)
    epsg = meta.crs.to_epsg() if meta.crs else None
    georef: dict[str, Any] = {"crs": f"EPSG:{epsg}" if epsg else (
        meta.crs.to_wkt() if meta.crs else None)}
    if meta.gcps:
        crs = meta.gcps_crs
        georef = {"gcps": len(meta.gcps), "gcps_crs": crs.to_string() if crs else None}
    elif meta.crs is not None:
        georef.update(pixel_size=list(meta.res), bounds=list(meta.bounds))
    return {
        "size": [meta.width, meta.height],
        "bands": meta.count,
        "dtype": meta.dtype,
        "nodata": meta.nodata,
        "descriptions": list(meta.descriptions),
        "georeference": georef,
        "rpcs": meta.rpcs is not None,
        "alpha_band": meta.alpha,
        "paletted": meta.paletted,
        "metadata": meta.metadata,
    }


def _dicom_info(path: Path, recursive: bool = False) -> dict[str, Any]:
    """A DICOM series' grid as the suite reads it (the same checks as every command), or, for
    a folder of several series or volumes, what it holds and how to choose."""
    import nibabel as nib

    from suite.io.dicom import list_series
    from suite.io.volume import read_volume

    series = list_series(path, recursive)
    if len(series) > 1 or series[0]["volumes"] != 1:
        return {"series": series,
                "choose": "--series NUMBER_OR_UID picks a series, --volume N a volume (0-based)"}
    vol = read_volume(path, recursive=recursive)
    first = (vol.meta.datasets or [{}])[0]
    return {
        "shape": list(vol.data.shape),
        "voxel_mm": [round(float(z), 6) for z in vol.meta.spacing],
        "affine_ras_mm": [[round(float(v), 6) for v in row] for row in vol.meta.affine[:3]],
        "orientation": "".join(nib.aff2axcodes(vol.meta.affine)),
        "modality": vol.meta.modality,
        "series_uid": vol.meta.series_uid,
        "series_description": str(first.get("SeriesDescription", "")),
        "value_range": [float(vol.data.min()), float(vol.data.max())],
    }


def _nifti_info(path: Path) -> dict[str, Any]:
    """Shape, voxel size, orientation, description and the suite's provenance record."""
    import nibabel as nib
    import numpy as np

    from suite.io.nifti import affine_mm, provenance

    try:
        img = nib.load(path)
    except Exception as exc:
        raise InputError(path, f"unreadable NIfTI ({exc})") from exc
    header = img.header
    affine, _ = affine_mm(img)  # what every command uses, not pixdim (they may disagree)
    return {
        "shape": list(img.shape),
        "voxel_mm": [round(float(z), 6) for z in np.linalg.norm(affine[:3, :3], axis=0)],
        "affine_ras_mm": [[round(float(v), 6) for v in row] for row in affine[:3]],
        "orientation": "".join(nib.aff2axcodes(img.affine)) if int(header["sform_code"])
        or int(header["qform_code"]) else "unknown (sform and qform codes 0; "
        f"{''.join(nib.aff2axcodes(img.affine))} is nibabel's guess from the voxel sizes)",
        "descrip": header["descrip"].item().decode(errors="replace"),
        "provenance": provenance(header),
    }


def list_domains(args: argparse.Namespace) -> int:
    """``suite domains``: name, task, input kinds, default weights, status."""
    entries = plugins.discover()
    if not entries:
        print("no domains installed")
    for name, entry in entries.items():
        if entry.domain is None:
            print(f"{name}\tBROKEN\t{entry.error}")
            continue
        dom = entry.domain
        weights = dom.default_weights()
        print(
            f"{name}\tok\t{dom.task}\tinputs: {', '.join(dom.input_kinds)}\t"
            f"weights: {weights.name if weights else 'none'}"
        )
    return 0


def _fmt(summary: dict[str, Any] | None) -> str:
    if not summary:
        return ""
    parts = [f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()]
    return " (" + ", ".join(parts) + ")"
