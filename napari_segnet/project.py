"""A project folder: images, corrected labels and reviewed masks, every model version, and a JSON log."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import warnings
import weakref
from pathlib import Path

import numpy as np
import tifffile

from ._validation import as_array, check_labels
from .io import lockfile
from .io.checkpoint import CheckpointError, load_checkpoint, read_metadata
from .io.fileio import atomic_write
from .io.metadata import now
from .segmenter import Segmenter
from .training.regions import Region, as_view_bits

LOG = "log.json"


class ProjectSaveError(OSError):
    """Saving to the project folder failed (read-only or full disk); everything in memory is intact."""


class ProjectInUseError(OSError):
    """Another process (a second dock or ``napari-segnet train``) has the project folder open."""


#: What a project folder holds; a non-empty folder with none of them is not a project and is not filled.
MARKERS = (LOG, "images", "labels", "masks", "models")


def _refuse_foreign(folder: Path) -> None:
    """``ValueError`` if ``folder`` holds files but is not a project: it would be filled without asking."""
    if not folder.is_dir() or any((folder / m).exists() for m in MARKERS):
        return
    visible = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    if visible:
        raise ValueError(f"{folder} is not a napari-segnet project and not empty ({', '.join(visible[:3])}"
                         f"{' …' if len(visible) > 3 else ''}): choose an empty folder or a project folder")


def _save_error(path: Path, e: OSError) -> ProjectSaveError:
    return ProjectSaveError(e.errno, f"could not save {path}: {e.strerror or e}. Nothing was lost: your images, "
                            "corrections and model are still open; free space or choose another folder and save "
                            "again")


class Project:
    """A folder that holds a whole human-in-the-loop session and restores it when reopened::

        folder/images/<name>.tif   folder/labels/<name>.tif   folder/masks/<name>.tif
        folder/models/v0001.safetensors …   folder/log.json  (events, active model version)

    Every write goes to a temporary file first and is renamed into place, so an interrupted save never
    leaves a half-written file, and a failed one raises :class:`ProjectSaveError` without touching memory.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        #: Problems met while opening (a damaged log or model file): what was kept and what was skipped.
        self.problems: list[str] = []
        #: True when the folder refuses writes (read-only mount or permissions): it can be read, not saved to.
        self.read_only = False
        _refuse_foreign(self.folder)
        self._guard(lambda: self.folder.mkdir(parents=True, exist_ok=True), self.folder)
        self._lock = self._acquire()
        for sub in ("images", "labels", "masks", "models"):
            path = self.folder / sub
            self._guard(lambda p=path: p.mkdir(parents=True, exist_ok=True), path)
        self._log = self._read_log()

    def _acquire(self):
        """Lock the folder for this process (:mod:`~napari_segnet.io.lockfile`): a second process that opens it
        gets :class:`ProjectInUseError`. A folder that refuses writes opens unlocked and read-only."""
        try:
            key = lockfile.acquire(self.folder)
        except lockfile.FolderInUseError as e:
            raise ProjectInUseError(e.errno, e.strerror) from e
        except OSError as e:
            if e.errno not in lockfile.READ_ONLY:
                raise _save_error(self.folder, e) from e
            self.read_only = True
            self._warn(f"{self.folder} is read-only ({e.strerror}): it can be opened, but nothing can be saved "
                       "there; choose another folder to save")
            return None
        return weakref.finalize(self, lockfile.release, key)

    def close(self) -> None:
        """Unlock the folder (also done when the Project is garbage-collected or the process ends)."""
        if self._lock is not None:
            self._lock()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _read_log(self) -> dict:
        """``log.json``, or a new log if there is none. A damaged one is copied aside (never overwritten
        without a copy), reported in :attr:`problems` and as a warning, and replaced by a new log whose active
        version is the newest saved model."""
        path = self.folder / LOG
        if not path.exists():
            return {"events": [], "active_version": None}
        try:
            log = json.loads(path.read_text())
            if not isinstance(log, dict) or not isinstance(log.get("events"), list):
                raise ValueError("it is not a napari-segnet project log")
            return log
        except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
            copy = path.with_name(f"{LOG}.broken-{now().replace(':', '')}")
            self._guard(lambda: shutil.copy2(path, copy), copy)
            versions = self._saved_versions()
            self._warn(f"{path} is damaged ({e}); a copy was kept as {copy.name} and a new log started. Images, "
                       f"corrections and models are read from their folders; the active model is the newest "
                       f"saved one ({f'version {versions[-1]}' if versions else 'none yet'}).")
            return {"events": [], "active_version": versions[-1] if versions else None}

    def _warn(self, message: str) -> None:
        self.problems.append(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)

    # ---- images and corrections ---------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Names of the images in the project, sorted."""
        return sorted(p.stem for p in (self.folder / "images").glob("*.tif"))

    def add_image(self, name: str, image) -> None:
        """Store ``image`` (any array) as ``images/<name>.tif``."""
        image = as_array(image, "image")
        if image.ndim not in (2, 3, 4):
            raise ValueError(f"image must be 2-D (Y, X), 3-D or 4-D, got shape {image.shape}")
        self._write_tif("images", name, image)
        self.log("image added", name=name, shape=list(np.shape(image)))

    def save_correction(self, name: str, labels, mask=None, regions: list | None = None) -> None:
        """Store the corrected labels (Y, X) and the reviewed mask (None: all reviewed; bool, or view bits of a
        stack: :mod:`napari_segnet.training.regions`) of image ``name``, and the reviewed regions it was made from
        (``regions``: :class:`~napari_segnet.training.regions.Region` boxes, kept in ``masks/<name>.regions.json``)."""
        if name not in self.names:
            raise ValueError(f"no image named {name!r} in the project; add it first (images: {self.names})")
        labels = check_labels(labels, "labels")
        with tifffile.TiffFile(self._path("images", name)) as tif:
            shape = tuple(tif.series[0].shape)
        if labels.shape != shape and labels.shape not in {shape[:i] + shape[i + 1:] for i in range(len(shape))}:
            raise ValueError(f"labels of shape {labels.shape} do not fit image {name!r} of shape {shape}: give "
                             "its (Y, X) or (Z|T, Y, X) shape")
        mask = np.ones(labels.shape, np.uint8) if mask is None else as_view_bits(mask)
        if mask.shape != labels.shape:
            raise ValueError(f"mask of shape {mask.shape} does not match labels of shape {labels.shape}")
        self._write_tif("labels", name, labels)
        self._write_tif("masks", name, mask)
        if regions is not None:
            text = json.dumps([dataclasses.asdict(r) for r in regions])
            path = self._regions_path(name)
            self._guard(lambda: atomic_write(path, lambda tmp: Path(tmp).write_text(text)), path)
        self.log("correction saved", name=name, reviewed_pixels=int(np.count_nonzero(mask)))

    def image(self, name: str) -> np.ndarray:
        return tifffile.imread(self._path("images", name))

    def correction(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(labels, mask) saved for image ``name``, or None if it has no correction yet; the mask is bool for a 2-D
        image, view bits (uint8) for a stack (a mask saved before views: its (Y, X) planes)."""
        if not self._path("labels", name).exists():
            return None
        labels, mask = tifffile.imread(self._path("labels", name)), tifffile.imread(self._path("masks", name))
        return labels, (mask > 0 if mask.ndim == 2 else as_view_bits(mask))

    def regions(self, name: str) -> list[Region]:
        """The reviewed regions saved with image ``name``'s correction ([] if none were saved)."""
        path = self._regions_path(name)
        if not path.exists():
            return []
        try:
            return [Region(**{k: int(r[k]) for k in ("plane", "y0", "x0", "y1", "x1")}, axis=int(r.get("axis", 0)))
                    for r in json.loads(path.read_text())]
        except (ValueError, TypeError, KeyError) as e:
            self._warn(f"{path} is damaged ({e}); the reviewed mask is still used, its boxes are not shown")
            return []

    def _regions_path(self, name: str) -> Path:
        return self._path("masks", name).with_suffix(".regions.json")

    def training_set(self) -> tuple[list, list, list]:
        """(images, labels, masks) of every image that has a saved correction."""
        saved = {n: self.correction(n) for n in self.names}
        triples = [(self.image(n), *c) for n, c in saved.items() if c is not None]
        return tuple(list(t) for t in zip(*triples)) if triples else ([], [], [])

    # ---- models -------------------------------------------------------------------------------------------
    def save_model(self, segmenter: Segmenter) -> None:
        """Write every version of ``segmenter`` not yet in ``models/`` (and the active one, which may have
        changed) and record which version is active."""
        active = segmenter.active_version
        for version in segmenter.available_versions:
            path = self._model_path(version)
            if version == active or not path.exists():
                self._guard(lambda p=path, v=version: segmenter.save(p, version=v), path)
        self._log["active_version"] = active
        self.log("model saved", active_version=active, versions=segmenter.available_versions)

    def load_model(self) -> Segmenter | None:
        """The segmenter as last saved, with the weights of all its saved versions available for rollback;
        None if no model was saved yet. A damaged version file is skipped (see :attr:`problems`)."""
        active = self._log.get("active_version")
        if active is None:
            return None
        seg, active = self._load_active(active)
        for version in self._saved_versions():
            if version != active:
                try:
                    seg.add_weights(version, load_checkpoint(self._model_path(version))[0])
                except CheckpointError as e:
                    self._warn(f"model version {version} could not be read and is skipped: {e}")
        return seg

    def _load_active(self, active: int) -> tuple[Segmenter, int]:
        """(segmenter, its version) of the log's active version; if that file is missing or damaged, of the
        newest version that loads (reported in :attr:`problems`). ``CheckpointError`` if none does."""
        try:
            return Segmenter.load(self._model_path(active)), active
        except (CheckpointError, TypeError, ValueError) as e:  # TypeError/ValueError: a hand-edited version
            problem = e
        for version in reversed([v for v in self._saved_versions() if v != active]):
            try:
                seg = Segmenter.load(self._model_path(version))
            except CheckpointError:
                continue
            self._warn(f"the active model version {active} could not be read ({problem}); version {version}, the "
                       "newest that could, is active instead")
            return seg, version
        raise CheckpointError(f"the project's active model version {active} could not be read ({problem}) and no "
                              f"other saved version can be: train a new one (--model) or restore "
                              f"{self.folder / 'models'}")

    def _saved_versions(self) -> list[int]:
        """Version numbers of the readable model files in ``models/``, sorted."""
        found = []
        for path in sorted((self.folder / "models").glob("v*.safetensors")):
            try:
                found.append(read_metadata(path).active_version)
            except CheckpointError:
                continue
        return sorted(found)

    # ---- log ----------------------------------------------------------------------------------------------
    @property
    def events(self) -> list[dict]:
        return list(self._log["events"])

    def log(self, event: str, **details) -> None:
        """Append an event to ``log.json`` (rewritten atomically)."""
        entry = {"time": now(), "event": event, **details}
        self._log["events"].append(entry)
        text = json.dumps(self._log, indent=1)
        path = self.folder / LOG
        self._guard(lambda: atomic_write(path, lambda tmp: Path(tmp).write_text(text)), path)

    @staticmethod
    def safe_name(name: str) -> str:
        """``name`` with characters unusable in file names replaced by '_' (e.g. a napari layer name)."""
        cleaned = re.sub(r"[^\w.\- ]", "_", name).lstrip(".")
        return cleaned or "image"

    # ---- helpers ------------------------------------------------------------------------------------------
    def _path(self, kind: str, name: str) -> Path:
        if not re.fullmatch(r"[\w.\- ]+", name) or name.startswith("."):
            raise ValueError(f"{name!r} is not usable as a file name: use letters, digits, spaces, '.', '_', '-'")
        return self.folder / kind / f"{name}.tif"

    def _model_path(self, version: int) -> Path:
        return self.folder / "models" / f"v{version:04d}.safetensors"

    def _write_tif(self, kind: str, name: str, array: np.ndarray) -> None:
        path = self._path(kind, name)
        # minisblack: a (3, Y, X) stack or an RGB image is stored as planes and read back with its shape
        write = lambda tmp: tifffile.imwrite(tmp, array, compression="zlib", photometric="minisblack")  # noqa: E731
        self._guard(lambda: atomic_write(path, write), path)

    @staticmethod
    def _guard(action, path: Path):
        try:
            return action()
        except OSError as e:
            raise _save_error(path, e) from e
