"""``napari-segnet train``: fine-tune (or train a new architecture) on image/label files or a project folder.

Exit status: 0 the new version is active in the saved model; 3 training finished but the guard kept the new
version inactive (it scored a lower mean IU than its parent; it is saved beside the model, see the message);
1 training failed (diverged); 2 a usage error; 130 interrupted (nothing saved). Under ``torchrun`` every rank
trains (DistributedDataParallel) and only rank 0 reads out progress and writes files; there 3 becomes 0 (torchrun
reports any other status as a crash), and the message says so.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

from ..io.imagefiles import find_images, pair_by_stem, read_image
from ..training.settings import LOSSES
from . import common
from .common import FAILED, INTERRUPTED, NOT_ACCEPTED, OK, Bar, UsageError, load_model, say, writable_folder


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="napari-segnet train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    data = p.add_argument_group("training data: --images and --labels (paired by file name), or --project")
    data.add_argument("--images", help="folder (or glob) of images")
    data.add_argument("--labels", help="folder of class-id labels named like the images (x.tif or x_labels.tif)")
    data.add_argument("--masks", help="folder of reviewed masks (non-zero = learn from this pixel); default: all")
    data.add_argument("--project", help="a project folder saved by the dock (its corrections; its model by "
                      "default, and the result is saved back into it unless --out)")
    data.add_argument("--validation", nargs=2, metavar=("IMAGES", "LABELS"), help="guard set: the new version "
                      "becomes active only if it scores at least the old one's mean IU here (default: on the "
                      "reviewed training pixels)")
    model = p.add_argument_group("model")
    model.add_argument("--model", help="a .safetensors checkpoint, 'default', or an architecture name for a new "
                       "model (unet, unet_paper, fcn8s, fc_densenet56, …)")
    model.add_argument("--out", help="where to save the model (.safetensors)")
    model.add_argument("--classes", type=int, help="new model: number of classes (default: largest label + 1)")
    model.add_argument("--channels", type=int, default=1, help="new model: input channels (default 1)")
    model.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                       help="new model: an architecture option, e.g. --option depth=3 (repeatable)")
    train = p.add_argument_group("training")
    train.add_argument("--steps", type=int)
    train.add_argument("--lr", type=float)
    train.add_argument("--loss", choices=LOSSES)
    train.add_argument("--w0", type=float, help="border weight (U-Net paper: 10)")
    train.add_argument("--sigma", type=float, help="border width in px (U-Net paper: 5)")
    train.add_argument("--batch-size", type=int, help="patches per step (per process under torchrun)")
    train.add_argument("--patch-size", type=int)
    train.add_argument("--seed", type=int)
    train.add_argument("--distill", type=float, metavar="WEIGHT", help="loss weight (0…1) of a pixel forest's "
                       "labels on unreviewed pixels while it scores better than the network (0: off)")
    train.add_argument("--forest-blend", action=argparse.BooleanOptionalAction, default=None,
                       help="let the new version keep a pixel forest blended into its predictions where the held-out "
                       "reviewed squares say it helps (default: the model's recommendation; new models do)")
    train.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the best available)")
    train.add_argument("--channel-axis", type=int, help="the images' channel axis, for multichannel models")
    train.add_argument("--accept-worse", action="store_true", help="activate the new version even if the guard "
                       "scores it lower")
    return p


def run(args: argparse.Namespace) -> int:
    from ..training import ddp

    created = _check(args)
    status = FAILED
    device = ddp.init_from_env(args.device)
    try:
        status = _train(args, device, main=ddp.rank() == 0)
        if status == NOT_ACCEPTED and ddp.world_size() > 1:
            # torchrun reports any other status than 0 as a crash, with a wall of tracebacks: the message said it
            say("(exit status 0 under torchrun, which takes any other as a crash; the message above tells)")
            status = OK
        return status
    finally:
        ddp.shutdown()
        if status not in (OK, NOT_ACCEPTED):
            _remove_empty(created)


def _check(args) -> list[Path]:
    """Refuse a bad command line before any work; the folders that --out needed and that were created."""
    if args.project is None and not (args.images and args.labels):
        raise UsageError("give --images and --labels (or --project)")
    if args.project is not None and (args.images or args.labels or args.masks):
        raise UsageError("--project takes its images, labels and masks from the project: drop --images/--labels")
    if args.project is None and not (args.model and args.out):
        raise UsageError("give --model (a checkpoint, 'default' or an architecture) and --out")
    if args.out is None:
        return []
    folder = Path(args.out).absolute().parent
    created = [f for f in (folder, *folder.parents) if not f.exists()]
    writable_folder(folder)
    return created


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders ``--out`` made, deepest first, where nothing was written into them."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (or gone): leave it
            return


def _train(args, device, main: bool) -> int:
    from ..training.loop import TrainingAborted

    images, labels, masks, project = _training_set(args)
    seg = _model(args, labels, project)
    # the options given; every other setting is the model's recommendation (a new model: the new-model settings)
    settings = {k: getattr(args, k) for k in ("steps", "lr", "loss", "w0", "sigma", "batch_size", "patch_size",
                                               "seed", "distill", "forest_blend") if getattr(args, k) is not None}
    try:
        steps = seg.finetune(images, labels, masks, validation=_validation(args), accept_worse=args.accept_worse,
                             device=device, channel_axis=args.channel_axis, **settings)
    except ValueError as e:
        raise UsageError(str(e)) from e
    try:
        finished = _drive(steps, settings.get("steps", 100), main)
    except KeyboardInterrupt:
        if main:
            say("interrupted: training stopped and nothing was saved")
        return INTERRUPTED
    except TrainingAborted as e:
        say(f"training failed: {e}")
        return FAILED
    from ..training import ddp

    if ddp.world_size() > 1:  # one line per rank, so that anyone can see the ranks ended on the same weights
        say(f"rank {ddp.rank()} of {ddp.world_size()}: weights {ddp.state_digest(seg.net)}")
    return _save(seg, finished, args, project) if main else OK


def _drive(steps, total: int, show: bool):
    """Run the fine-tune generator with a progress bar (loss, running mean); close it however it ends."""
    from ..progress import Outcome

    finished = None
    with Bar(total, "fine-tune", "step", enabled=show) as bar:
        try:
            for update in steps:
                if isinstance(update, Outcome):
                    finished = update
                else:
                    bar.update(update.done, update.total, loss=update.loss, mean=update.mean_loss)
        finally:
            steps.close()  # Ctrl-C: the generator is closed, the model untouched
    return finished


def _save(seg, finished, args, project) -> int:
    """Write the model (rank 0); report the guard's verdict. Returns the exit status."""
    try:
        if project is not None and args.out is None:
            project.save_model(seg)
            project.log("fine-tuned from the command line", version=finished.version, accepted=finished.accepted)
            where = f"the project {args.project}"
        else:
            where = str(seg.save(args.out))
    except OSError as e:  # a full disk: ProjectSaveError, or the checkpoint's own OSError naming the file
        say(f"training finished but the model could not be saved: {e.strerror or e}")
        return FAILED
    say(f"{finished.message}; saved to {where}")
    if finished.accepted:
        return OK
    if project is None or args.out is not None:
        out = Path(args.out)
        rejected = seg.save(out.with_name(f"{out.name.removesuffix('.safetensors')}.v{finished.version}"),
                            version=finished.version)
        say(f"version {finished.version} was saved as {rejected} (active there): use it with --model {rejected}, "
            "or train again with --accept-worse")
    else:
        say(f"version {finished.version} is in the project: activate it in the dock (pick it and roll back)")
    return NOT_ACCEPTED


