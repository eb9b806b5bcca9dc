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
    """Erase one cell."""
    rows, cols = np.nonzero(labels == cell_id)
    return PixelEdit(rows, cols, np.zeros(len(rows), dtype=labels.dtype))


def merge_cells(labels: np.ndarray, keep_id: int, other_id: int) -> PixelEdit:
    """Give ``other_id``'s pixels to ``keep_id``, and fill the seam between them.

    Background pixels that touch both cells (the one-pixel gap a segmentation
    leaves between neighbours) join the merged cell, so it is one piece.
    """
    if keep_id == other_id or keep_id == 0 or other_id == 0:
        raise ValueError("merge needs two different cells")
    keep, other = labels == keep_id, labels == other_id
    if not keep.any() or not other.any():
        raise ValueError(f"cell {keep_id if not keep.any() else other_id} does not exist")
    seam = ndi.binary_dilation(keep) & ndi.binary_dilation(other) & (labels == 0)
    rows, cols = np.nonzero(other | seam)
    return PixelEdit(rows, cols, np.full(len(rows), keep_id, dtype=labels.dtype))


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


@dataclass
class CorrectionSummary:
    """How the user's labels differ from the model's prediction."""

    predicted: int
    kept: int
    deleted: int
    added: int
    edited: int
    accepted: int

    def as_dict(self) -> dict[str, int]:
        """Plain dict (for json exports)."""
        return dict(vars(self))


def correction_summary(
    labels: np.ndarray, predicted_ids: np.ndarray, statuses: dict[int, str]
) -> CorrectionSummary:
    """Count deleted, added, edited and accepted cells against the prediction.

    Parameters
    ----------
    labels : numpy.ndarray
        Current label image (any shape).
    predicted_ids : numpy.ndarray
        Ids the model predicted.
    statuses : dict
        Id -> status ("predicted", "edited", "added", "accepted").
    """
    present = set(np.unique(labels).tolist()) - {0}
    predicted = set(np.asarray(predicted_ids).tolist())
    values = [statuses.get(i, "added" if i not in predicted else "predicted") for i in present]
    return CorrectionSummary(
        predicted=len(predicted),
        kept=len(present & predicted),
        deleted=len(predicted - present),
        added=len(present - predicted),
        edited=sum(v == "edited" for v in values),
        accepted=sum(v == "accepted" for v in values),
    )
