"""Readers and writers that carry metadata beside every array: DICOM, NIfTI, photos, rasters."""