def _read_all(paths: list[Path], what: str) -> list:
    arrays = []
    for path in paths:
        try:
            arrays.append(read_image(path)[0])
        except ValueError as e:
            raise UsageError(f"{what}: {e}") from e
    return arrays


def _folder_images(spec: str, what: str) -> list[Path]:
    try:
        return find_images([spec])
    except (FileNotFoundError, ValueError) as e:
        raise UsageError(f"{what}: {e}") from e


def _training_set(args):
    """(images, labels, masks or None, project or None) from the folders or the project."""
    if args.project is not None:
        from ..project import Project

        if not Path(args.project).is_dir():
            raise UsageError(f"no project folder {args.project}")
        try:
            project = Project(args.project)
        except (ValueError, OSError) as e:  # not a project, open in another process, unreadable
            raise UsageError(str(e)) from e
        if project.read_only and args.out is None:
            raise UsageError(f"the project {args.project} is read-only: the result could not be saved into it "
                             "(give --out)")
        images, labels, masks = project.training_set()
        if not images:
            raise UsageError(f"the project {args.project} has no saved corrections to learn from")
        return images, labels, masks, project
    pairs = _pairs(args.images, args.labels, "images", "labels")
    masks = None
    if args.masks:
        by_image = dict(_pairs(args.images, args.masks, "images", "masks"))
        masks = [m > 0 for m in _read_all([by_image[i] for i, _ in pairs], "masks")]
    return (_read_all([i for i, _ in pairs], "images"), _read_all([lb for _, lb in pairs], "labels"), masks, None)


def _pairs(images: str, labels: str, a: str, b: str) -> list[tuple[Path, Path]]:
    try:
        return pair_by_stem(_folder_images(images, a), _folder_images(labels, b), (a, b))
    except ValueError as e:
        raise UsageError(str(e)) from e


def _validation(args):
    if not args.validation:
        return None
    pairs = _pairs(*args.validation, "validation images", "validation labels")
    return (_read_all([i for i, _ in pairs], "validation images"),
            _read_all([lb for _, lb in pairs], "validation labels"))


def _is_new(args) -> bool:
    """Whether --model names an architecture (a new model) rather than a file or 'default'."""
    from ..models import list_models

    return args.model not in (None, "default") and not Path(args.model).exists() and args.model in list_models()


def _model(args, labels: list, project):
    """The model to train: a checkpoint, 'default', an architecture (a new model), or the project's."""
    from ..models import list_models
    from ..segmenter import Segmenter

    spec = args.model
    if spec is None:
        from ..io.checkpoint import CheckpointError

        try:
            return (project.load_model() if project is not None else None) or Segmenter.default()
        except CheckpointError as e:  # its model files are missing or damaged
            raise UsageError(str(e)) from e
    if _is_new(args):
        import numpy as np
        import torch

        torch.manual_seed(args.seed or 0)  # the same initial weights on every rank under torchrun
        classes = args.classes or max(2, max(int(np.max(lb)) for lb in labels) + 1)
        if not args.classes and classes > common.MAX_GUESSED_CLASSES:
            raise UsageError(f"the labels hold ids up to {classes - 1}, which as class ids would make a model of "
                             f"{classes} classes (instance ids?); give class ids, or --classes N if there are that "
                             "many classes")
        try:
            return Segmenter.create(spec, in_channels=args.channels, num_classes=classes, **_options(args.option))
        except (TypeError, ValueError) as e:
            raise UsageError(str(e)) from e
    if spec != "default" and not Path(spec).exists():
        raise UsageError(f"--model {spec} is neither a file, 'default' nor an architecture "
                         f"({', '.join(list_models())})")
    return load_model(spec)


def _options(items: list[str]) -> dict:
    options = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--option takes NAME=VALUE, got {item!r}")
        try:
            options[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[name] = value
    return options
