"""A person's working session in one viewer: the model with its versions, earlier models, the training set and the
project folder — owned by the session, not by a widget, so closing and reopening the dock loses nothing."""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path

import numpy as np

from .project import Project
from .segmenter import Segmenter

#: Environment variable naming the folder where sessions without a project folder are saved; default
#: ``~/.napari-segnet/sessions``.
HOME_ENV = "NAPARI_SEGNET_HOME"


def autosave_root() -> Path:
    """Where a session with no project folder of its own saves itself (one sub-folder per session)."""
    home = os.environ.get(HOME_ENV)
    return Path(home) if home else Path.home() / ".napari-segnet" / "sessions"


class Session:
    """The work of one viewer.

    ``segmenter``: the active model; ``models``: every model used in this session, oldest first (the active one
    among them), so switching to a new model never loses the previous one and its versions; ``training_set``: image
    name → (image, corrected labels, reviewed mask); ``project``: the folder it is saved to — the one the person
    chose, else one created under :func:`autosave_root` at the first save. ``job`` is the long operation running
    (opaque here: the dock's), ``dock`` the widget showing this session now (the newest one opened).
    """

    def __init__(self):
        self.segmenter: Segmenter | None = None
        self.models: list[Segmenter] = []
        self.training_set: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.project: Project | None = None
        self.job = None
        self.dock = None

    def use(self, segmenter: Segmenter) -> None:
        """Make ``segmenter`` active; the previous model stays in :attr:`models`. Corrections made for a different
        number of classes stay in :attr:`training_set` only while the model can learn from them."""
        if segmenter not in self.models:
            self.models.append(segmenter)
        self.segmenter = segmenter

    def model_label(self, segmenter: Segmenter) -> str:
        """How the model list names ``segmenter``: its place, architecture, classes and active version."""
        m = segmenter.metadata
        return (f"{self.models.index(segmenter) + 1}: {m.architecture}, {', '.join(m.class_names)} "
                f"(version {segmenter.active_version})")

    def learnable(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The training set entries whose labels the active model can learn from (class ids below its count)."""
        n = self.segmenter.num_classes
        return {k: v for k, v in self.training_set.items() if int(np.max(v[1], initial=0)) < n}

    def open_project(self, folder) -> Project:
        """Use ``folder`` as the project (its images, corrections and model are the caller's to restore)."""
        self.project = Project(folder)
        return self.project

    def save_folder(self) -> Project:
        """The project to save to: the chosen one, else a new folder under :func:`autosave_root` named after the
        date and time (made atomically, so two sessions started in the same second never share one)."""
        if self.project is None:
            root = autosave_root()
            root.mkdir(parents=True, exist_ok=True)
            folder = tempfile.mkdtemp(prefix=datetime.now().strftime("%Y-%m-%d_%H%M%S_"), dir=root)
            self.project = Project(folder)
        return self.project

    def save_correction(self, name: str, image: np.ndarray, labels: np.ndarray, reviewed: np.ndarray,
                        regions: list | None = None) -> None:
        """Store a correction in :attr:`training_set` and in the project folder (``ProjectSaveError`` if that
        fails: the training set still has it)."""
        self.training_set[name] = (image, labels, reviewed)
        project, safe = self.save_folder(), Project.safe_name(name)
        if safe not in project.names:
            project.add_image(safe, image)
        project.save_correction(safe, labels, reviewed, regions=regions)

    def save_model(self) -> None:
        """Write every version of the active model to the project folder (``ProjectSaveError`` on failure)."""
        if self.segmenter is not None:
            self.save_folder().save_model(self.segmenter)
