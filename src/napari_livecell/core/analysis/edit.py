"""Proofreading operations on a label image, as pixel changes.

Each operation returns the pixels to change and their new values instead of
editing in place, so the napari glue can apply them through the layer's
undoable ``data_setitem`` (and the same code runs without napari).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi


@dataclass
class PixelEdit:
    """Pixels of one frame to set: ``labels[rows, cols] = values``."""

    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray

    @property
    def touched(self) -> int:
        """Number of pixels changed."""
        return len(self.rows)


def delete_cell(labels: np.ndarray, cell_id: int) -> PixelEdit:
    """Erase one cell.

    Raises
    ------
    ValueError
        The background, or a cell that is not in ``labels``.
    """
    if int(cell_id) == 0:
        raise ValueError("point at a cell to delete, not the background")
    rows, cols = np.nonzero(labels == cell_id)
    if rows.size == 0:
        raise ValueError(f"cell {int(cell_id)} does not exist in this frame")
    return PixelEdit(rows, cols, np.zeros(len(rows), dtype=labels.dtype))


SEAM_WIDTH = 2  # px of background between two cells that a merge fills


def merge_cells(labels: np.ndarray, keep_id: int, other_id: int) -> PixelEdit:
    """Give ``other_id``'s pixels to ``keep_id``, and fill the seam between them.

    Background pixels within :data:`SEAM_WIDTH` of both cells (the gap a
    segmentation leaves between neighbours) join the merged cell, and so does
    any enclosed background that neither cell had as a hole: the result is one
    piece with no new hole.

    Raises
    ------
    ValueError
        The same cell twice, the background, or a cell that does not exist.
    """
    keep_id, other_id = int(keep_id), int(other_id)
    if keep_id == 0 or other_id == 0:
        raise ValueError("merge needs two cells: point at a cell, not the background")
    if keep_id == other_id:
        raise ValueError(f"merge needs two different cells (got cell {keep_id} twice)")
    for cell in (keep_id, other_id):
        if not (labels == cell).any():
            raise ValueError(f"cell {cell} does not exist in this frame")
    both = (labels == keep_id) | (labels == other_id)
    rows, cols = np.nonzero(both)
    margin = SEAM_WIDTH + 1
    top, left = max(rows.min() - margin, 0), max(cols.min() - margin, 0)
    window = (slice(top, rows.max() + margin + 1), slice(left, cols.max() + margin + 1))
    local = labels[window]
    keep, other = local == keep_id, local == other_id
    background = local == 0
    seam = (
        ndi.binary_dilation(keep, iterations=SEAM_WIDTH)
        & ndi.binary_dilation(other, iterations=SEAM_WIDTH)
        & background
    )
    merged = keep | other | seam
    old_holes = _holes(keep) | _holes(other)
    new_holes = _holes(merged) & ~old_holes & background
    rows, cols = np.nonzero(other | seam | new_holes)
    return PixelEdit(rows + top, cols + left, np.full(len(rows), keep_id, dtype=labels.dtype))


def _holes(mask: np.ndarray) -> np.ndarray:
    return ndi.binary_fill_holes(mask) & ~mask


def split_cell(labels: np.ndarray, line: np.ndarray, new_id: int | None = None) -> tuple[PixelEdit, int, int]:
    """Cut the cell that a drawn line crosses into two along that line.

    Parameters
    ----------
    labels : numpy.ndarray
        ``(H, W)`` label image.
    line : numpy.ndarray
        ``(K, 2)`` (row, col) vertices of the drawn cut, K >= 2.
    new_id : int, optional
        Id of the second piece; ``labels.max() + 1`` by default.

    Returns
    -------
    edit : PixelEdit
        The pixels that change.
    cell_id, new_id : int
        The cut cell and its new sibling.

    Raises
    ------
    ValueError
        The line crosses no cell, or does not cut it in two.
    """
    from skimage.draw import line as draw_line

    line = np.asarray(line, dtype=float)
    if line.ndim != 2 or len(line) < 2:
        raise ValueError("draw a line of at least two points across the cell")
    height, width = labels.shape
    cut = np.zeros(labels.shape, dtype=bool)
    for (r0, c0), (r1, c1) in itertools.pairwise(line):
        rr, cc = draw_line(round(r0), round(c0), round(r1), round(c1))
        inside = (rr >= 0) & (rr < height) & (cc >= 0) & (cc < width)
        cut[rr[inside], cc[inside]] = True
    # a 4-connected cut: diagonal steps would let the pieces touch through corners
    cut |= ndi.binary_dilation(cut, structure=np.array([[0, 0, 0], [0, 1, 1], [0, 0, 0]], bool))
    crossed = labels[cut]
    crossed = crossed[crossed > 0]
    if crossed.size == 0:
        raise ValueError("the line crosses no cell")
    cell_id = int(np.bincount(crossed).argmax())
    cell = labels == cell_id
    pieces, n_pieces = ndi.label(cell & ~cut)
    if n_pieces < 2:
        raise ValueError(f"the line does not cut cell {cell_id} in two: draw it across the whole cell")
    sizes = np.bincount(pieces.ravel())[1:]
    order = np.argsort(sizes)[::-1] + 1
    new_id = int(labels.max()) + 1 if new_id is None else int(new_id)
    result = np.where(pieces == order[0], cell_id, 0)
    result[np.isin(pieces, order[1:])] = new_id
    # pixels on the cut go to the nearest piece
    on_cut = cell & ~(pieces > 0)
    if on_cut.any():
        _, (near_r, near_c) = ndi.distance_transform_edt(~(pieces > 0), return_indices=True)
        result[on_cut] = result[near_r[on_cut], near_c[on_cut]]
    changed = cell & (result != cell_id)
    rows, cols = np.nonzero(changed)
    return PixelEdit(rows, cols, result[rows, cols].astype(labels.dtype)), cell_id, new_id


def cell_centroid(labels: np.ndarray, cell_id: int) -> tuple[float, float] | None:
    """(row, col) centre of a cell, ``None`` if absent."""
    rows, cols = np.nonzero(labels == cell_id)
    if rows.size == 0:
        return None
    return float(rows.mean()), float(cols.mean())


def pair_counts(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels shared by each (first id, second id) pair of cells, both non-zero.

    Ids are made compact before they are combined into one sort key, so any
    id (up to int64) works and one sort does the counting (``np.unique`` over
    rows is several times slower).
    """
    both = (first > 0) & (second > 0)
    first_ids, first_compact = np.unique(first[both], return_inverse=True)
    second_ids, second_compact = np.unique(second[both], return_inverse=True)
    keys = first_compact.astype(np.int64) * max(len(second_ids), 1) + second_compact
    pairs, counts = np.unique(keys, return_counts=True)
    stride = max(len(second_ids), 1)
    return first_ids[pairs // stride].astype(np.int64), second_ids[pairs % stride].astype(np.int64), counts


@dataclass
class BaselineComparison:
    """How each cell relates to the model's prediction (the baseline).

    Attributes
    ----------
    changes : dict
        Present cell id -> ``"unchanged"`` (the very pixels of a baseline
        cell), ``"edited"`` (mask IoU >= 0.5 with a baseline cell) or
        ``"added"``.
    matches : dict
        Present cell id -> the baseline cell it is (unchanged or edited).
    merged : dict
        Baseline id -> the present cell that holds most of its pixels, for
        baseline cells that were merged into another cell.
    deleted : list of int
        Baseline cells that are gone (neither matched nor merged).
    baseline_ids : list of int
        Every cell of the baseline.
    """

    changes: dict[int, str]
    matches: dict[int, int]
    merged: dict[int, int]
    deleted: list[int]
    baseline_ids: list[int]


def compare_to_baseline(labels: np.ndarray, baseline: np.ndarray) -> BaselineComparison:
    """Match the current cells to the baseline by their pixels, not their ids.

    Ids do not matter (relabelling changes none of the answers), and memory
    grows with the number of cells, not with the largest id.
    """
    labels = np.asarray(labels)
    baseline = np.asarray(baseline)
    if labels.shape != baseline.shape:
        raise ValueError(f"labels {labels.shape} and baseline {baseline.shape} differ in shape")
    current_ids, current_areas = np.unique(labels[labels > 0], return_counts=True)
    base_ids, base_areas = np.unique(baseline[baseline > 0], return_counts=True)
    current_area = dict(zip(current_ids.tolist(), current_areas.tolist()))
    base_area = dict(zip(base_ids.tolist(), base_areas.tolist()))
    firsts, seconds, counts = pair_counts(labels, baseline)
    overlaps_of_current: dict[int, list[tuple[int, int]]] = {}
    overlaps_of_base: dict[int, list[tuple[int, int]]] = {}
    for current, base, count in zip(firsts.tolist(), seconds.tolist(), counts.tolist()):
        overlaps_of_current.setdefault(current, []).append((count, base))
        overlaps_of_base.setdefault(base, []).append((count, current))
    changes: dict[int, str] = {}
    matches: dict[int, int] = {}
    matched_base: set[int] = set()
    for current in current_area:
        change = "added"
        if overlaps_of_current.get(current):
            count, base = max(overlaps_of_current[current])
            union = current_area[current] + base_area[base] - count
            if count == current_area[current] == base_area[base]:
                change = "unchanged"
            elif count / union >= 0.5 and base not in matched_base:
                change = "edited"
            if change != "added":
                matches[current] = base
                matched_base.add(base)
        changes[current] = change
    merged: dict[int, int] = {}
    deleted: list[int] = []
    for base in base_area:
        if base in matched_base:
            continue
        count, holder = max(overlaps_of_base.get(base, [(0, 0)]))
        if holder and count * 2 > base_area[base]:
            merged[base] = holder
        else:
            deleted.append(base)
    return BaselineComparison(changes, matches, merged, deleted, list(base_area))


@dataclass
class CorrectionSummary:
    """How the user's labels differ from the model's prediction."""

    predicted: int
    kept: int
    deleted: int
    added: int
    edited: int
    merged: int
    accepted: int

    def as_dict(self) -> dict[str, int]:
        """Plain dict (for json exports)."""
        return dict(vars(self))

    def describe(self) -> str:
        """One line for a status label."""
        return (
            f"{self.added} added, {self.deleted} deleted, {self.edited} edited, {self.merged} merged, "
            f"{self.accepted} accepted of {self.predicted}"
        )


def correction_summary(
    labels: np.ndarray, baseline: np.ndarray, statuses: dict[int, str]
) -> CorrectionSummary:
    """Count what changed against the prediction, from the pixels.

    Parameters
    ----------
    labels : numpy.ndarray
        Current label image (any shape).
    baseline : numpy.ndarray
        The label image the model predicted (same shape).
    statuses : dict
        Id -> status; only ``"accepted"`` (a person's check, which pixels
        cannot show) is read from it.
    """
    comparison = compare_to_baseline(labels, baseline)
    changes = list(comparison.changes.values())
    return CorrectionSummary(
        predicted=len(comparison.baseline_ids),
        kept=changes.count("unchanged"),
        deleted=len(comparison.deleted),
        added=changes.count("added"),
        edited=changes.count("edited"),
        merged=len(comparison.merged),
        accepted=sum(statuses.get(cell) == "accepted" for cell in comparison.changes),
    )
