"""Time the U-Net border weight map on a 512² label image with ~170 objects (target: ≤ 0.1 s on one core).

Stores this implementation (distance transforms only near each object) next to the naïve one (a whole-image
distance transform per object), and the largest difference between the two, in
``benchmarks/results/weightmap.json`` (docs/benchmarks.md's table is generated from it).
Run: python -m benchmarks.weightmap
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402
from skimage.draw import disk  # noqa: E402

from napari_segnet.numerics.weightmap import object_map, unet_weight_map  # noqa: E402

from . import records  # noqa: E402


def nuclei_like(shape=(512, 512), n=200, seed=0) -> np.ndarray:
    """Random discs of radius 5–9 px, two classes; overlapping discs merge."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint8)
    for _ in range(n):
        rr, cc = disk(tuple(rng.integers(8, shape[0] - 8, 2)), rng.integers(5, 10), shape=shape)
        labels[rr, cc] = rng.integers(1, 3)
    return labels


def naive(labels: np.ndarray, w0: float = 10, sigma: float = 5) -> np.ndarray:
    objects = object_map(labels)
    d = np.sort([ndimage.distance_transform_edt(objects != k) for k in range(1, objects.max() + 1)], axis=0)
    return np.where(labels == 0, 1 + w0 * np.exp(-((d[0] + d[1]) ** 2) / (2 * sigma**2)), 1.0)


def best_of(fn, repeats: int) -> tuple[float, np.ndarray]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    labels = nuclei_like()
    n_objects = int(object_map(labels).max())
    fast_s, fast = best_of(lambda: unet_weight_map(labels), 10)
    naive_s, ref = best_of(lambda: naive(labels), 1)
    rows = [{"implementation": "`unet_weight_map` (windowed)", "seconds": round(fast_s, 4),
             "max_abs_difference": float(np.abs(fast - ref).max())},
            {"implementation": "one full distance transform per object", "seconds": round(naive_s, 3),
             "max_abs_difference": 0.0}]
    print(f"512×512 labels, {n_objects} objects, {platform.machine()}, 1 thread: {rows}")
    record = {"benchmark": "weightmap", "shape": [512, 512], "objects": n_objects, "threads": 1, "rows": rows}
    print(f"wrote {records.write('weightmap', record)}")


if __name__ == "__main__":
    main()
