"""Overlap-tile prediction: tiled and whole-image results agree; plans are stride-aligned; memory is bounded."""

import numpy as np
import pytest
import torch
from conftest import CountingArray, smooth_image, tiny_segmenter

from napari_segnet.inference import tiling
from napari_segnet.inference.tile_plan import explicit_plan
from napari_segnet.inference.tiling import TiledPredictor, blend_window, tile_weights
from napari_segnet.models import build_model
from napari_segnet.numerics.images import WindowedArray, reflect_index
from napari_segnet.progress import run

IMAGE = smooth_image((1000, 1300))  # a multiple of nothing


def test_valid_unet_tiled_equals_whole_image_bit_for_bit():
    seg = tiny_segmenter(padding="valid", batch_norm=False)
    with torch.no_grad():  # sharpen the random head so that the labels vary
        seg.net.head.bias.zero_()
        seg.net.head.weight.mul_(50)
    whole = seg.predict(IMAGE, tile_shape=4096)
    tiled = seg.predict(IMAGE, tile_shape=(200, 136))
    assert whole.shape == IMAGE.shape and whole.dtype == np.uint8
    assert len(np.unique(whole)) >= 2 and 0.05 < (whole == 1).mean() < 0.95  # a non-trivial prediction
    np.testing.assert_array_equal(tiled, whole)


def test_padded_unet_tiled_matches_whole_image():
    seg = tiny_segmenter()
    whole = seg.predict_proba(IMAGE, tile_shape=4096)
    tiled = seg.predict_proba(IMAGE, tile_shape=160)
    assert np.abs(whole - tiled).max() < 1e-4
    assert (whole.argmax(0) == tiled.argmax(0)).mean() >= 0.9999
    np.testing.assert_allclose(whole.sum(axis=0), 1, atol=1e-5)


def test_fcn_and_blended_fc_densenet_are_seamless():
    image = IMAGE[:200, :230]
    fcn = tiny_segmenter("fcn8s", width=1 / 32, dropout=0.0)
    np.testing.assert_allclose(fcn.predict_proba(image, tile_shape=64), fcn.predict_proba(image, 1024),
                               atol=1e-4)
    dense = tiny_segmenter("fc_densenet56", growth_rate=2, first_filters=4)
    # its halo (439 px) exceeds the context cap: with a cap below the measured context, tiles overlap and blend
    plan = explicit_plan(dense.net, 230, 64, max_context=16)
    assert plan.overlap > 0 and len(plan.starts) == 4
    whole = dense.predict_proba(image, tile_shape=10_000)
    tiled = run(dense.predict_steps(image, 64, want_labels=False, want_proba=True, max_context=16)).proba
    assert (whole.argmax(0) == tiled.argmax(0)).mean() >= 0.999
    assert np.abs(whole - tiled).max() < 1e-2


def test_plans_start_on_stride_multiples_and_cover_the_image():
    net = build_model("unet_paper")
    plan = explicit_plan(net, 1000, 300)
    assert plan.step % 16 == 0 and plan.pad == 92 and plan.margin == 0
    assert net.is_valid_size(plan.tile_in) and net.output_size(plan.tile_in) >= plan.step
    assert list(plan.starts)[-1] < 1000 <= list(plan.starts)[-1] + plan.step
    padded = explicit_plan(build_model("unet"), 1000, 300)
    assert padded.margin == 112 and padded.tile_in == padded.step + 224  # halo 107 → 112
    # no mirrored context at the image border: tiles there see what a whole-image pass sees
    assert padded.pad == 0 and padded.window(0) == 0 and padded.window(3) + padded.tile_out == padded.extent == 1008


def test_reflect_index_mirrors_without_repeating_the_edge():
    np.testing.assert_array_equal(reflect_index(np.arange(-3, 7), 4), [3, 2, 1, 0, 1, 2, 3, 2, 1, 0])
    np.testing.assert_array_equal(reflect_index(np.arange(-2, 3), 1), [0] * 5)


