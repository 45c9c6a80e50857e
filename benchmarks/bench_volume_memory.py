"""Peak memory of ``enhance ct-denoise`` on a volume, as a multiple of the volume itself.

Builds 512 x 512 x D int16 NIfTI volumes (or, with ``--dicom``, DICOM series) from the bundled
CT series (its slices repeated), runs the
domain's ``enhance`` in a fresh subprocess per depth, and reports the peak RSS
(``VmHWM``) above the same subprocess's footprint after imports and weights, in
float32 volumes (4 bytes x voxels): the anchor is the volume the pipeline has to hold anyway.

``--read-only`` measures only the reader (``read_volume``), the base being its imports.

Usage: ``python benchmarks/bench_volume_memory.py [--depths 32 96 160] [--dicom] [--read-only]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

from suite.io.volume import read_volume, write_volume

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "ct" / "abdomen_ct_dicom"

# VmHWM, the high-water mark of this process's own memory: getrusage's ru_maxrss would also
# count the parent's resident memory at the fork, which survives the exec on Linux.
HWM = """
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
"""

CHILD = HWM + """
import json, sys, time
import torch
from domains.ct_denoise.pipeline import load_ct_model
from pipelines.cli import main
load_ct_model(None, device="cpu")
base = hwm()
t = time.perf_counter()
code = main(["enhance", "ct-denoise", sys.argv[1], "-o", sys.argv[2], "--quiet", "--threads", "2"])
print(json.dumps({"code": code, "seconds": time.perf_counter() - t, "base_mib": base,
                  "peak_mib": hwm()}))
"""

CHILD_READ = HWM + """
import json, sys, time
import pydicom, nibabel
from suite.io.volume import read_volume
base = hwm()
t = time.perf_counter()
read_volume(sys.argv[1])
print(json.dumps({"seconds": time.perf_counter() - t, "base_mib": base, "peak_mib": hwm()}))
"""


def volume_of_depth(folder: Path, depth: int, dicom: bool) -> Path:
    """The sample series' slices repeated to ``depth`` slices, as int16 NIfTI or DICOM."""
    vol = read_volume(SAMPLE)
    reps = -(-depth // vol.data.shape[2])
    data = np.concatenate([vol.data] * reps, axis=2)[..., :depth].astype(np.int16)
    if dicom:  # a derived series on the longer grid, each slice with a source slice's header
        return write_volume(folder / f"ct_{depth}", data, vol.meta, "bench", "bench")
    img = nib.Nifti1Image(data, vol.meta.affine)
    img.header.set_slope_inter(1.0, 0.0)
    path = folder / f"ct_{depth}.nii.gz"
    nib.save(img, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[32, 96, 160])
    parser.add_argument("--dicom", action="store_true", help="DICOM series instead of NIfTI")
    parser.add_argument("--read-only", action="store_true",
                        help="only read the volume (suite.io.volume.read_volume), no network")
    args = parser.parse_args()
    print("| slices | volume (float32, MiB) | peak above base (MiB) | in volumes | seconds |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for depth in args.depths:
            src = volume_of_depth(Path(tmp), depth, args.dicom)
            out = Path(tmp) / "o.nii.gz"
            child = CHILD_READ if args.read_only else CHILD
            run = subprocess.run([sys.executable, "-c", child, str(src), str(out)],
                                 capture_output=True, text=True, check=True)
            r = json.loads(run.stdout.strip().splitlines()[-1])
            size = 512 * 512 * depth * 4 / 2**20
            extra = r["peak_mib"] - r["base_mib"]
            print(f"| {depth} | {size:.0f} | {extra:.0f} | {extra / size:.2f} | "
                  f"{r['seconds']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
