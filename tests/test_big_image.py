"""Big images (dask, zarr, multiscale) predicted block by block into a zarr store: the visible region first, equal
to a whole-image pass, painted pixels kept, reads bounded by the block."""

import numpy as np
import pytest
from conftest import smooth_image, tiny_segmenter

from napari_segnet.big_image import (
    BigPredictionDone,
    BlockWritten,
    full_resolution,
    is_big,
    labels_store,
    painted_store,
    predict_blocks,
)
from napari_segnet.numerics.images import ImagePlanes
from napari_segnet.progress import run
from napari_segnet.training.regions import Region

da = pytest.importorskip("dask.array")


class LargestRead:
    """A lazily read array that records the largest step-1 read (elements) and whether it was ever read whole."""

    def __init__(self, array):
        self.array, self.shape, self.dtype, self.ndim = array, array.shape, array.dtype, array.ndim
        self.largest, self.whole = 0, False

    def __getitem__(self, index):
        out = np.asarray(self.array[index])
        strided = any(isinstance(k, slice) and k.step not in (None, 1) for k in np.atleast_1d(index))
        if not strided:  # the normalisation's strided sample is one read of about 1 M values
            self.largest = max(self.largest, out.size)
        self.whole |= out.size == np.prod(self.shape)
        return out


@pytest.mark.slow
def test_a_big_image_is_predicted_block_by_block_into_zarr_visible_region_first(tmp_path):
    seg = tiny_segmenter(num_classes=2)
    image = LargestRead(da.from_array(smooth_image((2048, 2048)), chunks=512))
    out = labels_store(image.shape, 2, tmp_path, "big")
    steps = predict_blocks(seg, image, out, first=(0, (1100, 1500), (300, 700)), tile_shape=128, block=512)
    updates = list(steps)
    blocks = [u.region for u in updates if isinstance(u, BlockWritten)]
    assert isinstance(updates[-1], BigPredictionDone) and len(blocks) == 16 and updates[-2].done == 16
    # the visible rows 1100-1500 × columns 300-700 meet two blocks; the one holding its centre comes first
    assert [(b.rows, b.cols) for b in blocks[:2]] == [((1024, 1536), (0, 512)), ((1024, 1536), (512, 1024))]
    whole = seg.predict(np.asarray(image.array), tile_shape=128)
    np.testing.assert_array_equal(out[:], whole)
    assert not image.whole and image.largest <= (512 + 2 * 128) ** 2  # a block and its halo, never the image


def test_painted_pixels_and_reviewed_regions_keep_their_labels_and_the_store_is_reopened(tmp_path):
    seg = tiny_segmenter(num_classes=2)
    image = da.from_array(smooth_image((300, 400)), chunks=128)
    out = labels_store(image.shape, 2, tmp_path, "img")
    painted = painted_store(out)
    out[10:20, 10:20], painted[10:20, 10:20] = 1, True  # a person's stroke, before the prediction
    out[30:40, 30:40] = 1  # a prediction nobody painted over: replaced
    out[100:110, 120:140] = 1  # labels a person accepted in a reviewed region (across a block border): kept
    run(predict_blocks(seg, image, out, painted=painted, reviewed=[Region(0, 100, 120, 110, 140)], tile_shape=64,
                       block=128))
    whole = seg.predict(np.asarray(image), tile_shape=64)
    assert (out[10:20, 10:20] == 1).all() and (out[100:110, 120:140] == 1).all()
    keep = np.asarray(painted[:])
    keep[100:110, 120:140] = True
    np.testing.assert_array_equal(out[:][~keep], whole[~keep])
    again = labels_store(image.shape, 2, tmp_path, "img")
    assert (again[10:20, 10:20] == 1).all() and (painted_store(again)[10:20, 10:20]).all()


def test_what_counts_as_big_and_bad_inputs(tmp_path):
    small = np.zeros((64, 64), np.float32)
    assert not is_big(small) and is_big(da.zeros((64, 64))) and is_big([small, small[::2, ::2]], multiscale=True)
    assert full_resolution([small, small[::2, ::2]]) is small
    seg = tiny_segmenter(num_classes=2)
    out = labels_store((64, 64), 2)  # a temporary folder
    assert out.dtype == np.uint8 and out.chunks == (64, 64)
    with pytest.raises(ValueError, match="does not fit the image's"):
        predict_blocks(seg, np.zeros((32, 64), np.float32), out)
    with pytest.raises(ValueError, match="block must be a positive"):
        predict_blocks(seg, small, out, block=0)
    with pytest.raises(ValueError, match="not \\(32, 32\\)"):
        labels_store((32, 32), 2, out.store.root.parent, "prediction")


def test_an_overview_gives_the_normalisation_without_a_strided_read_of_the_image(tmp_path):
    seg = tiny_segmenter(num_classes=2)
    pixels = smooth_image((300, 400))
    image = StridedReads(da.from_array(pixels, chunks=128))
    overview = pixels[::4, ::4]  # a pyramid level, as napari holds a multiscale image
    out = labels_store(image.shape, 2, tmp_path, "img")
    run(predict_blocks(seg, image, out, tile_shape=64, block=128, overview=overview))
    assert image.strided == 0  # the percentiles came from the overview: no sample of every chunk
    params = seg.normalization.parameters(ImagePlanes(overview, 1))
    whole = run(seg.predict_steps(pixels, tile_shape=64, norm_parameters=params)).labels
    np.testing.assert_array_equal(out[:], whole)  # as the whole image normalised alike


class StridedReads(LargestRead):
    """Counts the strided reads (the normalisation's sample) of a lazily read array."""

    def __init__(self, array):
        super().__init__(array)
        self.strided = 0

    def __getitem__(self, index):
        self.strided += any(isinstance(k, slice) and k.step not in (None, 1) for k in np.atleast_1d(index))
        return super().__getitem__(index)
