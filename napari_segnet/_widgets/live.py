"""The dock's Live section: learn while painting (a LiveSession in a thread worker) and Next (where to correct)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
from magicgui.widgets import CheckBox, Container, FloatSpinBox, Label, PushButton, SpinBox
from napari.utils.notifications import show_info
from qtpy.QtCore import QEvent, QObject

from ..big_image import full_resolution, is_big, uncertainty_in_view
from ..inference.suggest import suggest_tiles, uncertainty
from ..live import BurstDone, LiveSession, LiveSettings, Refreshed, Waiting
from ..training.loop import TrainProgress
from ..training.regions import (
    Region,
    plane_index,
    plane_shape,
    reviewed_on,
    reviewed_planes,
    view_of,
    view_region,
)
from ..training.training_set import merge_corrections
from .layers import mark_painted, merge_keeping_reviewed, prediction_name, track_paint
from .pages import adopt
from .review import add_regions, reviewed_bits, reviewed_in, reviewed_layer, reviewed_mask, sliced_axis
from .runner import USER_ERRORS, notify

#: Seconds the worker sleeps when there is nothing to do (how soon a new stroke starts a burst).
POLL_S = 0.05
NEXT_LAYER = "next region"
TILE = 128


def live_section() -> SimpleNamespace:
    """The Live toggle, its burst length, learning rate and refresh interval, the Next button, a status line."""
    d = LiveSettings()
    w = SimpleNamespace(
        live_toggle=CheckBox(text="Live: learn while I paint", value=False,
                             tooltip="every stroke on the prediction layer is learned from in short bursts; "
                                     "the prediction follows; turning it off makes the session one new version"),
        burst_steps=SpinBox(label="burst steps", value=d.burst_steps, min=1, max=1000),
        live_lr=FloatSpinBox(label="live learning rate", value=d.lr, min=1e-6, max=1.0, step=1e-4),
        refresh_s=FloatSpinBox(label="refresh whole image every (s)", value=d.refresh_s, min=0, max=600),
        next_button=PushButton(text="Next: most uncertain unreviewed region"),
        live_status=Label(value=""),
    )
    w.box = Container(label="Live", widgets=list(vars(w).values()))
    return w


class _CloseFilter(QObject):
    """Ends live mode before the viewer's window closes."""

    def __init__(self, on_close):
        super().__init__()
        self.on_close = on_close

    def eventFilter(self, obj, event):  # noqa: N802 (Qt's name)
        if event.type() == QEvent.Close:
            self.on_close()
        return False


