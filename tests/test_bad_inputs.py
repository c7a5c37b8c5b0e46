"""Bad input across the public API: one clear exception saying what was expected, and the model untouched."""

import os
import pickle

import numpy as np
import pytest
import torch
from conftest import same_state, smooth_image, state, tiny_segmenter, two_class_image
from safetensors.torch import save_file

from napari_segnet.io.checkpoint import CheckpointError
from napari_segnet.numerics.normalization import Normalization
from napari_segnet.project import Project, ProjectSaveError
from napari_segnet.segmenter import Segmenter

IMAGE, LABELS = two_class_image(size=64)
STACK = np.stack([IMAGE, IMAGE[::-1], IMAGE[:, ::-1]])


def finetune(seg, images=(IMAGE,), labels=(LABELS,), masks=None, **settings):
    """Call finetune with small settings; errors must come from the call itself, before any training."""
    return seg.finetune(list(images), list(labels), masks, **{"steps": 2, "patch_size": 32, **settings})


def broken_metadata(seg, tmp):
    path = seg.save(tmp / "m")
    header = {"format": "napari-segnet", "format_version": "1", "metadata": "{not json"}
    save_file({k: v.contiguous() for k, v in seg.net.state_dict().items()}, str(path), metadata=header)
    return Segmenter.load(path)


def write(tmp, name, data: bytes):
    (tmp / name).write_bytes(data)
    return tmp / name


