"""``suite batch DOMAIN INPUTS... -o OUT_DIR``: many inputs through one domain on Dask distributed.

With no ``--scheduler`` an in-process local cluster runs (worker processes, one thread each,
``--workers N`` or one per core); with ``--scheduler tcp://host:8786`` the tasks go to that
cluster, whose workers must see the same paths. One task per input file or series folder; a
raster larger than the window-group size, for a domain with ``prepare_windows`` and
``enhance_window`` (:mod:`pipelines.batch_windows`), becomes one task per window group plus one
assembling task. Outputs are atomic, a run manifest records every item
(:mod:`pipelines.batch_items`), ``--resume`` skips what is done and unchanged, a lost worker's
task is rescheduled and retried, and a bad input fails only itself: it is reported at the end
with its one-line reason and makes the exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipelines import batch_windows as bw
from pipelines.batch_items import (
    Item,
    Manifest,
    domain_options,
    expand_inputs,
    fingerprint,
    library_versions,
    plan_items,
    sha256_path,
    weights_record,
)
from suite import plugins
from suite.domain import Domain
from suite.engine.device import pick_device
from suite.errors import InputError, UsageError
from suite.io.atomic import atomic_path, check_output_path
from suite.weights import check_card_domain

RETRIES = 2
"""Extra tries of a task that raised (a worker that dies is handled by the scheduler too)."""
PARTS = ".batch_parts"
"""Folder under the output folder holding the window groups of split rasters while they run."""
RASTER_SUFFIXES = (".tif", ".tiff")


# ---- tasks (run on the workers) -------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _item_inputs(domain: Domain, source: Path, options: argparse.Namespace) -> Any:
    """The domain's ``enhance`` inputs and options for one item (optional ``batch_inputs`` hook)."""
    hook = getattr(domain, "batch_inputs", None)
    return hook(source, options) if callable(hook) else ([source], options)


def run_item(domain: Domain, source: Path, output: Path, options: argparse.Namespace) -> dict:
    """Enhance one item into ``output`` atomically; bad input is a result, not an exception."""
    start = time.perf_counter()
    try:
        inputs, opts = _item_inputs(domain, source, options)
        # a domain names side outputs (cloud-inpaint's --write-mask) after ``options.output``,
        # which is the batch's folder: each item wrote the same file beside it
        opts = argparse.Namespace(**{**vars(opts), "output": output})
        with atomic_path(output) as tmp:
            summary = domain.enhance(inputs, tmp, opts)
    except (InputError, UsageError) as exc:
        return {"status": "failed", "reason": _one_line(exc), "seconds": _since(start)}
    return {"status": "ok", "seconds": _since(start), "summary": summary, "worker": _worker()}


def prepare_item(domain: Any, source: Path, options: argparse.Namespace) -> dict:
    """Fit a split raster's global state once (``prepare_windows``)."""
    start = time.perf_counter()
    try:
        inputs, opts = _item_inputs(domain, source, options)
        meta, state = domain.prepare_windows(inputs, opts)
    except (InputError, UsageError) as exc:
        return {"status": "failed", "reason": _one_line(exc), "seconds": _since(start)}
    return {"status": "ok", "prepared": (meta, state), "seconds": _since(start), "cog": _cog(opts)}


def write_group(domain: Any, prepared: dict, strip: Any, part: Path) -> dict:
    """One window group of a split raster (see :func:`pipelines.batch_windows.write_group`)."""
    return bw.write_group(domain, prepared["prepared"], strip, part)


def assemble_item(prepared: dict, strips: list, groups: list[dict], output: Path) -> dict:
    """Assemble a split raster's groups into its output (a single task: no write races)."""
    done = bw.assemble(prepared["prepared"][0], strips, groups, output, prepared["cog"])
    seconds = done["seconds"] + float(prepared["seconds"])
    return {"status": "ok", "seconds": seconds, "groups": done["groups"], "worker": _worker()}


def _since(start: float) -> float:
    return round(time.perf_counter() - start, 4)


def _cog(options: argparse.Namespace) -> bool:
    return bool(getattr(options, "cog", False))


def _worker() -> str | None:
    with contextlib.suppress(ValueError, ImportError):
        from distributed import get_worker

        return str(get_worker().address)
    return None


# ---- the client side ------------------------------------------------------------------------


def _say(args: argparse.Namespace, text: str) -> None:
    if not getattr(args, "quiet", False):
        print(text, file=sys.stderr)


def _has_bokeh() -> bool:
    return importlib.util.find_spec("bokeh") is not None


@contextlib.contextmanager
def connect(args: argparse.Namespace) -> Iterator[Any]:
    """A Dask client: to ``args.scheduler``, or to a local cluster of worker processes.

    Raises:
        UsageError: the scheduler cannot be reached.
    """
    from distributed import Client, LocalCluster

    if args.scheduler:
        try:
            client = Client(args.scheduler, timeout="15s")
        except OSError as exc:
            raise UsageError(f"cannot reach the Dask scheduler {args.scheduler}: {exc}") from None
        with client:
            yield client
        return
    workers = args.workers or os.cpu_count() or 1
    with _interrupts_ignored():  # the worker processes inherit it; Ctrl-C is the main's to handle
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",  # a free port: several batches may run at once
            silence_logs=logging.ERROR,
        )
    with cluster, Client(cluster) as client:
        yield client


