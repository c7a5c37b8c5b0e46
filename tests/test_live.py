"""The live session (no Qt): strokes during a burst join the next, the guard, one version, rollback; Next tiles."""

import numpy as np
import pytest
from conftest import same_state, state, tiny_segmenter, two_class_image

from napari_segnet.inference.suggest import suggest_tiles, uncertainty
from napari_segnet.live import BurstDone, LiveSession, LiveSettings, Refreshed, Waiting
from napari_segnet.training.loop import TrainProgress

FAST = LiveSettings(burst_steps=4, lr=1e-2, batch_size=2, patch_size=32, idle_bursts=0, refresh_s=0)


def session(settings=FAST):
    seg = tiny_segmenter(num_classes=2)
    image, truth = two_class_image(size=64)
    live = LiveSession(seg, settings)
    live.add_plane("cells", image, seg.predict(image))
    return seg, image, truth, live


def stroke(truth, rows):
    mask = np.zeros(truth.shape, bool)
    mask[rows] = True
    return mask


def until(steps, kind, limit=500):
    for _, item in zip(range(limit), steps):
        if isinstance(item, kind):
            return item
    raise AssertionError(f"no {kind.__name__}")


def test_a_stroke_made_during_a_burst_joins_the_next_burst():
    seg, image, truth, live = session()
    first, second = stroke(truth, slice(10, 14)), stroke(truth, slice(40, 46))
    live.paint("cells", first, truth)
    steps = live.steps()
    running = until(steps, TrainProgress)  # burst 1 is running: its first step of burst_steps
    assert (running.done, running.total) == (1, FAST.burst_steps) and np.isfinite(running.loss)
    live.paint("cells", second, truth)  # painting never waits for it
    done = until(steps, BurstDone)
    assert (done.number, done.strokes, done.reviewed_pixels) == (1, 1, 64 * 64)  # the stroke's tile: all of it
    done = until(steps, BurstDone)
    assert (done.number, done.strokes) == (2, 2)
    plane = live.planes["cells"]
    np.testing.assert_array_equal(plane.labels[first | second], truth[first | second])
    assert plane.reviewed.all()
    steps.close()


def test_finishing_mid_burst_keeps_the_strokes_and_the_last_kept_weights():
    seg, image, truth, live = session(LiveSettings(**{**FAST.__dict__, "idle_bursts": 1}))
    before = state(seg)
    live.paint("cells", stroke(truth, slice(0, 64)), truth)
    steps = live.steps()
    first = until(steps, BurstDone)
    kept = state(live.model)
    assert first.accepted, first.message
    until(steps, TrainProgress)
    until(steps, TrainProgress)  # two steps into burst 2
    live.paint("cells", stroke(truth, slice(0, 2)), np.zeros_like(truth))  # a last stroke, never trained on
    version = live.finish()
    assert next(steps, "ended") == "ended"  # the worker's loop ends at once
    assert same_state(state(live.model), kept)  # the abandoned burst changed nothing
    assert version == 1 and seg.active_version == 1 and same_state(state(seg), kept)
    assert live.planes["cells"].reviewed.sum() == 64 * 64 and live.strokes == 2
    assert (live.planes["cells"].labels[:2] == 0).all()  # the last stroke is there for the next fine-tune
    seg.rollback(0)
    assert same_state(state(seg), before)
    with pytest.raises(ValueError, match="has ended"):
        live.paint("cells", stroke(truth, slice(0, 1)), truth)


def test_a_session_is_one_version_whatever_the_number_of_bursts():
    seg, image, truth, live = session(LiveSettings(**{**FAST.__dict__, "idle_bursts": 2}))
    live.paint("cells", stroke(truth, slice(0, 64)), truth)
    items = []
    for item in live.steps():
        items.append(item)
        if isinstance(item, Waiting):
            break
    bursts = [i for i in items if isinstance(i, BurstDone)]
    assert len(bursts) == 3 and sum(b.accepted for b in bursts) >= 2  # one for the stroke, two more when idle
    refreshed = [i for i in items if isinstance(i, Refreshed)]
    assert {r.labels.shape for r in refreshed} == {(64, 64)}  # stale whole planes when idle
    assert live.finish() == 1 and live.finish() == 1
    assert [v.version for v in seg.versions] == [0, 1]
    record = seg.versions[1]
    assert record.parent == 0 and record.details["live"]["bursts"] == 3 and record.reviewed_pixels == 64 * 64
    assert record.note.startswith(f"live session: {sum(b.accepted for b in bursts)} of 3 bursts kept")