class LiveMode:
    """Live mode and Next for a :class:`~napari_segnet._widgets.dock.SegNetWidget` (``dock``). While live,
    ``dock.job`` is this object, so Predict and Fine-tune wait for it (``done``) and Stop ends it (``stop``)."""

    def __init__(self, dock):
        self.dock, self.viewer = dock, dock.viewer
        self.ui = adopt(dock, live_section())
        dock.layout().addWidget(self.ui.box.native)
        self.session: LiveSession | None = None
        self.worker = None
        self.done = True
        self.visited: dict[tuple, set] = {}
        self.ui.live_toggle.changed.connect(self._toggled)
        self.ui.next_button.changed.connect(self.next_region)
        self.viewer.layers.events.removed.connect(self._layer_removed)
        self._filter = _CloseFilter(self.stop)
        self.viewer.window._qt_window.installEventFilter(self._filter)

    # ---- on / off -------------------------------------------------------------------------------------------
    def _toggled(self, on: bool) -> None:
        if on and self.session is None:
            try:
                self.start()
            except USER_ERRORS as e:
                self.session = None  # nothing was connected yet
                notify(e)
                self.ui.live_toggle.value = False
        elif not on:
            self.stop()

    def start(self) -> None:
        """Begin a live session on the chosen image's prediction layer (its current slice for stacks)."""
        dock = self.dock
        if dock.job is not None and not dock.job.done:
            raise ValueError("wait for the running prediction or fine-tune to finish, or press Stop")
        image = dock.current_image()
        name = prediction_name(image)
        if is_big(image.data, image.multiscale):
            raise ValueError(f"live mode learns on images held in memory; '{image.name}' is predicted block by "
                             "block: correct it and press Fine-tune")
        if name not in self.viewer.layers:
            raise ValueError(f"predict '{image.name}' first, then turn live mode on and paint on '{name}'")
        self.image, self.layer = image, self.viewer.layers[name]
        settings = LiveSettings(burst_steps=self.ui.burst_steps.value, lr=self.ui.live_lr.value,
                                refresh_s=self.ui.refresh_s.value, loss=dock.loss.value)
        volume = dock.views.value and not image.rgb and image.data.ndim == 3  # as Predict: from 3 views
        self.session = LiveSession(dock.model(), settings, views=3 if volume else 1,
                                   spacing=tuple(image.scale[-3:]) if volume else None)
        self._add_training_set(image.name)
        self._add_plane(*self._slice())
        track_paint(self.layer)
        self.layer.events.paint.connect(self._painted)
        self.viewer.scene.camera.events.center.connect(self._update_view)
        self.viewer.scene.camera.events.zoom.connect(self._update_view)
        self.viewer.dims.events.current_step.connect(self._update_view)
        self._update_view()
        self.done, dock.session.job = False, self
        self._start_worker()
        self.ui.live_status.value = "live: paint corrections; the model learns from them"

    def _add_training_set(self, current: str) -> None:
        """The corrections of the other images of the session join the live session, as they join a Fine-tune:
        bursts learn from them too and the session is judged on their held-out pixels as well."""
        for name, (data, labels, reviewed) in self.dock.session.learnable().items():
            if name == current:
                continue
            for axis, z in reviewed_planes(reviewed):
                index = plane_index(labels.ndim, axis, z)
                self.session.add_plane((name, axis, z), data, labels[index], reviewed_on(reviewed, axis)[index],
                                       plane=z, axis=axis, channel_axis=self.dock.predict_tab.channel_axis())

    def _slice(self) -> tuple[int, int]:
        """(axis, plane) of the plane in view: the current slice of a stack along the axis the viewer slices
        (dims transposed: a (Z, X) or (Z, Y) plane), (0, 0) for a 2-D image."""
        axis = sliced_axis(self.viewer, self.layer)
        return axis, int(self.viewer.dims.current_step[axis]) if self.layer.data.ndim == 3 else 0

    def _add_plane(self, axis: int, z: int) -> None:
        regions = reviewed_bits(self.viewer, self.image, self.layer.data.shape)
        index = plane_index(self.layer.data.ndim, axis, z)
        self.session.add_plane((self.image.name, axis, z), np.asarray(self.image.data),
                               np.asarray(self.layer.data[index]), reviewed_on(regions, axis)[index], plane=z,
                               axis=axis, channel_axis=self.dock.predict_tab.channel_axis())

    def _start_worker(self) -> None:
        from napari.qt.threading import create_worker

        self.worker = create_worker(_drive, self.session)
        self.worker.yielded.connect(self._received)
        self.worker.errored.connect(self._failed)
        self.worker.start()

    def stop(self) -> None:
        """End live mode: the burst in flight is abandoned, every stroke goes to the training set (and the
        project folder), and the kept bursts become one new version."""
        session, self.session = self.session, None
        if session is None:
            return
        session.finish()  # waits at most for the step in flight
        if self.worker is not None:
            self.worker.quit()
        self._disconnect()
        self.done = True
        self._keep_strokes(session)
        dock = self.dock
        dock.model_tab.refresh_versions()
        outcome = session.outcome
        message = (f"live session ({session.strokes} strokes): {outcome.message}" if outcome is not None
                   else f"live session: no burst was kept; version {session.base_version} stays active")
        if outcome is not None:
            dock.finetune_tab.show_guard(outcome)
        self._status(message)
        show_info(message)
        dock.model_tab.save_to_project()
        if self.ui.live_toggle.value:
            self.ui.live_toggle.value = False

    def _disconnect(self) -> None:
        for emitter, slot in ((self.layer.events.paint, self._painted), (self.viewer.scene.camera.events.center,
                              self._update_view), (self.viewer.scene.camera.events.zoom, self._update_view),
                              (self.viewer.dims.events.current_step, self._update_view)):
            emitter.disconnect(slot)

    def _keep_strokes(self, session: LiveSession) -> None:
        """The session's corrected labels and reviewed pixels join the dock's training set (and project)."""
        dock, name = self.dock, self.image.name
        data = np.asarray(self.image.data)
        _, labels, reviewed = dock.training_set.get(name, (data, None, None))
        planes = {(axis, z): (plane.labels, plane.reviewed) for (key, axis, z), plane in session.planes.items()
                  if key == name}  # a plane of another image of the training set: it has its own entry
        labels, reviewed = merge_corrections(self.layer.data.shape, self.layer.data.dtype, labels, reviewed, planes)
        if reviewed.any():
            dock.training_set[name] = (data, labels, reviewed)
            dock.project_tab.save_correction(self.image, data, labels, reviewed)

    def _layer_removed(self, event) -> None:
        if self.session is not None and event.value in (self.layer, self.image):
            self.stop()

    # ---- strokes, view, results (GUI thread) ------------------------------------------------------------------
    def _painted(self, event) -> None:
        """A stroke on the prediction layer: its pixels and new labels go to the session (napari may emit the
        event before it writes the data, so the labels come from the stroke's history atoms)."""
        stroke, values = _stroke(self.layer.data.shape, self.layer.data.dtype, event.value)
        axis = sliced_axis(self.viewer, self.layer)  # a stroke lies in the planes the viewer shows
        others = tuple(a for a in range(stroke.ndim) if a != axis)
        planes = np.nonzero(stroke.any(axis=others))[0] if stroke.ndim == 3 else [0]
        for z in planes:
            key = (self.image.name, axis, int(z))
            if key not in self.session.planes:
                self._add_plane(axis, int(z))
            index = plane_index(stroke.ndim, axis, int(z))
            self.session.paint(key, stroke[index], values[index])

    def _update_view(self, *_) -> None:
        """Tell the session which part of which plane is visible (refreshed first after each burst)."""
        if self.session is None:
            return
        cam = self.viewer.scene.camera
        axis, z = self._slice()
        shown = [a for a in range(self.layer.ndim) if self.layer.ndim == 2 or a != axis]
        region = view_region(cam.center, self.viewer.canvas.size, cam.zoom, self.layer.scale[shown],
                             self.layer.translate[shown], plane_shape(self.layer.data.shape, axis))
        self.session.view = None if region is None else ((self.image.name, axis, z), region.slices)

    def _received(self, item) -> None:
        if self.session is None:  # live mode has ended: a late update must not overwrite its last word
            return
        if isinstance(item, TrainProgress):
            self._status(f"live: burst {len(self.session.bursts) + 1}, "
                         f"step {item.done}/{item.total}, loss {item.loss:.3f}")
        elif isinstance(item, BurstDone):
            self._status(f"live: burst {item.number} {'kept' if item.accepted else 'rejected by the guard'} "
                         f"({item.strokes} strokes, {item.seconds:.1f} s)")
        elif isinstance(item, Refreshed) and self.layer in self.viewer.layers:
            self._show(item)

    def _show(self, refreshed: Refreshed) -> None:
        """Write a refreshed region into the prediction layer, keeping every painted pixel and reviewed region."""
        _, axis, z = refreshed.key
        index = plane_index(self.layer.data.ndim, axis, z, refreshed.region)
        self.layer.data[index] = merge_keeping_reviewed(self.viewer, self.image, self.layer, refreshed.labels, index)
        self.layer.refresh()

    def _status(self, text: str) -> None:
        try:
            self.ui.live_status.value = text
        except RuntimeError:  # the dock is being destroyed with the viewer
            pass

    @staticmethod
    def _failed(error: BaseException) -> None:
        if isinstance(error, USER_ERRORS):
            notify(error)
        else:
            raise error

    # ---- Next ---------------------------------------------------------------------------------------------------
    def next_region(self, *_) -> None:
        """Move the view to the unreviewed 128² tile of the current image (slice) where the model is least certain
        — the next one each press — and outline it in the 'next region' Shapes layer."""
        try:
            self._next()
        except USER_ERRORS as e:
            notify(e)

    def _next(self) -> None:
        image = self.dock.current_image()
        if is_big(image.data, image.multiscale):
            return self._next_big(image)
        axis = sliced_axis(self.viewer, image) if _is_stack(image) else 0  # the plane in view, in any view
        z = int(self.viewer.dims.current_step[axis]) if _is_stack(image) else None
        u = self._uncertainty(image, z, axis)
        name = prediction_name(image)
        reviewed = None
        if name in self.viewer.layers and plane_shape(self.viewer.layers[name].data.shape, axis) == u.shape:
            layer = self.viewer.layers[name]
            index = () if z is None else plane_index(layer.data.ndim, axis, z)
            reviewed = track_paint(layer)[index] | reviewed_mask(self.viewer, image, layer.data.shape, index)
        visited = self.visited.setdefault((image.name, axis, z), set())
        tiles = suggest_tiles(u, reviewed, TILE, skip=visited)
        if not tiles:
            visited.clear()
            raise ValueError("every region of this image was visited or reviewed; pressing Next again starts over")
        rows, cols = tiles[0]
        visited.add((rows.start, cols.start))
        self._outline(image, rows, cols, axis, z)
        self.suggested = (image.name, axis, z or 0, rows, cols)

    def _next_big(self, image) -> None:
        """Next on an image predicted block by block: the most uncertain unreviewed tile of the part in view."""
        name = prediction_name(image)
        if name not in self.viewer.layers:
            raise ValueError(f"predict '{image.name}' first: Next ranks the tiles in view by the model's doubt")
        layer = self.viewer.layers[name]
        shown = self.dock.predict_tab.visible(image, layer)
        if shown is None:
            raise ValueError(f"move the view onto '{image.name}': Next ranks the tiles of the part in view")
        u, (y0, x0) = uncertainty_in_view(self.dock.model(), full_resolution(image.data, image.multiscale), shown,
                                          overview=image.data[-1] if image.multiscale else None, tile=TILE,
                                          channel_axis=self.dock.predict_tab.channel_axis())
        plane, stacked = shown[0], layer.data.ndim == 3
        box = (slice(y0, y0 + u.shape[0]), slice(x0, x0 + u.shape[1]))
        reviewed = np.asarray(track_paint(layer)[((plane,) if stacked else ()) + box], bool) | reviewed_in(
            self.viewer, image, plane, box)
        visited = self.visited.setdefault((image.name, 0, plane if stacked else None), set())
        tiles = suggest_tiles(u, reviewed, TILE, skip={(y - y0, x - x0) for y, x in visited})
        if not tiles:
            raise ValueError("every tile in view was visited or reviewed: move the view, or correct what you see")
        rows, cols = (slice(s.start + o, s.stop + o) for s, o in zip(tiles[0], (y0, x0)))
        visited.add((rows.start, cols.start))
        self._outline(image, rows, cols, 0, plane if stacked else None)
        self.suggested = (image.name, 0, plane, rows, cols)

    def accept_shown_tile(self, image) -> None:
        """The tile Next shows on ``image`` becomes a reviewed region (the person looked at it and fixed what was
        wrong there: Fine-tune was pressed while it was shown)."""
        shown = getattr(self, "suggested", None)
        if shown is None or shown[0] != image.name or prediction_name(image) not in self.viewer.layers:
            return
        _, axis, z, rows, cols = shown
        ndim = self.viewer.layers[prediction_name(image)].data.ndim
        add_regions(reviewed_layer(self.viewer, image, ndim), [Region(z, rows.start, cols.start, rows.stop,
                                                                      cols.stop, axis)])

    def _uncertainty(self, image, z: int | None, axis: int = 0) -> np.ndarray:
        """1 − max p (rows, cols) of the current model on the image (or its plane ``z`` cut along ``axis``): the
        live model while live, else the '<image> uncertainty' layer when it fits, else predicted now."""
        key = (image.name, axis, z or 0)
        if self.session is not None and key in self.session.planes:
            return self.session.uncertainty(key)
        layer_name = f"{image.name} uncertainty"
        data = np.asarray(image.data if z is None else np.take(image.data, z, axis=axis))
        spatial = data.shape[:2] if image.rgb else data.shape[-2:]
        if axis == 0 and layer_name in self.viewer.layers and self.viewer.layers[layer_name].data.shape == spatial:
            return np.asarray(self.viewer.layers[layer_name].data)
        return uncertainty(self.dock.model().predict_proba(data, channel_axis=self.dock.predict_tab.channel_axis()))

    def _outline(self, image, rows: slice, cols: slice, axis: int = 0, z: int | None = None) -> None:
        """Outline the tile in the 'next region' layer and centre the view on it, zoomed to fill ~60 % of it (a
        tile of a (Z, X) or (Z, Y) plane: a 3-D outline in that plane)."""
        rect = np.array([[rows.start, cols.start], [rows.stop, cols.stop]], float)
        spatial = image.ndim if axis else 2  # side views: the outline lies in the plane, in 3-D
        shown = [a for a in range(spatial) if spatial == 2 or a != axis]
        scale, translate = np.asarray(image.scale[-spatial:]), np.asarray(image.translate[-spatial:])
        (r0, c0), (r1, c1) = rect
        corners = np.array([[r0, c0], [r1, c0], [r1, c1], [r0, c1]])  # napari completes 2 only in the (Y, X) plane
        data = rect if spatial == 2 else np.insert(corners, axis, z, axis=1)
        if NEXT_LAYER in self.viewer.layers and self.viewer.layers[NEXT_LAYER].ndim != spatial:
            self.viewer.layers.remove(NEXT_LAYER)
        if NEXT_LAYER in self.viewer.layers:
            self.viewer.layers[NEXT_LAYER].data = [data]
            self.viewer.layers[NEXT_LAYER].shape_type = ["rectangle"]
        else:
            self.viewer.add_shapes([data], shape_type="rectangle", name=NEXT_LAYER, edge_color="yellow",
                                   face_color="transparent", edge_width=3, scale=scale, translate=translate)
        center, zoom = view_of(rows, cols, self.viewer.canvas.size, scale[shown], translate[shown])
        self.viewer.scene.camera.center = (*self.viewer.scene.camera.center[:-2], *center)
        self.viewer.scene.camera.zoom = zoom
        prediction = prediction_name(image)
        if prediction in self.viewer.layers:  # ready to paint there
            self.viewer.layers.selection.active = self.viewer.layers[prediction]


def _stroke(shape: tuple, dtype, atoms) -> tuple[np.ndarray, np.ndarray]:
    """(changed pixels bool, their new labels) of the shape of the layer, from a paint event's history atoms."""
    stroke, values = np.zeros(shape, bool), np.zeros(shape, dtype)
    mark_painted(stroke, atoms)
    for atom in atoms:
        if hasattr(atom, "slice_key"):  # a masked atom: bounding box, changed pixels (None: all), new value
            values[atom.slice_key][... if atom.mask is None else atom.mask] = atom.new_value
        else:  # (indices, old values, new value(s))
            values[atom[0]] = atom[2]
    return stroke, values


def _is_stack(image) -> bool:
    return image.data.ndim - (3 if image.rgb else 2) > 0


def _drive(session: LiveSession):
    """The worker's generator: the session's steps, sleeping :data:`POLL_S` whenever it is waiting."""
    for item in session.steps():
        if isinstance(item, Waiting):
            time.sleep(POLL_S)
        yield item


__all__ = ["LiveMode", "live_section"]
