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
    half_w, half_h = pad_w / 2, pad_h / 2
    padding = (round(half_h - 0.1), round(half_h + 0.1), round(half_w - 0.1), round(half_w + 0.1))
    return resized, padding


def letterbox(image: np.ndarray, target: tuple[int, int], stride: int, auto: bool) -> np.ndarray:
    """A BGR or gray uint8 frame letterboxed as Ultralytics' predictor does (bilinear, gray 114 border).

    The same bytes as Ultralytics' ``LetterBox`` (OpenCV's resize and border),
    without OpenCV: :func:`resize_linear` and :func:`pad_constant`.
    """
    resized, (top, bottom, left, right) = letterbox_geometry(image.shape[:2], target, stride, auto)
    if (image.shape[1], image.shape[0]) != resized:
        image = resize_linear(image, resized)
    return pad_constant(image, top, bottom, left, right, (114, 114, 114))


def _linear_weights(source: int, size: int, clamp: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # OpenCV's resize tables: float32 positions, the left or top source pixel, 11-bit weights each
    # rounded on its own (they need not sum to 2048); columns clamp at the borders, rows only
    # clip their source index (weights and all)
    position = ((np.arange(size) + 0.5) * (1.0 / (size / source)) - 0.5).astype(np.float32)
    first = np.floor(position).astype(np.int64)
    fraction = position - first.astype(np.float32)
    if clamp:
        fraction[(first < 0) | (first >= source - 1)] = 0
        first = np.clip(first, 0, source - 1)
    weights = np.rint(np.stack([np.float32(1) - fraction, fraction], axis=1) * np.float32(2048))
    return np.clip(first, 0, source - 1), np.clip(first + 1, 0, source - 1), weights.astype(np.int32)


def resize_linear(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A uint8 ``(H, W)`` or ``(H, W, C)`` frame resized to ``size`` ``(width, height)``, bilinear.

    Bit for bit OpenCV's ``cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)``,
    which Ultralytics' letterbox calls: its 11-bit fixed-point weights and
    the rounding of its vector path (tests/core/inference/test_network_input.py
    compares the two on random sizes), so that the ONNX path's input equals
    the PyTorch path's without OpenCV in the base install.
    """
    width, height = size
    image = np.ascontiguousarray(image)
    frame = image if image.ndim == 3 else image[:, :, None]
    x0, x1, ax = _linear_weights(frame.shape[1], width, clamp=True)
    y0, y1, by = _linear_weights(frame.shape[0], height, clamp=False)
    out = np.empty((height, width, frame.shape[2]), np.uint8)
    kernels("inference._input_kernels").resize_linear(frame, x0, x1, ax, y0, y1, by, out)
    return out if image.ndim == 3 else out[:, :, 0]


def pad_constant(
    image: np.ndarray, top: int, bottom: int, left: int, right: int, colour: tuple[int, ...]
) -> np.ndarray:
    """``image`` framed by ``colour`` (one value per channel), as ``cv2.copyMakeBorder`` with a constant.

    The frame's bands are filled and the image copied once: no pass over
    the whole array for the colour (a broadcast fill of a 704 x 544 BGR
    frame took ~3 ms).
    """
    if not (top or bottom or left or right):
        return image
    height, width = image.shape[:2]
    out = np.empty((top + height + bottom, left + width + right, *image.shape[2:]), image.dtype)
    fill = np.asarray(colour[: image.shape[2]] if image.ndim == 3 else colour[0], image.dtype)
    out[:top] = fill
    out[top + height :] = fill
    out[top : top + height, :left] = fill
    out[top : top + height, left + width :] = fill
    out[top : top + height, left : left + width] = image
    return out


def gray_to_bgr(gray: np.ndarray) -> np.ndarray:
    """A ``(H, W)`` uint8 frame as three equal channels (``cv2.COLOR_GRAY2BGR``'s values)."""
    out = np.empty((*gray.shape, 3), gray.dtype)
    out[...] = gray[:, :, None]
    return out


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
