"""Prediction: overlap-tile plan and tiling, the tile pipeline, TTA, devices, object size, suggestions and
object ids across dask blocks."""
