"""Compiled frame-by-frame step of the linker (numba), for :func:`.linking.link_cells`.

After the overlap links, every frame with unlinked track starts gets one small
linear assignment (starts against track ends and mothers). In numpy that is a
dozen array calls and a scipy call per frame, ~0.3 ms each: on a 1,000-frame
movie where most frames have a start, more than measuring the frames costs
(benchmarks/README.md, tracking). Here the whole loop is one compiled call.

The links are the numpy loop's exactly (tests/core/tracking/test_linking_kernel.py):
the costs are computed with the same float operations in the same order, and
:func:`assignment` is scipy's ``linear_sum_assignment`` (the shortest
augmenting path of Crouse 2016, as scipy implements it), step for step,
including its tie-breaking, so that it picks the same pairs where two
assignments cost the same.

Imported on first use (:mod:`._compiled`), like :mod:`._tracking_kernel`.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from .linking import _IMPOSSIBLE as IMPOSSIBLE

_JIT: dict[str, Any] = {"cache": True, "nogil": True}


@numba.njit(**_JIT)
def _augmenting_path(cost, u, v, path, row4col, shortest, i, row_seen, column_seen, remaining):
    """Shortest augmenting path from row ``i``: its sink column and length (-1 if infeasible)."""
    n_columns = cost.shape[1]
    min_value = 0.0
    n_remaining = n_columns
    # in reverse, as scipy: a constant matrix gives the identity
    for it in range(n_columns):
        remaining[it] = n_columns - it - 1
    row_seen[:] = False
    column_seen[:] = False
    shortest[:] = np.inf
    sink = -1
    while sink == -1:
        index = -1
        lowest = np.inf
        row_seen[i] = True
        for it in range(n_remaining):
            j = remaining[it]
            r = min_value + cost[i, j] - u[i] - v[j]
            if r < shortest[j]:
                path[j] = i
                shortest[j] = r
            # among equal costs, a column that ends the path
            if shortest[j] < lowest or (shortest[j] == lowest and row4col[j] == -1):
                lowest = shortest[j]
                index = it
        min_value = lowest
        if min_value == np.inf:
            return -1, min_value
        j = remaining[index]
        if row4col[j] == -1:
            sink = j
        else:
            i = row4col[j]
        column_seen[j] = True
        n_remaining -= 1
        remaining[index] = remaining[n_remaining]
    return sink, min_value


@numba.njit(**_JIT)
def assignment(matrix):
    """``scipy.optimize.linear_sum_assignment(matrix)``: rows (ascending) and their columns.

    Parameters
    ----------
    matrix : numpy.ndarray
        2-D float64 costs, finite (the linker's impossible pairs cost
        :data:`IMPOSSIBLE`, so a full assignment always exists).

    Returns
    -------
    rows, columns : numpy.ndarray
        ``min(matrix.shape)`` pairs, sorted by row.
    """
    n_rows, n_columns = matrix.shape
    if n_rows == 0 or n_columns == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    # scipy solves the wide orientation: a tall matrix is transposed
    transpose = n_columns < n_rows
    cost = np.ascontiguousarray(matrix.T) if transpose else matrix
    nr, nc = cost.shape
    u = np.zeros(nr)
    v = np.zeros(nc)
    shortest = np.empty(nc)
    path = np.full(nc, -1, np.int64)
    col4row = np.full(nr, -1, np.int64)
    row4col = np.full(nc, -1, np.int64)
    row_seen = np.zeros(nr, np.bool_)
    column_seen = np.zeros(nc, np.bool_)
    remaining = np.empty(nc, np.int64)
    for current in range(nr):
        sink, min_value = _augmenting_path(
            cost, u, v, path, row4col, shortest, current, row_seen, column_seen, remaining
        )
        if sink < 0:
            raise ValueError("cost matrix is infeasible")
        u[current] += min_value
        for i in range(nr):
            if row_seen[i] and i != current:
                u[i] += min_value - shortest[col4row[i]]
        for j in range(nc):
            if column_seen[j]:
                v[j] -= min_value - shortest[j]
        j = sink
        while True:
            i = path[j]
            row4col[j] = i
            col4row[i], j = j, col4row[i]
            if i == current:
                break
    if transpose:
        order = np.argsort(col4row)
        return col4row[order], order.astype(np.int64)
    return np.arange(nr, dtype=np.int64), col4row


@numba.njit(**_JIT)
def link_rest(
    t,
    y,
    x,
    area,
    pair_parent,
    pair_pixels,
    pair_bounds,
    offsets,
    children,
    has_parent,
    cutoff,
    gap_cutoff,
    max_gap,
    divisions,
):
    """The links :func:`.linking.link_cells` adds frame by frame after the overlap links.

    Parameters
    ----------
    t, y, x, area : numpy.ndarray
        Per cell (row), sorted by frame (``area`` as float64).
    pair_parent, pair_pixels, pair_bounds : numpy.ndarray
        Overlap pairs sorted by child row; the pairs of row ``r`` are
        ``pair_bounds[r]:pair_bounds[r + 1]``.
    offsets : numpy.ndarray
        First row of each frame, and the number of rows.
    children, has_parent : numpy.ndarray
        Children per row (int8) and whether a row has a parent, after the
        overlap links; updated in place.
    cutoff, gap_cutoff : float
        Largest cost of a link to the previous frame, and over a gap.
    max_gap : int
        Frames a cell may be missed.
    divisions : bool
        Let a cell of the previous frame take a second child.

    Returns
    -------
    parent, child : numpy.ndarray
        The new links, frame by frame, each frame's by start row.
    """
    n = t.size
    new_parent = np.empty(n, np.int64)
    new_child = np.empty(n, np.int64)
    n_links = 0
    for frame in range(1, offsets.size - 1):
        starts = np.flatnonzero(~has_parent[offsets[frame] : offsets[frame + 1]]) + offsets[frame]
        n_starts = starts.size
        if n_starts == 0:
            continue
        earliest = offsets[max(frame - 1 - max_gap, 0)]
        ends = np.flatnonzero(children[earliest : offsets[frame]] == 0) + earliest
        n_ends = ends.size
        # mother candidates: cells of the previous frame with at most one child that cover a start
        n_pairs = 0
        for s in starts:
            n_pairs += pair_bounds[s + 1] - pair_bounds[s]
        owner = np.empty(n_pairs, np.int64)
        mother = np.empty(n_pairs, np.int64)
        pair_cost = np.empty(n_pairs)
        n_usable = 0
        if divisions:
            for k in range(n_starts):
                s = starts[k]
                for pair in range(pair_bounds[s], pair_bounds[s + 1]):
                    m = pair_parent[pair]
                    if children[m] <= 1 and t[m] == t[s] - 1:
                        owner[n_usable] = k
                        mother[n_usable] = m
                        covered = pair_pixels[pair] / area[s]
                        pair_cost[n_usable] = (1.0 - covered) * cutoff
                        n_usable += 1
        mothers = np.unique(mother[:n_usable])
        # a mother without a child yet can take both daughters: a second column for it
        free = mothers[children[mothers] == 0]
        n_columns = n_ends + mothers.size + free.size
        if n_columns == 0:
            continue
        columns = np.empty(n_columns, np.int64)
        columns[:n_ends] = ends
        columns[n_ends : n_ends + mothers.size] = mothers
        columns[n_ends + mothers.size :] = free
        matrix = np.full((n_starts, n_columns), IMPOSSIBLE)
        for k in range(n_starts):
            s = starts[k]
            for e in range(n_ends):
                dt = np.float64(frame - t[ends[e]])
                dy = y[s] - y[ends[e]]
                dx = x[s] - x[ends[e]]
                cost = dy * dy + dx * dx + dt * dt
                if cost <= (gap_cutoff if dt > 1 else cutoff):
                    matrix[k, e] = cost
        for p in range(n_usable):
            column = np.searchsorted(mothers, mother[p])
            matrix[owner[p], n_ends + column] = pair_cost[p]
            second = np.searchsorted(free, mother[p])
            if second < free.size and free[second] == mother[p]:
                matrix[owner[p], n_ends + mothers.size + second] = pair_cost[p]
        picked_start, picked_column = assignment(matrix)
        for k in range(picked_start.size):
            if matrix[picked_start[k], picked_column[k]] < IMPOSSIBLE:
                parent = columns[picked_column[k]]
                child = starts[picked_start[k]]
                children[parent] += 1
                has_parent[child] = True
                new_parent[n_links] = parent
                new_child[n_links] = child
                n_links += 1
    return new_parent[:n_links], new_child[:n_links]
