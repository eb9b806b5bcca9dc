"""Compiled one-pass measurement of a label frame (numba), for :func:`.frame_cells.measure_frame`.

Imported lazily by :mod:`.frame_cells` (``import napari_livecell`` and napari's
start-up do not pay numba's import); docs/numba.md says why numba and what
compiling costs. Every function is compiled once per argument types and kept
in numba's on-disk cache (``cache=True``), so only the first call after an
install or an edit of this file compiles.

The numbers are the numpy path's bit for bit (tests/core/tracking/test_tracking_kernel.py):
integer sums of coordinates divided by integer areas in float64, overlap pairs
sorted by cell, then by the previous frame's cell.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

_JIT: dict[str, Any] = {"cache": True, "nogil": True}


@numba.njit(**_JIT)
def _runs(frame, previous):
    """Starts of the horizontal runs of one (label, previous label) pair, row by row.

    Returns ``starts`` (flat index of each run start, then ``frame.size``:
    a run ends where the next starts, and every row starts a run) and the
    smallest and largest label of ``frame`` and of ``previous``.
    """
    height, width = frame.shape
    changed = np.empty(width, np.uint8)
    starts = np.empty(frame.size + 1, np.int64)
    # in the frames' own dtype: LLVM vectorises these reductions, not int64 casts of them
    low, high = frame[0, 0], frame[0, 0]
    low_before, high_before = previous[0, 0], previous[0, 0]
    n = 0
    for y in range(height):
        # row views, not flat indices: LLVM vectorises this loop only on views
        here = frame[y]
        there = previous[y]
        changed[0] = 1
        for x in range(1, width):
            changed[x] = (here[x] != here[x - 1]) | (there[x] != there[x - 1])
        for x in range(width):
            low = min(low, here[x])
            high = max(high, here[x])
            low_before = min(low_before, there[x])
            high_before = max(high_before, there[x])
        # branch-free compaction: a branch per pixel mispredicts at every run boundary
        row = y * width
        for x in range(width):
            starts[n] = row + x
            n += changed[x]
    starts[n] = frame.size
    bounds = np.array([low, high, low_before, high_before]).astype(np.int64)
    return starts[: n + 1], bounds


@numba.njit(**_JIT)
def _smallest_cell(frame, starts, high):
    """Smallest nonzero label, read at the run starts only."""
    flat = frame.ravel()
    low = high
    for r in range(starts.size - 1):
        cell = np.int64(flat[starts[r]])
        low = min(low, cell if cell != 0 else low)
    return low


@numba.njit(**_JIT)
def _sums(frame, previous, overlaps, starts, low, span, span_before):
    """Pixels and coordinate sums per cell, and pixels per (cell, previous cell) pair.

    Cell ``c`` is slot ``c - low + 1``; slot 0 gathers the background (summed
    rather than skipped: cell and background runs alternate, and a branch on
    them mispredicts). With ``span_before`` (previous ids from 0 to
    ``span_before - 1``, few cells) the pairs are counted in a dense
    (slot, previous id) table, one add per run and no branch; otherwise each
    cell keeps its pairs as a linked list (a cell overlaps a handful of
    cells) and remembers the pair it last added to, which the next row's run
    usually continues. Pairs come back as linked lists either way.
    """
    width = frame.shape[1]
    flat = frame.ravel()
    flat_before = previous.ravel()
    area = np.zeros(span, np.int64)
    sum_y = np.zeros(span, np.int64)
    sum_x = np.zeros(span, np.int64)
    head = np.full(span, -1, np.int64)
    # a run adds at most one pair, so these never grow (arrays reassigned
    # inside the loop would cost numba a reference count per access)
    n_runs = starts.size - 1
    pair_previous = np.empty(n_runs, np.int64)
    pair_pixels = np.empty(n_runs, np.int64)
    pair_next = np.empty(n_runs, np.int64)
    n_pairs = 0
    offset = 1 - low
    dense = overlaps and span_before > 0
    table = np.zeros((span if dense else 0) * span_before, np.int32)
    latest = np.full(span if overlaps and not dense else 0, -1, np.int64)
    y = 0
    row_end = width
    for r in range(n_runs):
        start = starts[r]
        if start >= row_end:
            y += 1
            row_end += width
        length = starts[r + 1] - start
        cell = np.int64(flat[start])
        slot = cell + offset if cell != 0 else 0
        area[slot] += length
        sum_y[slot] += y * length
        # columns x0 .. x0 + length - 1
        x0 = start - (row_end - width)
        sum_x[slot] += x0 * length + ((length * (length - 1)) >> 1)
        if dense:
            table[slot * span_before + np.int64(flat_before[start])] += length
        elif overlaps and cell != 0:
            before = np.int64(flat_before[start])
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
    if dense:
        # the table's nonzero entries, as lists in increasing previous id
        for slot in range(1, span):
            if area[slot] == 0:
                continue
            row = table[slot * span_before : (slot + 1) * span_before]
            for before in range(span_before - 1, 0, -1):
                if row[before] != 0:
                    pair_previous[n_pairs] = before
                    pair_pixels[n_pairs] = row[before]
                    pair_next[n_pairs] = head[slot]
                    head[slot] = n_pairs
                    n_pairs += 1
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
        overlap_pixels`` as :class:`.track_measure.FrameCells` has them.
    """
    starts, bounds = _runs(frame, previous if overlaps else frame)
    low, high, low_before, high_before = bounds
    empty = np.zeros(0, np.int64)
    nothing = (empty, empty.astype(np.float64), empty.astype(np.float64), empty, empty, empty, empty)
    # negative (or uint64 ids past int64): not labels, the numpy path decides
    if low < 0 or high < 0 or (overlaps and (low_before < 0 or high_before < 0)):
        return (False, *nothing)
    if high == 0:
        return (True, *nothing)
    # ids up to a few thousand: a table from 1 is cheaper than finding the smallest;
    # ids that run on from frame to frame (thousands and up) get a table from the smallest
    low = _smallest_cell(frame, starts, high) if high > 4096 else 1
    span = high - low + 2
    if span > frame.size + 65536:
        return (False, *nothing)
    # a dense pair table while it stays small (its scan costs its size)
    span_before = high_before + 1 if low == 1 and span * (high_before + 1) <= 1 << 18 else 0
    sums = _sums(frame, previous, overlaps, starts, low, span, span_before)
    return (True, *_tables(low, *sums))


@numba.njit(**_JIT)
def relabel(frame, lookup):
    """``lookup[frame]`` as int32, ids past the lookup's end (and negative ones) to 0.

    One gather per pixel; numpy's fancy indexing converts the indices to
    intp first and costs ~7x this on a 704 x 520 frame.
    """
    height, width = frame.shape
    out = np.empty((height, width), np.int32)
    size = lookup.size
    for y in range(height):
        here = frame[y]
        row = out[y]
        for x in range(width):
            value = np.int64(here[x])
            row[x] = lookup[value] if 0 <= value < size else 0
    return out
