"""Tile planning by cost: tile sizes, counts and context margins that run the fewest pixels within memory."""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import torch

from ..models import SegmentationNet
from ..numerics.images import reflect_index

# Above this many pixels of context per side, tiles do not wait for full context: they overlap and blend.
DEFAULT_MAX_CONTEXT = 256
#: Cost of one tile's dispatch (Python, allocation, stitching) in input pixels: it breaks ties towards fewer tiles.
TILE_OVERHEAD_PIXELS = 64 * 64
#: A measured context margin must leave the labels of this share of probe pixels unchanged.
LABEL_AGREEMENT = 0.9999


def ceil_to(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@dataclass(frozen=True)
class AxisPlan:
    """Tiling of one axis of ``size`` pixels.

    Tile i keeps the image pixels [bounds[i], bounds[i+1]) (± ``overlap`` when blending). Its output window
    covers image pixels [lo, lo + tile_out) with lo = :meth:`window`, and it reads input pixels
    [lo − shrink, lo − shrink + tile_in) (``shrink``: the valid-convolution border), mirrored outside the image.
    Every window starts on a multiple of the net's stride and lies inside [0, extent), the output of one
    whole-image pass (the image rounded up to a valid size): at the image border a tile sees what the whole-image
    pass sees, and between tiles it keeps ``margin`` pixels of real context.
    """

    size: int
    bounds: tuple[int, ...]
    margin: int
    tile_in: int
    tile_out: int
    shrink: int
    extent: int
    overlap: int = 0

    @property
    def starts(self) -> tuple[int, ...]:
        return self.bounds[:-1]

    @property
    def step(self) -> int:
        """The most pixels one tile keeps."""
        return max(b - a for a, b in zip(self.bounds, self.bounds[1:]))

    @property
    def pad(self) -> int:
        """Mirrored context read before the image's first pixel (the valid-convolution border)."""
        return self.shrink

    def window(self, i: int) -> int:
        """Image position of tile i's first output pixel."""
        return min(max(self.bounds[i] - self.margin, 0), self.extent - self.tile_out)

    def input_index(self, i: int) -> np.ndarray:
        """int (tile_in,): image coordinates tile i reads (outside [0, size): to be mirrored)."""
        start = self.window(i) - self.shrink
        return np.arange(start, start + self.tile_in)

    def kept(self, i: int, bounds: tuple[int, int] | None = None) -> tuple[slice, slice]:
        """(slice of tile i's output, slice of the image) that the tile contributes; with ``bounds`` (a part
        [b0, b1) of the axis) only what falls inside it, as a slice relative to b0."""
        b0, b1 = bounds or (0, self.size)
        lo = max(self.bounds[i] - self.overlap, b0)
        hi = min(self.bounds[i + 1] + self.overlap, b1)
        first = lo - self.window(i)
        return slice(first, first + hi - lo), slice(lo - b0, hi - b0)

    def input_span(self, bounds: tuple[int, int]) -> tuple[int, int]:
        """[lo, hi): the image pixels (mirrored ones included) read by the tiles that meet ``bounds``."""
        reads = [reflect_index(self.input_index(i), self.size) for i in range(len(self.starts))
                 if self.meets(i, bounds)]
        return min(int(r.min()) for r in reads), max(int(r.max()) for r in reads) + 1

    def meets(self, i: int, bounds: tuple[int, int]) -> bool:
        """Whether tile i contributes to the part [b0, b1) of the axis."""
        return self.bounds[i] - self.overlap < bounds[1] and self.bounds[i + 1] + self.overlap > bounds[0]

    @property
    def pixels_run(self) -> int:
        """Input pixels run along this axis (tiles × tile_in)."""
        return len(self.starts) * self.tile_in


def tile_length(net: SegmentationNet, out: int) -> tuple[int, int]:
    """(input, output) length of a tile whose output covers at least ``out`` pixels."""
    size_in = net.valid_size(out + 2 * net.shrink, min_output=out)
    return size_in, net.output_size(size_in)


def axis_plan(net: SegmentationNet, size: int, out: int, margin: int, overlap: int = 0,
              step: int | None = None) -> AxisPlan:
    """The plan of one axis for tiles of ≥ ``out`` output pixels: tiles keep ``step`` pixels each when given
    (uniform), else as many as their context allows (edge tiles keep ``out − margin``, inner ones
    ``out − 2·margin``). One tile, the whole-image pass, when it covers the image."""
    s = net.total_stride
    extent_in, extent = tile_length(net, ceil_to(size, s))
    size_in, size_out = tile_length(net, max(out, s))
    if step is not None and step >= size or step is None and size_out >= extent:
        return AxisPlan(size, (0, size), margin, extent_in, extent, net.shrink, extent)
    if step is not None:  # as many tiles as asked for, each at most the whole-image pass
        size_in, size_out = (extent_in, extent) if size_out >= extent else (size_in, size_out)
        bounds = list(range(0, size, step))
    else:
        inner = size_out - 2 * margin
        if inner < s:
            raise ValueError(f"tiles of {size_out} px leave no room inside a context margin of {margin} px")
        bounds = [0, *range(size_out - margin, size, inner)]
    return AxisPlan(size, (*bounds, size), margin, size_in, size_out, net.shrink, extent, overlap)


def explicit_plan(net: SegmentationNet, size: int, step: int, max_context: int = DEFAULT_MAX_CONTEXT) -> AxisPlan:
    """The plan for tiles that keep ``step`` output pixels each (rounded up to the net's stride)."""
    s = net.total_stride
    step = max(s, ceil_to(min(step, ceil_to(size, s)), s))
    if step >= size:  # one whole-image pass: no context margin to plan (or measure)
        return axis_plan(net, size, ceil_to(size, s), 0, step=step)
    margin, blend = context_margin(net, max_context)
    overlap = margin // 2 if blend else 0
    return axis_plan(net, size, step + 2 * margin, margin, overlap, step=step)



def plan_cost(py: AxisPlan, px: AxisPlan) -> int:
    """Relative time of a plan: input pixels run (halo included; convolution FLOPs are proportional to them)
    plus a dispatch cost per tile. (Per-pixel speed by tile size was measured too, 256²–1536² on this CPU, and
    showed no cache penalty above the noise of a shared machine, so the cost model leaves it out.)"""
    return len(py.starts) * len(px.starts) * (py.tile_in * px.tile_in + TILE_OVERHEAD_PIXELS)


def axis_options(net: SegmentationNet, size: int, margin: int, overlap: int) -> list[AxisPlan]:
    """For each tile count, the plan of one axis with the smallest tiles (fewest pixels run)."""
    s = net.total_stride
    best: dict[int, AxisPlan] = {}
    for out in range(2 * margin + s, ceil_to(size, s) + s, s):
        plan = axis_plan(net, size, out, margin, overlap)
        n = len(plan.starts)
        if n not in best or plan.tile_in < best[n].tile_in:
            best[n] = plan
        if n == 1:
            break
    return list(best.values()) or [axis_plan(net, size, ceil_to(size, s), margin, overlap)]


def auto_plan(net: SegmentationNet, shape: tuple[int, int], max_pixels: int,
              max_context: int = DEFAULT_MAX_CONTEXT) -> tuple[AxisPlan, AxisPlan]:
    """The cheapest plan (:func:`plan_cost`) of an image of ``shape`` (Y, X) whose tiles have at most
    ``max_pixels`` input pixels (the smallest tiles if none fit); an image that fits one tile is one
    whole-image pass."""
    whole = [axis_plan(net, n, ceil_to(n, net.total_stride), 0) for n in shape]
    if whole[0].tile_in * whole[1].tile_in <= max_pixels:
        return whole[0], whole[1]
    margin, blend = context_margin(net, max_context)
    overlap = margin // 2 if blend else 0
    ys, xs = (axis_options(net, n, margin, overlap) for n in shape)
    pairs = [(py, px) for py in ys for px in xs if py.tile_in * px.tile_in <= max_pixels]
    if not pairs:
        pairs = [(min(ys, key=lambda p: p.tile_in), min(xs, key=lambda p: p.tile_in))]
    return min(pairs, key=lambda pair: plan_cost(*pair))


_MARGINS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def context_margin(net: SegmentationNet, max_context: int = DEFAULT_MAX_CONTEXT) -> tuple[int, bool]:
    """(margin, blend): the context kept between tiles, in output pixels, a multiple of the stride.

    The net's halo when it is at most ``max_context`` (tiles then equal the whole-image pass exactly);
    otherwise the measured context beyond which labels no longer change (:func:`measure_label_context`);
    ``max_context`` with blending (``blend`` True) when even that exceeds it."""
    s = net.total_stride
    exact = ceil_to(max(net.halo - net.shrink, 0), s)
    if exact <= max_context:
        return exact, False
    key = (max_context,)
    cached = _MARGINS.get(net, {})
    if key not in cached:
        measured = measure_label_context(net, ceil_to(max_context, s))
        cached[key] = (measured, False) if measured is not None else (ceil_to(max_context, s), True)
        _MARGINS[net] = cached
    return cached[key]


def probe_image(channels: int, shape: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """float32 (1, channels, *shape): smooth random structure in [0, 1], like a normalised image."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    img = ndimage.gaussian_filter(rng.random((channels, *shape), dtype=np.float32), (0, 3, 3))
    img = (img - img.min()) / max(float(np.ptp(img)), 1e-6)
    return torch.from_numpy(img)[None]


def measure_label_context(net: SegmentationNet, up_to: int, kept: int = 128) -> int | None:
    """The smallest context margin m (a multiple of the stride, ≤ ``up_to``) at which the labels no longer
    change: a ``kept``-wide block predicted with m pixels of context has the labels of the same block predicted
    with the full halo on ≥ :data:`LABEL_AGREEMENT` of its pixels, cut along X and along Y (strips of probe
    images: a quarter of the work of square probes); None if no m ≤ ``up_to`` does."""
    s = net.total_stride
    if up_to < s:
        return None
    kept, rows = ceil_to(kept, s), ceil_to(kept, s) + 4 * s
    halo = ceil_to(max(net.halo - net.shrink, 0), s)
    device = next(net.parameters()).device
    strips = [probe_image(net.in_channels, (tile_length(net, rows)[0], tile_length(net, kept + 2 * halo)[0]),
                          seed).to(device) for seed in (0, 1)]
    strips = [strips[0], strips[1].transpose(2, 3)]  # cut along X, then along Y
    rows_kept = slice(2 * s, 2 * s + kept)

    def labels(x, cut: int, first: int) -> torch.Tensor:
        out = net(x).argmax(1)
        out = out if cut == 3 else out.transpose(1, 2)
        return out[:, rows_kept, first : first + kept]

    with torch.inference_mode():
        refs = [labels(x, 3 - k, halo) for k, x in enumerate(strips)]
        for m in range(s, up_to + 1, s):
            size_in = tile_length(net, kept + 2 * m)[0]
            agree = [(labels(x.narrow(3 - k, halo - m, size_in), 3 - k, m) == r).float().mean().item()
                     for k, (x, r) in enumerate(zip(strips, refs))]
            if min(agree) >= LABEL_AGREEMENT:
                return m
    return None