@contextlib.contextmanager
def _interrupts_ignored() -> Iterator[None]:
    """Ignore SIGINT while worker processes start, so that they inherit the ignoring.

    On Ctrl-C the terminal interrupts the whole process group: every worker printed its own
    KeyboardInterrupt traceback (some 70 lines) while the main process shut the cluster down.
    A Python started with SIGINT ignored keeps ignoring it.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _announce(client: Any, args: argparse.Namespace, count: int) -> None:
    """Print where the tasks go and, when the scheduler serves one, the dashboard address."""
    info = client.scheduler_info()
    workers = len(info.get("workers", {}))
    _say(args, f"batch: {count} item(s) on {info.get('address')} ({workers} worker(s))")
    # The scheduler serves HTTP either way; the dashboard pages exist only with bokeh there.
    if "dashboard" in info.get("services", {}) and client.run_on_scheduler(_has_bokeh):
        _say(args, f"dashboard: {client.dashboard_link}")


def _is_large(domain: Domain, item: Item, group_pixels: int) -> bool:
    """Whether an item is a raster above the window-group size for a windowed domain."""
    if not (bw.is_windowed(domain) and item.source.suffix.lower() in RASTER_SUFFIXES):
        return False
    from suite.io.raster import read_raster_meta

    try:
        meta = read_raster_meta(item.source)
    except InputError:
        return False  # the single-item path reports it as a bad input
    return meta.width * meta.height > group_pixels


class Runner:
    """Submits the items, follows them as they finish, and records each in the manifest."""

    def __init__(
        self,
        client: Any,
        domain: Domain,
        args: argparse.Namespace,
        manifest: Manifest,
        base: dict[str, Any],
    ) -> None:
        from distributed import as_completed

        self.client, self.domain, self.args = client, domain, args
        self.manifest, self.base = manifest, base
        self.options = worker_options(args)
        self.group_pixels = int(getattr(args, "window_group", None) or bw.GROUP_PIXELS)
        self.pending: dict[Any, tuple[str, Item, Any]] = {}
        self.done = as_completed()

    def _submit(self, kind: str, item: Item, extra: Any, fn: Any, *fargs: Any) -> Any:
        future = self.client.submit(fn, *fargs, retries=RETRIES, pure=False)
        if kind != "group":
            self.pending[future] = (kind, item, extra)
            self.done.add(future)
        return future

    def submit(self, item: Item) -> None:
        """Submit one item: a single task, or a preparing task for a split raster."""
        if _is_large(self.domain, item, self.group_pixels):
            self._submit(
                "prepare", item, None, prepare_item, self.domain, item.source, self.options
            )
        else:
            self._submit(
                "item", item, None, run_item, self.domain, item.source, item.output, self.options
            )

    def _split(self, item: Item, prepared: Any, result: dict) -> None:
        """Submit a prepared raster's group tasks and the task that assembles them."""
        strips = bw.group_strips(result["prepared"][0], self.group_pixels)
        folder = item.output.parent / PARTS / item.name
        groups = [
            self._submit(
                "group", item, None, write_group, self.domain, prepared, s, folder / f"{k:05d}.npy"
            )
            for k, s in enumerate(strips)
        ]
        _say(self.args, f"{item.name}: split into {len(strips)} window group(s)")
        self._submit(
            "assemble",
            item,
            (prepared, groups),
            assemble_item,
            prepared,
            strips,
            groups,
            item.output,
        )

    def run(self, items: list[Item], bar: Any) -> None:
        """Run ``items`` to the end, recording each as it finishes."""
        for item in items:
            self.submit(item)
        for future in self.done:
            kind, item, _ = self.pending.pop(future)
            try:
                result = future.result()
            except Exception as exc:  # a task that kept failing after its retries
                result = {"status": "error", "reason": f"{type(exc).__name__}: {_one_line(exc)}"}
            if kind == "prepare" and result["status"] == "ok":
                self._split(item, future, result)
                continue
            self._finish(item, result, bar)

    def _finish(self, item: Item, result: dict, bar: Any) -> None:
        entry = {
            **self.base,
            "source": str(item.source),
            "output": str(item.output),
            "input_sha256": item.checksum,
            **{k: v for k, v in result.items() if k not in ("prepared", "cog")},
        }
        if result["status"] == "ok":
            entry["output_sha256"] = sha256_path(item.output)
        self.manifest.record(item.name, entry)
        bar.update(1)
        if getattr(self.args, "quiet", False):
            return  # failures are listed again at the end, quiet or not
        why = f": {result['reason']}" if "reason" in result else ""
        bar.write(
            f"{result['status']:>6} {item.name} ({result.get('seconds', 0):.2f} s){why}",
            file=sys.stderr,
        )


