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
