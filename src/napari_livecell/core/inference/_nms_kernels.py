"""The compiled loops (numba) of :func:`.masks.non_max_suppression`: candidates, their order, NMS.

Ultralytics' candidate filter and box corners and torchvision's greedy NMS
with the same float32 arithmetic (docs/numba.md). Imported on first use by
:func:`.masks.compiled_nms`; ``nogil`` and cached on disk as
:mod:`._mask_kernels`.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

_JIT: dict[str, Any] = {"cache": True, "nogil": True}


@numba.njit(**_JIT)
def candidate_rows(prediction, n_classes, conf):
    # the anchors whose best class score is above conf (float32), as rows x1, y1, x2, y2, score,
    # class, extra... with numpy's float32 arithmetic of masks.non_max_suppression (class: the
    # first best); one pass over the network output instead of a gather and a transpose
    n_extra = prediction.shape[0] - 4 - n_classes
    n_anchors = prediction.shape[1]
    chosen = np.empty(n_anchors, np.int64)
    n = 0
    for anchor in range(n_anchors):
        best = prediction[4, anchor]
        for k in range(1, n_classes):
            best = max(best, prediction[4 + k, anchor])
        chosen[n] = anchor
        n += best > conf
    rows = np.empty((n, 6 + n_extra), np.float32)
    two = np.float32(2)
    for i in range(n):
        anchor = chosen[i]
        best, best_class = prediction[4, anchor], 0
        for k in range(1, n_classes):
            if prediction[4 + k, anchor] > best:
                best, best_class = prediction[4 + k, anchor], k
        half_w, half_h = prediction[2, anchor] / two, prediction[3, anchor] / two
        rows[i, 0] = prediction[0, anchor] - half_w
        rows[i, 1] = prediction[1, anchor] - half_h
        rows[i, 2] = prediction[0, anchor] + half_w
        rows[i, 3] = prediction[1, anchor] + half_h
        rows[i, 4] = best
        rows[i, 5] = best_class
    # the extras (mask coefficients) one output row at a time: each read in order of anchor,
    # where one anchor's 32 rows at a time (far apart) left the reads waiting on memory
    for e in range(n_extra):
        source = prediction[4 + n_classes + e]
        for i in range(n):
            rows[i, 6 + e] = source[chosen[i]]
    return rows


@numba.njit(**_JIT)
def descending_order(scores):
    # np.argsort(-scores, kind="stable") of a float32 array without NaN (candidates' scores pass
    # score > conf), by a stable radix sort of the scores' bits (three passes of 11 bits)
    # instead of a comparison sort
    n = len(scores)
    bits = scores.view(np.uint32)
    keys = np.empty(n, np.uint32)
    for i in range(n):
        b = bits[i]
        if b == np.uint32(0x80000000):  # -0.0 ties with 0.0
            b = np.uint32(0)
        # the bits of a float made to sort as unsigned integers in the float's order, inverted
        # for a descending order
        ascending = b ^ np.uint32(0xFFFFFFFF) if b >> np.uint32(31) else b | np.uint32(0x80000000)
        keys[i] = ~ascending
    order = np.arange(n)
    swap = np.empty(n, np.int64)
    counts = np.empty(2049, np.int64)
    for shift in (0, 11, 22):
        counts[:] = 0
        for i in range(n):
            counts[((keys[order[i]] >> np.uint32(shift)) & np.uint32(2047)) + 1] += 1
        for d in range(2048):
            counts[d + 1] += counts[d]
        for i in range(n):
            digit = (keys[order[i]] >> np.uint32(shift)) & np.uint32(2047)
            swap[counts[digit]] = order[i]
            counts[digit] += 1
        order, swap = swap, order
    return order


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
