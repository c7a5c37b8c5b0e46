"""The tile pipeline: same labels as one thread; errors and Stop leave no thread and no partial output file."""

import threading

import numpy as np
import pytest
from conftest import smooth_image, tiny_segmenter

from napari_segnet.inference.tile_pipeline import pipelined, predict_to_file
from napari_segnet.progress import run


def pipeline_threads():
    return [t for t in threading.enumerate() if t.name.startswith("segnet-")]


def test_stages_run_in_order_on_their_threads():
    seen = []
    results = list(pipelined([1, 2, 3], lambda b: (b, threading.current_thread().name), lambda d: d[0] * 10,
                             lambda b, r: seen.append((b, r, threading.current_thread().name))))
    assert results == [1, 2, 3]
    assert [(b, r) for b, r, _ in seen] == [(1, 10), (2, 20), (3, 30)]
    assert all(name.startswith("segnet-write") for *_, name in seen)
    assert pipeline_threads() == []


@pytest.mark.parametrize("stage", ["read", "compute", "write"])
def test_an_error_in_any_stage_is_raised_and_leaves_no_thread(stage):
    def fail_on_2(b, *rest):
        if b == 2:
            raise OSError(f"{stage} failed")
        return b

    stages = {"read": lambda b: b, "compute": lambda d: d, "write": lambda b, r: None}
    stages[stage] = fail_on_2 if stage != "compute" else (lambda d: fail_on_2(d))
    with pytest.raises(OSError, match=f"{stage} failed"):
        list(pipelined(range(5), stages["read"], stages["compute"], stages["write"]))
    assert pipeline_threads() == []


def test_tiled_prediction_in_the_pipeline_equals_one_tile_at_a_time():
    seg = tiny_segmenter()
    image = smooth_image((300, 260))
    tiled = seg.predict(image, tile_shape=64)  # 5 × 5 tiles through the three-stage pipeline
    whole = seg.predict(image, tile_shape=4096)  # one pass
    assert (tiled == whole).mean() >= 0.9999 and pipeline_threads() == []


def test_predict_to_file_completes_atomically(tmp_path):
    seg = tiny_segmenter()
    image = smooth_image((200, 150))
    path = tmp_path / "labels.npy"
    outcome = run(predict_to_file(path, image.shape, np.uint8,
                                  lambda out: seg.predict_steps(image, tile_shape=64, labels_out=out)))
    np.testing.assert_array_equal(np.load(path), seg.predict(image, tile_shape=64))
    np.testing.assert_array_equal(outcome.labels, np.load(path))
    assert [p.name for p in tmp_path.iterdir()] == ["labels.npy"]


def test_stop_or_error_leaves_no_partial_file_and_no_thread(tmp_path):
    seg = tiny_segmenter()
    image = smooth_image((200, 150))
    path = tmp_path / "labels.npy"
    steps = predict_to_file(path, image.shape, np.uint8,
                            lambda out: seg.predict_steps(image, tile_shape=64, labels_out=out))
    next(steps)
    next(steps)  # two tiles done, the next being read and the previous written
    steps.close()  # Stop
    assert list(tmp_path.iterdir()) == [] and pipeline_threads() == []

    class Broken(np.ndarray):
        def __getitem__(self, key):
            if isinstance(key, tuple) and isinstance(key[0], slice) and (key[0].start or 0) >= 20:  # the last tile
                raise OSError("disk read error")
            return super().__getitem__(key)

    with pytest.raises(OSError, match="disk read error"):
        run(predict_to_file(path, image.shape, np.uint8,
                            lambda out: seg.predict_steps(image.view(Broken), tile_shape=64, labels_out=out)))
    assert list(tmp_path.iterdir()) == [] and pipeline_threads() == []
