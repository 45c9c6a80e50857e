"""``suite demo``: every installed domain on the bundled sample data, with a one-page report.

The report (``report.html``) shows before/after pictures and metrics per domain, and the I/O
round-trip check (DICOM -> NIfTI -> DICOM) on the bundled CT series.
"""

from __future__ import annotations

import argparse
import html
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from suite import plugins
from suite.domain import DemoItem
from suite.errors import UsageError
from suite.io.atomic import check_output_path
from suite.sample import sample_data_dir


def demo(args: argparse.Namespace) -> int:
    """Run the demo into ``args.output``; exit 1 if any domain's demo failed."""
    chosen = _chosen(args.domains)  # a typo is refused before anything is written
    out = check_output_path(args.output, container=True)
    out.mkdir(exist_ok=True)
    results: dict[str, Any] = {"io_roundtrip": roundtrip_check(out)}
    items: dict[str, list[DemoItem]] = {}
    failures: dict[str, str] = {}
    for name in chosen:
        _log(args, f"demo: {name} ...")
        try:
            dom_dir = out / name
            dom_dir.mkdir(exist_ok=True)
            items[name] = plugins.get_domain(name).demo(dom_dir, args)
        except NotImplementedError as exc:
            failures[name] = f"skipped: {exc}"
        except Exception as exc:
            failures[name] = f"failed: {type(exc).__name__}: {exc}"
    results["domains"] = {n: [_item_json(i, out) for i in its] for n, its in items.items()}
    results["failures"] = failures
    (out / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "report.html").write_text(_report(results, items, out))
    _log(args, f"demo report: {out / 'report.html'}")
    return 1 if any(v.startswith("failed") for v in failures.values()) else 0


def _chosen(names: list[str] | None) -> list[str]:
    entries = plugins.discover()
    if names is None:
        return [n for n, e in entries.items() if e.ok]
    unknown = [n for n in names if n not in entries]
    if unknown:
        raise UsageError(f"--domains: unknown domain(s) {', '.join(unknown)}; "
                         f"known: {', '.join(entries)}")
    return names


def roundtrip_check(out: Path) -> dict[str, float | str]:
    """Convert the bundled DICOM series to NIfTI and back; report geometry and HU errors."""
    from suite.io.volume import read_volume, write_volume

    src = sample_data_dir() / "ct" / "abdomen_ct_dicom"
    vol = read_volume(src)
    nii = out / "roundtrip.nii.gz"
    write_volume(nii, vol.data, vol.meta, description="demo", derivation="round trip")
    back = read_volume(nii)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        series = Path(tmp) / "series"
        write_volume(series, back.data, vol.meta, description="demo", derivation="round trip")
        again = read_volume(series)
    return {
        "source": str(src),
        "shape": "x".join(map(str, vol.data.shape)),
        "nifti_affine_max_error_mm": float(np.abs(back.meta.affine - vol.meta.affine).max()),
        "nifti_max_error_HU": float(np.abs(back.data - vol.data).max()),
        "dicom_affine_max_error_mm": float(np.abs(again.meta.affine - vol.meta.affine).max()),
        "dicom_max_error_HU": float(np.abs(again.data - vol.data).max()),
    }


def _item_json(item: DemoItem, root: Path) -> dict[str, Any]:
    return {
        "title": item.title,
        "metrics": item.metrics,
        "note": item.note,
        "before": str(item.before_png.relative_to(root)),
        "after": str(item.after_png.relative_to(root)),
    }


def _report(results: dict[str, Any], items: dict[str, list[DemoItem]], root: Path) -> str:
    rt = results["io_roundtrip"]
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in rt.items()
    )
    parts = [
        "<!doctype html><meta charset='utf-8'><title>suite demo</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
        "img{max-width:32%;margin:2px}td{padding:2px 8px}</style>",
        "<h1>Enhancement suite: demo on bundled sample data</h1>",
        f"<h2>I/O round trip (DICOM &rarr; NIfTI &rarr; DICOM)</h2><table>{rows}</table>",
    ]
    for name, its in items.items():
        parts.append(f"<h2>{html.escape(name)}</h2>")
        parts.extend(_item_html(i, root) for i in its)
    for name, why in results["failures"].items():
        parts.append(f"<h2>{html.escape(name)}</h2><p>{html.escape(why)}</p>")
    return "\n".join(parts) + "\n"


def _item_html(item: DemoItem, root: Path) -> str:
    pics = [item.before_png, item.after_png] + ([item.reference_png] if item.reference_png else [])
    imgs = "".join(f"<img src='{html.escape(str(p.relative_to(root)))}'>" for p in pics)
    mets = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v:.4g}</td></tr>" for k, v in item.metrics.items()
    )
    caption = "before | after" + (" | reference" if item.reference_png else "")
    return (
        f"<h3>{html.escape(item.title)}</h3><div>{imgs}</div><p>{caption}</p>"
        f"<table>{mets}</table><p>{html.escape(item.note)}</p>"
    )


def _log(args: argparse.Namespace, text: str) -> None:
    if not getattr(args, "quiet", False):
        print(text, file=sys.stderr)
