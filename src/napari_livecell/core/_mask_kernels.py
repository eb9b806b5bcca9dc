"""The compiled loops (numba) of :mod:`.masks`.

NMS, mask decoding and painting, fragments and renumbering (outlines:
:mod:`._trace_kernel`); docs/numba.md describes each and why numba. Imported on first use by
:func:`.masks.compiled` (napari's start-up never pays numba's import);
``nogil`` lets a GUI stay responsive while a worker thread runs them, and two
threads share one frame's work (:mod:`._threads`). Compiled once per argument
types and kept in numba's on-disk cache (``cache=True``).
"""

from __future__ import annotations

import math

import numba
import numpy as np

_JIT = {"cache": True, "nogil": True}


@numba.njit(**_JIT)
def nms(boxes, order, threshold):
    # torchvision's greedy CPU NMS (stable descending scores, float32 IoU > threshold),
    # comparing each box only with kept boxes in the grid cells it covers: boxes that
    # share no cell do not intersect, and torchvision's IoU of those is 0
    n = len(order)
    keep = np.empty(n, np.int64)
    if n == 0:
        return keep
    low_x, low_y = boxes[:, 0].min(), boxes[:, 1].min()
    span = max(boxes[:, 2].max() - low_x, boxes[:, 3].max() - low_y, np.float32(1))
    cell = max(np.float32(32), span / np.float32(256))
    side = int(span / cell) + 1
    head = np.full(side * side, -1, np.int64)
    following = np.empty(16 * n + 64, np.int64)
    owner = np.empty(16 * n + 64, np.int64)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    zero = np.float32(0)
    n_keep = 0
    n_entries = 0
    for rank in range(n):
        j = order[rank]
        x1, y1, x2, y2 = boxes[j, 0], boxes[j, 1], boxes[j, 2], boxes[j, 3]
        gx0 = min(max(int((x1 - low_x) / cell), 0), side - 1)
        gx1 = min(max(int((x2 - low_x) / cell), 0), side - 1)
        gy0 = min(max(int((y1 - low_y) / cell), 0), side - 1)
        gy1 = min(max(int((y2 - low_y) / cell), 0), side - 1)
        suppressed = False
        for gy in range(gy0, gy1 + 1):
            for gx in range(gx0, gx1 + 1):
                entry = head[gy * side + gx]
                while entry >= 0 and not suppressed:
                    i = owner[entry]
                    w = max(zero, min(boxes[i, 2], x2) - max(boxes[i, 0], x1))
                    h = max(zero, min(boxes[i, 3], y2) - max(boxes[i, 1], y1))
                    inter = w * h
                    if inter / (areas[i] + areas[j] - inter) > threshold:
                        suppressed = True
                    entry = following[entry]
                if suppressed:
                    break
            if suppressed:
                break
        if suppressed:
            continue
        keep[n_keep] = j
        n_keep += 1
        needed = n_entries + (gy1 - gy0 + 1) * (gx1 - gx0 + 1)
        if needed > len(owner):
            grown = max(2 * len(owner), needed)
            following = np.concatenate((following, np.empty(grown - len(following), np.int64)))
            owner = np.concatenate((owner, np.empty(grown - len(owner), np.int64)))
        for gy in range(gy0, gy1 + 1):
            for gx in range(gx0, gx1 + 1):
                owner[n_entries] = j
                following[n_entries] = head[gy * side + gx]
                head[gy * side + gx] = n_entries
                n_entries += 1
    return keep[:n_keep]


