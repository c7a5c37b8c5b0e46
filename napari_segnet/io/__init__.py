"""Files: atomic writes, model metadata and checkpoints, image files (TIFF, PNG, zarr, OME-Zarr)."""
