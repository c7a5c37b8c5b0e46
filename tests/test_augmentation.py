"""Augmentation transforms: shapes and dtypes kept, valid ids, the zoom's effect on object size, few levels, seeds."""

import numpy as np
import pytest
from skimage.measure import regionprops

from napari_segnet.data.synthetic import synthetic_nuclei
from napari_segnet.numerics import augmentation as aug
from napari_segnet.numerics.weightmap import separate_touching


@pytest.fixture(scope="module")
def sample():
    image, _, instances = synthetic_nuclei((128, 128), 12, (16, 24), seed=5)
    return image, instances


def _disc_image(radius=10, shape=(64, 64)):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    ids = ((yy - 32) ** 2 + (xx - 32) ** 2 <= radius**2).astype(np.int32)
    return (ids * 1000 + 200).astype(np.uint16), ids


@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_rescale_changes_object_size_by_the_factor(factor):
    image, ids = _disc_image()
    zoomed, zids = aug.rescale(image, ids, factor)
    assert zoomed.shape == zids.shape == (round(64 * factor),) * 2
    assert zoomed.dtype == np.uint16 and zids.dtype == np.int32
    diameter = regionprops(zids)[0].equivalent_diameter_area
    assert diameter == pytest.approx(21 * factor, rel=0.08)  # a disc of radius 10 has 21 px across
    assert set(np.unique(zids)) == {0, 1}  # nearest neighbour: no invented ids


def test_rescale_keeps_instance_ids_and_the_gap_is_recomputed(sample):
    image, ids = sample
    zoomed, zids = aug.rescale(image, ids, 0.6)
    assert set(np.unique(zids)) <= set(np.unique(ids))
    labels = separate_touching(zids)
    pairs = np.stack([zids[:, :-1].ravel(), zids[:, 1:].ravel()])
    touching = (pairs[0] != pairs[1]) & (pairs > 0).all(0)
    assert touching.any()  # touching nuclei stay touching after zooming ...
    left, right = labels[:, :-1].ravel()[touching], labels[:, 1:].ravel()[touching]
    assert not left.any() and not right.any()  # ... and both sides of every contact are background


def test_rescale_rejects_bad_factor_and_shapes(sample):
    image, ids = sample
    with pytest.raises(ValueError, match="positive number"):
        aug.rescale(image, ids, 0)
    with pytest.raises(ValueError, match="do not match"):
        aug.rescale(image, ids[:10], 2)


@pytest.mark.parametrize("transform", [
    lambda im, rng: aug.blur(im, 1.5),
    lambda im, rng: aug.illumination(im, rng, 0.4),
    lambda im, rng: aug.background(im, rng, 0.5, 0.2),
    lambda im, rng: aug.poisson_noise(im, rng, 30),
    lambda im, rng: aug.gaussian_noise(im, rng, 0.05),
    lambda im, rng: aug.gamma(im, 0.5),
    lambda im, rng: aug.quantise(im, 64),
])
@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_intensity_transforms_keep_shape_and_dtype(sample, transform, dtype):
    image = sample[0].astype(dtype)
    out = transform(image, np.random.default_rng(0))
    assert out.shape == image.shape and out.dtype == image.dtype
    assert np.isfinite(out.astype(np.float64)).all() and not np.array_equal(out, image)


def test_quantise_gives_few_levels_in_an_8_bit_range():
    image = np.linspace(1000, 60000, 100 * 100).reshape(100, 100).astype(np.uint16)
    out = aug.quantise(image, 256)
    assert out.dtype == np.uint16 and len(np.unique(out)) == 256 and out.min() == 0 and out.max() == 255
    assert len(np.unique(aug.quantise(image, 16))) == 16
    saturated = aug.quantise(image, 256, saturation=10)
    assert (saturated == 255).mean() == pytest.approx(0.10, abs=0.005)
    with pytest.raises(ValueError, match="levels"):
        aug.quantise(image, 1)


def test_gamma_maps_the_span_onto_itself():
    image = np.array([[0.0, 0.25, 1.0]], np.float32)
    np.testing.assert_allclose(aug.gamma(image, 2.0), [[0.0, 0.0625, 1.0]])


def test_poisson_noise_has_the_photon_statistics():
    image = np.full((200, 200), 1100.0)
    image[0, 0] = 100.0  # the zero level: no light
    out = aug.poisson_noise(image, np.random.default_rng(0), photons=25)
    counts = (out[1:] - 100) / 1000 * 25  # 25 photons expected per pixel
    assert counts.mean() == pytest.approx(25, rel=0.02) and counts.var() == pytest.approx(25, rel=0.05)
    with pytest.raises(ValueError, match="photons"):
        aug.poisson_noise(image, np.random.default_rng(0), photons=0)


def test_background_adds_offset_in_units_of_the_span():
    image = np.linspace(0, 100, 10_000).reshape(100, 100).astype(np.float32)
    out = aug.background(image, np.random.default_rng(0), offset=0.5)
    np.testing.assert_allclose(out - image, 0.5 * 99.8, rtol=1e-3)  # span = 99.9th − 0.1th percentile


def test_random_augment_is_seeded_and_keeps_ids_valid(sample):
    image, ids = sample
    a = aug.random_augment(image, ids, np.random.default_rng(3))
    b = aug.random_augment(image, ids, np.random.default_rng(3))
    c = aug.random_augment(image, ids, np.random.default_rng(4))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[0].shape != c[0].shape or not np.array_equal(a[0], c[0])
    for out, out_ids in (a, c):
        assert out.dtype == np.uint16 and out_ids.dtype == ids.dtype and out.shape == out_ids.shape
        assert set(np.unique(out_ids)) <= set(np.unique(ids))
        assert 64 <= out.shape[0] <= 256  # zoom 0.5–2×


def test_random_crop_is_at_most_the_size(sample):
    image, ids = sample
    crop, crop_ids = aug.random_crop(image, ids, 100, np.random.default_rng(0))
    assert crop.shape == crop_ids.shape == (100, 100)
    assert aug.random_crop(image, ids, 300, np.random.default_rng(0))[0].shape == (128, 128)
