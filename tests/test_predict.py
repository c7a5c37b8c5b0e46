"""Segmenter.predict on every supported axes layout and dtype, dask input, progress, cancellation, bad input."""

import dask.array as da
import numpy as np
import pytest
import torch
from conftest import smooth_image, tiny_segmenter

from napari_segnet.numerics.images import ImagePlanes
from napari_segnet.numerics.normalization import Normalization
from napari_segnet.progress import Cancelled as PredictionCancelled

IMAGE = smooth_image((96, 112))


def test_labels_match_argmax_of_probabilities(segmenter):
    labels, proba = segmenter.predict(IMAGE), segmenter.predict_proba(IMAGE)
    assert labels.shape == IMAGE.shape and proba.shape == (3, *IMAGE.shape) and proba.dtype == np.float32
    np.testing.assert_array_equal(labels, proba.argmax(0))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32, np.float64, bool])
def test_any_dtype_gives_the_same_result_as_float(dtype):
    seg = tiny_segmenter()
    image = (IMAGE > 2000) if dtype is bool else (IMAGE // 20).astype(dtype)
    reference = seg.predict(image.astype(np.float64))
    np.testing.assert_array_equal(seg.predict(image), reference)


def test_percentile_normalisation_makes_scale_and_offset_irrelevant(segmenter):
    a = segmenter.predict(IMAGE.astype(np.float32))
    b = segmenter.predict(IMAGE.astype(np.float32) * 7.5 + 300)
    assert (a == b).mean() > 0.999


def test_stack_is_predicted_slice_by_slice(segmenter):
    stack = np.stack([IMAGE, IMAGE[::-1], IMAGE[:, ::-1]])
    labels = segmenter.predict(stack, tile_shape=64)
    assert labels.shape == stack.shape
    # percentiles are computed over the whole stack; each slice here has the same histogram, so the same ones
    np.testing.assert_array_equal(labels[1], segmenter.predict(IMAGE[::-1], tile_shape=64))
    proba = segmenter.predict_proba(stack)
    assert proba.shape == (3, *stack.shape)
    np.testing.assert_array_equal(proba.argmax(0), labels)


def test_rgb_rgba_and_channel_first_images_agree():
    seg = tiny_segmenter(in_channels=3)
    rgb = np.stack([IMAGE, IMAGE[::-1], IMAGE[:, ::-1]], axis=-1)
    rgba = np.concatenate([rgb, np.full(IMAGE.shape + (1,), 65535, IMAGE.dtype)], axis=-1)
    expected = seg.predict(rgb)
    assert expected.shape == IMAGE.shape
    np.testing.assert_array_equal(seg.predict(rgba), expected)  # alpha dropped
    np.testing.assert_array_equal(seg.predict(np.moveaxis(rgb, -1, 0)), expected)  # (C, Y, X)
    stack = np.stack([rgb, rgb])
    assert seg.predict(stack).shape == (2, *IMAGE.shape)


def test_dask_input_is_read_lazily_and_gives_the_same_result(segmenter):
    lazy = da.from_array(IMAGE, chunks=(32, 32))
    np.testing.assert_array_equal(segmenter.predict(lazy, tile_shape=48), segmenter.predict(IMAGE, tile_shape=48))


def test_output_into_a_preallocated_memmap(segmenter, tmp_path):
    out = np.lib.format.open_memmap(tmp_path / "labels.npy", mode="w+", dtype=np.uint8, shape=IMAGE.shape)
    result = segmenter.predict(IMAGE, out=out)
    assert result is out
    np.testing.assert_array_equal(np.load(tmp_path / "labels.npy"), segmenter.predict(IMAGE))


def test_progress_reports_every_tile_and_false_cancels(segmenter):
    seen = []
    segmenter.predict(IMAGE, tile_shape=32, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 12) for i in range(1, 13)]  # 3 × 4 tiles of 32 px over 96 × 112
    with pytest.raises(PredictionCancelled, match="after 2 of 12 tiles"):
        segmenter.predict(IMAGE, tile_shape=32, progress=lambda done, total: done < 2)


