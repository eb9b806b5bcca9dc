"""The network's input tensor and a frame's 8-bit histograms, as compiled kernels (numba).

Ultralytics' ``preprocess`` in one pass (:func:`network_tensor`), a gray
frame kept one channel up to the tensor, and the histograms that give the
padding colour's median and the modality check's percentiles. numba is
imported on first use, never when napari starts.
"""

from __future__ import annotations

from functools import lru_cache
from types import SimpleNamespace

import numpy as np


@lru_cache(maxsize=1)
def _compiled_gray_histogram():
    """The numba kernel counting a 2-D uint8 array's values (strided views too), compiled on first use."""
    import numba

    @numba.njit(cache=True, nogil=True)
    def gray_histogram(gray):
        # four tables, pixel by pixel in turn: neighbours of equal value (most of a background)
        # then do not wait on each other's count
        counts = np.zeros((4, 256), np.int64)
        for y in range(gray.shape[0]):
            row = gray[y]
            whole = len(row) // 4 * 4
            for x in range(0, whole, 4):
                counts[0, row[x]] += 1
                counts[1, row[x + 1]] += 1
                counts[2, row[x + 2]] += 1
                counts[3, row[x + 3]] += 1
            for x in range(whole, len(row)):
                counts[0, row[x]] += 1
        return counts.sum(axis=0)

    return gray_histogram


def gray_histogram(gray: np.ndarray) -> np.ndarray:
    """``np.bincount(gray.ravel(), minlength=256)`` of a 2-D uint8 array in one compiled pass (~4x faster)."""
    return _compiled_gray_histogram()(gray)


# from this many pixels, two threads write the network's tensor (a hand-off costs ~0.1 ms)
PARALLEL_TENSOR_PIXELS = 100_000


@lru_cache(maxsize=1)
def compiled_input_kernels() -> SimpleNamespace:
    """The numba kernels of the network's input (tensor, colour histograms), compiled on first use."""
    import numba

    jit = numba.njit(cache=True, nogil=True)
    # the value of each byte after Ultralytics' ``float().div_(255)``: an IEEE float32 division,
    # correctly rounded in numpy as in torch (test_network_input.py compares them)
    scaled = np.arange(256, dtype=np.float32) / np.float32(255)

    @jit
    def to_tensor(bgr, table, out, row_lo, row_hi):
        width = bgr.shape[1]
        for channel in range(3):  # written plane by plane, contiguously
            for y in range(row_lo, row_hi):
                for x in range(width):
                    out[0, 2 - channel, y, x] = table[bgr[y, x, channel]]

    @jit
    def gray_to_tensor(gray, table, out, row_lo, row_hi):
        # a gray frame's three equal planes (what its BGR copy would give)
        for y in range(row_lo, row_hi):
            for x in range(gray.shape[1]):
                out[0, 0, y, x] = out[0, 1, y, x] = out[0, 2, y, x] = table[gray[y, x]]

    @jit
    def colour_histograms(bgr):
        counts = np.zeros((3, 256), np.int64)
        for y in range(bgr.shape[0]):
            for x in range(bgr.shape[1]):
                for channel in range(3):
                    counts[channel, bgr[y, x, channel]] += 1
        return counts

    def tensor(image: np.ndarray) -> np.ndarray:
        from napari_livecell.core._threads import in_two_threads

        height, width = image.shape[:2]
        out = np.empty((1, 3, height, width), np.float32)
        kernel = gray_to_tensor if image.ndim == 2 else to_tensor
        middle = height // 2
        in_two_threads(
            lambda: kernel(image, scaled, out, 0, middle),
            lambda: kernel(image, scaled, out, middle, height),
            height * width >= PARALLEL_TENSOR_PIXELS,
        )
        return out

    def histograms(image: np.ndarray) -> np.ndarray:
        return gray_histogram(image).reshape(1, 256) if image.ndim == 2 else colour_histograms(image)

    return SimpleNamespace(tensor=tensor, histograms=histograms)


def network_tensor(image: np.ndarray) -> np.ndarray:
    """A letterboxed ``(H, W, 3)`` uint8 BGR frame as Ultralytics' ``(1, 3, H, W)`` float32 RGB input in 0..1.

    One compiled pass gives the values of Ultralytics' ``preprocess`` (which
    permutes, copies, flips, converts and divides in five passes), in two
    bands of rows at once. A gray ``(H, W)`` frame gives the tensor of its
    BGR copy (three equal planes).
    """
    return compiled_input_kernels().tensor(np.ascontiguousarray(image))


def letterbox_geometry(
    shape: tuple[int, int], target: tuple[int, int], stride: int, auto: bool
) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """Ultralytics' ``LetterBox`` sizes: resized ``(width, height)``, ``(top, bottom, left, right)`` padding.

    The frame is scaled so that it fits ``target`` (up or down), then padded
    evenly on both sides: to ``target`` itself, or with ``auto`` only to the
    next multiple of ``stride`` (a dynamic-shape model).
    """
    gain = min(target[0] / shape[0], target[1] / shape[1])
    resized = max(round(shape[1] * gain), 1), max(round(shape[0] * gain), 1)
    pad_w, pad_h = target[1] - resized[0], target[0] - resized[1]
    if auto:
        pad_w, pad_h = pad_w % stride, pad_h % stride
    pad_w, pad_h = pad_w / 2, pad_h / 2
    padding = (round(pad_h - 0.1), round(pad_h + 0.1), round(pad_w - 0.1), round(pad_w + 0.1))
    return resized, padding


def letterbox(image: np.ndarray, target: tuple[int, int], stride: int, auto: bool) -> np.ndarray:
    """A BGR or gray uint8 frame letterboxed as Ultralytics' predictor does (bilinear, gray 114 border)."""
    import cv2

    resized, (top, bottom, left, right) = letterbox_geometry(image.shape[:2], target, stride, auto)
    if (image.shape[1], image.shape[0]) != resized:
        image = cv2.resize(image, resized, interpolation=cv2.INTER_LINEAR)
    if top or bottom or left or right:
        image = cv2.copyMakeBorder(
            np.ascontiguousarray(image), top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114)
        )
    return image


def boxes_to_frame(boxes: np.ndarray, network_shape: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """Boxes (xyxy) from a letterboxed input back to the frame's pixels (Ultralytics' ``scale_boxes``)."""
    boxes = boxes.copy()
    gain = min(network_shape[0] / shape[0], network_shape[1] / shape[1])
    new_h, new_w = (max(round(side * gain), 1) for side in shape)
    pad_x = round((network_shape[1] - new_w) / 2 - 0.1)
    pad_y = round((network_shape[0] - new_h) / 2 - 0.1)
    boxes[:, 0::2] = (boxes[:, 0::2] - pad_x) / (new_w / shape[1])
    boxes[:, 1::2] = (boxes[:, 1::2] - pad_y) / (new_h / shape[0])
    np.clip(boxes[:, 0::2], 0, shape[1], out=boxes[:, 0::2])
    np.clip(boxes[:, 1::2], 0, shape[0], out=boxes[:, 1::2])
    return boxes