@numba.njit(**_JIT)
def geometry(boxes, window, within, selected):
    # per instance: its box in window pixels clipped to the window (r0, r1, c0, c1), the end
    # of its own (unpadded) part (r_own, c_own), and where its mask starts in the flat buffer
    # of all masks (the own part only); -1 rows for instances not selected or empty
    n = len(boxes)
    spans = np.full((n, 6), -1, np.int64)
    offsets = np.zeros(n + 1, np.int64)
    for index in range(n):
        offsets[index + 1] = offsets[index]
        if not selected[index]:
            continue
        r0 = max(0, math.ceil(boxes[index, 1]))
        r1 = min(window[0], math.ceil(boxes[index, 3]))
        c0 = max(0, math.ceil(boxes[index, 0]))
        c1 = min(window[1], math.ceil(boxes[index, 2]))
        if r1 <= r0 or c1 <= c0:
            continue
        r_own, c_own = min(r1, within[0]), min(c1, within[1])
        spans[index, 0], spans[index, 1], spans[index, 2], spans[index, 3] = r0, r1, c0, c1
        spans[index, 4], spans[index, 5] = r_own, c_own
        offsets[index + 1] += max(0, r_own - r0) * max(0, c_own - c0)
    return spans, offsets


@numba.njit(**_JIT)
def decode(
    first, stop, spans, offsets, coefficients, protos, row_map, col_map, row_first, row_last,
    col_first, col_last, masks, found,
):  # fmt: skip
    # instance_masks for instances first..stop-1, each independent of the others (so that
    # two threads can share the instances): rows @ (coefficients . protos) @ cols.T > 0 in
    # float32 inside its box, kept for the window's own pixels in ``masks`` at its offset
    n_channels = protos.shape[0]
    for index in range(first, stop):
        r0, r1, c0, c1 = spans[index, 0], spans[index, 1], spans[index, 2], spans[index, 3]
        if r0 < 0:
            continue
        r_own, c_own = spans[index, 4], spans[index, 5]
        p0, p1 = row_first[r0], row_last[r1 - 1]
        q0, q1 = col_first[c0], col_last[c1 - 1]
        logits = np.zeros((p1 - p0, q1 - q0), np.float32)
        for channel in range(n_channels):
            weight = coefficients[index, channel]
            for p in range(p0, p1):
                for q in range(q0, q1):
                    logits[p - p0, q - q0] += weight * protos[channel, p, q]
        rows = np.zeros((r1 - r0, q1 - q0), np.float32)
        # only each row's and column's non-zero span of the resampling maps: the terms
        # skipped are zeros, so the sums (and their order) are those of the full products
        for r in range(r0, r_own):
            for p in range(max(p0, row_first[r]), min(p1, row_last[r])):
                weight = row_map[r, p]
                if weight != 0:
                    for q in range(q0, q1):
                        rows[r - r0, q - q0] += weight * logits[p - p0, q - q0]
        at = offsets[index]
        width = c_own - c0
        any_pixel = False
        for r in range(r0, r_own):
            for c in range(c0, c_own):
                value = np.float32(0)
                for q in range(max(q0, col_first[c]), min(q1, col_last[c])):
                    weight = col_map[c, q]
                    if weight != 0:
                        value += rows[r - r0, q - q0] * weight
                inside = value > 0
                masks[at + (r - r0) * width + (c - c0)] = inside
                any_pixel = any_pixel or inside
        found[index] = any_pixel


@numba.njit(**_JIT)
def paint(labels, label_scores, label_classes, count, spans, offsets, masks, found, scores, classes, origin):
    # MaskPainter.add for each decoded instance, in order: painted where it outscores the
    # label beneath (of equal scores, the later one); an instance with any pixel of its own
    # gets the next id, even when all of them lie past the frame (a padded window's edge);
    # returns the new count of painted ids
    height, width = labels.shape
    for index in range(len(spans)):
        r0, c0 = spans[index, 0], spans[index, 2]
        if r0 < 0:
            continue
        r_own, c_own = spans[index, 4], spans[index, 5]
        score = np.float64(scores[index])
        label_scores[count + 1] = score
        label_classes[count + 1] = classes[index]
        if not found[index]:
            continue
        r_end, c_end = min(r_own, height - origin[0]), min(c_own, width - origin[1])
        at = offsets[index]
        mask_width = c_own - c0
        for r in range(r0, r_end):
            for c in range(c0, c_end):
                if masks[at + (r - r0) * mask_width + (c - c0)]:
                    beneath = labels[origin[0] + r, origin[1] + c]
                    if label_scores[beneath] <= score:
                        labels[origin[0] + r, origin[1] + c] = count + 1
        count += 1
    return count


