"""Compiled one-pass measurement of a label frame (numba), for :func:`.tracking.measure_frame`.

Imported lazily by :mod:`.tracking` (``import napari_livecell`` and napari's
start-up do not pay numba's import); docs/numba.md says why numba and what
compiling costs. Every function is compiled once per argument types and kept
in numba's on-disk cache (``cache=True``), so only the first call after an
install or an edit of this file compiles.

The numbers are the numpy path's bit for bit (tests/core/test_tracking_kernel.py):
integer sums of coordinates divided by integer areas in float64, overlap pairs
sorted by cell, then by the previous frame's cell.
"""

from __future__ import annotations

import numba
import numpy as np

_JIT = {"cache": True, "nogil": True}


@numba.njit(**_JIT)
def _runs(frame, previous):
    """Starts of the horizontal runs of one (label, previous label) pair, row by row.

    Returns ``starts`` (column of each run start), ``row_runs`` (index of
    each row's first run; ``row_runs[height]`` is the number of runs) and the
    smallest and largest label of ``frame``.
    """
    height, width = frame.shape
    changed = np.empty(width, np.uint8)
    starts = np.empty(frame.size, np.int64)
    row_runs = np.empty(height + 1, np.int64)
    low = np.int64(frame[0, 0])
    high = low
    n = 0
    for y in range(height):
        # row views, not flat indices: LLVM vectorises this loop only on views
        here = frame[y]
        there = previous[y]
        changed[0] = 1
        for x in range(1, width):
            changed[x] = (here[x] != here[x - 1]) | (there[x] != there[x - 1])
        for x in range(width):
            low = min(low, np.int64(here[x]))
            high = max(high, np.int64(here[x]))
        row_runs[y] = n
        # branch-free compaction: a branch per pixel mispredicts at every run boundary
        for x in range(width):
            starts[n] = x
            n += changed[x]
    row_runs[height] = n
    return starts, row_runs, low, high


@numba.njit(**_JIT)
def _smallest_cell(frame, starts, row_runs, high):
    """Smallest nonzero label, read at the run starts only."""
    low = high
    for y in range(frame.shape[0]):
        here = frame[y]
        for r in range(row_runs[y], row_runs[y + 1]):
            cell = np.int64(here[starts[r]])
            low = min(low, cell if cell != 0 else low)
    return low


@numba.njit(**_JIT)
def _sums(frame, previous, overlaps, starts, row_runs, low, span):
    """Pixels and coordinate sums per cell, and pixels per (cell, previous cell) pair.

    Cell ``c`` is slot ``c - low + 1``; slot 0 gathers the background (summed
    rather than skipped: cell and background runs alternate, and a branch on
    them mispredicts). Each cell keeps its overlap pairs as a linked list
    (a cell overlaps a handful of cells) and remembers the pair it last added
    to, which the next row's run usually continues.
    """
    height, width = frame.shape
    area = np.zeros(span, np.int64)
    sum_y = np.zeros(span, np.int64)
    sum_x = np.zeros(span, np.int64)
    head = np.full(span, -1, np.int64)
    latest = np.full(span, -1, np.int64)
    # a run adds at most one pair, so these never grow (arrays reassigned
    # inside the loop would cost numba a reference count per access)
    n_runs = row_runs[height]
    pair_previous = np.empty(n_runs, np.int64)
    pair_pixels = np.empty(n_runs, np.int64)
    pair_next = np.empty(n_runs, np.int64)
    n_pairs = 0
    offset = 1 - low
    for y in range(height):
        here = frame[y]
        there = previous[y]
        first, last = row_runs[y], row_runs[y + 1]
        for r in range(first, last):
            start = starts[r]
            end = starts[r + 1] if r + 1 < last else width
            length = end - start
            cell = np.int64(here[start])
            slot = cell + offset if cell != 0 else 0
            area[slot] += length
            sum_y[slot] += y * length
            # columns start .. end - 1
            sum_x[slot] += start * length + ((length * (length - 1)) >> 1)
            if overlaps and cell != 0:
                before = np.int64(there[start])
                if before > 0:
                    pair = latest[slot]
                    if pair < 0 or pair_previous[pair] != before:
                        pair = head[slot]
                        while pair >= 0 and pair_previous[pair] != before:
                            pair = pair_next[pair]
                        if pair < 0:
                            pair = n_pairs
                            pair_previous[pair] = before
                            pair_pixels[pair] = 0
                            pair_next[pair] = head[slot]
                            head[slot] = pair
                            n_pairs += 1
                        latest[slot] = pair
                    pair_pixels[pair] += length
    return area, sum_y, sum_x, head, pair_previous, pair_pixels, pair_next, n_pairs


