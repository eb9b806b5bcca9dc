"""Each label's bounding box in one compiled pass (numba), shared by outline tracing and mask painting."""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

_JIT: dict[str, Any] = {"cache": True, "nogil": True}


@numba.njit(**_JIT)
def bounding_boxes(labels, n_ids):
    # per id: first row, last row + 1, first col, last col + 1 (first row -1: absent)
    boxes = np.full((n_ids + 1, 4), -1, np.int64)
    for r in range(labels.shape[0]):
        for c in range(labels.shape[1]):
            k = labels[r, c]
            if k > 0:
                grow_box(boxes, k, r, c)
    return boxes


@numba.njit(inline="always", **_JIT)
def grow_box(boxes, k, r, c):
    # pixel (r, c) of id k, met in raster order, into its box
    if boxes[k, 0] < 0:
        boxes[k, 0], boxes[k, 1], boxes[k, 2], boxes[k, 3] = r, r + 1, c, c + 1
    else:
        boxes[k, 1] = r + 1
        boxes[k, 2] = min(boxes[k, 2], c)
        boxes[k, 3] = max(boxes[k, 3], c + 1)
