"""Outline tracing (numba): OpenCV's rings exactly, cell by cell, without OpenCV.

Outlines are the rings :func:`.segmentation.mask_to_polygons` gets from
OpenCV's ``findContours`` (``RETR_CCOMP``, ``CHAIN_APPROX_SIMPLE``) on each
cell's mask doubled in size. :func:`trace_rings` runs the same border
following (Suzuki & Abe, as OpenCV's ``icvFetchContour`` writes it) on each
cell's doubled mask in a small reused buffer: each pixel's doubled pair is
one uint16 written without a branch, the columns where the cell's runs begin
and end are noted on the way, and the scan for where rings start visits only
those (nowhere else can OpenCV's scan start a ring). Same points, start and
order of rings (``tests/core/test_trace_kernel.py`` compares with OpenCV);
~2x faster than OpenCV on one canvas of every cell doubled (docs/numba.md).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

_JIT: dict[str, Any] = {"cache": True, "nogil": True}

# OpenCV's chain codes: 0 right, then counter-clockwise (image rows grow downwards)
_STEP_X = (1, 1, 0, -1, -1, -1, 0, 1)
_STEP_Y = (0, -1, -1, -1, 0, 1, 1, 1)
# OpenCV's pixel values: 1 an unvisited pixel of the mask, and the marks it leaves on a visited
# border pixel: nbd = 2, or nbd | -128 (as int8) where the border leaves it to the right
_VISITED = 2
_RIGHT_BOUND = -126


@numba.njit(**_JIT)
def _follow(image, stride, start, is_hole, points, n_points):
    # icvFetchContour with CHAIN_APPROX_SIMPLE from pixel `start` of the flat image (a frame of
    # 0: a row above, two columns left), writing its marks into it: the ring's vertices (pixel
    # coordinates, frame excluded) go to points from n_points on; returns points (grown when
    # full) and the new count
    deltas = np.empty(16, np.int64)
    step_x, step_y = np.empty(8, np.int64), np.empty(8, np.int64)
    for s in range(16):
        deltas[s] = _STEP_Y[s & 7] * stride + _STEP_X[s & 7]
        step_x[s & 7], step_y[s & 7] = _STEP_X[s & 7], _STEP_Y[s & 7]
    s = 0 if is_hole else 4
    s_end = s
    while True:
        s = (s - 1) & 7
        i1 = start + deltas[s]
        if image[i1] != 0 or s == s_end:
            break
    x, y = start % stride - 2, start // stride - 1
    if s == s_end:  # a one-pixel ring
        image[start] = _RIGHT_BOUND
        points, n_points = _append(points, n_points, x, y)
        return points, n_points
    i3 = start
    previous = s ^ 4
    while True:
        s_end = s
        i4 = i3
        while s < 15:
            s += 1
            i4 = i3 + deltas[s]
            if image[i4] != 0:
                break
        s &= 7
        if 1 <= s <= s_end:
            image[i3] = _RIGHT_BOUND
        elif image[i3] == 1:
            image[i3] = _VISITED
        if s != previous:
            points, n_points = _append(points, n_points, x, y)
            previous = s
        x += step_x[s]
        y += step_y[s]
        if i4 == start and i3 == i1:
            break
        i3 = i4
        s = (s + 4) & 7
    return points, n_points


@numba.njit(inline="always", **_JIT)
def _append(points, n_points, x, y):
    if n_points == len(points):
        bigger = np.empty((2 * len(points), 2), points.dtype)
        bigger[: len(points)] = points
        points = bigger
    points[n_points, 0], points[n_points, 1] = x, y
    return points, n_points + 1


@numba.njit(**_JIT)
def trace_rings(labels, boxes, first, stop):
    """Rings of ids ``first..stop - 1`` (see the module docstring).

    Returns ``points`` (``(n, 2)`` float64 ``x, y`` in image coordinates, a
    quarter pixel inside the pixel edges), ``lengths`` (points per ring),
    ``cells`` (the id of each ring) and ``pieces``: ids of more than one
    piece, whose rings are left out (OpenCV orders the rings of several
    pieces by its contour tree: the caller traces each piece alone).
    Rings come in :func:`.segmentation.mask_rings`' order: per cell its outer
    ring, then its holes last found first.
    """
    points = np.empty((1024, 2), np.int64)
    n_points = 0
    lengths = np.empty(64, np.int64)
    cells = np.empty(64, np.int64)
    n_rings = 0
    pieces = np.empty(0, np.int64)
    pairs = np.zeros(0, np.uint16)
    edges = np.empty(0, np.int64)
    row_edges = np.zeros(1, np.int64)
    for k in range(first, stop):
        r0, r1, c0, c1 = boxes[k, 0], boxes[k, 1], boxes[k, 2], boxes[k, 3]
        if r0 < 0:
            continue
        # the cell's mask doubled (OpenCV's value 1 inside), framed by 0: a row above and below,
        # two columns left and right, so that each pixel's doubled pair is one aligned uint16
        width = c1 - c0
        row_pairs = width + 2
        size = (2 * (r1 - r0) + 2) * row_pairs
        if len(pairs) < size:
            pairs = np.zeros(2 * size, np.uint16)
        else:
            pairs[:size] = 0
        image = pairs.view(np.int8)
        stride = 2 * row_pairs
        if len(row_edges) <= r1 - r0:
            row_edges = np.zeros(2 * (r1 - r0) + 1, np.int64)
        if len(edges) < (r1 - r0) * (width + 1):
            edges = np.empty(2 * (r1 - r0) * (width + 1), np.int64)
        n_edges = 0
        for r in range(r1 - r0):
            row = (2 * r + 1) * row_pairs + 1
            cell_row = labels[r0 + r, c0:c1]
            # branch-free: each pixel's doubled pair, and the columns where runs begin and end
            inside = 0
            for c in range(width):
                value = int(cell_row[c] == k)
                pairs[row + c] = np.uint16(value * 0x0101)
                edges[n_edges] = c
                n_edges += value ^ inside
                inside = value
            edges[n_edges] = width
            n_edges += inside
            row_edges[r + 1] = n_edges
            # the row's double below it, in a loop: numba copies the source of a slice
            # assignment first when it may overlap the target (an allocation per row)
            for c in range(width):
                pairs[row + row_pairs + c] = pairs[row + c]
        cell_ring, cell_point = n_rings, n_points
        first_hole, first_hole_point = -1, 0
        outer_rings = 0
        # OpenCV's scan, row by row: a ring starts where a run begins on an unvisited pixel
        # (an outer ring) or ends on a pixel not left as a right bound (a hole); nothing else
        # in a row can start one
        for y in range(1, 2 * (r1 - r0) + 1):
            r = (y - 1) >> 1
            for edge in range(row_edges[r], row_edges[r + 1]):
                is_hole = (edge - row_edges[r]) & 1 == 1
                at = y * stride + 2 * edges[edge] + (1 if is_hole else 2)
                if (image[at] == _RIGHT_BOUND) if is_hole else (image[at] != 1):
                    continue
                if n_rings == len(lengths):
                    lengths = np.concatenate((lengths, np.empty(len(lengths), np.int64)))
                    cells = np.concatenate((cells, np.empty(len(cells), np.int64)))
                if is_hole and first_hole < 0:
                    first_hole, first_hole_point = n_rings, n_points
                outer_rings += not is_hole
                before = n_points
                points, n_points = _follow(image, stride, at, is_hole, points, n_points)
                lengths[n_rings] = n_points - before
                cells[n_rings] = k
                n_rings += 1
        if outer_rings > 1:
            pieces = np.append(pieces, k)
            n_rings, n_points = cell_ring, cell_point
        elif first_hole >= 0 and n_rings - first_hole > 1:
            # holes last found first, as RETR_CCOMP lists a ring's children
            _reverse_rings(points, lengths, first_hole, n_rings, first_hole_point, n_points)
    result = np.empty((n_points, 2), np.float64)
    at = 0
    for ring in range(n_rings):
        k = cells[ring]
        # doubled-mask pixels back to the image, with mask_rings' arithmetic
        for i in range(at, at + lengths[ring]):
            result[i, 0] = points[i, 0] * 0.5 + (0.25 + boxes[k, 2])
            result[i, 1] = points[i, 1] * 0.5 + (0.25 + boxes[k, 0])
        at += lengths[ring]
    return result, lengths[:n_rings].copy(), cells[:n_rings].copy(), pieces


@numba.njit(**_JIT)
def _reverse_rings(points, lengths, first_ring, stop_ring, first_point, stop_point):
    # rings first_ring..stop_ring - 1, whose points fill first_point..stop_point - 1, in
    # reverse order
    block = points[first_point:stop_point].copy()
    at = stop_point - first_point
    write = first_point
    for ring in range(stop_ring - 1, first_ring - 1, -1):
        at -= lengths[ring]
        points[write : write + lengths[ring]] = block[at : at + lengths[ring]]
        write += lengths[ring]
    lengths[first_ring:stop_ring] = lengths[first_ring:stop_ring][::-1].copy()


@numba.njit(**_JIT)
def outer_border(mask):
    """The outer border of a mask's first part (raster order), through pixel centres.

    OpenCV's ``findContours`` contour of that part (``CHAIN_APPROX_SIMPLE``
    vertices, ``(n, 2)`` int64 ``x, y``): the same border following, on the
    mask itself (not doubled), whose other parts it never visits.
    """
    height, width = mask.shape
    stride = width + 4
    image = np.zeros((height + 2) * stride, np.int8)
    start = -1
    for r in range(height):
        for c in range(width):
            if mask[r, c]:
                image[(r + 1) * stride + c + 2] = 1
                if start < 0:
                    start = (r + 1) * stride + c + 2
    if start < 0:
        return np.empty((0, 2), np.int64)
    points, n_points = _follow(image, stride, start, False, np.empty((64, 2), np.int64), 0)
    return points[:n_points].copy()
