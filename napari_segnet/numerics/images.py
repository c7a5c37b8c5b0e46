"""Image axes: present (Y, X), (Y, X, RGB[A]), (C, Y, X) and (Z|T, Y, X) arrays as planes read tile by tile."""

from __future__ import annotations

import copy

import numpy as np


def reflect_index(index: np.ndarray, size: int) -> np.ndarray:
    """Mirror coordinates into [0, size) without repeating the edge (…2 1 | 0 1 2 … n−1 | n−2 …), any distance."""
    if size == 1:
        return np.zeros_like(index)
    period = 2 * (size - 1)
    index = np.mod(index, period)
    return np.where(index >= size, period - index, index)


class ImagePlanes:
    """A read-only view of an image as ``n_planes`` planes of shape (C, Y, X).

    Works on NumPy, dask and zarr arrays alike: only the requested tile is read, so a large image is never
    copied whole. Axes are resolved once, from ``ndim`` and ``in_channels`` (or an explicit ``channel_axis``):

    - (Y, X) and (Y, X, 1): one plane, one channel
    - (Y, X, 3|4) RGB(A) when the model takes 3 channels (alpha is dropped)
    - (C, Y, X) when the first axis has ``in_channels`` entries and the model takes more than one
    - (Z|T, Y, X): a stack of single-channel planes
    - (Z|T, Y, X, 3|4) and (Z|T, C, Y, X): stacks of multichannel planes
    """

    def __init__(self, image, in_channels: int, channel_axis: int | None = None):
        if not hasattr(image, "shape") or not hasattr(image, "dtype"):
            image = np.asarray(image)
        self.image = image
        dtype = np.dtype(image.dtype)
        if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating) or dtype == np.bool_):
            raise ValueError(f"image must hold integer or float values, got dtype {dtype}")
        if image.ndim not in (2, 3, 4):
            raise ValueError(f"image must be 2-D (Y, X), 3-D or 4-D, got shape {tuple(image.shape)}")
        if min(image.shape) == 0:
            raise ValueError(f"image is empty (shape {tuple(image.shape)})")
        self.in_channels = in_channels
        self.whole = self  # the planes :meth:`sample` reads: these, or the (Y, X) planes this view was cut from
        self.channel_axis = self._channel_axis(image.shape, in_channels, channel_axis)
        spatial = [a for a in range(image.ndim) if a != self.channel_axis]
        if len(spatial) < 2:
            raise ValueError(f"channel_axis {channel_axis} leaves no (Y, X) plane in an image of shape "
                             f"{tuple(image.shape)}; a 2-D image has no channel axis")
        if len(spatial) > 3:
            raise ValueError(f"cannot tell the axes of an image of shape {tuple(image.shape)}; give channel_axis")
        self.plane_axis = spatial[0] if len(spatial) == 3 else None
        self.y_axis, self.x_axis = spatial[-2:]
        self.n_planes = image.shape[self.plane_axis] if self.plane_axis is not None else 1
        self.shape = (image.shape[self.y_axis], image.shape[self.x_axis])
        n_ch = image.shape[self.channel_axis] if self.channel_axis is not None else 1
        self.channels = min(n_ch, 3) if n_ch == 4 and in_channels == 3 else n_ch  # RGBA → RGB
        if self.channels != in_channels:
            raise ValueError(
                f"the model takes {in_channels} channel(s) but the image of shape {tuple(image.shape)} has "
                f"{self.channels}" + (f" along axis {self.channel_axis}" if self.channel_axis is not None else "")
            )

    @staticmethod
    def _channel_axis(shape: tuple[int, ...], in_channels: int, channel_axis: int | None) -> int | None:
        ndim = len(shape)
        if channel_axis is not None:
            if not isinstance(channel_axis, (int, np.integer)) or isinstance(channel_axis, bool):
                raise ValueError(f"channel_axis must be an integer axis index or None, got {channel_axis!r}")
            if not -ndim <= channel_axis < ndim:
                raise ValueError(f"channel_axis {channel_axis} is out of range for an image of shape {shape}")
            return channel_axis % ndim
        if in_channels == 1:
            if ndim == 3 and shape[-1] <= 4 and min(shape[:2]) > 4:  # (Y, X, C), not a stack of Y × C slices
                if shape[-1] == 1:
                    return ndim - 1  # (Y, X, 1), as some TIFF writers and readers give a grayscale image
                if shape[-1] == 2:
                    raise ValueError(f"the image of shape {shape} looks gray + alpha but the model takes 1 "
                                     "channel; drop the alpha channel (image[..., 0])")
                raise ValueError(f"the image of shape {shape} looks RGB(A) but the model takes 1 channel; "
                                 "convert it to grayscale or use a 3-channel model")
            return None if ndim <= 3 else _raise_ambiguous(shape)
        if shape[-1] in (3, 4) and in_channels == 3:
            return ndim - 1
        if ndim >= 3 and shape[-3] == in_channels:
            return ndim - 3
        if ndim >= 3 and shape[-1] == in_channels:
            return ndim - 1
        raise ValueError(
            f"the model takes {in_channels} channels but no axis of the image of shape {shape} has that length"
        )

    def along(self, axis: int) -> ImagePlanes:
        """These planes cut along another spatial axis of a stack (Z|T, Y, X): ``axis`` 0 the (Y, X) planes (itself),
        1 the (Z, X) planes (one per row y), 2 the (Z, Y) planes (one per column x) — the views a person sees after
        transposing the dims. Nothing is read or copied: only which axis indexes the planes changes."""
        if axis not in (0, 1, 2) or isinstance(axis, bool):
            raise ValueError(f"axis must be 0 (Y, X planes), 1 (Z, X planes) or 2 (Z, Y planes), got {axis!r}")
        if axis == 0:
            return self
        if self.plane_axis is None:
            raise ValueError("a 2-D image has only its (Y, X) plane: side views need a stack (Z, Y, X)")
        spatial = (self.plane_axis, self.y_axis, self.x_axis)
        other = copy.copy(self)
        other.plane_axis = spatial[axis]
        other.y_axis, other.x_axis = (a for a in spatial if a != spatial[axis])
        other.n_planes = self.image.shape[other.plane_axis]
        other.shape = (self.image.shape[other.y_axis], self.image.shape[other.x_axis])
        other.whole = self.whole  # sampled (for normalisation) as the (Y, X) planes are, as prediction does
        return other

    def read(self, plane: int, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """float32 (C, len(ys), len(xs)) at rows ``ys`` and columns ``xs`` (any indices inside the image).

        Reads the bounding box of the indices once, then gathers; mirrored indices stay near the tile.
        """
        y0, x0 = ys.min(), xs.min()
        block = self.block(plane, slice(y0, ys.max() + 1), slice(x0, xs.max() + 1))
        return block[:, (ys - y0)[:, None], (xs - x0)[None, :]].astype(np.float32, copy=False)

    def block(self, plane: int, rows: slice, cols: slice) -> np.ndarray:
        """(C, rows, cols) of one plane in the image's dtype; only that block is read from the array."""
        index: list[object] = [slice(None)] * self.image.ndim
        if self.plane_axis is not None:
            index[self.plane_axis] = plane
        index[self.y_axis], index[self.x_axis] = rows, cols
        if self.channel_axis is not None:
            index[self.channel_axis] = slice(0, self.channels)
        block = np.asarray(self.image[tuple(index)])
        axes = [a for a in range(self.image.ndim) if a != self.plane_axis]  # the axes left in ``block``
        block = np.transpose(block, [axes.index(a) for a in (self.channel_axis, self.y_axis, self.x_axis)
                                     if a is not None])
        return block if self.channel_axis is not None else block[None]

    def windowed(self, plane: int, rows: tuple[int, int], cols: tuple[int, int]) -> ImagePlanes:
        """These planes with ``rows`` × ``cols`` of ``plane`` (all channels) read into memory once; reads there
        come from memory, any other from the image (:class:`WindowedArray`)."""
        box = [slice(None)] * self.image.ndim
        if self.plane_axis is not None:
            box[self.plane_axis] = slice(plane, plane + 1)
        box[self.y_axis], box[self.x_axis] = slice(*rows), slice(*cols)
        windowed = copy.copy(self)  # the same axes (and orientation, :meth:`along`)
        windowed.image = WindowedArray(self.image, tuple(box))
        if self.whole is self:
            windowed.whole = windowed
        return windowed

    def sample(self, max_pixels: int = 1 << 20) -> np.ndarray:
        """float32 (C, n) values from a regular grid over all planes, at most about ``max_pixels`` of them (of
        the (Y, X) planes for a view cut along another axis: the same values whichever way a stack is cut)."""
        if self.whole is not self:
            return self.whole.sample(max_pixels)
        step = max(1, int(np.ceil(np.sqrt(self.n_planes * self.shape[0] * self.shape[1] / max_pixels))))
        planes = range(0, self.n_planes, max(1, self.n_planes // 16))
        grid = slice(None, None, step)
        parts = [self.block(p, grid, grid).reshape(self.channels, -1) for p in planes]
        return np.concatenate(parts, axis=1).astype(np.float32)


class WindowedArray:
    """A lazily read array (zarr, dask, a TIFF's zarr view) with one box of it in memory: an index inside the
    box (ints and step-1 slices) is served from memory, any other from ``array``. Tiles overlap by their context,
    so read one by one from the array they decompressed each chunk several times (distributed blocks and row bands
    of tiles read their box once instead)."""

    def __init__(self, array, box: tuple[slice, ...]):
        self.array, self.shape, self.dtype, self.ndim = array, tuple(array.shape), array.dtype, array.ndim
        self.box = tuple(slice(*b.indices(n)[:2]) for b, n in zip(box, self.shape))
        self.data = np.asarray(array[self.box])

    def __getitem__(self, index):
        index = index if isinstance(index, tuple) else (index,)
        local = [self._local(k, b, n) for k, b, n in zip(index, self.box, self.shape)]
        if len(index) != self.ndim or None in local:
            return self.array[index]
        return self.data[tuple(local)]

    @staticmethod
    def _local(k, b: slice, n: int) -> slice | int | None:
        """Index ``k`` of an axis of length ``n`` relative to the box's ``b``; None if it leaves the box."""
        if isinstance(k, slice):
            start, stop, step = k.indices(n)
            stop = max(start, stop)
            return slice(start - b.start, stop - b.start) if step == 1 and b.start <= start and stop <= b.stop \
                else None
        if isinstance(k, (int, np.integer)) and -n <= k < n and b.start <= k % n < b.stop:
            return int(k % n) - b.start
        return None


def _raise_ambiguous(shape: tuple[int, ...]):
    raise ValueError(f"a single-channel model cannot take a 4-D image of shape {shape}; give channel_axis")
