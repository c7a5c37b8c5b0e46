"""A very large OME-Zarr image in the dock: peak memory and time until the visible region is predicted.

The image is made by code: a ``--size``² mosaic of the shipped cells3d nuclei slices (256², flipped by position
so that tiles differ; ``napari_segnet.sample_data``, BSD-3-Clause), written chunk by chunk as an OME-Zarr with a
pyramid (levels halved down to ≤ 2048 px), never held whole. napari opens it lazily as a multiscale layer; the dock
(shipped default model, synchronous run) presses Predict with the view on a 1024² window at the image's centre,
then a stroke is painted there and Fine-tune pressed. Measured: the process's resident memory above napari's own
(sampled every 20 ms; the baseline is taken with the viewer, the layer and the dock open), the time from pressing
Predict until the first block is shown (the normalisation's strided sample of the whole image comes before it: every
chunk is decompressed once) and until every block meeting the visible region is written and the layer refreshed,
the time per block, the fine-tune's time and memory. ``--blocks N`` stops the prediction after N blocks (Stop; for
short runs).

Run (needs a display; ``xvfb-run -a`` gives one): ``python -m benchmarks.big_image --size 20000`` — results go to
``benchmarks/results/big_image_<size>.json`` with the machine and date. The 20 000² image takes about 0.8 GB on
disk in ``--folder`` (default: a temporary folder, removed at the end).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from . import records

CHUNK = 1024


def write_mosaic(path: Path, size: int) -> list[str]:
    """Write the ``size``² uint16 mosaic as an OME-Zarr (NGFF 0.4) with its pyramid; returns the level paths."""
    import dask.array as da
    import zarr
    from napari_segnet.sample_data import nuclei

    slices = nuclei()[0]
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    level0 = group.create_array("0", shape=(size, size), chunks=(CHUNK, CHUNK), dtype=np.uint16)
    for y in range(0, size, CHUNK):
        for x in range(0, size, CHUNK):
            level0[y:y + CHUNK, x:x + CHUNK] = _chunk(slices, y, x, min(CHUNK, size - y), min(CHUNK, size - x))
    levels, side = ["0"], size
    while side > 2048:
        previous = da.from_zarr(group[levels[-1]])
        side = (side + 1) // 2
        name = str(len(levels))
        level = previous[: side * 2, : side * 2].astype(np.float32)
        level = da.coarsen(np.mean, level, {0: 2, 1: 2}, trim_excess=True).astype(np.uint16).rechunk(CHUNK)
        target = group.create_array(name, shape=level.shape, chunks=(CHUNK, CHUNK), dtype=np.uint16)
        da.store(level, target, lock=False)
        levels.append(name)
    group.attrs["multiscales"] = [{"version": "0.4", "name": path.stem, "axes": [
        {"name": "y", "type": "space"}, {"name": "x", "type": "space"}], "datasets": [
        {"path": n, "coordinateTransformations": [{"type": "scale", "scale": [2.0 ** i] * 2}]}
        for i, n in enumerate(levels)]}]
    return levels


def _chunk(slices: np.ndarray, y: int, x: int, h: int, w: int) -> np.ndarray:
    """Rows [y, y+h), columns [x, x+w) of the mosaic: slice (ty·7 + tx·3) mod 36 of each 256² tile, flipped by
    the tile's parity."""
    out = np.empty((h, w), np.uint16)
    for ty in range(y // 256, (y + h - 1) // 256 + 1):
        for tx in range(x // 256, (x + w - 1) // 256 + 1):
            tile = slices[(ty * 7 + tx * 3) % len(slices)]
            tile = tile[::-1] if ty % 2 else tile
            tile = tile[:, ::-1] if tx % 2 else tile
            r0, c0 = max(ty * 256, y), max(tx * 256, x)
            r1, c1 = min((ty + 1) * 256, y + h), min((tx + 1) * 256, x + w)
            out[r0 - y:r1 - y, c0 - x:c1 - x] = tile[r0 - ty * 256:r1 - ty * 256, c0 - tx * 256:c1 - tx * 256]
    return out


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS:"))


class PeakSampler:
    """The largest resident memory (MiB) seen every 20 ms while the ``with`` block runs."""

    def __enter__(self):
        self.peak, self._stop = rss_mb(), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *_):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def timed_blocks(record: dict, limit: int | None):
    """A stand-in for ``big_image.predict_blocks`` that records when each block was written and shown (the time
    the dock asks for the next update, after refreshing the layer) and stops after ``limit`` blocks."""
    from napari_segnet import big_image

    def predict_blocks(*args, **kwargs):
        steps = big_image.predict_blocks(*args, **kwargs)
        first = kwargs.get("first")
        for item in steps:
            yield item
            if isinstance(item, big_image.BlockWritten):
                record["blocks"].append((time.perf_counter(), _meets(item.region, first)))
                if limit is not None and item.done >= limit:
                    steps.close()
                    return
    return predict_blocks


def _meets(region, first) -> bool:
    _, rows, cols = first
    return region.rows[0] < rows[1] and rows[0] < region.rows[1] and region.cols[0] < cols[1] \
        and cols[0] < region.cols[1]


def run(size: int, folder: Path, blocks: int | None, steps: int) -> dict:
    import dask.array as da
    import napari
    import zarr

    from napari_segnet._widgets import predict_tab, runner
    from napari_segnet._widgets.dock import SegNetWidget

    os.environ[runner.SYNC_ENV] = "1"
    start = time.perf_counter()
    levels = write_mosaic(folder / "mosaic.ome.zarr", size)
    made = time.perf_counter() - start
    group = zarr.open_group(str(folder / "mosaic.ome.zarr"), mode="r")
    viewer = napari.Viewer(show=False)
    layer = viewer.add_image([da.from_zarr(group[n]) for n in levels], multiscale=True, name="mosaic")
    dock = SegNetWidget(viewer)
    viewer.window.add_dock_widget(dock)
    dock.reset_choices()
    dock.image_layer.value = layer
    viewer.scene.camera.center, viewer.scene.camera.zoom = (size / 2, size / 2), min(viewer.canvas.size) / 1024
    record = {"blocks": []}
    predict_tab.predict_blocks = timed_blocks(record, blocks)
    baseline = rss_mb()
    with PeakSampler() as predicting:
        pressed = time.perf_counter()
        dock.predict()
    times = [t - pressed for t, _ in record["blocks"]]
    visible = [t - pressed for t, meets in record["blocks"] if meets]
    labels = viewer.layers["mosaic prediction"]
    viewer.scene.camera.center, viewer.scene.camera.zoom = (size / 2, size / 2), min(viewer.canvas.size) / 1024
    shown = dock.predict_tab.visible(layer, labels)
    with PeakSampler() as ranking:
        started = time.perf_counter()
        dock.live_mode._next_big(layer)  # what the Next button calls for a big image
        ranked = time.perf_counter() - started
    labels.brush_size = 15
    centre = (size // 2, size // 2)
    labels.paint(centre, 1 - int(labels.data[centre]))
    dock.steps.value = steps
    with PeakSampler() as tuning:
        started = time.perf_counter()
        dock.finetune()
        tuned = time.perf_counter() - started
    viewer.close()
    return {"size": size, "levels": len(levels), "seconds_to_write_image": round(made, 1),
            "napari_rss_mb": round(baseline), "predict_peak_over_napari_mb": round(predicting.peak - baseline),
            "blocks_written": len(times), "seconds_to_first_block": round(times[0], 2) if times else None,
            "seconds_to_visible_region": round(max(visible), 2) if visible else None,
            "visible_blocks": len(visible), "seconds_per_block": round(float(np.median(np.diff([0] + times))), 3)
            if times else None, "finetune_seconds": round(tuned, 1), "finetune_steps": steps,
            "finetune_peak_over_napari_mb": round(tuning.peak - baseline), "next_seconds": round(ranked, 2),
            "next_ranked_pixels": (shown[1][1] - shown[1][0]) * (shown[2][1] - shown[2][0]),
            "next_peak_over_napari_mb": round(ranking.peak - baseline),
            "versions": dock.segmenter.available_versions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20000, help="side of the square image (px)")
    parser.add_argument("--folder", type=Path, help="where to write the OME-Zarr (default: a temporary folder)")
    parser.add_argument("--blocks", type=int, help="stop the prediction after this many blocks")
    parser.add_argument("--steps", type=int, default=20, help="fine-tune steps after the stroke")
    parser.add_argument("--out", type=Path, help="results JSON (default benchmarks/results/big_image_<size>.json)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        result = run(args.size, Path(folder), args.blocks, args.steps)
    print(json.dumps(result, indent=1))
    print(f"wrote {records.write(f'big_image_{args.size}', result, args.out)}")


if __name__ == "__main__":
    main()
