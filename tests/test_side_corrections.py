"""Corrections on any view train: reviewed (Z, X) and (Z, Y) planes of a volume become training planes of that
orientation (view bits of the reviewed mask, ``ImagePlanes.along``)."""

import numpy as np
import pytest
from conftest import FAST, run, tiny_segmenter, two_class_image

from napari_segnet.numerics.images import ImagePlanes
from napari_segnet.numerics.metrics import confusion_matrix, scores_from_confusion
from napari_segnet.training.regions import Region, regions_mask, reviewed_on, stroke_box, view_bit
from napari_segnet.training.training_set import training_planes


def zx_volume(n_rows=6, size=48):
    """A (Z, Y, X) volume whose (Z, X) planes — one per row y — are two-class images of discs (its (Y, X) planes
    are strips of ``n_rows`` rows): what a person sees after transposing the dims to show Z against X."""
    pairs = [two_class_image(seed=y, size=size) for y in range(n_rows)]
    return (np.stack([p[0] for p in pairs], axis=1), np.stack([p[1] for p in pairs], axis=1))


def zx_mean_iu(seg, volume, labels, rows):
    n = sum(confusion_matrix(seg.predict(volume[:, y, :]), labels[:, y, :], 2) for y in rows)
    return scores_from_confusion(n)["mean_iu"]


def test_image_planes_cut_along_each_axis_read_that_views_planes():
    volume = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    planes = ImagePlanes(volume, 1)
    zx, zy = planes.along(1), planes.along(2)
    assert (zx.n_planes, zx.shape, zy.n_planes, zy.shape) == (5, (4, 6), 6, (4, 5))
    np.testing.assert_array_equal(zx.block(2, slice(1, 3), slice(0, 4))[0], volume[1:3, 2, 0:4])
    np.testing.assert_array_equal(zy.block(3, slice(None), slice(1, 2))[0], volume[:, 1:2, 3])
    np.testing.assert_array_equal(zx.sample(), planes.sample())  # normalised alike, whichever way it is cut
    channels = ImagePlanes(np.stack([volume, -volume], axis=1), 2)  # (Z, C, Y, X)
    np.testing.assert_array_equal(channels.along(1).block(2, slice(None), slice(None)),
                                  np.stack([volume[:, 2, :], -volume[:, 2, :]]))


def test_view_bits_make_training_planes_in_each_orientation():
    volume, labels = zx_volume()
    mask = regions_mask(labels.shape, [Region(1, 0, 0, 20, 48, axis=1), Region(3, 0, 0, 48, 6, axis=2),
                                       Region(5, 0, 0, 6, 48)])
    assert mask.dtype == np.uint8 and mask[0, 1, 3] == view_bit(1) | view_bit(2) and mask[5, 0, 7] == view_bit(0)
    planes = training_planes([volume], [labels], [mask])
    assert [(p.axis, p.index) for p in planes] == [(0, 5), (1, 1), (2, 3)]
    zx = planes[1]
    np.testing.assert_array_equal(zx.labels, labels[:, 1, :])
    np.testing.assert_array_equal(zx.raw()[0], volume[:, 1, :])
    assert zx.reviewed[:20].all() and not zx.reviewed[20:].any()
    np.testing.assert_array_equal(planes[2].labels, labels[:, :, 3])
    # a bool mask (projects saved before views) is the (Y, X) planes
    assert [p.axis for p in training_planes([volume], [labels], [reviewed_on(mask, 1)])] == [0] * 20


def test_a_model_trained_only_on_zx_corrections_improves_its_zx_predictions():
    volume, labels = zx_volume()
    seg = tiny_segmenter(num_classes=2)
    before = zx_mean_iu(seg, volume, labels, rows=(4, 5))  # held-out rows
    mask = np.zeros(labels.shape, np.uint8)
    mask[:, :4, :] = view_bit(1)  # rows 0-3 corrected in the (Z, X) view
    _, done = run(seg.finetune([volume], [labels], [mask], **{**FAST, "steps": 40, "lr": 1e-2}))
    after = zx_mean_iu(seg, volume, labels, rows=(4, 5))
    assert done.accepted and before < 0.2 and after >= 0.8  # measured 0.109 → 0.846


