"""Link the cells of successive frames into tracks: overlap first, then a small assignment.

The linker behind :func:`napari_livecell.core.tracking.track.track_cells` (see
docs/tracking.md for why it replaced laptrack's global gap-closing and
splitting step). It works on measurements only (centroids, areas and the
pixels each cell shares with each cell of the previous frame), never on
pixels, in two steps:

1. **Overlap links**, for all frames at once in numpy: a cell and a cell of
   the previous frame are linked when each is the other's best match by
   intersection over union (IoU). Cells that drift less than their own size
   between frames, the common case in live-cell imaging, are all linked
   here.
2. **What is left**, frame by frame, in one small linear assignment
   (:func:`scipy.optimize.linear_sum_assignment`) per frame that has
   unlinked starts: each track start may take a track end of the previous
   ``max_gap + 1`` frames (cost: squared centroid distance plus the squared
   frame difference, as laptrack's ``sqeuclidean`` metric over ``(y, x, t)``
   gave it) or become a daughter of a cell of the previous frame that covered
   it (cost ``(1 - covered) * cutoff``, ``covered`` the share of the start's
   pixels that the mother held). The matrices are a few rows by a few columns.

A cell with two successors has divided: its track ends and each daughter
starts a new one (the Cell Tracking Challenge's convention).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_livecell.core import _compiled

# stands in for "no link possible" in the assignment matrices (finite, so
# that linear_sum_assignment always finds a solution; such pairs are dropped)
_IMPOSSIBLE = 1e18


@dataclass
class Links:
    """Links between the rows of a cell table sorted by frame.

    Attributes
    ----------
    parent, child : numpy.ndarray
        Row numbers of each link (``parent`` in an earlier frame).
    """

    parent: np.ndarray
    child: np.ndarray


def overlap_links(
    t: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    area: np.ndarray,
    pair_child: np.ndarray,
    pair_parent: np.ndarray,
    pair_pixels: np.ndarray,
    max_distance: float,
) -> Links:
    """Mutual best-IoU links between successive frames, for all frames at once.

    Parameters
    ----------
    t, y, x, area : numpy.ndarray
        Per cell (row), sorted by frame.
    pair_child, pair_parent, pair_pixels : numpy.ndarray
        Overlap pairs: a cell (row), a cell (row) of the frame before, and the
        pixels they share.
    max_distance : float
        Pairs whose centroids lie farther apart are not linked.

    Returns
    -------
    Links
        One-to-one links: a cell has at most one parent and one child here.
    """
    if len(pair_child) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Links(empty, empty)
    shared = pair_pixels.astype(float)
    iou = shared / (area[pair_child] + area[pair_parent] - shared)
    near = (y[pair_child] - y[pair_parent]) ** 2 + (x[pair_child] - x[pair_parent]) ** 2
    keep = (near <= max_distance**2) & (t[pair_child] == t[pair_parent] + 1)
    child, parent, iou = pair_child[keep], pair_parent[keep], iou[keep]
    # best parent of each child (highest IoU; ties: lower parent row) and best child of
    # each parent, by scattered maxima: O(pairs), where sorting the pairs twice cost
    # most of the linking (benchmarks/README.md, tracking)
    mutual = _best_of(child, parent, iou) & _best_of(parent, child, iou)
    return Links(parent[mutual].astype(np.int64), child[mutual].astype(np.int64))


def _best_of(owner: np.ndarray, other: np.ndarray, iou: np.ndarray) -> np.ndarray:
    """Per pair, whether it is its owner's best: highest IoU, ties to the lowest ``other``.

    Pairs ``(owner, other)`` are distinct, so each owner has exactly one best pair.
    """
    if len(owner) == 0:
        return np.zeros(0, dtype=bool)
    size = int(owner.max()) + 1
    best = np.full(size, -np.inf)
    np.maximum.at(best, owner, iou)
    tied = iou == best[owner]
    lowest = np.full(size, np.iinfo(np.int64).max)
    np.minimum.at(lowest, owner[tied], other[tied].astype(np.int64))
    return tied & (other == lowest[owner])


def link_cells(
    t: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    area: np.ndarray,
    pair_child: np.ndarray,
    pair_parent: np.ndarray,
    pair_pixels: np.ndarray,
    *,
    max_distance: float,
    max_gap: int = 1,
    divisions: bool = True,
) -> Links:
    """All links of a time-lapse: overlap links, then gaps, fast movers and divisions.

    Parameters
    ----------
    t, y, x, area : numpy.ndarray
        Per cell (row), sorted by frame.
    pair_child, pair_parent, pair_pixels : numpy.ndarray
        Overlap pairs between successive frames (rows and shared pixels).
    max_distance : float
        Farthest a cell moves between frames, and a daughter lies from its
        mother (pixels).
    max_gap : int
        Frames a cell may be missed and keep its track.
    divisions : bool
        Let a cell have two successors (a division).

    Returns
    -------
    Links
        Each cell has at most one parent and at most two children.
    """
    n = len(t)
    first = overlap_links(t, y, x, area, pair_child, pair_parent, pair_pixels, max_distance)
    children = np.zeros(n, dtype=np.int8)
    has_parent = np.zeros(n, dtype=bool)
    children[first.parent] = 1
    has_parent[first.child] = True
    if n == 0:
        return first
    n_frames = int(t.max()) + 1
    offsets = np.searchsorted(t, np.arange(n_frames + 1))
    cutoff = float(max_distance) ** 2 + 1.0
    gap_cutoff = cutoff + (max_gap + 1) ** 2
    # overlap pairs of each child row, for the division candidates
    order = np.argsort(pair_child, kind="stable")
    pair_child, pair_parent, pair_pixels = pair_child[order], pair_parent[order], pair_pixels[order]
    pair_bounds = np.searchsorted(pair_child, np.arange(n + 1))
    compiled = _compiled.kernels("tracking._linking_kernel")
    # the compiled loop gives the numpy loop's links exactly (tests/core/tracking/test_linking_kernel.py)
    step = _link_rest_numpy if compiled is None else compiled.link_rest
    new_parent, new_child = step(
        t.astype(np.int64),
        y.astype(np.float64),
        x.astype(np.float64),
        area.astype(np.float64),
        pair_parent.astype(np.int64),
        pair_pixels.astype(np.int64),
        pair_bounds.astype(np.int64),
        offsets.astype(np.int64),
        children,
        has_parent,
        cutoff,
        float(gap_cutoff),
        int(max_gap),
        bool(divisions),
    )
    return Links(
        np.concatenate([first.parent, new_parent]).astype(np.int64),
        np.concatenate([first.child, new_child]).astype(np.int64),
    )


def _link_rest_numpy(
    t: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    area: np.ndarray,
    pair_parent: np.ndarray,
    pair_pixels: np.ndarray,
    pair_bounds: np.ndarray,
    offsets: np.ndarray,
    children: np.ndarray,
    has_parent: np.ndarray,
    cutoff: float,
    gap_cutoff: float,
    max_gap: int,
    divisions: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """The frame-by-frame step of :func:`link_cells` in numpy: new ``(parent, child)`` rows.

    Parameters as :func:`._linking_kernel.link_rest`, the compiled version;
    this one runs without numba.
    """
    from scipy.optimize import linear_sum_assignment

    parents: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
    kids: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
    n_frames = len(offsets) - 1
    for frame in range(1, n_frames):
        rows = np.arange(offsets[frame], offsets[frame + 1])
        starts = rows[~has_parent[rows]]
        if starts.size == 0:
            continue
        earliest = max(frame - 1 - max_gap, 0)
        candidates = np.arange(offsets[earliest], offsets[frame])
        ends = candidates[children[candidates] == 0]
        columns: list[np.ndarray] = []
        costs: list[np.ndarray] = []
        if ends.size:
            dt = (frame - t[ends]).astype(float)
            cost = (y[starts, None] - y[ends]) ** 2 + (x[starts, None] - x[ends]) ** 2 + dt**2
            limit = np.where(dt > 1, gap_cutoff, cutoff)
            columns.append(ends)
            costs.append(np.where(cost <= limit, cost, _IMPOSSIBLE))
        if divisions:
            mothers, cost = _division_costs(
                starts, t, area, pair_parent, pair_pixels, pair_bounds, children, cutoff
            )
            if mothers.size:
                columns.append(mothers)
                costs.append(cost)
        if not columns:
            continue
        matrix = np.concatenate(costs, axis=1)
        column_rows = np.concatenate(columns)
        picked_start, picked_column = linear_sum_assignment(matrix)
        possible = matrix[picked_start, picked_column] < _IMPOSSIBLE
        new_child = starts[picked_start[possible]]
        new_parent = column_rows[picked_column[possible]]
        np.add.at(children, new_parent, 1)
        has_parent[new_child] = True
        parents.append(new_parent)
        kids.append(new_child)
    return np.concatenate(parents), np.concatenate(kids)


def _division_costs(starts, t, area, pair_parent, pair_pixels, pair_bounds, children, cutoff):
    """Mother candidates (cells of the previous frame with one child that cover a start) and costs."""
    pieces = [np.arange(pair_bounds[s], pair_bounds[s + 1]) for s in starts]
    pairs = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.intp)
    owner = np.repeat(np.arange(len(starts)), [len(p) for p in pieces])
    mother = pair_parent[pairs]
    # a cell with no child yet may take a daughter here and the other one as an
    # end column (both daughters unlinked); a mother of two is full
    usable = (children[mother] <= 1) & (t[mother] == t[starts[owner]] - 1)
    pairs, owner, mother = pairs[usable], owner[usable], mother[usable]
    mothers, column = np.unique(mother, return_inverse=True)
    covered = pair_pixels[pairs] / area[starts[owner]]
    cost = np.full((len(starts), len(mothers)), _IMPOSSIBLE)
    cost[owner, column] = (1.0 - covered) * cutoff
    # a mother without a child yet can take both daughters: a second column for it
    free = children[mothers] == 0
    return np.concatenate([mothers, mothers[free]]), np.concatenate([cost, cost[:, free]], axis=1)


def segments(n: int, links: Links) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Cut links at divisions: a segment number per row and ``(mother, daughter)`` segment pairs.

    Parameters
    ----------
    n : int
        Rows (cells).
    links : Links
        From :func:`link_cells`.

    Returns
    -------
    segment : numpy.ndarray
        Per row, the number of its track segment (arbitrary order).
    splits : list of tuple of int
        ``(mother segment, daughter segment)`` for each child of a cell with two children.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    count = np.bincount(links.parent, minlength=n)
    single = count[links.parent] == 1
    chain = coo_matrix(
        (np.ones(int(single.sum()), dtype=np.int8), (links.parent[single], links.child[single])), shape=(n, n)
    )
    _, segment = connected_components(chain, directed=False)
    split = ~single
    splits = list(zip(segment[links.parent[split]].tolist(), segment[links.child[split]].tolist()))
    return segment.astype(np.int64), splits
