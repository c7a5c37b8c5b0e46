"""Image files without a viewer: find them (files, folders, globs), read TIFF/PNG/zarr/OME-Zarr, write outputs.

OME-Zarr is read and written with ``zarr`` directly, following the NGFF 0.4 specification (a group whose
``multiscales`` attribute names its resolution levels; we write one level, ``0``, in zarr format 2, which every
NGFF reader opens). The ``ome-zarr`` package was not used: it pulls in s3fs/aiobotocore and a pydantic that
napari does not pin to, for what is a few lines of JSON here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .fileio import atomic_write

SUFFIXES = (".ome.zarr", ".ome.tiff", ".ome.tif", ".zarr", ".tiff", ".tif", ".png")
FORMATS = {"tif": ".tif", "zarr": ".zarr", "ome-zarr": ".ome.zarr"}
NGFF_VERSION = "0.4"


def stem(path: str | os.PathLike) -> str:
    """The name of an image file without its image suffix: ``a/cells 1.ome.zarr`` → ``cells 1``."""
    name = Path(path).name
    for suffix in SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def is_image(path: Path) -> bool:
    """True for a visible TIFF, PNG or zarr path (by its suffix)."""
    return not path.name.startswith(".") and path.name.lower().endswith(SUFFIXES)


def is_zarr(path: Path) -> bool:
    return path.is_dir() and (path.suffix.lower() == ".zarr" or any(
        (path / f).exists() for f in (".zarray", ".zgroup", "zarr.json")))


def find_images(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Image paths from files, folders (their images, sorted, not recursive; a zarr folder is one image) and glob
    patterns, in the given order without duplicates. ``FileNotFoundError`` names the inputs that match nothing,
    ``ValueError`` the folders without an image."""
    found, missing, empty = [], [], []
    for item in map(str, inputs):
        path = Path(item)
        if path.is_dir() and not is_zarr(path):
            images = sorted(p for p in path.iterdir() if is_image(p))
            empty += [] if images else [item]
        elif path.exists():
            images = [path]
        elif any(c in item for c in "*?["):
            images = sorted(p for p in map(Path, _glob(item)) if is_image(p))
            missing += [] if images else [item]
        else:
            images, missing = [], [*missing, item]
        found += images
    if missing:
        raise FileNotFoundError(f"no such image file or folder: {', '.join(missing)}")
    if empty:
        raise ValueError(f"no images ({', '.join(SUFFIXES[3:])}) in the folder(s) {', '.join(empty)}")
    return list(dict.fromkeys(found))


def _glob(pattern: str) -> list[str]:
    import glob

    return glob.glob(pattern)


def read_image(path: str | os.PathLike, lazy: bool = False):
    """(array, channel_axis) of an image file: TIFF (``lazy``: a zarr view of it, read block by block), PNG, or a
    zarr array / OME-Zarr group (always lazy: full resolution, singleton t/c/z axes dropped, ``channel_axis`` its
    c axis; None for the other formats). ``ValueError`` for a file that cannot be read as an image."""
    path = Path(path)
    try:
        if is_zarr(path):
            return _read_zarr(path)
        if path.name.lower().endswith((".tif", ".tiff")):
            import tifffile

            if lazy:
                import zarr

                return zarr.open(tifffile.imread(path, aszarr=True), mode="r"), None
            return _not_empty(tifffile.imread(path), path), None
        from skimage.io import imread

        return np.asarray(imread(path)), None
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever a damaged file makes a decoder raise: imagecodecs' DeflateError
        # (a RuntimeError) for a truncated compressed TIFF, zlib.error, Pillow's SyntaxError for a broken PNG…
        raise ValueError(f"cannot read {path.name} as an image ({type(e).__name__}: {e})") from e


def _not_empty(array: np.ndarray, path: Path) -> np.ndarray:
    if array.size == 0:  # tifffile reads a damaged file as no pages
        raise ValueError(f"cannot read {path.name} as an image (no pixels: damaged or empty)")
    return array