def test_blend_window_is_symmetric_and_flat_in_the_middle():
    net = tiny_segmenter("fc_densenet56", growth_rate=2, first_filters=4).net
    plan = explicit_plan(net, 2000, 512, max_context=16)  # below its measured context: blend over 32 px
    w = blend_window(plan)
    assert len(w) == plan.step + 2 * plan.overlap == 544
    np.testing.assert_allclose(w, w[::-1])
    # each ramp spans the 2·overlap px two neighbours share, so two overlapping ramps sum to 1
    assert w[2 * plan.overlap : -2 * plan.overlap].min() == 1 and w[0] == 0.25 / plan.overlap
    np.testing.assert_allclose(w[: 2 * plan.overlap] + w[plan.step : plan.step + 2 * plan.overlap], 1)
    # per tile: the weights of all tiles sum to 1 on every pixel, and there is no ramp at the image border
    total = np.zeros(2000)
    for i in range(len(plan.starts)):
        total[plan.kept(i)[1]] += tile_weights(plan, i)
    np.testing.assert_allclose(total, 1, atol=1e-6)
    assert tile_weights(plan, 0)[0] == 1


def test_image_smaller_than_one_tile_and_single_pixel_images():
    seg = tiny_segmenter()
    small = smooth_image((5, 7))
    assert seg.predict(small).shape == (5, 7)
    assert seg.predict(np.array([[3.0]])).shape == (1, 1)


def test_tiles_are_read_one_at_a_time():
    """Memory is bounded by the tile: the predictor never reads more than one tile's bounding box."""
    seg = tiny_segmenter()
    reads = []

    class Spy(np.ndarray):
        def __getitem__(self, key):
            out = np.asarray(super().__getitem__(key))
            reads.append(out.size)
            return out

    image = smooth_image((2400, 2400)).view(Spy)
    seg.predict(image, tile_shape=512)
    sample, tiles = reads[0], reads[1:]
    assert sample <= 2**20 * 1.01  # the normalisation percentiles come from a strided grid of ≤ 1 M pixels
    assert len(tiles) == 25 and max(tiles) <= (512 + 2 * 112) ** 2


def test_windowed_array_serves_its_box_from_memory_and_the_rest_from_the_array():
    data = np.arange(5 * 40 * 30).reshape(5, 40, 30)
    source = CountingArray(data)
    window = WindowedArray(source, (slice(2, 3), slice(10, 30), slice(None)))
    assert source.reads == 1 and window.data.shape == (1, 20, 30) and window.shape == data.shape
    inside = [(2, slice(10, 30), slice(0, 30)), (2, slice(12, 13), slice(-5, None)), (-3, slice(29, 30), 4)]
    for index in inside:
        np.testing.assert_array_equal(window[index], data[index])
    assert source.reads == 1
    outside = [(3, slice(10, 30), slice(None)), (2, slice(9, 20), slice(None)), (2, slice(10, 30, 2), 0),
               (2, 30, 0), (slice(2, 3), slice(10, 30)), (2, slice(20, 10), slice(None))]
    for k, index in enumerate(outside, start=2):
        np.testing.assert_array_equal(window[index], data[index])
        assert source.reads == k - (index[1] == slice(20, 10))  # an empty slice inside the box is served too


@pytest.mark.parametrize("band_bytes, reads", [(64 * 2**20, 2 + 2 * 5), (1000, 2 + 2 * 25)])
def test_a_lazy_image_is_read_a_row_of_tiles_at_a_time(monkeypatch, band_bytes, reads):
    """Tiles overlap by their context: an image not in memory (zarr, dask) is read once per tile row, not once per
    tile (each chunk decompressed again); rows over BAND_BYTES are read tile by tile. Same labels either way."""
    monkeypatch.setattr(tiling, "BAND_BYTES", band_bytes)
    seg = tiny_segmenter()
    stack = smooth_image((2, 300, 300))
    lazy = CountingArray(stack)
    labels = seg.predict(lazy, tile_shape=64)
    assert lazy.reads == reads  # the normalisation samples each plane, then 2 planes × 5 rows (or × 25 tiles)
    np.testing.assert_array_equal(labels, seg.predict(stack, tile_shape=64))


def test_batches_of_tiles_give_the_same_result():
    seg = tiny_segmenter()
    image = IMAGE[:300, :300]
    np.testing.assert_array_equal(seg.predict(image, tile_shape=64, batch_size=4), seg.predict(image, 64))


def test_predictor_uses_the_given_device():
    seg = tiny_segmenter()
    pred = TiledPredictor(seg.net, torch.device("cpu"), lambda t: t)
    probs = pred._forward(np.zeros((2, 1, 16, 16), np.float32))
    assert probs.shape == (2, 3, 16, 16) and probs.dtype == np.float32


@pytest.mark.parametrize("tile_shape", [0, (64,), "big", (-1, 5)])
def test_bad_tile_shapes(segmenter, tile_shape):
    with pytest.raises(ValueError, match="tile_shape"):
        segmenter.predict(IMAGE[:64, :64], tile_shape=tile_shape)
