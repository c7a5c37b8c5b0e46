"""The Predict tab: open and choose the image, predict it (or its current slice), estimate the object size."""

from __future__ import annotations

import numpy as np
from napari.layers import Image
from napari.utils.notifications import show_info

from ..big_image import BLOCK, full_resolution, is_big, predict_blocks
from ..inference.scale import estimate_diameter
from ..inference.suggest import uncertainty
from ..numerics.instances import label_instances
from ..training.regions import view_region
from .layers import big_prediction_layer, show_instances, show_prediction, track_paint
from .review import layer_regions, reviewed_name
from .runner import Job, guarded, warn


class PredictTab:
    """The image and predict sections of a :class:`~napari_segnet._widgets.dock.SegNetWidget` (``dock``)."""

    def __init__(self, dock):
        self.dock = dock

    @guarded
    def open_image(self, *_) -> None:
        """Open the file chosen in 'open file' in the viewer, choose it as the image to work on, and fit the view."""
        dock = self.dock
        layers = dock.viewer.open(str(dock.open_file.value))
        images = [layer for layer in layers if isinstance(layer, Image)]
        if images:
            dock.reset_choices()
            dock.image_layer.value = images[0]
            dock.viewer.reset_view()

    def current_image(self) -> Image:
        """The chosen image layer (``ValueError`` if there is none)."""
        image = self.dock.image_layer.value
        if image is None:
            raise ValueError("open an image first (File › Open, or File › Open Sample › napari SegNet)")
        return image

    def channel_axis(self) -> int | None:
        """The 'channel axis' field: None for 'auto'."""
        value = self.dock.channel_axis.value
        return None if value == "auto" else int(value)

    def region(self, image: Image, always: bool = False) -> tuple:
        """The current slice's index for stacks when 'current slice only' is on (or ``always``), else ()."""
        stack_dims = image.data.ndim - (3 if image.rgb else 2)
        if not (self.dock.slice_only.value or always) or stack_dims <= 0:
            return ()
        return tuple(int(self.dock.viewer.dims.current_step[i]) for i in range(stack_dims))

    @guarded
    def predict(self, *_) -> None:
        """Predict the image (or its current slice) into its prediction layer, keeping painted pixels and
        reviewed regions."""
        dock = self.dock
        image, seg = self.current_image(), dock.model()
        if image.rgb and seg.in_channels == 1:
            warn(f"'{image.name}' is a colour image and this model reads one channel. Convert it to grayscale "
                 f"(a new layer) and predict that, or make a new model with this image chosen (Model tab): it will "
                 f"read the three colours.", ("Convert to grayscale", lambda *_: self.to_grayscale(image)))
            return
        if is_big(image.data, image.multiscale):
            self.predict_big(image, seg)
            return
        region = self.region(image)
        if dock.views.value and (region or image.rgb or image.data.ndim != 3):
            raise ValueError("'predict from 3 views' needs a whole one-channel (Z, Y, X) stack: untick 'current "
                             "slice only', or untick 'predict from 3 views' for this image")
        data = image.data[region] if region else image.data
        views = 3 if dock.views.value else 1
        steps = seg.predict_steps(data, channel_axis=self.channel_axis(), want_proba=dock.uncertainty.value,
                                  diameter=self.diameter(), tta=dock.tta.value, views=views,
                                  spacing=tuple(image.scale[-3:]) if views == 3 else None)
        dock.predict_button.enabled = False
        dock.run_job(Job(steps, f"Predicting {image.name}", lambda u: None,
                         lambda result: self.show(image, region, result.labels, result.proba),
                         lambda: setattr(dock.predict_button, "enabled", True)))

    def predict_big(self, image: Image, seg) -> None:
        """A multiscale, OME-Zarr or dask image: predicted at full resolution into a zarr-backed prediction layer
        (in the project folder's ``predictions/``, else a temporary folder), block by block, the visible region
        first; painted pixels are kept; the image is never read whole (:mod:`napari_segnet.big_image`)."""
        dock = self.dock
        asked = [n for n, on in (("predict from 3 views", dock.views.value), ("test-time flips", dock.tta.value),
                                 ("show uncertainty", dock.uncertainty.value), ("object size", self.diameter()),
                                 ("current slice only", dock.slice_only.value)) if on]
        if asked:
            raise ValueError(f"'{image.name}' is predicted block by block into a file, labels only: untick "
                             f"{', '.join(repr(a) for a in asked)}")
        data = full_resolution(image.data, image.multiscale)
        layer = big_prediction_layer(dock.viewer, image, data, seg, dock.session.project)
        first = self.visible(image, layer)
        name = reviewed_name(image)
        reviewed = layer_regions(dock.viewer.layers[name]) if name in dock.viewer.layers else []
        overview = image.data[-1] if image.multiscale else None  # the coarsest level: normalisation's sample
        steps = predict_blocks(seg, data, layer.data, first=first, painted=track_paint(layer), reviewed=reviewed,
                               tile_shape=BLOCK, block=BLOCK, channel_axis=self.channel_axis(),
                               overview=overview)  # a block: 1 tile
        dock.model_tab.update_legend(layer)
        dock.viewer.layers.selection.active = layer
        dock.predict_button.enabled = False
        dock.run_job(Job(steps, f"Predicting {image.name}", lambda u: layer.refresh(), lambda _: layer.refresh(),
                         lambda: setattr(dock.predict_button, "enabled", True)))

    def visible(self, image: Image, layer) -> tuple | None:
        """(plane, (r0, r1), (c0, c1)) of ``layer`` in view (the current slice of a stack), or None."""
        viewer = self.dock.viewer
        cam, ndim = viewer.scene.camera, layer.data.ndim
        plane = int(viewer.dims.current_step[0]) if ndim == 3 else 0
        region = view_region(cam.center, viewer.canvas.size, cam.zoom, layer.scale[-2:], layer.translate[-2:],
                             layer.data.shape[-2:], plane)
        return None if region is None else (plane, (region.y0, region.y1), (region.x0, region.x1))

    def to_grayscale(self, image: Image) -> Image:
        """A grayscale copy of a colour image as a new layer ('<name> gray'), chosen and predicted."""
        from skimage.color import rgb2gray

        dock = self.dock
        gray = dock.viewer.add_image(rgb2gray(np.asarray(image.data)[..., :3]).astype(np.float32),
                                     name=f"{image.name} gray", scale=image.scale[:-1] if image.data.ndim > 3
                                     else image.scale, translate=image.translate)
        dock.reset_choices()
        dock.image_layer.value = gray
        dock.predict()
        return gray

    def show(self, image: Image, region: tuple, labels, proba) -> None:
        """Show a prediction: its labels (painted pixels and reviewed regions kept), instances and uncertainty when
        asked for."""
        dock, viewer = self.dock, self.dock.viewer
        layer = show_prediction(viewer, image, labels, dock.segmenter.class_names, region)
        dock.model_tab.update_legend(layer)
        if dock.instances.value:
            show_instances(viewer, image, label_instances(np.asarray(layer.data)[region]), region)
        if proba is not None:
            shown = uncertainty(proba)  # 1 − max p, what Next ranks tiles by
            name = f"{image.name} uncertainty"
            if name in viewer.layers and not region:
                viewer.layers[name].data = shown
            else:
                viewer.add_image(shown, name=name, colormap="magma", blending="additive", opacity=0.6,
                                 visible=True)
        viewer.layers.selection.active = layer  # ready to correct: a new layer would otherwise be the active one
    def diameter(self) -> float | None:
        """The 'object size' field: None when 0 (the image is used as it is)."""
        return self.dock.object_size.value or None

    @guarded
    def estimate_size(self, *_) -> None:
        """Fill 'object size' with the median object diameter of the 'size from' labels layer."""
        dock = self.dock
        layer = dock.size_layer.value
        if layer is None:
            raise ValueError("pick a Labels layer with a few objects drawn (or predicted) in 'size from'")
        dock.object_size.value = round(estimate_diameter(np.asarray(layer.data)), 1)
        show_info(f"object size {dock.object_size.value} px (the model was trained on "
                  f"{dock.model().object_diameter or 'an unrecorded size'})")