def _read_zarr(path: Path):
    import zarr

    node = zarr.open(str(path), mode="r")
    if hasattr(node, "shape"):
        return node, None
    attrs = dict(node.attrs)
    multiscales = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
    if not multiscales:
        arrays = [name for name, _ in node.arrays()]
        if len(arrays) != 1:
            raise ValueError(f"{path.name} is a zarr group without OME-Zarr metadata and {len(arrays)} arrays "
                             f"({arrays[:5]}); give the path of one array")
        return node[arrays[0]], None
    array = node[multiscales[0]["datasets"][0]["path"]]
    axes = [a["name"] if isinstance(a, dict) else a for a in multiscales[0].get("axes", [])]
    drop = [i for i, a in enumerate(axes) if a in ("t", "c", "z") and array.shape[i] == 1]
    if not drop:
        return array, axes.index("c") if "c" in axes else None
    import dask.array as da

    kept = [a for i, a in enumerate(axes) if i not in drop]
    return da.from_zarr(array).squeeze(axis=tuple(drop)), kept.index("c") if "c" in kept else None


def output_path(out_dir: Path, source: Path, kind: str, fmt: str) -> Path:
    """Where the ``kind`` output (labels, proba, instances) of ``source`` goes: ``OUT/<stem>_<kind><suffix>``."""
    return Path(out_dir) / f"{stem(source)}_{kind}{FORMATS[fmt]}"


def write_array(path: Path, array: np.ndarray, fmt: str, axes: str) -> None:
    """Write ``array`` (axes named by ``axes``, e.g. ``"yx"``, ``"cyx"``) as a TIFF, zarr or OME-Zarr at ``path``,
    atomically: a reader never sees a half-written file or folder."""
    if fmt == "tif":
        import tifffile

        # minisblack: a (3|4, Y, X) probability map is not an RGB(A) picture (tifffile's guess for such shapes)
        atomic_write(path, lambda tmp: tifffile.imwrite(tmp, np.asarray(array), compression="zlib",
                                                        photometric="minisblack", metadata={"axes": axes.upper()}))
        return
    with atomic_directory(path) as tmp:
        create_zarr(tmp, array.shape, array.dtype, fmt, axes, name=stem(path))[...] = np.asarray(array)


def create_zarr(path: Path, shape: tuple[int, ...], dtype, fmt: str, axes: str, chunks: tuple[int, ...] | None = None,
                name: str | None = None):
    """A new zarr array at ``path`` (``fmt`` ``"zarr"``), or an OME-Zarr group there with that array as its
    full-resolution level ``0`` (``"ome-zarr"``); returns the array to write into."""
    import zarr

    chunks = chunks or tuple(min(n, 1 if a in "ctz" else 1024) for n, a in zip(shape, axes))
    if fmt == "zarr":
        return zarr.open_array(store=str(path), mode="w", shape=shape, chunks=chunks, dtype=dtype)
    version = {"zarr_format": 2} if int(zarr.__version__.split(".")[0]) >= 3 else {}
    group = zarr.open_group(str(path), mode="w", **version)
    group.attrs["multiscales"] = [ngff_multiscales(axes, name or stem(path))]
    return group.create_array("0", shape=shape, chunks=chunks, dtype=dtype) if hasattr(
        group, "create_array") else group.create_dataset("0", shape=shape, chunks=chunks, dtype=dtype)


def ngff_multiscales(axes: str, name: str) -> dict:
    """NGFF 0.4 ``multiscales`` metadata of one full-resolution level ``0`` with axes named by ``axes``."""
    kinds = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
    return {"version": NGFF_VERSION, "name": name, "axes": [{"name": a, "type": kinds[a]} for a in axes],
            "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0] * len(axes)}]}]}


@contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside ``path`` to fill; on success it replaces ``path`` (a folder such as a
    zarr store), on any error or interrupt it is removed and ``path`` is left as it was."""
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def pair_by_stem(first: Sequence[Path], second: Sequence[Path], names: tuple[str, str],
                 suffixes: Sequence[str] = ("_labels", "_mask", "_masks", "_instances")) -> list[tuple[Path, Path]]:
    """Pairs (a, b) of files whose stems are equal, a stem of ``second`` may carry one of ``suffixes``
    (``cells_labels.tif`` pairs with ``cells.tif``). ``ValueError`` listing the unmatched files on both sides."""
    def key(path: Path) -> str:
        s = stem(path)
        return next((s[: -len(x)] for x in suffixes if s.endswith(x) and len(s) > len(x)), s)

    a = {key(p): p for p in first}
    b = {key(p): p for p in second}
    lonely_a, lonely_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if lonely_a or lonely_b:
        raise ValueError(f"{names[0]} and {names[1]} are paired by file name, but "
                         + "; ".join(f"{len(v)} {n} have no partner: {', '.join(v[:10])}"
                                     + (" …" if len(v) > 10 else "")
                                     for n, v in ((names[0], lonely_a), (names[1], lonely_b)) if v))
    return [(a[k], b[k]) for k in sorted(a)]
