"""Shared test helpers: tiny models with non-trivial BatchNorm statistics, test images, fine-tune helpers."""

import os
import re
from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy import ndimage

from napari_segnet.segmenter import FinetuneFinished, Segmenter
from napari_segnet.training.recommend import TRAINED_MODEL

# Exactness tests (tiled = whole image to 1e-4, bit for bit) compare fp32 runs; the bf16 fast path of CPUs with
# native bf16 has its own agreement test (test_fast_paths.py).
os.environ.setdefault("NAPARI_SEGNET_CPU_BF16", "0")


def randomize_batchnorm(net: torch.nn.Module) -> None:
    """Give BN layers non-identity running statistics so eval-mode behaviour is really exercised."""
    gen = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)


def tiny_segmenter(arch="unet", in_channels=1, num_classes=3, recommendation=TRAINED_MODEL, **options) -> Segmenter:
    """A tiny model. It recommends the defaults (``TRAINED_MODEL``) unless told: the tests of fine-tuning's mechanics
    give what they test and rely on the defaults for the rest (no forest, no time budget), while a model fresh from
    ``Segmenter.create`` recommends ``NEW_MODEL`` (tests/test_recommend.py)."""
    torch.manual_seed(0)
    defaults = {"unet": {"base_filters": 4, "depth": 3}}.get(arch, {})
    seg = Segmenter.create(arch, in_channels, num_classes, **{**defaults, **options})
    seg.metadata = replace(seg.metadata, recommendation=recommendation.to_dict())
    randomize_batchnorm(seg.net)
    return seg


def smooth_image(shape, seed=0, dtype=np.uint16) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = ndimage.gaussian_filter(rng.random(shape, dtype=np.float32), 2) * 4000
    return img.astype(dtype)


@pytest.fixture
def segmenter():
    return tiny_segmenter()


@pytest.fixture
def errors(monkeypatch):
    """Messages the dock shows as error notifications (GUI tests only: imports the dock's runner)."""
    from napari_segnet._widgets import runner

    shown = []
    monkeypatch.setattr(runner, "show_error", shown.append)
    return shown


def two_class_image(seed=0, size=64):
    """Bright discs on a dark noisy background, and their labels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros((size, size), np.uint8)
    for _ in range(6):
        cy, cx, r = rng.integers(8, size - 8), rng.integers(8, size - 8), rng.integers(4, 8)
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
    image = labels * 100.0 + rng.normal(0, 20, labels.shape)
    return image.astype(np.float32), labels


#: What Python looks like in a message: a call ``rollback(1)``, a traceback, an object repr, a list or dict repr, an
#: exception class name. No notification the dock shows may contain it (plain words for people).
PYTHON = re.compile(r"\b[a-z_]\w*\([\w'\", .=]*\)|Traceback|File \"|<[\w.]+ object at|\[['\"]|\{['\"]|"
                    r"\b\w+(Error|Exception)\b")


@pytest.fixture(autouse=True)
def plain_words(request):
    """GUI tests: every notification shown during the test is in plain words (no Python, no traceback)."""
    if request.node.get_closest_marker("gui") is None:
        yield
        return
    from napari.utils.notifications import notification_manager

    start = len(notification_manager.records)
    yield
    shown = [str(n.message) for n in notification_manager.records[start:]]
    shown += list(request.node.funcargs.get("errors", []))
    python = [m for m in shown if PYTHON.search(m)]
    assert not python, f"notifications with Python in them: {python}"


@pytest.fixture(autouse=True)
def autosave_home(tmp_path_factory, monkeypatch):
    """Sessions without a project folder save under a temporary folder, never in the home folder."""
    from napari_segnet.session import HOME_ENV

    home = tmp_path_factory.mktemp("sessions")
    monkeypatch.setenv(HOME_ENV, str(home))
    return home


def open_dock(make_napari_viewer, monkeypatch, size=96, truth_layer=False):
    """A viewer with a two-class image "cells" (its truth also as Labels "truth" when ``truth_layer``) and the
    dock on it with a tiny 2-class model, predicting inline; returns (viewer, dock, truth). GUI tests only."""
    from napari_segnet._widgets import runner
    from napari_segnet._widgets.dock import SegNetWidget

    monkeypatch.setenv(runner.SYNC_ENV, "1")
    viewer = make_napari_viewer()
    image, truth = two_class_image(size=size)
    viewer.add_image(image, name="cells")
    if truth_layer:
        viewer.add_labels(truth, name="truth")
    widget = SegNetWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.reset_choices()
    widget.image_layer.value = viewer.layers["cells"]
    widget.set_model(tiny_segmenter(num_classes=2, class_names=["background", "cell"]))
    return viewer, widget, truth


@pytest.fixture
def dock(make_napari_viewer, monkeypatch):
    """The dock of the workflow tests (GUI only): (viewer, dock, truth) as :func:`open_dock` makes them with a truth
    layer, 60 steps at lr 1e-2, learning from whole corrected layers (the review tests paint regions instead)."""
    viewer, widget, truth = open_dock(make_napari_viewer, monkeypatch, truth_layer=True)
    widget.steps.value, widget.lr.value = 60, 1e-2
    widget.review.value = "whole image"
    return viewer, widget, truth


def run(gen):
    """All updates of a fine-tune: (progress updates, the FinetuneFinished outcome)."""
    updates = list(gen)
    assert isinstance(updates[-1], FinetuneFinished)
    return updates[:-1], updates[-1]


def state(seg):
    return {k: v.clone() for k, v in seg.net.state_dict().items()}


def same_state(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


#: Options that keep each network family's structure but make it fast on a CPU.
TINY = {  # that keep each family's structure but make it fast on a CPU
    "unet": {"base_filters": 4, "depth": 2},
    "unet_paper": {},
    "fcn32s": {"width": 1 / 32}, "fcn16s": {"width": 1 / 32}, "fcn8s": {"width": 1 / 32},
    "fc_densenet56": {"growth_rate": 2, "first_filters": 4},
    "fc_densenet67": {"growth_rate": 2, "first_filters": 4},
    "fc_densenet103": {"growth_rate": 2, "first_filters": 4},
}

FAST = {"steps": 30, "batch_size": 2, "patch_size": 32, "lr": 3e-3, "seed": 0}

# GUI tests without a display (issue 17): skipped, or failed under NAPARI_SEGNET_REQUIRE_GUI=1; see display_hooks.py
from display_hooks import pytest_collection_modifyitems, pytest_runtest_setup  # noqa: E402, F401


class CountingArray:
    """A NumPy array that counts how often it is read."""

    def __init__(self, array):
        self.array, self.shape, self.dtype, self.ndim, self.reads = array, array.shape, array.dtype, array.ndim, 0

    def __getitem__(self, index):
        self.reads += 1
        return self.array[index]
