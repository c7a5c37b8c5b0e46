"""One rank of ``test_train_settings.py``'s time-budget run under torchrun: rank 1's clock runs at twice rank 0's speed.

Each rank's clock advances a fixed time per reading (rank 0 1/8 s, rank 1 1/16 s: one reading per step), so each
rank's own estimate of how many steps fit ``auto_max_seconds`` = 5 s differs (40 and 80 of the 100 planned);
both must run the one length they agree on. Prints ``rank R: fit F steps S weights DIGEST``.
"""

import sys
import types

import numpy as np
from conftest import tiny_segmenter, two_class_image

from napari_segnet import segmenter
from napari_segnet.training import ddp, loop

device = ddp.init_from_env("cpu")
tick = 0.125 / (1 + ddp.rank())
clock = {"now": 0.0}


def perf_counter() -> float:
    clock["now"] += tick
    return clock["now"]


fits = []
own_budget = loop.budget_steps
loop.time = types.SimpleNamespace(perf_counter=perf_counter)
segmenter.time = types.SimpleNamespace(perf_counter=lambda: 0.0)  # preparing the round takes no budget here
loop.budget_steps = lambda *args: fits.append(own_budget(*args)) or fits[-1]

image, labels = two_class_image(size=64)
seg = tiny_segmenter(num_classes=2)
mask = np.ones(labels.shape, bool)  # 64² reviewed, patch 32: "auto" plans 100 steps
for _ in seg.finetune([image], [labels], [mask], patch_size=32, batch_size=1, seed=0, auto_max_seconds=5.0,
                      accept_worse=True, device=device):
    pass
steps = seg.versions[-1].settings["steps"]
print(f"rank {ddp.rank()}: fit {fits} steps {steps} weights {ddp.state_digest(seg.net)}", file=sys.stderr)