def worker_options(args: argparse.Namespace) -> argparse.Namespace:
    """The options sent to the workers: the domain's and the common ones, no callables."""
    keep = {k: v for k, v in vars(args).items() if not callable(v)}
    return argparse.Namespace(**{**keep, "quiet": True})


def _out_dir(args: argparse.Namespace) -> Path:
    out = check_output_path(args.output, [Path(p) for p in args.inputs if "*" not in str(p)],
                            container=True)
    if out.exists() and not out.is_dir():
        raise InputError(out, "output must be a folder for a batch")
    out.mkdir(exist_ok=True)
    return out


def _header(domain: Domain, args: argparse.Namespace, options: dict[str, Any]) -> dict[str, Any]:
    return {
        "domain": domain.name,
        "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "scheduler": args.scheduler or f"local ({args.workers or os.cpu_count()} workers)",
        "options": options,
        "options_sha256": fingerprint(options),
        "weights": weights_record(domain, args),
        "library_versions": library_versions(),
    }


def _resume(manifest: Manifest, items: list[Item], base: dict[str, Any]) -> list[Item]:
    """Record items that an earlier run finished with the same facts; return the rest."""
    previous = manifest.load_previous()
    todo = []
    for item in items:
        entry = previous.get(item.name)
        if entry is not None and manifest.is_done(entry, item, base):
            manifest.items[item.name] = {**entry, "status": "skipped"}
        else:
            todo.append(item)
    return todo


def _report(manifest: Manifest, args: argparse.Namespace) -> int:
    """Print the summary and failures (one line each); return the exit code."""
    entries = manifest.items.values()
    counts = {
        s: sum(e["status"] == s for e in entries) for s in ("ok", "skipped", "failed", "error")
    }
    _say(
        args,
        "batch: "
        + ", ".join(f"{v} {k}" for k, v in counts.items() if v)
        + f"; manifest {manifest.path}",
    )
    for name, entry in sorted(manifest.items.items()):
        if entry["status"] in ("failed", "error"):
            print(f"{entry['status']}: {name}: {entry['reason']}", file=sys.stderr)
    return 2 if counts["failed"] else 1 if counts["error"] else 0


def _remove_partials(out_dir: Path) -> None:
    """Remove temporaries left by workers that were killed while writing, and empty folders."""
    with contextlib.suppress(OSError):
        (out_dir / PARTS).rmdir()  # only when empty: a failed split keeps its groups to inspect
    for path in out_dir.glob(".*.partial*"):
        with contextlib.suppress(OSError):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


def batch(args: argparse.Namespace) -> int:
    """Run ``suite batch``; return 0, 2 if any item had bad input, 1 if any failed otherwise."""
    domain = plugins.get_domain(args.domain)
    domain.check_options(args)
    if getattr(args, "weights", None):
        check_card_domain(args.weights, domain.name)  # before the output folder
    if not args.scheduler and getattr(args, "device", "auto") != "auto":
        pick_device(args.device)  # local workers see this machine's devices: refuse early
    skipped: list[Path] = []
    sources = expand_inputs(args.inputs, domain, args, skipped)  # before the output folder
    if skipped:
        names = ", ".join(p.name for p in skipped[:3]) + (", ..." if len(skipped) > 3 else "")
        _say(args, f"skipped {len(skipped)} sidecar, note or hidden file(s) or sub-folder(s) "
                   f"(sub-folders are not searched): {names}")
    if not sources:
        raise InputError(args.inputs[0], "no input files besides sidecar and note files")
    out_dir = _out_dir(args)
    items = plan_items(sources, out_dir, domain)
    header = _header(domain, args, domain_options(args))
    manifest = Manifest(out_dir, header)
    base = {
        "options_sha256": header["options_sha256"],
        "weights_sha256": header["weights"]["sha256"],
    }
    todo = _resume(manifest, items, base) if args.resume else items
    if len(todo) < len(items):
        _say(args, f"resume: {len(items) - len(todo)} item(s) already done, skipped")
    kept = manifest.keep_earlier({item.name for item in items})
    if kept:
        _say(args, f"manifest: kept {kept} entry(ies) of earlier runs in {out_dir}")
    manifest.save()
    if todo:
        try:
            _run(args, domain, manifest, base, todo)
        except KeyboardInterrupt:
            print(f"batch: interrupted; {len(manifest.items)} item(s) recorded in {manifest.path}"
                  "; rerun with --resume to do the rest", file=sys.stderr)
            raise
    _remove_partials(out_dir)
    return _report(manifest, args)


def _run(
    args: argparse.Namespace,
    domain: Domain,
    manifest: Manifest,
    base: dict[str, Any],
    todo: list[Item],
) -> None:
    from tqdm import tqdm

    with connect(args) as client:
        _announce(client, args, len(todo))
        with tqdm(total=len(todo), unit="item", disable=args.quiet, file=sys.stderr) as bar:
            Runner(client, domain, args, manifest, base).run(todo, bar)