PREDICT = [
    ("1-D image", lambda s, t: s.predict(np.zeros(10)), ValueError, "2-D"),
    ("5-D image", lambda s, t: s.predict(np.zeros((2, 3, 4, 5, 6))), ValueError, "2-D"),
    ("empty image", lambda s, t: s.predict(np.zeros((0, 5))), ValueError, "empty"),
    ("text image", lambda s, t: s.predict(np.array([["a", "b"]])), ValueError, "integer or float"),
    ("complex image", lambda s, t: s.predict(np.zeros((8, 8), complex)), ValueError, "integer or float"),
    ("NaN image", lambda s, t: s.predict(np.full((8, 8), np.nan)), ValueError, "NaN"),
    ("inf image", lambda s, t: s.predict(np.where(np.eye(8) > 0, np.inf, 1.0)), ValueError, "NaN or infinite"),
    ("RGB to a 1-channel model", lambda s, t: s.predict(np.zeros((32, 32, 3))), ValueError, "looks RGB"),
    ("gray + alpha to a 1-channel model", lambda s, t: s.predict(np.zeros((32, 32, 2))), ValueError,
     "looks gray + alpha"),
    ("channel axis of a 2-D image", lambda s, t: s.predict(IMAGE, channel_axis=0), ValueError,
     "leaves no (Y, X) plane"),
    ("float channel axis", lambda s, t: s.predict(IMAGE[None], channel_axis=0.0), ValueError,
     "channel_axis must be an integer"),
    ("4-D to a 1-channel model", lambda s, t: s.predict(np.zeros((2, 3, 32, 32))), ValueError, "channel_axis"),
    ("channel axis out of range", lambda s, t: s.predict(IMAGE, channel_axis=5), ValueError, "out of range"),
    ("zero tile", lambda s, t: s.predict(IMAGE, tile_shape=0), ValueError, "tile_shape"),
    ("text tile", lambda s, t: s.predict(IMAGE, tile_shape="big"), ValueError, "tile_shape"),
    ("out of another shape", lambda s, t: s.predict(IMAGE, out=np.zeros((5, 5), np.uint8)), ValueError,
     "spatial shape"),
    ("bool out for 3 classes", lambda s, t: _classes(3).predict(IMAGE, out=np.zeros(IMAGE.shape, bool)),
     ValueError, "cannot hold class ids 0…2"),
    ("int8 out for 300 classes", lambda s, t: _classes(300).predict(IMAGE, out=np.zeros(IMAGE.shape, np.int8)),
     ValueError, "cannot hold class ids 0…299"),
    ("read-only out", lambda s, t: s.predict(IMAGE, out=_read_only(IMAGE.shape)), ValueError, "read-only"),
    ("out not an array", lambda s, t: s.predict(IMAGE, out=IMAGE.tolist()), ValueError, "out must be an array"),
    ("unknown device", lambda s, t: s.predict(IMAGE, device="tpu"), ValueError, "unknown device"),
    ("steps generator checks eagerly", lambda s, t: s.predict_steps(np.zeros(10)), ValueError, "2-D"),
]
FINETUNE = [
    ("labels of another shape", lambda s, t: finetune(s, labels=[LABELS[:10]]), ValueError, "do not match"),
    ("class id out of range", lambda s, t: finetune(s, labels=[LABELS * 5]), ValueError, "class ids 0…1"),
    ("float labels", lambda s, t: finetune(s, labels=[LABELS * 0.5]), ValueError, "integer class ids"),
    ("negative labels", lambda s, t: finetune(s, labels=[LABELS.astype(int) - 1]), ValueError, "class ids 0…1"),
    ("mask of another shape", lambda s, t: finetune(s, masks=[np.ones((3, 3), bool)]), ValueError, "mask of shape"),
    ("no images", lambda s, t: finetune(s, images=[], labels=[]), ValueError, "at least one"),
    ("more labels than images", lambda s, t: finetune(s, labels=[LABELS, LABELS]), ValueError, "as many labels"),
    ("nothing reviewed", lambda s, t: finetune(s, masks=[np.zeros(LABELS.shape, bool)]), ValueError,
     "no reviewed pixels"),
    ("stack with 2-D labels", lambda s, t: finetune(s, images=[STACK]), ValueError, "single 2-D planes"),
    ("stack labels with too few planes", lambda s, t: finetune(s, images=[STACK], labels=[np.stack([LABELS] * 2)]),
     ValueError, "do not match"),
    ("unknown loss", lambda s, t: finetune(s, loss="hinge"), ValueError, "loss must be one of"),
    ("unknown setting", lambda s, t: finetune(s, epochs=3), ValueError, "unknown fine-tune setting(s) ['epochs']"),
    ("zero steps", lambda s, t: finetune(s, steps=0), ValueError, "steps must be a positive integer"),
    ("zero batch", lambda s, t: finetune(s, batch_size=0), ValueError, "batch_size must be a positive integer"),
    ("negative learning rate", lambda s, t: finetune(s, lr=-1.0), ValueError, "lr must be a positive number"),
    ("NaN learning rate", lambda s, t: finetune(s, lr=float("nan")), ValueError, "lr must be a positive number"),
    ("learning rate as text", lambda s, t: finetune(s, lr="0.1"), ValueError,
     "lr must be a positive number, got '0.1'"),
    ("seed as text", lambda s, t: finetune(s, seed="a"), ValueError, "seed must be an integer or None, got 'a'"),
    ("validation not a pair", lambda s, t: finetune(s, validation=([IMAGE],)), ValueError,
     "validation must be a pair"),
    ("no validation images", lambda s, t: finetune(s, validation=([], [])), ValueError,
     "validation: need as many labels and masks as images (at least one)"),
    ("fewer validation labels than images", lambda s, t: finetune(s, validation=([IMAGE, IMAGE], [LABELS])),
     ValueError, "validation: need as many labels"),
    ("validation labels of another shape", lambda s, t: finetune(s, validation=([IMAGE], [LABELS[:5]])),
     ValueError, "validation: labels of shape (5, 64) do not match"),
    ("validation class id out of range", lambda s, t: finetune(s, validation=([IMAGE], [LABELS * 7])), ValueError,
     "validation: labels must hold class ids 0…1"),
]
CHECKPOINTS = [
    ("missing file", lambda s, t: Segmenter.load(t / "nothing.safetensors"), CheckpointError, "no checkpoint"),
    ("pickle", lambda s, t: Segmenter.load(write(t, "m.pt", pickle.dumps({"w": 1}))), CheckpointError,
     "refused because loading them can run code"),
    ("text file", lambda s, t: Segmenter.load(write(t, "m.safetensors", b"hello")), CheckpointError,
     "not a napari-segnet checkpoint"),
    ("foreign safetensors", lambda s, t: Segmenter.load(_foreign(t)), CheckpointError,
     "safetensors file but not a napari-segnet checkpoint"),
    ("damaged metadata", broken_metadata, CheckpointError, "damaged metadata"),
    ("save into a missing folder", lambda s, t: s.save(t / "no" / "such" / "m"), OSError, "could not save the model"),
    ("rollback to an unknown version", lambda s, t: s.rollback(7), ValueError, "available versions: [0]"),
]
CREATION = [
    ("one class", lambda s, t: Segmenter.create("unet", 1, 1), ValueError, "use num_classes=2"),
    ("unknown architecture", lambda s, t: Segmenter.create("segnet"), ValueError, "valid names: fc_densenet103"),
    ("unknown option", lambda s, t: Segmenter.create("unet", widht=3), ValueError, "unknown option widht for unet"),
    ("option of the wrong type", lambda s, t: Segmenter.create("unet", base_filters="four"), ValueError,
     "option base_filters of 'unet' must be int like its default 32, got 'four'"),
    ("float for an int option", lambda s, t: Segmenter.create("unet", depth=2.0), ValueError, "must be int"),
    ("too few class names", lambda s, t: Segmenter.create("unet", 1, 3, ["bg", "a"]), ValueError, "3 class names"),
    ("zero channels", lambda s, t: Segmenter.create("unet", 0, 2), ValueError, "in_channels must be a positive"),
    ("bad normalisation", lambda s, t: Segmenter.create("unet", normalization={"mode": "zscore"}), ValueError,
     "normalization mode must be one of"),
]
PROJECT = [
    ("unsafe image name", lambda s, t: Project(t).add_image("../escape", IMAGE), ValueError,
     "not usable as a file name"),
    ("correction of an unknown image", lambda s, t: Project(t).save_correction("x", LABELS), ValueError,
     "no image named 'x'"),
    ("correction mask of another shape", lambda s, t: _project_with_image(t).save_correction(
        "x", LABELS, np.ones((3, 3), bool)), ValueError, "does not match"),
    ("1-D project image", lambda s, t: Project(t).add_image("x", np.zeros(10)), ValueError, "2-D (Y, X), 3-D or 4-D"),
    ("correction of another shape than the image", lambda s, t: _project_with_image(t).save_correction(
        "x", LABELS[:10]), ValueError, "labels of shape (10, 64) do not fit image 'x' of shape (64, 64)"),
    ("float correction", lambda s, t: _project_with_image(t).save_correction("x", LABELS * 0.5), ValueError,
     "integer class ids"),
    ("negative correction", lambda s, t: _project_with_image(t).save_correction("x", LABELS.astype(int) - 1),
     ValueError, "non-negative class ids"),
    ("project folder is a file", lambda s, t: Project(write(t, "file", b"x")), ProjectSaveError,
     "Nothing was lost"),
]