def test_bad_view_masks_and_axes_are_refused():
    volume, labels = zx_volume()
    for old_style in (np.full(labels.shape, 255, np.uint8), np.ones(labels.shape, np.float32)):  # 0/255, 0./1.
        assert {p.axis for p in training_planes([volume], [labels], [old_style])} == {0}  # (Y, X) planes, as before
    with pytest.raises(ValueError, match="mask of shape"):
        training_planes([volume], [labels], [np.ones((2, 2), bool)])
    with pytest.raises(ValueError, match="side views need a stack"):
        ImagePlanes(volume[:, 0, :], 1).along(1)
    with pytest.raises(ValueError, match="axis must be 0"):
        ImagePlanes(volume, 1).along(3)


def test_a_stroke_in_a_transposed_view_is_boxed_in_that_views_plane():
    # a masked paint atom of a (Z, Y, X) layer shown as (Z, X) planes: rows z 3..9, row y 7, columns x 10..15
    class Atom:
        slice_key = (slice(3, 9), 7, slice(10, 15))

    assert stroke_box([Atom()], axis=1) == (7, (3, 9), (10, 15))
    assert stroke_box([((np.array([2, 4]), np.array([5, 5]), np.array([1, 3])), None, 1)], axis=2) == (
        1, (2, 5), (5, 6))


def test_the_project_folder_keeps_the_view_of_every_reviewed_region(tmp_path):
    from napari_segnet.project import Project

    volume, labels = zx_volume()
    regions = [Region(2, 0, 0, 48, 48, axis=1), Region(0, 0, 0, 6, 48)]
    mask = regions_mask(labels.shape, regions)
    project = Project(tmp_path / "p")
    project.add_image("vol", volume)
    project.save_correction("vol", labels, mask, regions=regions)
    again = Project(tmp_path / "p")
    assert again.regions("vol") == regions
    np.testing.assert_array_equal(again.correction("vol")[1], mask)
    planes = training_planes(*again.training_set())
    assert sorted((p.axis, p.index) for p in planes) == [(0, 0), (1, 2)]
    assert again.events[-1]["reviewed_pixels"] == 48 * 48 + 6 * 48 - 48  # the voxels both views share count once


def test_side_planes_of_an_anisotropic_volume_are_resampled_as_three_views_see_them():
    from skimage.transform import resize

    volume, labels = zx_volume()
    thin, thin_labels = volume[::2], labels[::2]  # slices 2 px apart: (24, 6, 48)
    mask = np.zeros(thin_labels.shape, np.uint8)
    mask[:, 1, :] = view_bit(1)
    (plane,) = training_planes([thin], [thin_labels], [mask], spacing=[(2.0, 1.0, 1.0)])
    assert plane.axis == 1 and plane.labels.shape == (48, 48) and plane.reviewed.all()
    side = resize(thin, (48, 6, 48), order=1, preserve_range=True, anti_aliasing=False)  # as three_views does
    np.testing.assert_allclose(plane.raw()[0], side[:, 1, :], rtol=1e-5)
    np.testing.assert_array_equal(plane.image.sample(), ImagePlanes(thin, 1).sample())  # the volume's normalisation
    assert (plane.labels == labels[:, 1, :]).mean() > 0.9  # nearest neighbour of the thinned labels
    (stored,) = training_planes([thin], [thin_labels], [mask])  # no voxel size: as stored
    assert stored.labels.shape == (24, 48)
    with pytest.raises(ValueError, match=r"one voxel size \(or None\) per image"):
        training_planes([thin], [thin_labels], [mask], spacing=[(2.0, 1.0, 1.0), None])
    with pytest.raises(ValueError, match="three positive voxel sizes"):
        training_planes([thin], [thin_labels], [mask], spacing=[(0.0, 1.0, 1.0)])
