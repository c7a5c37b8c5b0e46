"""The Project tab: open a project folder (its images, corrections and model) and keep corrections in it."""

from __future__ import annotations

import numpy as np
from napari.layers import Image
from napari.utils.notifications import show_info

from .layers import prediction_name, show_prediction
from .review import add_regions, layer_regions, reviewed_layer, reviewed_name
from .runner import guarded, notify, warn


class ProjectTab:
    """The project section of a :class:`~napari_segnet._widgets.dock.SegNetWidget` (``dock``)."""

    def __init__(self, dock):
        self.dock = dock

    @guarded
    def open_project(self, *_) -> None:
        """Open (or start) the project folder and restore its images, corrections and model; problems met
        (a damaged log or model file) are shown as warnings."""
        dock, viewer = self.dock, self.dock.viewer
        project = dock.session.open_project(dock.project_dir.value)
        for problem in project.problems:
            warn(problem)
        model = project.load_model()
        if model is not None:
            dock.session.use(model)
            dock.model_tab.show_model()
        names = dock.model().class_names
        for name in project.names:
            image = project.image(name)
            if name not in viewer.layers:
                viewer.add_image(image, name=name)
            saved = project.correction(name)
            if saved is not None:
                labels, reviewed = saved
                image_layer = viewer.layers[name]
                if prediction_name(image_layer) not in viewer.layers:
                    show_prediction(viewer, image_layer, labels, names)
                add_regions(reviewed_layer(viewer, image_layer, labels.ndim), project.regions(name))
                dock.training_set[name] = (image, labels, reviewed)
        n = len(project.names)
        show_info(f"project {project.folder}: {n} image{'' if n == 1 else 's'}, "
                  f"{'model version ' + str(model.active_version) if model else 'no model yet'}")

    def save_correction(self, image: Image, data: np.ndarray, labels: np.ndarray, reviewed: np.ndarray,
                        name: str | None = None) -> None:
        """Keep a correction in the session and its folder (the project, or the automatic one); a failed save is
        said, and the correction stays in the session. ``name``: an entry of its own (a crop of a big image: its
        reviewed mask is its region), else the image's, with the boxes of its reviewed layer."""
        layers = self.dock.viewer.layers
        layer = layers[reviewed_name(image)] if reviewed_name(image) in layers and name is None else None
        try:
            self.dock.session.save_correction(name or image.name, data, labels, reviewed,
                                              layer_regions(layer) if layer is not None else [])
        except OSError as e:
            notify(e)
