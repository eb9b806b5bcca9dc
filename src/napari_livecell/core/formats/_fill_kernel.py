"""Polygon filling (numba) with OpenCV's ``fillPoly`` rules, pixel for pixel, without OpenCV.

Ultralytics' loader rasterises YOLO polygons with ``cv2.fillPoly``; reading
them here must give the masks training will see. :func:`fill_polygon` does
what ``fillPoly`` does for one polygon of integer vertices (``shift=0``,
8-connected lines): every edge is drawn as OpenCV's 8-connected line (its
Bresenham walk from the left end, clipped to the image as OpenCV clips), then
each row between the first and last vertex row is filled between pairs of
edge crossings (even-odd), the crossings kept in 16.16 fixed point as OpenCV
keeps them and rounded inwards. ``tests/io/test_coco_yolo_io.py`` compares it
with OpenCV on random and cell polygons.
"""

from __future__ import annotations

import numba
import numpy as np

_SHIFT = 16
_ONE = 1 << _SHIFT


@numba.njit(cache=True)
def _clip(width, height, x1, y1, x2, y2):
    # OpenCV's clipLine: the segment's part inside the image, or (False, ...) when none
    right, bottom = width - 1, height - 1
    c1 = (x1 < 0) + (x1 > right) * 2 + (y1 < 0) * 4 + (y1 > bottom) * 8
    c2 = (x2 < 0) + (x2 > right) * 2 + (y2 < 0) * 4 + (y2 > bottom) * 8
    if (c1 & c2) == 0 and (c1 | c2) != 0:
        if c1 & 12:
            a = 0 if c1 < 8 else bottom
            x1 += int(float(a - y1) * (x2 - x1) / (y2 - y1))
            y1 = a
            c1 = (x1 < 0) + (x1 > right) * 2
        if c2 & 12:
            a = 0 if c2 < 8 else bottom
            x2 += int(float(a - y2) * (x2 - x1) / (y2 - y1))
            y2 = a
            c2 = (x2 < 0) + (x2 > right) * 2
        if (c1 & c2) == 0 and (c1 | c2) != 0:
            if c1:
                a = 0 if c1 == 1 else right
                y1 += int(float(a - x1) * (y2 - y1) / (x2 - x1))
                x1 = a
                c1 = 0
            if c2:
                a = 0 if c2 == 1 else right
                y2 += int(float(a - x2) * (y2 - y1) / (x2 - x1))
                x2 = a
                c2 = 0
    return (c1 | c2) == 0, x1, y1, x2, y2


@numba.njit(cache=True)
def _line(mask, x1, y1, x2, y2):
    # OpenCV's 8-connected line, walked from its left end
    height, width = mask.shape
    if not (0 <= x1 < width and 0 <= x2 < width and 0 <= y1 < height and 0 <= y2 < height):
        inside, x1, y1, x2, y2 = _clip(width, height, x1, y1, x2, y2)
        if not inside:
            return
    dx, dy = x2 - x1, y2 - y1
    if dx < 0:
        dx, dy = -dx, -dy
        x1, y1 = x2, y2
    step_x, step_y = 1, 1
    if dy < 0:
        dy, step_y = -dy, -1
    steep = dy > dx
    if steep:
        dx, dy = dy, dx
    err = dx - 2 * dy
    x, y = x1, y1
    for _ in range(dx + 1):
        mask[y, x] = 1
        diagonal = err < 0
        err += -2 * dy + (2 * dx if diagonal else 0)
        if steep:
            y += step_y
            x += step_x if diagonal else 0
        else:
            x += step_x
            y += step_y if diagonal else 0


@numba.njit(cache=True)
def fill_polygon(mask, xs, ys):
    """Set to 1 the pixels of ``mask`` (uint8) that ``cv2.fillPoly(mask, [points], 1)`` sets.

    ``xs, ys``: the polygon's integer vertices (int64), in order.
    """
    height, width = mask.shape
    n = len(xs)
    edge_y0 = np.empty(n, np.int64)
    edge_y1 = np.empty(n, np.int64)
    edge_x = np.empty(n, np.int64)
    edge_dx = np.empty(n, np.int64)
    edges = 0
    for i in range(n):
        x0, y0, x1, y1 = xs[i - 1], ys[i - 1], xs[i], ys[i]
        _line(mask, x0, y0, x1, y1)
        c_y0, c_y1, t_x0, t_x1 = y0, y1, x0, x1
        if not (0 <= x0 < width and 0 <= x1 < width and 0 <= y0 < height and 0 <= y1 < height):
            _, t_x0, t_y0, t_x1, t_y1 = _clip(width, height, x0, y0, x1, y1)
            if t_y0 != t_y1:
                c_y0, c_y1 = t_y0, t_y1
        if y0 == y1:
            continue
        fx0, fx1 = t_x0 << _SHIFT, t_x1 << _SHIFT
        numerator, denominator = fx1 - fx0, c_y1 - c_y0
        step = abs(numerator) // abs(denominator)  # C's division truncates towards zero
        if (numerator < 0) != (denominator < 0):
            step = -step
        edge_dx[edges] = step
        if y0 < y1:
            edge_y0[edges], edge_y1[edges] = y0, y1
            edge_x[edges] = fx0 + (y0 - c_y0) * step
        else:
            edge_y0[edges], edge_y1[edges] = y1, y0
            edge_x[edges] = fx1 + (y1 - c_y1) * step
        edges += 1
    if edges < 2:
        return
    y_min, y_max = edge_y0[:edges].min(), edge_y1[:edges].max()
    x_ends = edge_x[:edges] + (edge_y1[:edges] - edge_y0[:edges]) * edge_dx[:edges]
    x_min = min(edge_x[:edges].min(), x_ends.min())
    x_max = max(edge_x[:edges].max(), x_ends.max())
    if y_max < 0 or y_min >= height or x_max < 0 or x_min >= (width << _SHIFT):
        return
    crossings = np.empty(edges, np.int64)
    for y in range(max(y_min, 0), min(y_max, height)):
        count = 0
        for k in range(edges):
            if edge_y0[k] <= y < edge_y1[k]:
                crossings[count] = edge_x[k] + (y - edge_y0[k]) * edge_dx[k]
                count += 1
        ordered = np.sort(crossings[:count])
        for pair in range(0, count - 1, 2):
            left = (ordered[pair] + _ONE - 1) >> _SHIFT
            right = ordered[pair + 1] >> _SHIFT
            if left < width and right >= 0:
                for x in range(max(left, 0), min(right, width - 1) + 1):
                    mask[y, x] = 1
