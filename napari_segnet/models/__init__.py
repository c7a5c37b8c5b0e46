"""Registry of segmentation networks: ``build_model(name, in_channels, num_classes, **options)``."""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable

from .base import SegmentationNet, count_parameters
from .fc_densenet import FCDenseNet, fc_densenet56, fc_densenet67, fc_densenet103
from .fcn import FCN, fcn8s, fcn16s, fcn32s
from .unet import UNet, unet, unet_paper

MODELS: dict[str, Callable[..., SegmentationNet]] = {
    "unet": unet,
    "unet_paper": unet_paper,
    "fcn32s": fcn32s,
    "fcn16s": fcn16s,
    "fcn8s": fcn8s,
    "fc_densenet56": fc_densenet56,
    "fc_densenet67": fc_densenet67,
    "fc_densenet103": fc_densenet103,
}

__all__ = ["FCDenseNet", "FCN", "MODELS", "SegmentationNet", "UNet", "build_model", "count_parameters",
           "list_models", "model_options"]


def list_models() -> list[str]:
    """Names accepted by :func:`build_model`, sorted."""
    return sorted(MODELS)


def model_options(name: str) -> dict[str, object]:
    """The options of architecture ``name`` (beyond in_channels, num_classes) with their defaults."""
    params = inspect.signature(_factory(name)).parameters
    return {k: p.default for k, p in params.items() if k not in ("in_channels", "num_classes")}


def build_model(name: str, in_channels: int = 1, num_classes: int = 2, **options) -> SegmentationNet:
    """Build architecture ``name`` mapping (N, in_channels, H, W) images to (N, num_classes, H', W') logits.

    Raises ``ValueError`` listing the valid names for an unknown ``name``, and the valid options for an unknown
    option.
    """
    factory = _factory(name)
    valid = model_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(str, unknown))} for "
                         f"{name}; valid options: {', '.join(sorted(valid))}")
    for what, value in (("in_channels", in_channels), ("num_classes", num_classes)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{what} must be a positive integer, got {value!r}")
    for what, value in options.items():
        if not _same_kind(value, valid[what]):
            raise ValueError(f"option {what} of {name!r} must be {type(valid[what]).__name__} like its default "
                             f"{valid[what]!r}, got {value!r}")
    return factory(in_channels=in_channels, num_classes=num_classes, **options)


def _same_kind(value, default) -> bool:
    """``value`` has the type of an option's ``default`` (an int for a float default too; bool is not an int)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, numbers.Integral if isinstance(default, int) else numbers.Real)
    return default is None or isinstance(value, type(default))


def _factory(name: str) -> Callable[..., SegmentationNet]:
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(list_models())}") from None
