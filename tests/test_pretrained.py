"""New models start from the general encoder shipped in the wheel, whatever their classes and channels."""

import numpy as np
import pytest
import torch

from napari_segnet.data.synthetic import tissue_image
from napari_segnet.io.metadata import is_background_name
from napari_segnet.models import pretrained
from napari_segnet.numerics.metrics import segmentation_scores
from napari_segnet.segmenter import Segmenter


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("classes", [2, 3, 5])
def test_new_model_starts_from_the_shipped_encoder(classes, channels):
    shipped, _ = pretrained.read_encoder()
    seg = Segmenter.create("unet", channels, classes)
    own = seg.net.state_dict()
    assert seg.start["start"] == "pretrained" and seg.start["encoder"] == pretrained.NAME
    assert seg.metadata.options["base_filters"] == 16 and seg.metadata.options["depth"] == 3
    copied = [k for k in own if k.startswith(pretrained.PRETRAINED_PREFIXES)]
    assert len(copied) == len(shipped) == 90  # every weight and BN statistic but the head's
    for key in copied:
        expected = shipped[key]
        if key == pretrained.FIRST_CONV:  # (16, 1, 3, 3) spread evenly over the channels
            assert own[key].shape == (16, channels, 3, 3)
            expected = expected.repeat(1, channels, 1, 1) / channels
        torch.testing.assert_close(own[key], expected, rtol=0, atol=0)
    assert own["head.weight"].shape == (classes, 16, 1, 1) and "head.weight" not in shipped


def test_equal_channels_see_what_one_channel_sees():
    one, three = Segmenter.create("unet", 1, 3), Segmenter.create("unet", 3, 3)
    three.net.head.load_state_dict(one.net.head.state_dict())
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(three.net.eval()(x.repeat(1, 3, 1, 1)), one.net.eval()(x), rtol=1e-4, atol=1e-5)


def test_the_checkpoint_records_where_a_model_started(tmp_path):
    seg = Segmenter.create("unet", 1, 3)
    loaded = Segmenter.load(seg.save(tmp_path / "p"))
    assert loaded.start["start"] == "pretrained" and loaded.start["encoder"] == "unet-d3-16"
    assert loaded.start["encoder_card"]["objective"] in ("features", "denoise", "both")
    assert loaded.versions[0].details["start"] == "pretrained"
    scratch = Segmenter.load(Segmenter.create("unet", 1, 3, start="scratch").save(tmp_path / "s"))
    assert scratch.start == {"start": "scratch"}
    assert not torch.equal(scratch.net.state_dict()["down.0.0.weight"], seg.net.state_dict()["down.0.0.weight"])
    # a configuration no encoder fits starts from scratch unless pretrained is demanded
    assert Segmenter.create("unet", 1, 2, base_filters=4).start == {"start": "scratch"}
    assert Segmenter.create("fcn8s", 1, 2, width=0.0625).start == {"start": "scratch"}


@pytest.mark.parametrize("make, fragment", [
    (lambda: Segmenter.create("unet", 1, 2, depth=4, start="pretrained"), "no pretrained encoder fits 'unet'"),
    (lambda: Segmenter.create("fcn8s", start="pretrained"), "use start='scratch'"),
    (lambda: Segmenter.create("unet", start="imagenet"), "start must be one of ('pretrained', 'scratch')"),
])
def test_bad_starts(make, fragment):
    with pytest.raises(ValueError) as info:
        make()
    assert fragment in str(info.value)


def test_the_shipped_encoder_is_small_and_says_how_it_was_made():
    path = pretrained.encoder_path()
    assert path.stat().st_size < 3e6 and pretrained.encoder_names() == ["unet-d3-16"]
    _, card = pretrained.read_encoder()
    assert card["steps"] >= 1000 and card["objective"] in ("features", "denoise", "both", "mosaic")
    assert any(s.startswith("skimage.") for s in card["sources"]) and any(s.startswith("bio.") for s in card["sources"])
    assert not any("synthetic" in s for s in card["sources"])  # the benchmarks' images stay out