def _classes(n):
    return Segmenter.create("unet", 1, n, base_filters=4, depth=2)


def _read_only(shape):
    out = np.zeros(shape, np.uint8)
    out.flags.writeable = False
    return out


def _foreign(tmp):
    save_file({"w": torch.zeros(2)}, str(tmp / "other.safetensors"))
    return tmp / "other.safetensors"


def _project_with_image(tmp):
    project = Project(tmp)
    project.add_image("x", IMAGE)
    return project


CASES = PREDICT + FINETUNE + CHECKPOINTS + CREATION + PROJECT


@pytest.mark.parametrize("call, error, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_a_clear_error_and_changes_nothing(call, error, fragment, tmp_path):
    seg = tiny_segmenter(num_classes=2)
    before, versions = state(seg), seg.versions
    with pytest.raises(error) as info:
        call(seg, tmp_path)
    assert fragment in str(info.value)
    assert same_state(before, state(seg)) and seg.versions == versions and seg.active_version == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_asked_for_without_a_gpu():
    seg = tiny_segmenter()
    with pytest.raises(ValueError, match="sees no CUDA GPU"):
        seg.predict(smooth_image((32, 32)), device="cuda")


def test_a_read_only_project_folder_keeps_everything_in_memory(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root ignores file permissions")
    project = Project(tmp_path)
    tmp_path.joinpath("images").chmod(0o500)
    try:
        with pytest.raises(ProjectSaveError, match="Nothing was lost"):
            project.add_image("a", IMAGE)
    finally:
        tmp_path.joinpath("images").chmod(0o700)


def test_normalization_needs_finite_scales():
    with pytest.raises(ValueError, match="finite non-zero scales"):
        Normalization(mode="fixed", scale=(0.0,))


def test_a_trailing_singleton_channel_is_one_channel():
    """(Y, X, 1), as some TIFF and PNG readers give a grayscale image, is one plane, not Y planes of X × 1."""
    seg = tiny_segmenter(num_classes=2)
    labels = seg.predict(IMAGE[:, :, None])
    assert labels.shape == IMAGE.shape
    np.testing.assert_array_equal(labels, seg.predict(IMAGE))
