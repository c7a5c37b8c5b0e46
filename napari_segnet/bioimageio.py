"""bioimage.io model packages (format 0.5): export a Segmenter, and read back the packages napari-segnet wrote."""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import importlib
import io
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import yaml

from . import __version__
from .inference.tile_plan import DEFAULT_MAX_CONTEXT, explicit_plan
from .io.checkpoint import CheckpointError
from .io.fileio import atomic_write
from .models import MODELS, build_model
from .models.mirrored import MirrorContext
from .numerics.images import ImagePlanes
from .progress import run

FORMAT_VERSION = "0.5.4"  # read by every bioimageio.spec 0.5.x from 0.5.4 on (0.5.12, 0.5.14 upgrade it)
CHECKPOINT = "napari_segnet.safetensors"  # our own checkpoint inside the package: what Segmenter.load reads
CONFIG_KEY = "napari-segnet"

#: The architecture papers, by the registry name's family.
CITATIONS = {
    "unet": {"text": "Ronneberger O., Fischer P., Brox T. U-Net: Convolutional Networks for Biomedical Image "
                     "Segmentation. MICCAI 2015.", "doi": "10.1007/978-3-319-24574-4_28"},
    "fcn": {"text": "Long J., Shelhamer E., Darrell T. Fully Convolutional Networks for Semantic Segmentation. "
                    "CVPR 2015.", "doi": "10.1109/CVPR.2015.7298965"},
    "fc_densenet": {"text": "Jégou S., Drozdzal M., Vazquez D., Romero A., Bengio Y. The One Hundred Layers "
                            "Tiramisu: Fully Convolutional DenseNets for Semantic Segmentation. CVPR Workshops "
                            "2017.", "doi": "10.1109/CVPRW.2017.156"},
}


def family(architecture: str) -> str:
    """'unet', 'fcn' or 'fc_densenet' for a registry name (``unet_paper`` → 'unet', ``fcn8s`` → 'fcn')."""
    return next(f for f in ("fc_densenet", "unet", "fcn") if architecture.startswith(f))


def context(net, max_context: int = DEFAULT_MAX_CONTEXT) -> tuple[int, int]:
    """(pad, crop): mirrored input pixels per side and the first kept output pixel of one whole-image tile of
    :func:`napari_segnet.inference.tile_plan.explicit_plan` — what :class:`MirrorContext` must do to equal ``predict``.
    A whole-image tile reads the valid-convolution border (``pad``, 0 for padded nets) mirrored and keeps its
    output from the first pixel; the package's input sizes are whole-image sizes (multiples of the stride)."""
    size = 64 * net.total_stride
    plan = explicit_plan(net, size, size, max_context)
    assert plan.window(0) == 0 and plan.input_index(0)[0] == -plan.pad  # one tile from the image's first pixel
    return plan.pad, 0


def axis_size(net, max_context: int = DEFAULT_MAX_CONTEXT, checks: int = 16) -> tuple[int, int]:
    """(min, step) of the package's spatial input axes: every min + k·step (k ≥ 0) goes through the net with
    ``pad`` px of context on each side, and (padded nets) is a multiple of the stride, where ``predict``'s one
    whole-image tile reads exactly that input. ``step`` is the net's total stride."""
    pad, _ = context(net, max_context)
    step = net.total_stride
    for size in range(1, 64 * step):
        if net.shrink == 0 and size % step:
            continue
        if all(net.is_valid_size(size + k * step + 2 * pad) for k in range(checks)):
            return size, step
    raise ValueError(f"no valid input size found for {type(net).__name__}")


