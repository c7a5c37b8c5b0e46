"""The '<image> reviewed' Shapes layer: the reviewed regions (:mod:`napari_segnet.training.regions`) as green boxes a
person sees, draws and deletes; strokes on the prediction layer add the tiles they touch."""

from __future__ import annotations

import math

import numpy as np
from napari.layers import Image, Labels, Shapes

from ..training.regions import Region, plane_shape, regions_mask, stroke_box, tiles_touched

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
    counts as drawn; any other shape by its bounding box). In a stack the shape's plane is the axis along which
    all its vertices agree (a box drawn on (Z, X) planes has one row y)."""
    regions = []
    for vertices in layer.data:
        v = np.asarray(vertices, float)
        axis = 0
        if v.shape[1] == 3:
            flat = [a for a in range(3) if np.ptp(v[:, a]) == 0]
            axis = flat[0] if flat else 0
        rows, cols = (a for a in range(v.shape[1]) if v.shape[1] == 2 or a != axis)
        lo, hi = v[:, [rows, cols]].min(axis=0), v[:, [rows, cols]].max(axis=0)
        plane = int(round(v[0, axis])) if v.shape[1] > 2 else 0
        regions.append(Region(plane, math.ceil(lo[0]), math.ceil(lo[1]), math.floor(hi[0]) + 1,
                              math.floor(hi[1]) + 1, axis))
    return regions


def reviewed_mask(viewer, image: Image, shape: tuple[int, ...], index: tuple = ()) -> np.ndarray:
    """bool of the prediction layer's ``shape``, indexed by ``index`` (as the layer's data is: e.g. (z,) or
    (z, rows, cols) of a stack, (rows, cols) of an image): True inside the image's reviewed regions, in any view
    (none: all False). Indexing one slice of a stack whose regions all lie in (Y, X) planes builds that plane's
    mask only."""
    regions = _regions(viewer, image, shape)
    if len(shape) == 3 and index and isinstance(index[0], (int, np.integer)) and all(r.axis == 0 for r in regions):
        return regions_mask(shape[-2:], [r for r in regions if r.plane == index[0]])[index[1:]]
    return regions_mask(shape, regions)[index] > 0


def reviewed_in(viewer, image: Image, plane: int, box: tuple[slice, slice]) -> np.ndarray:
    """bool (rows, cols) of ``box`` on (Y, X) plane ``plane`` of the image: True inside its reviewed regions there
    (a big image's part in view: no array of the whole image is made)."""
    name, (rows, cols) = reviewed_name(image), box
    mask = np.zeros((rows.stop - rows.start, cols.stop - cols.start), bool)
    for r in layer_regions(viewer.layers[name]) if name in viewer.layers else []:
        if r.axis == 0 and r.plane == plane:
            mask[max(r.y0 - rows.start, 0) : max(r.y1 - rows.start, 0),
                 max(r.x0 - cols.start, 0) : max(r.x1 - cols.start, 0)] = True
    return mask


def reviewed_bits(viewer, image: Image, shape: tuple[int, ...]) -> np.ndarray:
    """The image's reviewed regions as the training set takes them (:func:`~napari_segnet.training.regions.
    regions_mask`): bool of a 2-D prediction layer's ``shape``, view bits (uint8) of a stack's."""
    return regions_mask(shape, _regions(viewer, image, shape))


def _regions(viewer, image: Image, shape: tuple[int, ...]) -> list[Region]:
    """The boxes of the image's reviewed layer, each clipped to its plane of an array of ``shape``."""
    name = reviewed_name(image)
    if name not in viewer.layers:
        return []
    clipped = (r.clipped(plane_shape(shape, r.axis)) for r in layer_regions(viewer.layers[name]))
    return [c for c in clipped if c is not None]


def watch_strokes(viewer, image: Image, labels: Labels) -> None:
    """Every stroke on ``labels`` (the image's prediction layer) marks the grid tiles it touches as reviewed (once
    per layer; the handler holds the viewer and the layers, not a dock, so it outlives a closed dock)."""
    if labels.metadata.get(WATCHED):
        return
    labels.metadata[WATCHED] = True
    ndim = labels.data.ndim

    def on_paint(event):
        axis = sliced_axis(viewer, labels)
        box = stroke_box(event.value, axis)
        if box is not None:
            plane, rows, cols = box
            add_regions(reviewed_layer(viewer, image, ndim),
                        tiles_touched(rows, cols, plane_shape(labels.data.shape, axis), plane, axis=axis))

    labels.events.paint.connect(on_paint)


def sliced_axis(viewer, layer) -> int:
    """The axis of a stack ``layer`` (Z|T, Y, X) that the viewer slices — 0 as napari opens it, 1 when it shows
    (Z, X) planes, 2 for (Z, Y) planes (dims transposed); 0 for a 2-D layer or a 3-D rendering."""
    if layer.ndim != 3 or viewer.dims.ndisplay != 2:
        return 0
    offset = viewer.dims.ndim - layer.ndim
    hidden = [a - offset for a in viewer.dims.not_displayed if a >= offset]
    return hidden[0] if len(hidden) == 1 else 0


def _inside(a: Region, b: Region) -> bool:
    return a.axis == b.axis and a.plane == b.plane and b.y0 <= a.y0 and b.x0 <= a.x0 and a.y1 <= b.y1 and a.x1 <= b.x1


def _corners(r: Region, ndim: int) -> np.ndarray:
    """The rectangle's four corners on the pixels' outer edges, with the plane index inserted at the region's axis
    for a stack (napari completes two corners only in the displayed plane)."""
    y0, x0, y1, x1 = r.y0 - 0.5, r.x0 - 0.5, r.y1 - 0.5, r.x1 - 0.5
    corners = np.array([[y0, x0], [y1, x0], [y1, x1], [y0, x1]])  # napari's own order
    return np.insert(corners, r.axis, r.plane, axis=1) if ndim == 3 else corners
