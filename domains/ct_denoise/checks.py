"""Refusals specific to CT: not CT, not in HU, not a volume."""

from __future__ import annotations

import numpy as np

from suite.errors import InputError
from suite.io.volume import Volume


def check_ct_volume(vol: Volume, force: bool = False) -> None:
    """Refuse inputs the CT model must not see, with the reason.

    Raises:
        InputError: a 2D image, NaN or infinite voxels, a non-CT DICOM modality (unless
            ``force``), or values that are clearly not Hounsfield units (unless ``force``).
    """
    path = vol.meta.source_path
    if vol.data.ndim != 3 or min(vol.data.shape) < 2:
        raise InputError(path, f"a 3D CT volume is needed, got shape {vol.data.shape}")
    bad = int(np.count_nonzero(~np.isfinite(vol.data)))
    if bad:  # one NaN spreads through every patch that holds it, and hides from the HU check
        raise InputError(path, f"{bad} of {vol.data.size} voxels are NaN or Inf")
    modality = vol.meta.modality
    if modality is not None and modality != "CT" and not force:
        raise InputError(
            path,
            f"modality is {modality}, not CT: the CT model was trained on "
            "Hounsfield units (pass --force to run it anyway)",
        )
    if not force:
        _check_hu(vol)


def _check_hu(vol: Volume) -> None:
    """Real CT has air near -1000 HU and soft tissue near 0-100 HU."""
    low, high = np.percentile(vol.data, [1, 99])
    if low > -500 or high - low < 300:
        # Stored scanner values put air at 0 and water near 1000 (or 1024): a conversion that
        # dropped the rescale intercept, which only the user can put back.
        offset = (" (air near 0 and tissue near 1000: raw scanner values without the -1024 "
                  "HU rescale intercept?)" if abs(low) < 100 and high > 800 else "")
        raise InputError(
            vol.meta.source_path,
            f"values span [{low:.4g}, {high:.4g}] (1st-99th percentile), which is "
            f"not Hounsfield units (no air near -1000){offset}; pass --force if it is CT",
        )