def architecture_source(architecture: str) -> str:
    """One importable Python file: the network's base class, its family's module, :class:`MirrorContext` and
    the factory ``segnet_packaged`` that the package's ``pytorch_state_dict`` weights name."""
    modules = ["napari_segnet.models.base", MODELS[architecture].__module__, "napari_segnet.models.mirrored"]
    parts = [f'"""{architecture} of napari-segnet {__version__}, as packaged for bioimage.io."""\n',
             "from __future__ import annotations\n"]
    for name in modules:
        text = Path(importlib.import_module(name).__file__).read_text(encoding="utf-8")
        lines = [ln for ln in text.splitlines() if not ln.startswith(("from __future__", "from ."))]
        parts.append(f"# ---- {name} " + "-" * 60 + "\n" + "\n".join(lines) + "\n")
    parts.append(
        "def segnet_packaged(architecture: str, in_channels: int, num_classes: int, options: dict, pad: int,\n"
        "                    crop: int) -> MirrorContext:\n"
        '    """The packaged model: architecture (a factory above) with mirrored context and softmax."""\n'
        "    net = globals()[architecture](in_channels=in_channels, num_classes=num_classes, **options)\n"
        "    return MirrorContext(net, pad, crop)\n")
    return "\n".join(parts)


def sample_input(segmenter, image=None, size: tuple[int, int] | None = None) -> np.ndarray:
    """float32 (C, H, W) raw intensities: ``image`` (any layout :class:`ImagePlanes` reads; first plane of a
    stack) cropped to the largest valid package size ≤ 256 (``size``: the axes' (min, step), default
    :func:`axis_size`), or a synthetic image when None. ``ValueError`` if it is smaller than min."""
    net = segmenter.net
    if image is None:
        from .data.synthetic import synthetic_image

        image = np.repeat(synthetic_image((128, 128), n_objects=10)[0][None], segmenter.in_channels, axis=0)
        image = image[0] if segmenter.in_channels == 1 else image
    planes = ImagePlanes(image, segmenter.in_channels)
    low, step = size or axis_size(net)
    sizes = []
    for n in planes.shape:
        if n < low:
            raise ValueError(f"the test image is {planes.shape[0]}×{planes.shape[1]} px, but the model needs at "
                             f"least {low}×{low}")
        sizes.append(low + (min(n, 256) - low) // step * step)
    return np.asarray(planes.read(0, np.arange(sizes[0]), np.arange(sizes[1])), np.float32)


def export_bioimageio(segmenter, path: str | os.PathLike, image=None, *, name: str | None = None,
                      description: str | None = None, authors: Sequence[str] | None = None,
                      license: str = "CC-BY-4.0", tags: Sequence[str] = (),
                      max_context: int = DEFAULT_MAX_CONTEXT) -> Path:
    """Write ``segmenter`` as a bioimage.io model package (a .zip, format 0.5) to ``path`` atomically.

    The package holds the weights twice (``pytorch_state_dict`` with the architecture's source, and
    TorchScript), a test input from ``image`` (see :func:`sample_input`) with the probabilities
    (classes, H, W) that the network gives for it (a version's pixel forest is not part of bioimage.io's formats:
    the package's weights predict without it, its README says so, and the checkpoint inside keeps it),
    preprocessing equal to the model's normalisation, a cover (image | prediction), documentation, the
    architecture paper's citation, and our own checkpoint (what :meth:`Segmenter.load` reads back). ``authors``
    default to the user's login name.
    ``max_context``: mirrored context per side for nets with a larger receptive field (as in ``predict``;
    smaller runs faster, larger is closer to a pass over the whole image).
    Raises ``ValueError`` for an image too small for the net, ``OSError`` naming the path if it cannot be written.
    """
    path = Path(path)
    path = path if path.suffix == ".zip" else path.with_name(path.name + ".zip")
    size, (pad, crop) = axis_size(segmenter.net, max_context), context(segmenter.net, max_context)
    raw = sample_input(segmenter, image, size)
    multi = segmenter.in_channels > 1
    proba = run(segmenter.predict_steps(raw if multi else raw[0], raw.shape[1:], channel_axis=0 if multi else None,
                                        want_labels=False, want_proba=True, max_context=max_context,
                                        network_only=True)).proba
    files = _weights(segmenter, raw, pad, crop)
    files.update({"test_input.npy": _npy(raw[None]), "test_output.npy": _npy(proba[None]),
                  "cover.png": _cover(raw, proba.argmax(axis=0)), "README.md": documentation(segmenter).encode(),
                  CHECKPOINT: _checkpoint_bytes(segmenter)})
    rdf = _rdf(segmenter, files, (size, (pad, crop)),
               name=name, description=description, authors=authors, license=license, tags=tags)
    files["rdf.yaml"] = yaml.safe_dump(rdf, sort_keys=False, allow_unicode=True).encode()
    try:
        atomic_write(path, lambda tmp: _zip(tmp, files))
    except OSError as e:
        raise OSError(e.errno, f"could not write the bioimage.io package to {path}: {e.strerror or e}") from e
    return path


def _weights(segmenter, raw: np.ndarray, pad: int, crop: int) -> dict[str, bytes]:
    """The state dict of the packaged model, its TorchScript and the architecture's source, as file bytes."""
    net = build_model(segmenter.metadata.architecture, segmenter.in_channels, segmenter.num_classes,
                      **segmenter.metadata.options)  # a copy: eval mode and tracing leave the model as it was
    net.load_state_dict(segmenter.net.state_dict())
    packaged = MirrorContext(net.eval(), pad, crop).eval()
    state, script = io.BytesIO(), io.BytesIO()
    torch.save(packaged.state_dict(), state)
    example = torch.zeros(1, segmenter.in_channels, *(n + 2 * pad for n in raw.shape[1:]))
    with torch.no_grad(), _quiet():  # TorchScript is what bioimage.io consumers run, deprecated or not
        traced = torch.jit.trace(net, example, check_trace=False)  # the net alone; MirrorContext is scripted
        torch.jit.save(torch.jit.script(MirrorContext(traced, pad, crop)), script)
    return {"weights.pt": state.getvalue(), "weights_torchscript.pt": script.getvalue(),
            "architecture.py": architecture_source(segmenter.metadata.architecture).encode()}


@contextlib.contextmanager
def _quiet():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the size checks in forward: Python-only
        warnings.filterwarnings("ignore", r"`torch\.jit\.\w+` is deprecated", DeprecationWarning)
        yield


def _rdf(segmenter, files: dict[str, bytes], sizes, *, name, description, authors, license, tags) -> dict:
    """The rdf.yaml of the package as a dict (bioimage.io model format 0.5); sizes: ((min, step), (pad, crop))."""
    meta, arch = segmenter.metadata, segmenter.metadata.architecture
    (low, step), (pad, crop) = sizes

    def file(n):
        return {"source": n, "sha256": hashlib.sha256(files[n]).hexdigest()}

    space = [{"type": "space", "id": a, "size": {"min": low, "step": step}} for a in "yx"]
    inputs = [{"id": "raw", "description": "image, raw intensities", "axes": [
        {"type": "batch"}, {"type": "channel", "channel_names": [f"c{i}" for i in range(meta.in_channels)]},
        *space], "test_tensor": file("test_input.npy"), "data": {"type": "float32"},
        "preprocessing": preprocessing(meta.normalization, meta.in_channels)}]
    outputs = [{"id": "probabilities", "description": "class probabilities (softmax); classes: "
                + ", ".join(meta.class_names), "axes": [
                    {"type": "batch"}, {"type": "channel", "channel_names": channel_names(meta.class_names)},
                    *({"type": "space", "id": a, "size": {"tensor_id": "raw", "axis_id": a}} for a in "yx")],
                "test_tensor": file("test_output.npy"), "data": {"type": "float32", "range": [0.0, 1.0]}}]
    kwargs = {"architecture": arch, "in_channels": meta.in_channels, "num_classes": meta.num_classes,
              "options": _plain(meta.options), "pad": pad, "crop": crop}
    version = str(torch.__version__).split("+")[0]
    weights = {"pytorch_state_dict": {**file("weights.pt"), "architecture": {
        **file("architecture.py"), "callable": "segnet_packaged", "kwargs": kwargs}, "pytorch_version": version},
        "torchscript": {**file("weights_torchscript.pt"), "pytorch_version": version, "parent": "pytorch_state_dict"}}
    return {
        "format_version": FORMAT_VERSION, "type": "model", "name": name or f"napari-segnet {arch}",
        "description": description or f"{arch} for semantic segmentation into {meta.num_classes} classes "
        f"({', '.join(meta.class_names)}), fine-tuned with napari-segnet (model version {meta.active_version})",
        "authors": [{"name": a} for a in (authors or [getpass.getuser()])],
        "cite": [CITATIONS[family(arch)]], "license": license, "documentation": "README.md",
        "covers": ["cover.png"], "tags": ["napari-segnet", "semantic-segmentation", family(arch), "pytorch", *tags],
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "inputs": inputs, "outputs": outputs, "weights": weights, "attachments": [file(CHECKPOINT)],
        "config": {CONFIG_KEY: {"version": __version__, "checkpoint": CHECKPOINT,
                                "class_names": list(meta.class_names), "model_version": meta.active_version}},
    }


def preprocessing(norm, channels: int) -> list[dict]:
    """bioimage.io preprocessing equal to ``norm``: percentile → ``scale_range`` per channel over (y, x);
    fixed → ``scale_linear`` (gain 1/scale, offset −offset/scale); none → nothing but float32."""
    steps = [{"id": "ensure_dtype", "kwargs": {"dtype": "float32"}}]
    if norm.mode == "percentile":
        steps.append({"id": "scale_range", "kwargs": {"axes": ["y", "x"], "min_percentile": float(norm.low),
                                                      "max_percentile": float(norm.high)}})
    elif norm.mode == "fixed":
        offset = np.broadcast_to(np.asarray(norm.offset, float), (channels,))
        scale = np.broadcast_to(np.asarray(norm.scale, float), (channels,))
        steps.append({"id": "scale_linear", "kwargs": {"axis": "channel", "gain": (1 / scale).tolist(),
                                                       "offset": (-offset / scale).tolist()}})
    return steps


def channel_names(names: Sequence[str]) -> list[str]:
    """Class names as bioimage.io identifiers (letters, digits, '_'), unique: 'class 1' → 'class_1'."""
    out: list[str] = []
    for i, n in enumerate(names):
        ident = re.sub(r"\W+", "_", n, flags=re.ASCII).strip("_") or f"class_{i}"
        out.append(ident if ident not in out else f"{ident}_{i}")
    return out


def _forest_line(segmenter) -> str:
    """The README's line on a pixel forest the active version blends in (none: empty)."""
    if segmenter.forest is None:
        return ""
    return (f"\n- napari-segnet predicts this version with a pixel forest blended in at weight "
            f"{segmenter.forest.weight:g}; this package's weights are the network alone (bioimage.io has no format "
            "for the forest). Loading the package in napari-segnet restores both.")


def documentation(segmenter) -> str:
    """The package's README.md: what the model does, its classes, normalisation, history and how to run it."""
    meta = segmenter.metadata
    history = "\n".join(f"- version {v.version}: {v.note or 'fine-tuned'}"
                        f"{', ' + str(v.images) + ' image(s)' if v.images else ''}"
                        for v in segmenter.versions)
    return f"""# napari-segnet {meta.architecture}

Semantic segmentation with a {meta.architecture} ({CITATIONS[family(meta.architecture)]['text']}),
trained and fine-tuned on user corrections with [napari-segnet](https://pypi.org/project/napari-segnet/).

- input: {meta.in_channels} channel(s), 2-D; normalisation: {meta.normalization.to_dict()}
- output: probabilities of {meta.num_classes} classes: {', '.join(meta.class_names)}; the label image is
  their argmax (0 = {meta.class_names[0]})
- the model predicts the whole input at once with mirrored context around it, as napari-segnet's tiled
  prediction does for one tile; stacks: one plane at a time.{_forest_line(segmenter)}

## History
{history}

## Validation
The package's test output is napari-segnet's own prediction of the test input; `bioimageio.core`'s model test
reproduces it from both weight formats. Scores of each version on the pixels it was checked on are in the
version history of the checkpoint inside (`napari_segnet.safetensors`).

## Use
In napari-segnet: `Segmenter.load("this.zip")` or the dock's *load*; elsewhere: any bioimage.io consumer
(bioimageio.core, deepImageJ, ilastik, QuPath).
"""


def _cover(raw: np.ndarray, labels: np.ndarray) -> bytes:
    """PNG bytes of the image (first channel or RGB, percentile-scaled) beside its coloured prediction."""
    import imageio.v3 as iio

    img = raw[:3] if raw.shape[0] >= 3 else raw[:1].repeat(3, axis=0)
    lo, hi = np.percentile(img, [1, 99.8])
    img = (np.clip((img - lo) / max(hi - lo, 1e-12), 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)
    palette = np.array([[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                        [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60]], np.uint8)
    colours = palette[labels % len(palette)]
    return iio.imwrite("<bytes>", np.concatenate([img, colours], axis=1), extension=".png")


def _checkpoint_bytes(segmenter) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        return segmenter.save(Path(tmp) / CHECKPOINT).read_bytes()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, np.float32))
    return buffer.getvalue()


def _plain(value):
    """Tuples → lists, recursively (YAML-friendly options)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return [_plain(v) for v in value] if isinstance(value, (tuple, list)) else value


def _zip(target: str, files: dict[str, bytes]) -> None:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
        for n, data in files.items():
            z.writestr(n, data)


@contextlib.contextmanager
def package_checkpoint(path: str | os.PathLike) -> Iterator[Path]:
    """The napari-segnet checkpoint inside a bioimage.io package we exported, extracted to a temporary file
    (checked against the package's sha256). ``CheckpointError`` saying what is supported for other packages,
    and for an rdf.yaml of the wrong shape (YAML aliases, a list where a mapping belongs…)."""
    path = Path(path)
    with zipfile.ZipFile(path) as z:
        rdf = _read_rdf(z, path.name)
        config = rdf.get("config")
        config = config.get(CONFIG_KEY) if isinstance(config, dict) else None
        checkpoint = config.get("checkpoint") if isinstance(config, dict) else None
        if not isinstance(checkpoint, str) or checkpoint not in z.namelist():
            name = rdf.get("name")
            raise CheckpointError(
                f"{path.name} is a bioimage.io package ('{name[:80] if isinstance(name, str) else '?'}') that "
                "napari-segnet did not export; napari-segnet loads its own checkpoints (.safetensors) and the "
                "bioimage.io packages it exported (they carry that checkpoint). Run other bioimage.io models with "
                "bioimageio.core, or their own napari plugin")
        data = z.read(checkpoint)
    attachments = rdf.get("attachments", [])
    if not isinstance(attachments, list):
        raise CheckpointError(f"{path.name}: rdf.yaml's attachments must be a list, not "
                              f"{type(attachments).__name__} (damaged package)")
    expected = {a.get("source"): a.get("sha256") for a in attachments if isinstance(a, dict)}
    if expected.get(checkpoint) not in (None, hashlib.sha256(data).hexdigest()):
        raise CheckpointError(f"{path.name}: the checkpoint inside does not match its sha256 (damaged package)")
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / CHECKPOINT
        target.write_bytes(data)
        yield target


class NoAliasLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader that refuses aliases (``*name``): a few hundred bytes of nested aliases ("billion
    laughs") make an object that formatting or walking expands to gigabytes. rdf.yaml files never need them."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "YAML aliases (*name) are not accepted here",
                                              self.peek_event().start_mark)
        return super().compose_node(parent, index)


def _read_rdf(z: zipfile.ZipFile, name: str) -> dict:
    """The package's rdf.yaml as a dict (:class:`NoAliasLoader`); ``CheckpointError`` for anything else."""
    try:
        rdf = yaml.load(z.read("rdf.yaml"), Loader=NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except (KeyError, yaml.YAMLError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{name} is a zip file but not a bioimage.io model package (no readable rdf.yaml: "
                              f"{str(e)[:200]})") from e
    if not isinstance(rdf, dict):
        raise CheckpointError(f"{name}: its rdf.yaml is a {type(rdf).__name__}, not a mapping (damaged package)")
    return rdf
