"""Numerics on arrays (numpy/torch): image axes, normalisation, losses, weight map, metrics, instances, augmentation."""
