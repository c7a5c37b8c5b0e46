"""Every fast path gives the labels of the plain fp32 eager forward pass; the CUDA path (skipped without a GPU)."""

import warnings

import numpy as np
import pytest
import torch
from conftest import smooth_image, tiny_segmenter

from napari_segnet._sample_data import nuclei_sample
from napari_segnet.inference.devices import autocast_dtype, cpu_has_bf16
from napari_segnet.numerics.images import ImagePlanes
from napari_segnet.segmenter import Segmenter

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def nuclei() -> np.ndarray:
    return nuclei_sample()[0][0]


def eager_labels(seg: Segmenter, image: np.ndarray) -> np.ndarray:
    """The reference: the unfolded net, contiguous fp32, one forward pass over the (stride-padded) image."""
    params = seg.normalization.parameters(ImagePlanes(image, 1))
    x = torch.from_numpy(seg.normalization.apply(image[None].astype(np.float32), *params))[None]
    h, w = image.shape
    s = seg.net.total_stride
    x = torch.nn.functional.pad(x, (0, (-w) % s, 0, (-h) % s), mode="reflect")
    with torch.inference_mode():
        return seg.net.eval()(x)[0, :, :h, :w].argmax(0).numpy()


def test_folded_channels_last_fp32_equals_eager_labels():
    seg = Segmenter.default()
    image = nuclei()
    assert (seg.predict(image) == eager_labels(seg, image)).mean() >= 0.9999


def test_bf16_on_cpu_agrees_with_fp32_on_999_per_mille(monkeypatch):
    seg = Segmenter.default()
    image = nuclei()
    fp32 = seg.predict(image)
    monkeypatch.setenv("NAPARI_SEGNET_CPU_BF16", "1")
    assert autocast_dtype(torch.device("cpu"), inference=True) == torch.bfloat16
    assert autocast_dtype(torch.device("cpu")) is None  # training stays fp32 on the CPU
    bf16 = seg.predict(image)
    assert 0.999 <= (bf16 == fp32).mean() < 1  # really ran in bf16, and agrees
    monkeypatch.setenv("NAPARI_SEGNET_CPU_BF16", "0")
    assert not cpu_has_bf16()


@cuda
@pytest.mark.cuda
def test_cuda_batched_tiles_agree_with_cpu_fp32():
    seg = Segmenter.default()
    image = np.tile(nuclei(), (4, 4))  # 1024²: tiles of 256 are batched on the GPU
    cpu = seg.predict(image, tile_shape=256, device="cpu")
    gpu = seg.predict(image, tile_shape=256, device="cuda")
    assert (gpu == cpu).mean() >= 0.999


@cuda
@pytest.mark.cuda
def test_cuda_out_of_memory_retries_with_smaller_tiles():
    """With the process limited to a sliver of GPU memory, a 4096² tile cannot run; the prediction warns,
    halves the tiles until they fit, and gives the labels of the CPU."""
    seg = tiny_segmenter(base_filters=32, depth=4)
    image = smooth_image((2048, 2048))
    expected = seg.predict(image, tile_shape=256, device="cpu")
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(0.5 * 2**30 / total)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            labels = seg.predict(image, tile_shape=2048, device="cuda")
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert any("ran out of memory" in str(w.message) for w in caught)
    assert (labels == expected).mean() >= 0.999
