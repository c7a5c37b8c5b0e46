"""Instance ids across the blocks of a distributed prediction: components per block, merged across block faces.

Decision: block-wise instances are ``label_instances(labels, split=False, grow=0)`` of the whole image, id for id
— the face-connected components of each class, the size filter included (``min_size="auto"`` measures the typical
object on the merged objects), numbered as on one machine (slice after slice, class after class, in raster
order of each object's first pixel). The watershed split and the grow-back are left out: both look at a whole
object (its distance transform, its neighbours), which a block may hold only part of.

How: each block labels its own components (local ids 1…n) and returns, besides writing them into the output,
a few numbers per object (class, pixel count, first pixel's flat index) and the ids on its four faces. On the
client, an object's global id is its block's offset + its local id; the objects that touch across a face (same
class on both sides of it) are joined by a graph's connected components (the merge); the size filter and the
numbering then give a table global id → final id, which a second pass applies block by block. What the client
holds is O(objects + block perimeters), never a block's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..numerics.instances import MIN_SIZE_FRACTION, pixel_median_area
from .tiling import Region


@dataclass
class BlockObjects:
    """The objects one block holds (local ids 1…n): their class, pixel count and first pixel, and its faces."""

    region: Region
    classes: np.ndarray  # (n,) class id of local id i + 1
    sizes: np.ndarray  # (n,) pixels
    first: np.ndarray  # (n,) flat index y * width + x (in the whole plane) of the first pixel in raster order
    faces: dict[str, np.ndarray]  # top, bottom (w,), left, right (h,): local ids on the block's outer rows/columns


def block_objects(labels: np.ndarray, region: Region, width: int) -> tuple[np.ndarray, BlockObjects]:
    """(local ids int32 (h, w), their summary) of one block's class ids ``labels`` (h, w) at ``region`` of a
    plane ``width`` pixels wide: the face-connected components of each class, classes in increasing order."""
    local = np.zeros(labels.shape, np.int32)
    classes = []
    for cls in np.unique(labels[labels > 0]):
        objects, n = ndimage.label(labels == cls)
        local[objects > 0] = objects[objects > 0] + len(classes)
        classes += [int(cls)] * n
    n = len(classes)
    rows, cols = np.indices(labels.shape, dtype=np.int64)
    flat = (rows + region.rows[0]) * width + cols + region.cols[0]
    index = np.arange(1, n + 1)
    first = np.asarray(ndimage.minimum(flat, local, index), np.int64) if n else np.zeros(0, np.int64)
    faces = {"top": local[0], "bottom": local[-1], "left": local[:, 0], "right": local[:, -1]}
    summary = BlockObjects(region, np.asarray(classes, np.int64), np.bincount(local.ravel(), minlength=n + 1)[1:],
                           first, {k: v.copy() for k, v in faces.items()})
    return local, summary


def merge_table(blocks: list[BlockObjects], min_size: int | str = "auto") -> tuple[list[int], np.ndarray]:
    """(offset of each block's local ids, table global id → final id (int32; 0 = removed)) for ``blocks`` that
    tile their planes: objects touching across a face are merged, those under ``min_size`` pixels (``"auto"``:
    MIN_SIZE_FRACTION × the class's typical area, as ``label_instances``) removed, the rest numbered 1…K."""
    offsets = np.concatenate([[0], np.cumsum([len(b.classes) for b in blocks])]).astype(np.int64)
    n = int(offsets[-1])
    cls = np.concatenate([[0], *[b.classes for b in blocks]]).astype(np.int64)
    pairs = _face_pairs(blocks, offsets, cls)
    graph = coo_matrix((np.ones(len(pairs[0])), pairs), shape=(n + 1, n + 1))
    _, comp = connected_components(graph, directed=False)
    sizes = np.bincount(comp, weights=np.concatenate([[0], *[b.sizes for b in blocks]]), minlength=n + 1)
    first = np.full(n + 1, np.iinfo(np.int64).max)
    np.minimum.at(first, comp, np.concatenate([[-1], *[b.first for b in blocks]]))
    plane = np.zeros(n + 1, np.int64)
    plane[comp] = np.concatenate([[-1], *[np.full(len(b.classes), b.region.planes[0]) for b in blocks]])
    merged_cls = np.zeros(n + 1, np.int64)
    merged_cls[comp] = cls
    roots = np.unique(comp[1:])
    keep = roots[sizes[roots] >= _min_sizes(roots, sizes, merged_cls, min_size)]
    final = np.zeros(n + 1, np.int32)
    final[keep[np.lexsort((first[keep], merged_cls[keep], plane[keep]))]] = np.arange(1, len(keep) + 1)
    table = final[comp]
    table[0] = 0
    return [int(o) for o in offsets[:-1]], table


def _min_sizes(roots: np.ndarray, sizes: np.ndarray, classes: np.ndarray, min_size: int | str) -> np.ndarray:
    """The size filter's threshold (≥ 1) for each merged object ``roots``."""
    if not (isinstance(min_size, str) and min_size == "auto"):
        return np.full(len(roots), max(int(min_size), 1))
    out = np.ones(len(roots), np.int64)
    for c in np.unique(classes[roots]):
        mine = classes[roots] == c
        out[mine] = max(round(MIN_SIZE_FRACTION * pixel_median_area(sizes[roots[mine]])), 1)
    return out


def _face_pairs(blocks: list[BlockObjects], offsets: np.ndarray, cls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Global id pairs (a, b) of objects of the same class that touch across a face between two blocks."""
    at = {(b.region.planes[0], b.region.rows[0], b.region.cols[0]): i for i, b in enumerate(blocks)}
    a_ids, b_ids = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for i, b in enumerate(blocks):
        below = at.get((b.region.planes[0], b.region.rows[1], b.region.cols[0]))
        right = at.get((b.region.planes[0], b.region.rows[0], b.region.cols[1]))
        for j, mine, theirs in ((below, "bottom", "top"), (right, "right", "left")):
            if j is None:
                continue
            a = np.where(b.faces[mine] > 0, b.faces[mine] + offsets[i], 0)
            c = np.where(blocks[j].faces[theirs] > 0, blocks[j].faces[theirs] + offsets[j], 0)
            touch = (a > 0) & (c > 0) & (cls[a] == cls[c])
            a_ids.append(a[touch])
            b_ids.append(c[touch])
    return np.concatenate(a_ids), np.concatenate(b_ids)


def relabel(local: np.ndarray, offset: int, table: np.ndarray) -> np.ndarray:
    """Final ids (int32) of a block's ``local`` ids through :func:`merge_table`'s ``table``."""
    return np.where(local > 0, table[np.where(local > 0, local + offset, 0)], 0).astype(np.int32)
