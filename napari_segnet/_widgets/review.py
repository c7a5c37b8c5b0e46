"""The '<image> reviewed' Shapes layer: the reviewed regions (:mod:`napari_segnet.training.regions`) as green boxes a
person sees, draws and deletes; strokes on the prediction layer add the tiles they touch."""

from __future__ import annotations

import math

import numpy as np
from napari.layers import Image, Labels, Shapes

from ..training.regions import Region, regions_mask, stroke_box, tiles_touched

COLOUR = "lime"
WATCHED = "segnet_regions"  # prediction layer metadata key: its strokes already add regions


def reviewed_name(image: Image) -> str:
    return f"{image.name} reviewed"


def reviewed_layer(viewer, image: Image, ndim: int) -> Shapes:
    """The image's reviewed-regions layer (created empty the first time, above the prediction layer; the layer that
    was active stays active, so painting goes on)."""
    name = reviewed_name(image)
    if name in viewer.layers and isinstance(viewer.layers[name], Shapes):
        return viewer.layers[name]
    active = viewer.layers.selection.active
    layer = viewer.add_shapes(ndim=ndim, name=name, edge_color=COLOUR, face_color="transparent", edge_width=2,
                              scale=image.scale[-ndim:], translate=image.translate[-ndim:])
    layer.current_edge_color, layer.current_face_color = COLOUR, "transparent"
    if active is not None:
        viewer.layers.selection.active = active
    return layer


def add_regions(layer: Shapes, regions: list[Region]) -> int:
    """Draw the ``regions`` not yet inside a drawn one; returns how many were added."""
    have = layer_regions(layer)
    new = [r for r in regions if not any(_inside(r, h) for h in have)]
    if new:
        rects = [_corners(r, layer.ndim) for r in new]
        layer.add_rectangles(rects, edge_color=COLOUR, face_color="transparent", edge_width=2)
    return len(new)


def layer_regions(layer: Shapes) -> list[Region]:
    """Each shape of the layer as a region: the pixels whose centres its bounding box covers (a box drawn by hand
    counts as drawn; any other shape by its bounding box)."""
    regions = []
    for vertices in layer.data:
        v = np.asarray(vertices, float)
        lo, hi = v[:, -2:].min(axis=0), v[:, -2:].max(axis=0)
        plane = int(round(v[0, -3])) if v.shape[1] > 2 else 0
        regions.append(Region(plane, math.ceil(lo[0]), math.ceil(lo[1]), math.floor(hi[0]) + 1,
                              math.floor(hi[1]) + 1))
    return regions


def reviewed_mask(viewer, image: Image, shape: tuple[int, ...], index: tuple = ()) -> np.ndarray:
    """bool of the prediction layer's ``shape``, indexed by ``index`` (as the layer's data is: e.g. (z,) or
    (z, rows, cols) of a stack, (rows, cols) of an image): True inside the image's reviewed regions (none: all
    False). Indexing one plane of a stack builds that plane's mask only."""
    name = reviewed_name(image)
    if name not in viewer.layers:
        return np.zeros(shape, bool)[index]
    regions = [c for r in layer_regions(viewer.layers[name]) if (c := r.clipped(shape[-2:])) is not None]
    if len(shape) == 3 and index and isinstance(index[0], (int, np.integer)):
        plane = regions_mask(shape[-2:], [r for r in regions if r.plane == index[0]])
        return plane[index[1:]]
    return regions_mask(shape, regions)[index]


def watch_strokes(viewer, image: Image, labels: Labels) -> None:
    """Every stroke on ``labels`` (the image's prediction layer) marks the grid tiles it touches as reviewed (once
    per layer; the handler holds the viewer and the layers, not a dock, so it outlives a closed dock)."""
    if labels.metadata.get(WATCHED):
        return
    labels.metadata[WATCHED] = True
    ndim = labels.data.ndim

    def on_paint(event):
        box = stroke_box(event.value)
        if box is not None:
            plane, rows, cols = box
            add_regions(reviewed_layer(viewer, image, ndim), tiles_touched(rows, cols, labels.data.shape[-2:], plane))

    labels.events.paint.connect(on_paint)


def _inside(a: Region, b: Region) -> bool:
    return a.plane == b.plane and b.y0 <= a.y0 and b.x0 <= a.x0 and a.y1 <= b.y1 and a.x1 <= b.x1


def _corners(r: Region, ndim: int) -> np.ndarray:
    """The rectangle's two corners on the pixels' outer edges, with the plane index in front for a stack."""
    corners = np.array([[r.y0 - 0.5, r.x0 - 0.5], [r.y1 - 0.5, r.x1 - 0.5]])
    return np.hstack([np.full((2, 1), r.plane), corners]) if ndim == 3 else corners
