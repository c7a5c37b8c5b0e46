"""The general pretrained encoder shipped in the wheel: which new models it fits and how they start from it."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib.resources import as_file, files
from pathlib import Path

import torch

#: The configuration the encoder was pretrained for (scripts/pretrain_encoder.py): the U-Net the dock pre-fills
#: for new models. ``dropout`` may differ (it has no weights).
ARCHITECTURE = "unet"
OPTIONS = {"base_filters": 16, "depth": 3, "padding": "same", "batch_norm": True}
NAME = "unet-d3-16"
#: The parts of the network that start pretrained: the contracting path and the bottom (the encoder) and the
#: expanding path; only the 1×1 head (which knows the classes) starts random.
PRETRAINED_PREFIXES = ("down.", "bottom.", "up.")
FIRST_CONV = "down.0.0.weight"


def encoder_path(name: str = NAME) -> Path:
    """Where the encoder ``name`` lives inside the package (napari_segnet/weights/encoder_<name>.safetensors)."""
    return Path(__file__).parents[1] / "weights" / f"encoder_{name}.safetensors"


def encoder_names() -> list[str]:
    """Names of the pretrained encoders shipped in the wheel."""
    folder = files("napari_segnet") / "weights"
    return sorted(p.name[len("encoder_"):-len(".safetensors")] for p in folder.iterdir()
                  if p.name.startswith("encoder_") and p.name.endswith(".safetensors"))


STARTS = ("pretrained", "scratch")


def new_model_options(architecture: str, options: dict | None = None) -> dict:
    """The options a new model of ``architecture`` gets: ``options``, and for the rest the configuration the
    encoder was pretrained for (a U-Net of depth 3 and 16 base filters: picked by measurement, README
    "Pretrained start"), else the architecture's defaults."""
    from . import model_options

    base = {**model_options(architecture), **(OPTIONS if architecture == ARCHITECTURE else {})}
    return {**base, **(options or {})}


def matches(architecture: str, options: dict) -> str | None:
    """The name of the shipped encoder that fits ``architecture`` with ``options`` (defaults filled in), else
    None."""
    if architecture != ARCHITECTURE or NAME not in encoder_names():
        return None
    full = new_model_options(architecture, options)
    return NAME if all(full[k] == v for k, v in OPTIONS.items()) else None


def pick_start(architecture: str, options: dict, start: str | None) -> str | None:
    """The encoder a new model starts from: None for ``start="scratch"``; for ``"pretrained"`` the fitting
    encoder (``ValueError`` saying which configurations have one if none fits); for None the fitting encoder
    if there is one."""
    if start is not None and start not in STARTS:
        raise ValueError(f"start must be one of {STARTS} (or None: pretrained where an encoder fits), got {start!r}")
    name = None if start == "scratch" else matches(architecture, options)
    if start == "pretrained" and name is None:
        raise ValueError(f"no pretrained encoder fits {architecture!r} with {options}; the shipped encoder fits "
                         f"{ARCHITECTURE!r} with {OPTIONS} (any classes and channels); use start='scratch'")
    return name


def start_details(name: str | None) -> dict:
    """What a new model's version 0 records about where it started (JSON-friendly)."""
    if name is None:
        return {"start": "scratch"}
    card = read_encoder(name)[1]
    return {"start": "pretrained", "encoder": name,
            "encoder_card": {k: card[k] for k in ("objective", "steps", "seed", "final_loss") if k in card}}


def read_encoder(name: str = NAME) -> tuple[dict[str, torch.Tensor], dict]:
    """(float32 weights, training card) of the shipped encoder ``name`` (read once per session; the tensors
    are shared, copy before changing them in place)."""
    state, card = _read(name)
    return dict(state), dict(card)


@lru_cache(maxsize=4)
def _read(name: str) -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors import safe_open

    with as_file(files("napari_segnet") / "weights" / f"encoder_{name}.safetensors") as path:
        with safe_open(str(path), framework="pt") as f:
            card = json.loads((f.metadata() or {}).get("card", "{}"))
            state = {k: f.get_tensor(k) for k in f.keys()}
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, card


def load_encoder_into(net: torch.nn.Module, name: str = NAME) -> list[str]:
    """Copy the pretrained weights (and BatchNorm statistics) of encoder ``name`` into ``net`` (a U-Net of the
    matching configuration, any number of input channels and classes); returns the keys copied.

    For C input channels the first convolution's kernels (16, 1, 3, 3) are repeated C times and divided by C,
    so an image whose C channels are equal gives exactly the 1-channel encoder's features."""
    shipped, _ = read_encoder(name)
    own = net.state_dict()
    copied = {}
    for key, value in shipped.items():
        if not key.startswith(PRETRAINED_PREFIXES) or key not in own:
            continue
        if key == FIRST_CONV and own[key].shape[1] != value.shape[1]:
            channels = own[key].shape[1]
            value = value.repeat(1, channels, 1, 1) / channels
        if own[key].shape != value.shape:
            raise ValueError(f"the pretrained encoder {name!r} does not fit: {key} is {tuple(value.shape)}, "
                             f"the network's {tuple(own[key].shape)}")
        copied[key] = value
    net.load_state_dict(copied, strict=False)
    return sorted(copied)
