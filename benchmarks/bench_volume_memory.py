"""Peak memory of ``enhance ct-denoise`` on a NIfTI volume, as a multiple of the volume itself.

Builds 512 x 512 x D int16 volumes from the bundled CT series (its slices repeated), runs the
domain's ``enhance`` in a fresh subprocess per depth, and reports the peak RSS
(``resource.getrusage``) above the same subprocess's footprint after imports and weights, in
float32 volumes (4 bytes x voxels): the anchor is the volume the pipeline has to hold anyway.

Usage: ``python benchmarks/bench_volume_memory.py [--depths 32 96 160]``
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

from suite.io.volume import read_volume

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "ct" / "abdomen_ct_dicom"

CHILD = """
import json, resource, sys, time
import torch
from domains.ct_denoise.pipeline import load_ct_model
from pipelines.cli import main
load_ct_model(None, device="cpu")
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t = time.perf_counter()
code = main(["enhance", "ct-denoise", sys.argv[1], "-o", sys.argv[2], "--quiet", "--threads", "2"])
print(json.dumps({"code": code, "seconds": time.perf_counter() - t, "base_mib": base,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def volume_of_depth(folder: Path, depth: int) -> Path:
    """The sample series' slices repeated to ``depth`` slices, as int16 NIfTI."""
    vol = read_volume(SAMPLE)
    reps = -(-depth // vol.data.shape[2])
    data = np.concatenate([vol.data] * reps, axis=2)[..., :depth].astype(np.int16)
    img = nib.Nifti1Image(data, vol.meta.affine)
    img.header.set_slope_inter(1.0, 0.0)
    path = folder / f"ct_{depth}.nii.gz"
    nib.save(img, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[32, 96, 160])
    args = parser.parse_args()
    print("| slices | volume (float32, MiB) | peak above base (MiB) | in volumes | seconds |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for depth in args.depths:
            src = volume_of_depth(Path(tmp), depth)
            out = Path(tmp) / "o.nii.gz"
            run = subprocess.run([sys.executable, "-c", CHILD, str(src), str(out)],
                                 capture_output=True, text=True, check=True)
            r = json.loads(run.stdout.strip().splitlines()[-1])
            size = 512 * 512 * depth * 4 / 2**20
            extra = r["peak_mib"] - r["base_mib"]
            print(f"| {depth} | {size:.0f} | {extra:.0f} | {extra / size:.2f} | "
                  f"{r['seconds']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
