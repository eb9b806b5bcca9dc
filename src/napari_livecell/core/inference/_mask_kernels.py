"""The compiled loops (numba) of :mod:`.masks`.

Mask decoding and painting, fragments and renumbering (NMS: :mod:`._nms_kernels`,
outlines: :mod:`._trace_kernel`); docs/numba.md describes each and why numba.
Imported on first use by :func:`.masks.compiled` (napari's start-up never pays
numba's import);
``nogil`` lets a GUI stay responsive while a worker thread runs them, and two
threads share one frame's work (:mod:`._threads`). Compiled once per argument
types and kept in numba's on-disk cache (``cache=True``).
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

_JIT: dict[str, Any] = {"cache": True, "nogil": True}


@numba.njit(**_JIT)
def plan_paint(
    boxes, window, within, selected, origin, image_shape, first_id, scores, classes, label_scores,
    label_classes, painted,
):  # fmt: skip
    # what painting one window's instances into the label image (image_shape) needs, in one
    # pass instead of ~20 numpy calls:
    # spans: per instance, its box in window pixels clipped to the window (r0, r1, c0, c1) and
    # the end of its own (unpadded) part (r_own, c_own); -1 rows for instances not selected or
    # empty. ids: first_id, first_id + 1, ... for the instances with a span (-1: none), whose
    # score (as float32), class and box of the label image (its own part, inside the image;
    # -1: none) go into the tables at their id. order: the instances top to bottom (stable).
    # middle: the row above which half of the painted boxes' pixels lie; pixels: their count
    height, width = image_shape[0], image_shape[1]
    n = len(boxes)
    spans = np.full((n, 6), -1, np.int64)
    ids = np.full(n, -1, np.int64)
    per_row = np.zeros(height + 1, np.int64)
    next_id = first_id
    for index in range(n):
        if not selected[index]:
            continue
        r0 = max(0, math.ceil(boxes[index, 1]))
        r1 = min(window[0], math.ceil(boxes[index, 3]))
        c0 = max(0, math.ceil(boxes[index, 0]))
        c1 = min(window[1], math.ceil(boxes[index, 2]))
        if r1 <= r0 or c1 <= c0:
            continue
        spans[index, 0], spans[index, 1], spans[index, 2], spans[index, 3] = r0, r1, c0, c1
        spans[index, 4], spans[index, 5] = min(r1, within[0]), min(c1, within[1])
        ids[index] = next_id
        label_scores[next_id] = np.float32(scores[index])
        label_classes[next_id] = classes[index]
        top, left = origin[0] + r0, origin[1] + c0
        bottom = origin[0] + min(spans[index, 4], height - origin[0])
        right = origin[1] + min(spans[index, 5], width - origin[1])
        if bottom <= top or right <= left:
            painted[next_id, :] = -1
        else:
            painted[next_id, 0], painted[next_id, 1] = top, bottom
            painted[next_id, 2], painted[next_id, 3] = left, right
            per_row[top] += right - left
            per_row[bottom] -= right - left
        next_id += 1
    order = np.argsort(spans[:, 0], kind="mergesort")
    # the painted pixels above each row, and the first row above which half of them lie
    pixels = 0
    running = 0
    for r in range(height):
        running += per_row[r]
        pixels += running
    middle = 0
    if pixels:
        above, running = 0, 0
        for r in range(height):
            running += per_row[r]
            above += running
            if above >= pixels / 2:
                middle = r
                break
    return spans, ids, order, middle, pixels


@numba.njit(**_JIT)
def decode_and_paint(
    labels, clear, label_scores, ids, order, row_lo, row_hi, spans, origin, coefficients, protos, row_map,
    row_first, row_last, col_first, col_last, col_taps, col_weights,
):  # fmt: skip
    # each instance's mask inside its box, made and painted at once, for the label image's rows
    # row_lo..row_hi-1 only (two threads paint two bands). The mask is
    # rows @ (coefficients . protos) @ cols.T > 0 in float32 inside the box, with the sums of
    # the full products in their order: only each row's and column's non-zero span of the
    # resampling maps is summed (the terms skipped are zeros). A pixel takes the instance's id
    # where it outscores the label beneath, of equal scores the later instance (the larger id):
    # every pixel ends as when the instances are painted one by one in their order, whatever
    # order they are painted in. ``order``: top to bottom, so that the prototypes' and labels'
    # rows are read as a moving window (fewer cache misses than the instances' score order).
    # clear: the band is zeroed first, here, so that its lines are in this core's cache
    height, width = labels.shape
    if clear:
        labels[row_lo:row_hi] = 0
    n_taps = col_taps.shape[1]
    for index in order:
        if ids[index] < 0:
            continue
        r0, c0 = spans[index, 0], spans[index, 2]
        # the instance's own part, inside the label image and the band
        r_start = max(r0, row_lo - origin[0])
        r_end = min(spans[index, 4], height - origin[0], row_hi - origin[0])
        c_end = min(spans[index, 5], width - origin[1])
        if r_end <= r_start or c_end <= c0:
            continue
        p0, p1 = row_first[r_start], row_last[r_end - 1]
        q0, q1 = col_first[c0], col_last[c_end - 1]
        logits = _instance_logits(coefficients[index], protos, p0, p1, q0, q1)
        own = ids[index]
        score = label_scores[own]
        row = np.empty(q1 - q0, np.float32)
        for r in range(r_start, r_end):
            row[:] = 0
            for p in range(row_first[r], row_last[r]):
                weight = row_map[r, p]
                if weight != 0:
                    for q in range(q0, q1):
                        row[q - q0] += weight * logits[p - p0, q - q0]
            out_row = labels[origin[0] + r]
            for c in range(c0, c_end):
                # a column's taps: its non-zero span, padded with zero weights (adding 0 to a
                # float32 sum leaves it as it is); YOLO-seg's 4x prototypes have two
                if n_taps == 2:
                    left, right = col_taps[c, 0] - q0, col_taps[c, 1] - q0
                    value = row[left] * col_weights[c, 0] + row[right] * col_weights[c, 1]
                else:
                    value = np.float32(0)
                    for t in range(n_taps):
                        value += row[col_taps[c, t] - q0] * col_weights[c, t]
                if value > 0:
                    beneath = out_row[origin[1] + c]
                    other = label_scores[beneath]
                    if other < score or (other == score and beneath < own):
                        out_row[origin[1] + c] = own


@numba.njit(inline="always", **_JIT)
def _instance_logits(coefficients, protos, p0, p1, q0, q1):
    # coefficients . protos over the prototype window [p0, p1) x [q0, q1), each sum over the
    # channels in their order from 0 (float32): four columns at once, each in its own
    # accumulator, which the compiler keeps in one vector register. A loop over the window per
    # channel (channels outermost) does not vectorise on boxes ~10 columns wide: with it, the
    # whole kernel took 1.3x this one's time at ~500 cells (docs/numba.md)
    n_channels = protos.shape[0]
    logits = np.empty((p1 - p0, q1 - q0), np.float32)
    block = np.empty(4, np.float32)
    for p in range(p0, p1):
        q = q0
        while q + 4 <= q1:
            for j in range(4):
                block[j] = 0
            for channel in range(n_channels):
                weight = coefficients[channel]
                for j in range(4):
                    block[j] += weight * protos[channel, p, q + j]
            for j in range(4):
                logits[p - p0, q - q0 + j] = block[j]
            q += 4
        for rest in range(q, q1):
            total = np.float32(0)
            for channel in range(n_channels):
                total += coefficients[channel] * protos[channel, p, rest]
            logits[p - p0, rest - q0] = total
    return logits


@numba.njit(**_JIT)
def keep_largest_pieces(labels, boxes, first, stop, present, kept_boxes, kept_areas):
    # for each id first..stop-1, its 4-connected pieces inside its box (any box holding all its
    # pixels): all but the largest (of equal sizes, the one whose first pixel comes first in
    # raster order) are cleared, and present[k] says whether any pixel is left, kept_boxes[k]
    # the box of what is left (as bounding_boxes makes it; untouched when nothing is) and
    # kept_areas[k] its pixel count. Pieces are found from the id's runs of pixels, row by
    # row: a run joins the runs it overlaps in the row above (union-find whose root is the
    # first run, so the piece's first pixel). An id reads and clears only its own pixels, so
    # two threads may share the ids
    run_row = np.empty(64, np.int64)
    run_start = np.empty(64, np.int64)
    run_end = np.empty(64, np.int64)
    parent = np.empty(64, np.int64)
    size = np.empty(64, np.int64)
    edges = np.empty(64, np.int64)
    for k in range(first, stop):
        r0, r1, c0, c1 = boxes[k, 0], boxes[k, 1], boxes[k, 2], boxes[k, 3]
        present[k] = False
        if r0 < 0:
            continue
        width = c1 - c0
        most = (r1 - r0) * (width + 2) // 2 + 1
        if len(edges) < width + 1:
            edges = np.empty(2 * width + 2, np.int64)
        if len(run_row) < most:
            run_row = np.empty(2 * most, np.int64)
            run_start = np.empty(2 * most, np.int64)
            run_end = np.empty(2 * most, np.int64)
            parent = np.empty(2 * most, np.int64)
            size = np.empty(2 * most, np.int64)
        n_runs = 0
        above_first, above_stop = 0, 0
        for r in range(r0, r1):
            row = labels[r]
            # branch-free: the columns where runs begin and end, alternately
            n_edges = 0
            inside = 0
            for c in range(c0, c1):
                value = int(row[c] == k)
                edges[n_edges] = c
                n_edges += value ^ inside
                inside = value
            edges[n_edges] = c1
            n_edges += inside
            row_first = n_runs
            for e in range(0, n_edges, 2):
                run_row[n_runs], run_start[n_runs], run_end[n_runs] = r, edges[e], edges[e + 1]
                parent[n_runs] = n_runs
                n_runs += 1
            # join each run with the overlapping runs of the row above (4-connected)
            i, j = above_first, row_first
            while i < above_stop and j < n_runs:
                if run_start[i] < run_end[j] and run_start[j] < run_end[i]:
                    _join(parent, i, j)
                if run_end[i] < run_end[j]:
                    i += 1
                else:
                    j += 1
            above_first, above_stop = row_first, n_runs
        if n_runs == 0:
            continue
        present[k] = True
        size[:n_runs] = 0
        roots = 0
        for j in range(n_runs):
            root = _root(parent, j)
            roots += root == j
            size[root] += run_end[j] - run_start[j]
        best = 0
        if roots > 1:
            for j in range(n_runs):
                if parent[j] == j and size[j] > size[best]:
                    best = j
            for j in range(n_runs):
                if _root(parent, j) != best:
                    labels[run_row[j], run_start[j] : run_end[j]] = 0
        top, bottom, left, right = r1, r0, c1, c0
        for j in range(n_runs):
            if roots == 1 or _root(parent, j) == best:
                top, bottom = min(top, run_row[j]), max(bottom, run_row[j] + 1)
                left, right = min(left, run_start[j]), max(right, run_end[j])
        kept_boxes[k, 0], kept_boxes[k, 1], kept_boxes[k, 2], kept_boxes[k, 3] = top, bottom, left, right
        kept_areas[k] = size[best]


@numba.njit(inline="always", **_JIT)
def _root(parent, j):
    while parent[j] != j:
        parent[j] = parent[parent[j]]
        j = parent[j]
    return j


@numba.njit(inline="always", **_JIT)
def _join(parent, i, j):
    # the root of the union is the smaller root: the run that comes first in raster order
    a, b = _root(parent, i), _root(parent, j)
    if a < b:
        parent[b] = a
    elif b < a:
        parent[a] = b


@numba.njit(**_JIT)
def renumber_in_boxes(labels, lookup, boxes, first):
    # ids first.. renumbered in place to lookup[k] <= k, each within its box (as measured by
    # keep_largest_pieces; first row -1: no pixel left): the pixels of the ids after the first
    # one dropped, not a pass over the whole image. In increasing order of id, so that a pixel
    # renumbered to j < k is never met again as k. One thread: ids renumbered by two at once
    # could meet (an id's new number may be an old one of the other half)
    for k in range(first, len(lookup)):
        new = lookup[k]
        if new == k or boxes[k, 0] < 0:
            continue
        for r in range(boxes[k, 0], boxes[k, 1]):
            row = labels[r]
            for c in range(boxes[k, 2], boxes[k, 3]):
                if row[c] == k:
                    row[c] = new