@numba.njit(**_JIT)
def bounding_boxes(labels, n_ids):
    # per id: first row, last row + 1, first col, last col + 1 (first row -1: absent)
    boxes = np.full((n_ids + 1, 4), -1, np.int64)
    for r in range(labels.shape[0]):
        for c in range(labels.shape[1]):
            k = labels[r, c]
            if k > 0:
                _grow_box(boxes, k, r, c)
    return boxes


@numba.njit(inline="always", **_JIT)
def _grow_box(boxes, k, r, c):
    # pixel (r, c) of id k, met in raster order, into its box
    if boxes[k, 0] < 0:
        boxes[k, 0], boxes[k, 1], boxes[k, 2], boxes[k, 3] = r, r + 1, c, c + 1
    else:
        boxes[k, 1] = r + 1
        boxes[k, 2] = min(boxes[k, 2], c)
        boxes[k, 3] = max(boxes[k, 3], c + 1)


@numba.njit(**_JIT)
def drop_fragments(labels, boxes, first, stop):
    # for each id first..stop-1, 4-connected pieces inside its box numbered in raster order
    # of their first pixel; all but the largest (of equal sizes, the first) are cleared. An
    # id reads and clears only its own pixels, so two threads may share the ids
    pieces = np.zeros(0, np.int32)
    stack = np.zeros(0, np.int64)
    for k in range(first, stop):
        r0, r1, c0, c1 = boxes[k, 0], boxes[k, 1], boxes[k, 2], boxes[k, 3]
        if r0 < 0:
            continue
        h, w = r1 - r0, c1 - c0
        if len(pieces) < h * w:
            pieces = np.zeros(2 * h * w, np.int32)
            stack = np.zeros(2 * h * w, np.int64)
        pieces[: h * w] = 0
        n_pieces = 0
        best, best_size = 0, 0
        for start in range(h * w):
            if pieces[start] != 0 or labels[r0 + start // w, c0 + start % w] != k:
                continue
            n_pieces += 1
            pieces[start] = n_pieces
            size = 0
            top = 0
            stack[0] = start
            top = 1
            while top > 0:
                top -= 1
                at = stack[top]
                size += 1
                y, x = at // w, at % w
                for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                    ny, nx = y + dy, x + dx
                    if 0 <= ny < h and 0 <= nx < w:
                        near = ny * w + nx
                        if pieces[near] == 0 and labels[r0 + ny, c0 + nx] == k:
                            pieces[near] = n_pieces
                            stack[top] = near
                            top += 1
            if size > best_size:
                best, best_size = n_pieces, size
        if n_pieces > 1:
            for at in range(h * w):
                if pieces[at] != 0 and pieces[at] != best:
                    labels[r0 + at // w, c0 + at % w] = 0


@numba.njit(**_JIT)
def relabel(labels, lookup):
    for r in range(labels.shape[0]):
        for c in range(labels.shape[1]):
            labels[r, c] = lookup[labels[r, c]]


@numba.njit(**_JIT)
def relabel_measured(labels, lookup, n_ids):
    # relabel in place and measure the new ids on the way: boxes as bounding_boxes makes them
    # (first row -1: absent) and pixel counts, so that no later pass over the image is needed
    boxes = np.full((n_ids + 1, 4), -1, np.int64)
    areas = np.zeros(n_ids + 1, np.int64)
    for r in range(labels.shape[0]):
        for c in range(labels.shape[1]):
            k = lookup[labels[r, c]]
            labels[r, c] = k
            if k > 0:
                areas[k] += 1
                _grow_box(boxes, k, r, c)
    return boxes, areas