def test_closing_the_generator_stops_between_tiles(segmenter):
    gen = segmenter.predict_steps(IMAGE, tile_shape=32)
    assert next(gen).done == 1
    gen.close()  # what a thread worker's quit does; nothing else runs


def test_constant_image_is_fine(segmenter):
    labels = segmenter.predict(np.full((40, 40), 7, np.uint16))
    assert len(np.unique(labels)) >= 1 and labels.shape == (40, 40)
    offset, scale = Normalization().parameters(ImagePlanes(np.full((8, 8), 7.0), 1))
    assert offset.item() == 7 and scale.item() == 1


@pytest.mark.parametrize("image, match", [
    (np.zeros(10), "2-D"),
    (np.zeros((2, 3, 4, 5, 6)), "2-D"),
    (np.zeros((0, 5)), "empty"),
    (np.array([["a", "b"]]), "integer or float"),
    (np.full((8, 8), np.nan), "NaN"),
    (np.where(np.eye(8) > 0, np.inf, 1.0), "NaN or infinite"),
    (np.zeros((32, 32, 3)), "looks RGB"),
])
def test_bad_images(segmenter, image, match):
    with pytest.raises(ValueError, match=match):
        segmenter.predict(image)


def test_nan_in_a_tile_outside_the_normalisation_sample_is_caught(segmenter):
    image = IMAGE.astype(np.float32)
    image[1, 1] = np.nan  # off the sample grid of a small image? the grid has step 1 here, so check both paths
    with pytest.raises(ValueError, match="NaN"):
        segmenter.predict(image)
    with pytest.raises(ValueError, match="NaN"):
        Normalization.apply(image[None], np.zeros((1, 1, 1), np.float32), np.ones((1, 1, 1), np.float32))


def test_wrong_channel_count_and_bad_channel_axis():
    seg = tiny_segmenter(in_channels=2)
    with pytest.raises(ValueError, match="takes 2 channel"):
        seg.predict(np.zeros((3, 32, 32)), channel_axis=0)
    with pytest.raises(ValueError, match="out of range"):
        seg.predict(np.zeros((2, 32, 32)), channel_axis=5)
    assert seg.predict(np.zeros((32, 32, 2)), channel_axis=-1).shape == (32, 32)


def test_wrong_out_shape_and_device(segmenter):
    with pytest.raises(ValueError, match="spatial shape"):
        segmenter.predict(IMAGE, out=np.zeros((5, 5), np.uint8))
    with pytest.raises(ValueError, match="device"):
        segmenter.predict(IMAGE, device="tpu")


def test_zarr_input_and_zarr_output(segmenter, tmp_path):
    import zarr
    source = zarr.open_array(str(tmp_path / "in.zarr"), mode="w", shape=IMAGE.shape, chunks=(32, 32),
                             dtype=IMAGE.dtype)
    source[:] = IMAGE
    out = zarr.open_array(str(tmp_path / "out.zarr"), mode="w", shape=IMAGE.shape, chunks=(48, 48), dtype="u1")
    segmenter.predict(source, tile_shape=48, out=out)
    np.testing.assert_array_equal(out[:], segmenter.predict(IMAGE, tile_shape=48))


def test_predict_instances_are_the_components_of_the_tiled_prediction(segmenter):
    from napari_segnet.numerics.instances import label_instances

    with torch.no_grad():
        segmenter.net.head.bias[1] += 5  # class 1 wins wherever the logits are close: objects to label
    stack = np.stack([IMAGE, IMAGE[::-1]])
    instances = segmenter.predict_instances(stack, tile_shape=48, min_size=0, split=False)
    assert instances.dtype == np.int32 and instances.shape == stack.shape
    expected = label_instances(segmenter.predict(stack, tile_shape=48), min_size=0, split=False)
    np.testing.assert_array_equal(instances, expected)
    first = set(np.unique(instances[0])) - {0}
    assert first and not first & set(np.unique(instances[1]))  # ids unique across the stack
