"""The prediction Labels layer: one per image, reused; pixels the user painted are tracked and kept."""

from __future__ import annotations

import numpy as np
from napari.layers import Image, Labels
from napari.utils.colormaps import DirectLabelColormap

from ..io.metadata import is_background_name
from ..project import Project
from .review import reviewed_layer, reviewed_mask, watch_strokes

PAINTED = "segnet_painted"  # layer.metadata key: bool mask of pixels the user painted
COLOURED_FOR = "segnet_classes"  # layer.metadata key: the class names the layer's colours were set for


def prediction_name(image: Image) -> str:
    return f"{image.name} prediction"


def mark_painted(painted, atoms) -> None:
    """Set ``painted`` (a NumPy or zarr bool array) True where a napari paint/fill event's history atoms changed
    pixels (each atom's bounding box is read, marked and written back: a zarr array hands out copies)."""
    for atom in atoms:
        if hasattr(atom, "slice_key"):  # a masked atom: a bounding box and the changed pixels in it
            region = np.asarray(painted[atom.slice_key]).copy()
            region[... if atom.mask is None else atom.mask] = True
            painted[atom.slice_key] = region
        elif len(atom[0][0]):  # (indices, old values, new value)
            lo = [int(np.min(i)) for i in atom[0]]
            box = tuple(slice(a, int(np.max(i)) + 1) for a, i in zip(lo, atom[0]))
            region = np.asarray(painted[box]).copy()
            region[tuple(np.asarray(i) - a for i, a in zip(atom[0], lo))] = True
            painted[box] = region


def track_paint(layer: Labels):
    """The layer's painted-pixel mask, creating it and connecting to its paint events the first time: a NumPy
    bool array, or for a zarr-backed layer (a big image) the bool zarr array beside its store."""
    if PAINTED not in layer.metadata:
        if isinstance(layer.data, np.ndarray):
            layer.metadata[PAINTED] = np.zeros(layer.data.shape, bool)
        else:
            from ..big_image import painted_store

            layer.metadata[PAINTED] = painted_store(layer.data)
        layer.events.paint.connect(lambda event: mark_painted(layer.metadata[PAINTED], event.value))
    return layer.metadata[PAINTED]


def merge_keeping_reviewed(viewer, image: Image, layer: Labels, prediction: np.ndarray, region: tuple = ()
                           ) -> np.ndarray:
    """``prediction`` for ``layer`` (the image's prediction layer) at ``region``, keeping what the person made there:
    every painted pixel, and every pixel of the image's reviewed regions — there they accepted the labels as shown
    (they are the training set; a new version re-predicting them would make its own prediction the labels it is
    judged on). Remove a reviewed box to let predictions in again."""
    kept = track_paint(layer)[region] | reviewed_mask(viewer, image, layer.data.shape, region)
    return np.where(kept, np.asarray(layer.data)[region], prediction)


def colour_classes(layer: Labels, class_names: list[str]) -> None:
    """Colour ``layer`` for these classes, once per list of names: napari's default colours (label 0
    transparent) when class 0 is background (:func:`~napari_segnet.io.metadata.is_background_name`), else the same
    colours for labels 1…n−1 and an opaque one for label 0 (napari's colour of label n, used by no class), so
    that a real first class ("brick" of brick / grass / gravel) is seen and can be corrected."""
    names = tuple(class_names)
    if layer.metadata.get(COLOURED_FOR) == names:
        return  # a colormap the user chose since stays
    default = Labels(np.zeros((1, 1), np.uint8)).colormap  # napari's own default colours
    if is_background_name(names[0]):
        layer.colormap = default
    else:
        colours = {i: default.map(np.array([i]))[0] for i in range(1, len(names))}
        layer.colormap = DirectLabelColormap(color_dict={0: default.map(np.array([len(names)]))[0], **colours,
                                                         None: "transparent"})
    layer.metadata[COLOURED_FOR] = names


