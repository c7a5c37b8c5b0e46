"""TrainSettings defaults: steps="auto" scales with the reviewed area."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import child_env
from conftest import tiny_segmenter, two_class_image

from napari_segnet.training.recommend import NEW_MODEL
from napari_segnet.training.settings import AUTO_MAX_STEPS, AUTO_MIN_STEPS, TrainSettings, auto_steps


def test_auto_steps_are_proportional_to_the_reviewed_area_and_clipped():
    assert auto_steps(4 * 128 * 128, 128) == 100  # 25 steps per patch-sized area
    assert auto_steps(64 * 64, 128) == AUTO_MIN_STEPS == 40  # one small tile: the floor
    assert auto_steps(2048 * 2048, 128) == AUTO_MAX_STEPS == 400  # a whole large image: the ceiling
    assert TrainSettings().steps == "auto" and TrainSettings().resolved(6 * 128 * 128).steps == 150
    assert TrainSettings(steps=7).resolved(10**9).steps == 7


@pytest.mark.parametrize("bad", ["many", 0, -5, 2.5])
def test_bad_steps_are_refused(bad):
    with pytest.raises(ValueError, match='steps must be a positive integer or "auto"'):
        TrainSettings(steps=bad)


def test_a_run_records_the_steps_auto_chose():
    image, labels = two_class_image(size=64)
    seg = tiny_segmenter(num_classes=2)
    mask = np.zeros(labels.shape, bool)
    mask[:48, :48] = True  # 2304 px reviewed, patch 32: 25 × 2.25 = 56 steps
    updates = list(seg.finetune([image], [labels], [mask], patch_size=32, batch_size=1, seed=0))
    assert updates[-2].total == 56 and seg.versions[-1].settings["steps"] == 56


def test_a_new_model_gets_more_steps_per_reviewed_tile():
    settings = NEW_MODEL.settings
    assert [settings.resolved(k * 64 * 64).steps for k in (1, 2, 3, 5, 10)] == [100, 200, 300, 400, 400]
    assert [settings.resolved(k * 64 * 64, distilled=True).steps for k in (1, 2, 3, 5, 10)] == \
        [100, 100, 150, 250, 400]  # a round that learns the forest's labels too
    assert TrainSettings(auto_per_patch=10.0).resolved(128 * 128 * 8, distilled=True).steps == 80  # None: same
    with pytest.raises(ValueError, match="auto_min_steps"):
        TrainSettings(auto_min_steps=0)
    with pytest.raises(ValueError, match="auto_per_patch"):
        TrainSettings(auto_per_patch=float("inf"))
    with pytest.raises(ValueError, match="auto_per_patch"):
        TrainSettings(auto_per_patch_distilled=0.0)


def test_the_head_and_the_body_learn_at_their_own_rates():
    from napari_segnet.models import build_model
    from napari_segnet.training.loop import _param_groups

    net = build_model("unet", in_channels=1, num_classes=3, depth=2, base_filters=4, padding="same")
    head, body = _param_groups(net, TrainSettings(lr=1e-3, body_lr_scale=0.25))
    assert head["lr"] == 1e-3 and body["lr"] == 2.5e-4
    assert sum(p.numel() for p in head["params"]) == 4 * 3 + 3  # the 1×1 conv: weights + bias
    assert sum(p.numel() for g in (head, body) for p in g["params"]) == sum(p.numel() for p in net.parameters())
    with pytest.raises(ValueError, match="body_lr_scale"):
        TrainSettings(body_lr_scale=0)


def test_head_and_body_learning_rates_decay_alike():
    import torch

    from napari_segnet.models import build_model
    from napari_segnet.training.loop import _param_groups, cosine_factor

    net = build_model("unet", in_channels=1, num_classes=2, depth=2, base_filters=4, padding="same")
    optimizer = torch.optim.Adam(_param_groups(net, TrainSettings(lr=1e-3, body_lr_scale=0.01)))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: cosine_factor(t, 10))
    for _ in range(10):
        optimizer.step()
        schedule.step()
    head, body = (g["lr"] for g in optimizer.param_groups)
    assert head == pytest.approx(5e-5) and body == pytest.approx(5e-7)  # each at 5 % of its own start


def test_a_time_budget_shortens_the_run_from_the_speed_of_its_first_steps():
    from napari_segnet.training.loop import PROBE_STEPS, budget_steps

    # 10 steps done in 1.25 s at 1/16 s a step: 15 s allow (15 - 1.25) × 16 = 220 more
    assert budget_steps(400, 10, 1.25, 0.0625, 15.0) == 230
    assert budget_steps(200, 10, 1.25, 0.0625, 15.0) == 200  # fits: the planned length stays
    assert budget_steps(400, 10, 20.0, 0.0625, 15.0) == 10  # already over: stop with what has run
    image, labels = two_class_image(size=64)
    seg = tiny_segmenter(num_classes=2)
    mask = np.ones(labels.shape, bool)  # 64² reviewed, patch 32: "auto" plans 100 steps
    updates = list(seg.finetune([image], [labels], [mask], patch_size=32, batch_size=1, seed=0,
                                auto_max_seconds=1e-6, accept_worse=True))
    assert updates[0].total == 100 and updates[-2].done == updates[-2].total == PROBE_STEPS  # shortened
    assert seg.versions[-1].settings["steps"] == PROBE_STEPS  # the version records what ran
    assert seg.versions[-1].settings["auto_max_seconds"] == 1e-6
    list(seg.finetune([image], [labels], [mask], patch_size=32, batch_size=1, seed=0, steps=12,
                      auto_max_seconds=1e-6, accept_worse=True))  # steps the user gave run in full
    assert seg.versions[-1].settings["steps"] == 12 and seg.versions[-1].settings["auto_max_seconds"] is None
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="auto_max_seconds"):
            TrainSettings(auto_max_seconds=bad)


@pytest.mark.slow
def test_ranks_agree_on_the_length_a_time_budget_gives():
    """Two gloo ranks under torchrun whose clocks disagree (tests/ddp_budget_worker.py)."""
    worker = Path(__file__).with_name("ddp_budget_worker.py")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(worker)]
    env = {**child_env(), "PYTHONPATH": f"{worker.parent}:{child_env()['PYTHONPATH']}"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = dict((r, (fit, int(s), w)) for r, fit, s, w in
                 re.findall(r"rank (\d): fit \[(\d+)\] steps (\d+) weights ([0-9a-f]{16})", done.stderr))
    assert sorted(ranks) == ["0", "1"], done.stderr[-3000:]
    # 10 steps in 1.25 s (rank 0) and 0.625 s (rank 1): 5 s fit 40 and 80 steps; both ran their mean, 60
    assert (ranks["0"][0], ranks["1"][0]) == ("40", "80")
    assert ranks["0"][1] == ranks["1"][1] == 60
    assert ranks["0"][2] == ranks["1"][2]  # and ended on the same weights


def test_a_round_budget_counts_what_preparing_the_round_spent():
    assert TrainSettings(auto_max_seconds=15.0).after_spending(4.0).auto_max_seconds == 11.0
    assert TrainSettings(auto_max_seconds=15.0).after_spending(20.0).auto_max_seconds == 1.0  # 1 s still trains
    assert TrainSettings(auto_max_seconds=0.5).after_spending(3.0).auto_max_seconds == 0.5  # never more than given
    assert TrainSettings().after_spending(99.0).auto_max_seconds is None  # no budget: nothing to shorten
