"""The network's input tensor and a frame's 8-bit histograms, as compiled kernels (numba).

Ultralytics' ``preprocess`` in one pass (:func:`network_tensor`), a gray
frame kept one channel up to the tensor, and the histograms that give the
padding colour's median and the modality check's percentiles. numba and
its kernels are loaded on first use (:mod:`napari_livecell.core._compiled`), never when
napari starts.
"""

from __future__ import annotations

import numpy as np

from napari_livecell.core._compiled import kernels


def gray_histogram(gray: np.ndarray) -> np.ndarray:
    """``np.bincount(gray.ravel(), minlength=256)`` of a 2-D uint8 array in one compiled pass (~4x faster)."""
    return kernels("inference._input_kernels").gray_histogram(gray)


# from this many pixels, two threads write the network's tensor (a hand-off costs ~0.1 ms)
PARALLEL_TENSOR_PIXELS = 100_000

# the value of each byte after Ultralytics' ``float().div_(255)``: float32 division is correctly
# rounded in numpy as in torch, so the table holds torch's values without importing it
SCALED = np.arange(256, dtype=np.float32) / np.float32(255)


def image_histograms(image: np.ndarray) -> np.ndarray:
    """A uint8 frame's ``(channels, 256)`` value counts: one row for gray, three for BGR."""
    if image.ndim == 2:
        return gray_histogram(image).reshape(1, 256)
    return kernels("inference._input_kernels").colour_histograms(np.ascontiguousarray(image))


def network_tensor(image: np.ndarray) -> np.ndarray:
    """A letterboxed ``(H, W, 3)`` uint8 BGR frame as Ultralytics' ``(1, 3, H, W)`` float32 RGB input in 0..1.

    One compiled pass gives the values of Ultralytics' ``preprocess`` (which
    permutes, copies, flips, converts and divides in five passes), in two
    bands of rows at once. A gray ``(H, W)`` frame gives the tensor of its
    BGR copy (three equal planes).
    """
    from napari_livecell.core._threads import in_two_threads

    image = np.ascontiguousarray(image)
    compiled = kernels("inference._input_kernels")
    height, width = image.shape[:2]
    out = np.empty((1, 3, height, width), np.float32)
    kernel = compiled.gray_to_tensor if image.ndim == 2 else compiled.to_tensor
    middle = height // 2
    in_two_threads(
        lambda: kernel(image, SCALED, out, 0, middle),
        lambda: kernel(image, SCALED, out, middle, height),
        height * width >= PARALLEL_TENSOR_PIXELS,
    )
    return out
