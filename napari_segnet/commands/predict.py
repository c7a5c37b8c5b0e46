"""``napari-segnet predict``: a batch of images (or, with ``--cluster``, big ones block-wise on dask) to files."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from ..io.imagefiles import FORMATS, find_images, output_path, read_image, stem, write_array
from .common import FAILED, INTERRUPTED, OK, Bar, UsageError, load_model, say, writable_folder

KINDS = ("labels", "proba", "instances")  # the outputs: OUT/<name>_<kind>.<format>


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="napari-segnet predict", description="Predict every input image and write OUT/<name>_labels.<fmt> "
        "(and _proba, _instances). Existing outputs are skipped unless --overwrite, so a batch that stopped "
        "resumes where it was; a file that fails is reported and the rest go on (exit status 1 at the end).")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders of images or glob patterns "
                   "(TIFF, PNG, zarr, OME-Zarr)")
    p.add_argument("--model", default="default", help="a .safetensors checkpoint, or 'default' (the shipped model)")
    p.add_argument("--out", required=True, help="output folder (created if needed)")
    p.add_argument("--format", choices=sorted(FORMATS), default="tif", help="output format (default: tif)")
    p.add_argument("--proba", action="store_true", help="also write class probabilities, float32 (C, …)")
    p.add_argument("--instances", action="store_true", help="also write instance labels (int32; objects are the "
                   "face-connected components of each class, see napari_segnet.numerics.instances)")
    p.add_argument("--tta", action="store_true", help="test-time augmentation: average every tile's "
                   "probabilities over its 8 flips and 90° rotations (8× the time)")
    p.add_argument("--views", type=int, choices=(1, 3), default=1, help="3: a (Z, Y, X) volume predicted from its "
                   "YX, ZX and ZY planes, probabilities averaged (default 1: slice by slice)")
    p.add_argument("--spacing", type=float, nargs=3, metavar=("Z", "Y", "X"), help="with --views 3: the voxel size "
                   "(any unit), for volumes whose slices lie further apart than their pixels")
    p.add_argument("--tile", type=int, help="output pixels per tile side (default: picked from free memory)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the best available)")
    p.add_argument("--channel-axis", type=int, help="the images' channel axis, if the model takes several channels")
    p.add_argument("--overwrite", action="store_true", help="predict again images whose outputs exist")
    p.add_argument("--cluster", help="predict block-wise on dask.distributed: local:N (N local worker processes) "
                   "or the address of a running scheduler (tcp://HOST:PORT); outputs must be zarr or ome-zarr")
    p.add_argument("--timeout", type=float, default=10.0, help="with --cluster ADDRESS: seconds to wait for the "
                   "scheduler to answer (default 10)")
    p.add_argument("--block", type=int, default=2048, help="with --cluster: output pixels per block side, rounded "
                   "to whole tiles (default 2048)")
    return p


def run(args: argparse.Namespace) -> int:
    try:
        paths = _not_ours(find_images(args.inputs), Path(args.out))
    except (FileNotFoundError, ValueError) as e:
        raise UsageError(str(e)) from e
    twins = sorted(n for n, k in Counter(stem(p) for p in paths).items() if k > 1)
    if twins:
        raise UsageError(f"several inputs are named {twins[:5]}: their outputs would overwrite each other")
    if args.cluster and args.format == "tif":
        raise UsageError("--cluster writes blocks into a zarr store: add --format zarr or --format ome-zarr")
    if args.views == 3 and args.cluster and args.instances:
        raise UsageError("--views 3 --cluster writes labels and probabilities, not instances: leave out "
                         "--instances (or predict without --cluster)")
    if args.spacing is not None and args.views != 3:
        raise UsageError("--spacing is the voxel size of --views 3: add --views 3, or leave it out")
    out = writable_folder(args.out)
    seg = load_model(args.model)
    kinds = [k for k, wanted in zip(KINDS, (True, args.proba, args.instances)) if wanted]
    client = _client(args.cluster, args.timeout) if args.cluster else None
    try:
        return _batch(seg, paths, out, kinds, args, client)
    finally:
        if client is not None:
            from ..distributed import close

            close(client)


def _batch(seg, paths: list[Path], out: Path, kinds: list[str], args, client) -> int:
    done, skipped, failed = [], [], []
    with Bar(len(paths), "images", "image") as overall:
        for i, path in enumerate(paths):
            targets = {k: output_path(out, path, k, args.format) for k in kinds}
            todo = {k: t for k, t in targets.items() if args.overwrite or not _complete(t)}
            if client is not None and "instances" in todo:
                todo["labels"] = targets["labels"]  # block-wise instances are made from the labels
            try:
                if not todo:
                    skipped.append(path)
                elif client is not None:
                    _predict_distributed(seg, path, todo, args, client)
                    done.append(path)
                else:
                    _predict_file(seg, path, todo, args)
                    done.append(path)
            except KeyboardInterrupt:
                say(f"interrupted while predicting {path}: its outputs were not written. "
                    "Run the same command again to go on from there.")
                _summary(done, skipped, failed)
                return INTERRUPTED
            except Exception as e:  # noqa: BLE001 - one bad file must not stop the batch; reported below
                failed.append((path, e))
                say(f"FAILED {path}: {_describe(e)}")
            overall.update(i + 1)
    _summary(done, skipped, failed)
    return FAILED if failed else OK


def _not_ours(paths: list[Path], out: Path) -> list[Path]:
    """``paths`` less the outputs an earlier run wrote (``<name>_labels|_proba|_instances`` in the output
    folder): with ``--out`` the input folder, a rerun predicted its own label images. ``ValueError`` if none is
    left."""
    out, kinds = out.resolve(), tuple(f"_{k}" for k in KINDS)
    ours = [p for p in paths if p.resolve().parent == out and stem(p).endswith(kinds)]
    if ours:
        say(f"{len(ours)} input(s) in the output folder are outputs of predict and are not predicted: "
            f"{', '.join(p.name for p in ours[:3])}{' …' if len(ours) > 3 else ''}")
    left = [p for p in paths if p not in ours]
    if not left:
        raise ValueError(f"every input is an output of predict in {out}: nothing to predict")
    return left


def _complete(path: Path) -> bool:
    """Whether the output ``path`` is there in full: outputs are written atomically, so a 0-byte file or a
    folder without zarr metadata was not written by predict and is not trusted by its name."""
    if path.is_dir():
        return any((path / f).is_file() for f in (".zarray", ".zgroup", "zarr.json"))
    return path.is_file() and path.stat().st_size > 0


def _predict_file(seg, path: Path, todo: dict[str, Path], args) -> None:
    """Predict one image in this process and write its outputs (each atomically)."""
    from ..progress import run

    image, channel_axis = read_image(path)
    channel_axis = args.channel_axis if args.channel_axis is not None else channel_axis
    steps = seg.predict_steps(image, args.tile, args.device, channel_axis, want_proba="proba" in todo,
                              tta=args.tta, views=args.views, spacing=args.spacing)
    with Bar(0, path.name, "tile", position=1, leave=False) as bar:
        result = run(steps, bar.update)
    labels = result.labels
    axes = "zyx" if labels.ndim == 3 else "yx"
    if "labels" in todo:
        write_array(todo["labels"], labels, args.format, axes)
    if "proba" in todo:
        write_array(todo["proba"], result.proba, args.format, "c" + axes)
    if "instances" in todo:
        from ..numerics.instances import label_instances

        write_array(todo["instances"], label_instances(labels), args.format, axes)


def _predict_distributed(seg, path: Path, todo: dict[str, Path], args, client) -> None:
    from ..distributed import predict_distributed

    if args.views == 3:  # slabs of whole planes of each view, then slabs of slices averaged (--block unused)
        from ..distributed_views import predict_views_distributed

        with Bar(0, path.name, "slab", position=1, leave=False) as bar:
            predict_views_distributed(seg, path, todo.get("labels"), client=client, proba_output=todo.get("proba"),
                                      fmt=args.format, spacing=args.spacing, tile_shape=args.tile,
                                      device=args.device, tta=args.tta, progress=bar.update)
        return
    with Bar(0, path.name, "block", position=1, leave=False) as bar:
        predict_distributed(seg, path, todo.get("labels"), client=client, proba_output=todo.get("proba"),
                            instances_output=todo.get("instances"), fmt=args.format, tile_shape=args.tile,
                            block=args.block, channel_axis=args.channel_axis, device=args.device, tta=args.tta,
                            progress=bar.update)


def _client(spec: str, timeout: float):
    from ..distributed import connect

    try:
        return connect(spec, timeout)
    except (ValueError, ConnectionError, ImportError) as e:
        raise UsageError(str(e)) from e


def _describe(e: Exception) -> str:
    return str(e) if isinstance(e, (ValueError, OSError)) else f"{type(e).__name__}: {e}"


def _summary(done: list, skipped: list, failed: list) -> None:
    say(f"{len(done)} predicted, {len(skipped)} skipped (outputs exist; --overwrite to redo), {len(failed)} failed")
    for path, e in failed:
        say(f"  failed: {path}: {_describe(e)}")