@numba.njit(**_JIT)
def _tables(low, area, sum_y, sum_x, head, pair_previous, pair_pixels, pair_next, n_pairs):
    """Cells sorted by label, and overlap pairs sorted by (label, previous label)."""
    span = area.size
    n_cells = 0
    for slot in range(1, span):
        n_cells += area[slot] > 0
    label = np.empty(n_cells, np.int64)
    y_mean = np.empty(n_cells, np.float64)
    x_mean = np.empty(n_cells, np.float64)
    pixels = np.empty(n_cells, np.int64)
    overlap_label = np.empty(n_pairs, np.int64)
    overlap_previous = np.empty(n_pairs, np.int64)
    overlap_pixels = np.empty(n_pairs, np.int64)
    i = 0
    j = 0
    for slot in range(1, span):
        if area[slot] == 0:
            continue
        label[i] = slot + low - 1
        # exact integer sums divided in float64: the numpy path's quotient, bit for bit
        y_mean[i] = np.float64(sum_y[slot]) / np.float64(area[slot])
        x_mean[i] = np.float64(sum_x[slot]) / np.float64(area[slot])
        pixels[i] = area[slot]
        i += 1
        first = j
        pair = head[slot]
        while pair >= 0:
            # insertion sort by previous label within the cell's few pairs
            k = j
            while k > first and overlap_previous[k - 1] > pair_previous[pair]:
                overlap_previous[k] = overlap_previous[k - 1]
                overlap_pixels[k] = overlap_pixels[k - 1]
                k -= 1
            overlap_previous[k] = pair_previous[pair]
            overlap_pixels[k] = pair_pixels[pair]
            overlap_label[j] = slot + low - 1
            j += 1
            pair = pair_next[pair]
    return label, y_mean, x_mean, pixels, overlap_label, overlap_previous, overlap_pixels


@numba.njit(**_JIT)
def measure_runs(frame, previous, overlaps):
    """Cells of ``frame`` and their overlaps with ``previous``, in one pass over the pixels.

    Parameters
    ----------
    frame, previous : numpy.ndarray
        2-D C-contiguous integer label frames of one shape and dtype, at
        least one pixel; ``previous`` is ignored unless ``overlaps``.
    overlaps : bool
        Count the pixels each cell shares with each cell of ``previous``.

    Returns
    -------
    tuple
        ``ok`` (False for labels this kernel leaves to the numpy path:
        negative ids, or ids spread over far more values than there are
        pixels), then ``label, y, x, area, overlap_label, overlap_previous,
        overlap_pixels`` as :class:`.tracking.FrameCells` has them.
    """
    starts, row_runs, low, high = _runs(frame, previous if overlaps else frame)
    empty = np.zeros(0, np.int64)
    nothing = (empty, empty.astype(np.float64), empty.astype(np.float64), empty, empty, empty, empty)
    if low < 0:
        return (False, *nothing)
    if high == 0:
        return (True, *nothing)
    # ids up to a few thousand: a table from 1 is cheaper than finding the smallest;
    # ids that run on from frame to frame (thousands and up) get a table from the smallest
    low = _smallest_cell(frame, starts, row_runs, high) if high > 4096 else 1
    span = high - low + 2
    if span > frame.size + 65536:
        return (False, *nothing)
    sums = _sums(frame, previous, overlaps, starts, row_runs, low, span)
    return (True, *_tables(low, *sums))
