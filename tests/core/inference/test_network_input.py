"""The network's input as Ultralytics makes it: tensor, histograms, padding, gray frames.

The compiled input kernels (two bands of rows at once, a gray frame kept one
channel) against the plain operations they replace: Ultralytics'
``preprocess`` arithmetic in torch, ``np.bincount``, ``np.median``.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_livecell.core.inference.network_input import (
    gray_histogram,
    gray_to_bgr,
    letterbox,
    network_tensor,
    pad_constant,
    resize_linear,
)
from napari_livecell.core.inference.predict import _median_colour, _pad_with_background


def _ultralytics_tensor(bgr: np.ndarray) -> np.ndarray:
    # Ultralytics' preprocess: BGR -> RGB, HWC -> CHW, float, divided by 255
    import torch

    return torch.from_numpy(bgr[:, :, ::-1].copy()).permute(2, 0, 1)[None].float().div_(255).numpy()


@pytest.mark.parametrize("shape", [(544, 704), (31, 17), (1, 64)])
def test_tensor_equals_ultralytics_preprocess_for_bgr_and_gray(shape):
    rng = np.random.default_rng(sum(shape))
    bgr = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    np.testing.assert_array_equal(network_tensor(bgr), _ultralytics_tensor(bgr))
    gray = bgr[:, :, 0].copy()
    as_bgr = np.repeat(gray[:, :, None], 3, axis=2)
    np.testing.assert_array_equal(network_tensor(gray), _ultralytics_tensor(as_bgr))


def test_gray_histogram_counts_like_bincount_on_strided_views():
    gray = np.random.default_rng(5).integers(0, 256, (301, 411), dtype=np.uint8)
    gray[:100, :200] = 117  # a flat background: runs of equal values
    for view in (gray, gray[::2, ::3], gray[1:, 5:], gray[:, :3]):
        np.testing.assert_array_equal(gray_histogram(view), np.bincount(view.ravel(), minlength=256))


def test_padding_takes_the_median_of_a_gray_frame_as_of_its_bgr_copy():
    rng = np.random.default_rng(8)
    for size in [(50, 60), (51, 61)]:  # even and odd pixel counts: numpy's median of two middles
        gray = rng.integers(0, 256, size, dtype=np.uint8)
        bgr = np.repeat(gray[:, :, None], 3, axis=2)
        assert _median_colour(gray)[0] == int(np.median(gray))
        expected = np.median(bgr.reshape(-1, 3), axis=0).astype(np.uint8)
        np.testing.assert_array_equal(_median_colour(bgr), expected)
        padded = np.repeat(_pad_with_background(gray, (64, 64))[:, :, None], 3, axis=2)
        np.testing.assert_array_equal(padded, _pad_with_background(bgr, (64, 64)))


def _random_sizes(count: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        height, width = (int(v) for v in rng.integers(1, 200, 2))
        size = tuple(int(v) for v in rng.integers(1, 400, 2))
        channels = int(rng.choice([1, 3]))
        frame = rng.integers(0, 256, (height, width, channels)[: 2 if channels == 1 else 3], dtype=np.uint8)
        yield frame, size


def test_bilinear_resize_equals_opencv_bit_for_bit_on_random_sizes():
    cv2 = pytest.importorskip("cv2")
    for frame, size in _random_sizes(150, 11):
        expected = cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(resize_linear(frame, size), expected, err_msg=f"{frame.shape}, {size}")


def test_padding_and_gray_to_bgr_equal_opencv():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(4)
    gray = rng.integers(0, 256, (37, 53), dtype=np.uint8)
    bgr = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    np.testing.assert_array_equal(gray_to_bgr(gray), cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
    for image, colour in ((gray, (7, 0, 0)), (bgr, (1, 2, 3))):
        for sides in ((0, 5, 0, 9), (3, 4, 1, 2), (0, 0, 0, 0)):
            expected = cv2.copyMakeBorder(image, *sides, cv2.BORDER_CONSTANT, value=(*colour, 0))
            np.testing.assert_array_equal(pad_constant(image, *sides, colour), expected)


@pytest.mark.parametrize("auto", [False, True])
def test_letterbox_equals_ultralytics_letterbox(auto):
    letterbox_class = pytest.importorskip("ultralytics.data.augment").LetterBox
    rng = np.random.default_rng(3)
    for shape, target in [((520, 704), (544, 704)), ((520, 704), (640, 640)), ((97, 131), (320, 320))]:
        bgr = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        expected = letterbox_class(target, auto=auto, stride=32)(image=bgr)
        np.testing.assert_array_equal(letterbox(bgr, target, 32, auto), expected)
