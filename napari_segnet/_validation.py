"""Checks of user-supplied arrays that raise one clear ``ValueError`` saying what was expected and given."""

from __future__ import annotations

import numpy as np


def as_array(x, name: str) -> np.ndarray:
    """``x`` as a non-empty numeric NumPy array (torch tensors are moved to the CPU first)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); expected at least one pixel")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    return arr


def check_labels(x, name: str = "labels", num_classes: int | None = None, ndim: tuple[int, ...] | None = None,
                 ignore_index: int | None = None) -> np.ndarray:
    """Integer class ids in [0, num_classes) (``ignore_index`` allowed); bool is taken as {0, 1}."""
    arr = as_array(x, name)
    if ndim is not None and arr.ndim not in ndim:
        raise ValueError(f"{name} must have {' or '.join(map(str, ndim))} dimensions, got shape {arr.shape}")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class ids, got dtype {arr.dtype}")
    if num_classes is not None:
        valid = arr if ignore_index is None else arr[arr != ignore_index]
        if valid.size and (valid.min() < 0 or valid.max() >= num_classes):
            raise ValueError(
                f"{name} must hold class ids 0…{num_classes - 1}, got values {valid.min()}…{valid.max()}"
            )
    elif arr.min() < 0:
        raise ValueError(f"{name} must hold non-negative class ids, got minimum {arr.min()}")
    return arr


def check_same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    """``ValueError`` unless ``a`` and ``b`` have the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {a.shape} and {b.shape}")


def check_labels_out(out, num_classes: int) -> None:
    """``ValueError`` unless ``out`` is a writable array whose dtype holds every class id 0…num_classes − 1."""
    if not hasattr(out, "shape") or not hasattr(out, "dtype"):
        raise ValueError(f"out must be an array (NumPy, memory-mapped, zarr), got {type(out).__name__}")
    largest = num_classes - 1
    if np.array(largest).astype(out.dtype) != largest:  # bool, or an integer type too narrow, would wrap
        raise ValueError(f"out of dtype {out.dtype} cannot hold class ids 0…{largest}; use uint8 (up to 256 "
                         "classes) or uint16")
    if not getattr(getattr(out, "flags", None), "writeable", True):
        raise ValueError("out is read-only; give a writable array")
