"""``napari-segnet export``: a model as a bioimage.io model package (.zip) for the BioImage Model Zoo's tools."""

from __future__ import annotations

import argparse

import numpy as np

from .common import OK, UsageError, load_model, say


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="napari-segnet export", description="Write MODEL as a bioimage.io model package (format 0.5: "
        "pytorch_state_dict and TorchScript weights, test tensors, cover, documentation) that deepImageJ, ilastik, "
        "QuPath, Fiji and bioimageio.core run; napari-segnet loads it back like a checkpoint.")
    p.add_argument("model", metavar="MODEL", help="a .safetensors checkpoint, or 'default' (the shipped model)")
    p.add_argument("out", metavar="OUT.zip", help="the package to write ('.zip' is added if missing)")
    p.add_argument("--image", help="an image file for the test input and the cover (default: a synthetic image)")
    p.add_argument("--name", help="the model's name in the zoo (default: 'napari-segnet <architecture>')")
    p.add_argument("--author", action="append", dest="authors", metavar="NAME",
                   help="an author (repeat for several; default: your login name)")
    p.add_argument("--license", default="CC-BY-4.0", help="SPDX licence id of the weights (default: CC-BY-4.0)")
    return p


def run(args: argparse.Namespace) -> int:
    seg = load_model(args.model)
    image = None
    if args.image:
        from ..io.imagefiles import read_image

        try:
            image, channel_axis = read_image(args.image)
            image = image if channel_axis is None else np.moveaxis(np.asarray(image), channel_axis, 0)
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot read the image {args.image}: {e}") from e
    try:
        path = seg.export_bioimageio(args.out, image, name=args.name, authors=args.authors, license=args.license)
    except (OSError, ValueError) as e:
        raise UsageError(str(e)) from e
    say(f"wrote {path}")
    print(path)
    return OK