def test_bursts_the_guard_rejects_leave_the_model_and_make_no_version(monkeypatch):
    seg, image, truth, live = session()
    before = state(seg)
    guard = iter([{"mean_iu": 0.9}, {"mean_iu": 0.5}])  # the burst scores worse on the reviewed pixels
    monkeypatch.setattr(live.model, "_reviewed_scores", lambda items, device=None, held_out=False: next(guard))
    live.paint("cells", stroke(truth, slice(0, 64)), truth)
    done = until(live.steps(), BurstDone)
    assert not done.accepted and "mean IU 0.500 against 0.900 for version 0" in done.message
    assert same_state(state(live.model), before) and live.model.active_version == 0
    assert live.finish() is None and seg.active_version == 0 and len(seg.versions) == 1


def test_refreshing_a_region_predicts_it_with_the_whole_images_normalisation():
    seg, image, truth, live = session()
    whole = seg.predict(image)
    part = live.refresh("cells", (slice(8, 40), slice(20, None)))
    assert part.region == (slice(8, 40), slice(20, 64)) and part.labels.shape == (32, 44)
    assert (part.labels == whole[8:40, 20:]).mean() > 0.99


def test_bad_inputs():
    seg, image, truth, live = session()
    with pytest.raises(ValueError, match="no plane 'other'"):
        live.paint("other", stroke(truth, slice(0, 1)), truth)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        LiveSettings(burst_steps=0)
    with pytest.raises(ValueError, match="must be ≥ 0"):
        LiveSettings(refresh_s=-1)
    with pytest.raises(ValueError, match="do not match the plane's"):
        live.add_plane("x", image, truth[:10])
    assert next(live.steps()) == Waiting()  # no stroke yet: nothing to train


def test_next_tiles_go_from_most_to_least_uncertain_and_skip_reviewed_ones():
    u = np.zeros((256, 256), np.float32)
    u[:128, :128], u[:128, 128:], u[128:, :128], u[128:, 128:] = 0.1, 0.4, 0.3, 0.2
    reviewed = np.zeros(u.shape, bool)
    reviewed[:128, 128:][:20, :40] = True  # 800 of 16384 pixels = 4.9 %: still counts as unreviewed
    tiles = suggest_tiles(u, reviewed)
    assert [(r.start, c.start) for r, c in tiles] == [(0, 128), (128, 0), (128, 128), (0, 0)]
    reviewed[:128, 128:][:21, :40] = True  # 5.1 %: reviewed
    assert [(r.start, c.start) for r, c in suggest_tiles(u, reviewed, skip={(128, 0)})] == [(128, 128), (0, 0)]
    edge = suggest_tiles(np.ones((200, 300)), tile=128)
    assert len(edge) == 6 and edge[-1] == (slice(128, 200), slice(256, 300))
    proba = np.array([[[0.7, 0.2]], [[0.3, 0.8]]])
    np.testing.assert_allclose(uncertainty(proba), [[0.3, 0.2]])
    with pytest.raises(ValueError, match="must be 2-D"):
        suggest_tiles(np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="tile must be a positive integer"):
        suggest_tiles(u, tile=0)
    with pytest.raises(ValueError, match="does not match the map's"):
        suggest_tiles(u, np.zeros((8, 8), bool))


def test_with_three_views_a_volumes_planes_are_refreshed_from_its_three_views():
    from conftest import FAST as TRAIN
    from conftest import run
    from test_views import blob_volume

    seg = tiny_segmenter(num_classes=2)
    volume, labels = blob_volume()  # 24 slices, fewer than twice the margin: the whole volume is the context
    run(seg.finetune([volume[12]], [labels[12]], validation=([volume[12]], [labels[12]]),
                     **{**TRAIN, "lr": 1e-2, "steps": 40}))  # sees blobs
    whole = seg.predict(volume, views=3, spacing=(2.0, 1.0, 1.0))
    live = LiveSession(seg, FAST, views=3, spacing=(2.0, 1.0, 1.0))
    live.add_plane(("vol", 0, 4), volume, whole[4], plane=4)
    live.add_plane(("vol", 1, 7), volume, whole[:, 7, :], plane=7, axis=1)  # a (Z, X) plane
    assert live.planes[("vol", 0, 4)].volume is live.planes[("vol", 1, 7)].volume  # normalised once
    region = live.refresh(("vol", 0, 4), (slice(0, 40), slice(0, 40)))
    assert (region.labels == whole[4]).mean() > 0.999
    assert (region.labels != seg.predict(volume)[4]).sum() > 0  # not the slice-wise prediction
    side = live.refresh(("vol", 1, 7), (slice(2, 9), slice(5, 30)))
    assert side.labels.shape == (7, 25) and (side.labels == whole[2:9, 7, 5:30]).mean() > 0.999
    with pytest.raises(ValueError, match="views must be 1"):
        LiveSession(seg, FAST, views=2)
