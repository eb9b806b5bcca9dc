"""numba kernels of the network's input: the tensor, written plane by plane, and 8-bit histograms.

Loaded on first use through :func:`napari_livecell.core._compiled.kernels`
(napari's start-up never pays for numba); ``nogil`` so that two bands of
rows run in two threads, and cached on disk.
"""

from __future__ import annotations

import numba
import numpy as np

jit = numba.njit(cache=True, nogil=True)


@jit
def gray_histogram(gray):
    """Counts of a 2-D uint8 array's values (strided views too)."""
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


@jit
def colour_histograms(bgr):
    """``(3, 256)`` counts of a ``(H, W, 3)`` uint8 frame's values per channel."""
    counts = np.zeros((3, 256), np.int64)
    for y in range(bgr.shape[0]):
        for x in range(bgr.shape[1]):
            for channel in range(3):
                counts[channel, bgr[y, x, channel]] += 1
    return counts


@jit
def to_tensor(bgr, table, out, row_lo, row_hi):
    """Rows ``row_lo:row_hi`` of a BGR frame into ``out`` ``(1, 3, H, W)`` as RGB, through ``table``."""
    width = bgr.shape[1]
    for channel in range(3):  # written plane by plane, contiguously
        for y in range(row_lo, row_hi):
            for x in range(width):
                out[0, 2 - channel, y, x] = table[bgr[y, x, channel]]


@jit
def gray_to_tensor(gray, table, out, row_lo, row_hi):
    """A gray frame's three equal planes (what its BGR copy would give), rows ``row_lo:row_hi``."""
    for y in range(row_lo, row_hi):
        for x in range(gray.shape[1]):
            out[0, 0, y, x] = out[0, 1, y, x] = out[0, 2, y, x] = table[gray[y, x]]


@jit
def resize_linear(image, x0, x1, ax, y0, y1, by, out):
    """OpenCV's ``INTER_LINEAR`` resize of a ``(H, W, C)`` uint8 frame into ``out``, bit for bit.

    ``x0, x1, ax``: each output column's two source columns and their 11-bit
    weights (``(w, 2)``); ``y0, y1, by`` the same per output row. Rows go
    through OpenCV's fixed-point passes: a horizontal sum scaled by 2048,
    then its vector path's vertical sum (values shifted right by 4, products'
    high 16 bits, rounded by 2 bits).
    """
    width, channels = out.shape[1], out.shape[2]
    rows = np.empty((2, width, channels), np.int32)
    done = np.array([-1, -1])
    for dy in range(out.shape[0]):
        for k in range(2):
            sy = y0[dy] if k == 0 else y1[dy]
            if done[k] == sy:
                continue
            if done[1 - k] == sy:  # the other buffer holds this source row already
                rows[k] = rows[1 - k]
            else:
                source = image[sy]
                for dx in range(width):
                    for c in range(channels):
                        rows[k, dx, c] = (
                            np.int32(source[x0[dx], c]) * ax[dx, 0] + np.int32(source[x1[dx], c]) * ax[dx, 1]
                        )
            done[k] = sy
        b0, b1 = np.int32(by[dy, 0]), np.int32(by[dy, 1])
        for dx in range(width):
            for c in range(channels):
                value = ((((rows[0, dx, c] >> 4) * b0) >> 16) + (((rows[1, dx, c] >> 4) * b1) >> 16) + 2) >> 2
                out[dy, dx, c] = min(max(value, 0), 255)