def show_prediction(viewer, image: Image, labels: np.ndarray, class_names: list[str],
                    region: tuple = ()) -> Labels:
    """Write ``labels`` into the image's prediction layer (created once, then reused), keeping painted pixels and
    reviewed regions (:func:`merge_keeping_reviewed`).

    ``region`` indexes a part of the layer (e.g. the current slice of a stack); () means all of it.
    """
    name = prediction_name(image)
    if name in viewer.layers and isinstance(viewer.layers[name], Labels) \
            and viewer.layers[name].data.shape == layer_shape(image, labels, region):
        layer = viewer.layers[name]
        merged = merge_keeping_reviewed(viewer, image, layer, labels, region)
        if region:
            layer.data[region] = merged
        else:
            layer.data = merged.astype(layer.data.dtype)
        layer.refresh()
    else:
        data = labels if not region else _full(image, labels, region)
        layer = viewer.add_labels(data, name=name, scale=image.scale[-data.ndim:],
                                  translate=image.translate[-data.ndim:], opacity=0.5)
        track_paint(layer)
        watch_strokes(viewer, image, layer)
        reviewed_layer(viewer, image, data.ndim)
    colour_classes(layer, class_names)
    layer.features = {"index": list(range(len(class_names))), "class": class_names}
    return layer


def big_prediction_layer(viewer, image: Image, data, seg, project=None) -> Labels:
    """The zarr-backed prediction layer of a big image (its full-resolution ``data``): reused while it fits,
    else made on a store in the project folder's ``predictions/`` (reopened with what was painted into it), or
    in a temporary folder without a project."""
    from ..big_image import labels_store

    name = prediction_name(image)
    spatial = data.shape[:-1] if image.rgb else data.shape
    if name in viewer.layers and isinstance(viewer.layers[name], Labels) \
            and not isinstance(viewer.layers[name].data, np.ndarray) and viewer.layers[name].data.shape == spatial:
        return viewer.layers[name]
    if name in viewer.layers:
        raise ValueError(f"'{name}' is an in-memory layer of another shape: rename or remove it, then predict")
    folder = None if project is None else project.folder / "predictions"
    store = labels_store(spatial, seg.num_classes, folder, Project.safe_name(image.name) if project else "labels")
    layer = viewer.add_labels(store, name=name, scale=image.scale[-len(spatial):],
                              translate=image.translate[-len(spatial):], opacity=0.5)
    track_paint(layer)
    watch_strokes(viewer, image, layer)
    reviewed_layer(viewer, image, len(spatial))
    colour_classes(layer, seg.class_names)
    layer.features = {"index": list(range(seg.num_classes)), "class": seg.class_names}
    return layer


def layer_shape(image: Image, labels: np.ndarray, region: tuple) -> tuple:
    """Shape of the whole prediction layer: the stack axes of ``image`` indexed by ``region``, then labels'."""
    return tuple(image.data.shape[: len(region)]) + labels.shape


def _full(image: Image, labels: np.ndarray, region: tuple) -> np.ndarray:
    """A zero array of the layer's shape with ``labels`` written at ``region``."""
    out = np.zeros(layer_shape(image, labels, region), labels.dtype)
    out[region] = labels
    return out


def show_instances(viewer, image: Image, instances: np.ndarray, region: tuple = ()) -> Labels:
    """Write instance ids into the image's '<image> instances' layer (created once, then reused)."""
    name = f"{image.name} instances"
    shape = layer_shape(image, instances, region)
    if name in viewer.layers and viewer.layers[name].data.shape == shape:
        layer = viewer.layers[name]
        layer.data[region] = instances
        layer.refresh()
        return layer
    data = instances if not region else _full(image, instances, region)
    return viewer.add_labels(data, name=name, scale=image.scale[-data.ndim:], translate=image.translate[-data.ndim:],
                             opacity=0.6)