def _pretrain_script():
    """scripts/pretrain_encoder.py as a module."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "pretrain_encoder.py"
    spec = importlib.util.spec_from_file_location("pretrain_encoder", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_pretraining_sources_can_leave_the_texture_benchmarks_photographs_out():
    script = _pretrain_script()
    textures = ("skimage.brick", "skimage.grass", "skimage.gravel")
    everything = script.source_images()
    left = script.source_images(textures)
    assert set(textures) <= set(everything) and set(left) == set(everything) - set(textures)
    with pytest.raises(SystemExit, match="no source named"):
        script.source_images(("skimage.bricks",))


def test_discriminative_loss_by_hand():
    script = _pretrain_script()
    # one image, 1-D embedding, 2 regions: region 0 at 0 and 2 (mean 1), region 1 at 3 and 3 (mean 3)
    emb = torch.tensor([0.0, 2.0, 3.0, 3.0]).reshape(1, 1, 2, 2)
    regions = torch.tensor([0, 0, 1, 1]).reshape(1, 2, 2)
    # pull: region 0's pixels are 1 from their mean, (1 − 0.5)² = 0.25; region 1's are at it: (0.25 + 0) / 2
    # push: the means are 2 apart, (2·1.5 − 2)² = 1; norm term 0.001 · (1 + 3) / 2
    loss = script.discriminative_loss(emb, regions)
    assert float(loss) == pytest.approx(0.125 + 1.0 + 0.002, abs=1e-6)
    # means 6 apart and every pixel within 0.5 of its mean: only the norm term is left
    far = torch.tensor([0.2, -0.2, 6.0, 6.0]).reshape(1, 1, 2, 2)
    assert float(script.discriminative_loss(far, regions)) == pytest.approx(0.001 * 6 / 2, abs=1e-6)
    one = torch.tensor([1.0, 2.0, 3.0, 2.0]).reshape(1, 1, 2, 2)  # one region: pull and norm only
    assert float(script.discriminative_loss(one, torch.zeros(1, 2, 2, dtype=torch.long))) == pytest.approx(
        (0.25 + 0 + 0.25 + 0) / 4 + 0.002, abs=1e-6)


def test_mosaics_fill_each_region_from_its_own_source_crop():
    script = _pretrain_script()
    rng = np.random.default_rng(0)
    sources = [np.full((80, 80), 0.1 * (i + 1), np.float32) for i in range(9)]  # 9 flat images, 9 levels
    counts, matched = [], 0
    for _ in range(30):
        clean, regions = script.mosaic(sources, rng)
        k = regions.max() + 1
        assert clean.shape == regions.shape == (64, 64) and set(np.unique(regions)) == set(range(k))
        levels = [clean[regions == r] for r in range(k)]
        assert all(v.std() < 1e-6 for v in levels)  # a region is one crop
        means = np.round([v[0] for v in levels], 3)
        if np.ptp(means) < 1e-3 and k > 1:  # brought to one mean and contrast: only texture would tell them
            matched += 1
        else:  # every region from another source
            assert len(set(means)) == k and set(means) <= set(np.round([s[0, 0] for s in sources], 3))
        counts.append(k)
    assert max(counts) <= 8 and np.mean(counts) > 2.5 and 5 <= matched <= 25


def _first_finetune(start: str) -> float:
    """Held-out mean IU after one short fine-tune on two reviewed 48² quarters of a 96² tissue image."""
    image, truth = tissue_image((96, 96), seed=3)
    held, held_truth = tissue_image((96, 96), seed=4)
    reviewed = np.zeros(truth.shape, bool)
    reviewed[:48, :48] = reviewed[48:, 48:] = True
    torch.manual_seed(0)
    seg = Segmenter.create("unet", 1, 3, start=start)
    for _ in seg.finetune([image], [truth], [reviewed], steps=15, batch_size=4, patch_size=32, lr=2e-3,
                          loss="balanced_ce", seed=0, accept_worse=True, forest_blend=False):  # the network's start
        pass
    return segmentation_scores(seg.predict(held), held_truth, 3)["mean_iu"]


def test_a_pretrained_start_learns_new_classes_faster_than_scratch():
    pretrained_iu, scratch_iu = _first_finetune("pretrained"), _first_finetune("scratch")
    assert pretrained_iu > scratch_iu + 0.1, (pretrained_iu, scratch_iu)


@pytest.mark.parametrize("name, background", [
    ("background", True), ("Background", True), ("BG", True), ("un-labelled", True), ("background tissue", True),
    ("Other", True), ("brick", False), ("cell", False), ("grass", False), ("back-bone", False), ("", False)])
def test_which_first_class_names_mean_background(name, background):
    # a new model's class 0 is drawn transparent in napari only when it is background (README, classes)
    assert is_background_name(name) is background
