"""A simulated annotator: what it costs to correct a predicted label image into the truth.

:func:`annotate` plays a careful person proofreading one frame who knows the
true cells. It keeps every predicted cell that matches a true cell at mask IoU
``>= iou`` (no action), then fixes the rest with the cheapest edits that
work, each tried on a copy and kept only when the true cell becomes matched
and no cell matched before loses its match:

1. **merge** (1 action each) predicted pieces that together make one true cell;
2. **split** (1 action) a predicted cell over two or more true cells along a
   straight cut (:func:`~napari_livecell.core.analysis.edit.split_cell`);
3. with a :class:`~napari_livecell.core.analysis.assist.CellAssistant` only:
   **add** by pointing at the true cell's most interior point (1), or, where a
   wrong cell lies there, **cycle** its alternatives (1 each, at most
   :data:`MAX_CYCLES`), then a **box** around the true cell (1). A failed try is
   taken back (an **undo**, 1 action, and a **delete** of a wrong cell it left);
4. **draw by hand** what is still missing (``hand_drawn``, with the true cell's
   perimeter; the brush paints over whatever was there);
5. **delete** (1 action each) every cell that matches no true cell.

The result is every true cell matched and nothing else, so the final mask
AP50 is 1.0 unless a true cell could not be reached at all; it is computed
with pycocotools as :func:`~napari_livecell.core.analysis.evaluate.evaluate`
does, as a check. :func:`pointing_recovery` measures the model's help on its
own: the share of missed true cells that one ``add_cell_at`` brings back.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi

from .edit import PixelEdit, merge_cells, split_cell
from .matching import match_cells

if TYPE_CHECKING:
    from .assist import CellAssistant

MAX_CYCLES = 3  # alternatives a person looks at before reaching for the box
BOX_MARGIN = 0.25  # of the true cell's size, on each side of the box drawn around it
ACTION_KINDS = ("delete", "merge", "split", "add", "cycle", "box", "undo")


@dataclass(frozen=True)
class AnnotationCost:
    """What correcting one frame cost.

    Attributes
    ----------
    actions : int
        Clicks and keys: delete, add-by-pointing, cycle, box, merge, split and
        undo count 1 each.
    hand_drawn : int
        Cells drawn with the brush (not counted in ``actions``).
    hand_perimeter : float
        Their total perimeter in pixels.
    ap50 : float
        Mask AP50 of ``final`` against the truth.
    by_kind : dict
        Actions per kind (every kind of :data:`ACTION_KINDS`, zeros included).
    final : numpy.ndarray
        The corrected labels.
    """

    actions: int
    hand_drawn: int
    hand_perimeter: float
    ap50: float
    by_kind: dict[str, int] = field(default_factory=dict)
    final: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int32), repr=False)


class _Session:
    """The labels being corrected, the true cells they match, and the actions taken."""

    def __init__(self, prediction: np.ndarray, truth: np.ndarray, iou: float) -> None:
        self.labels = np.array(prediction, dtype=np.int32, copy=True)
        self.truth = np.asarray(truth)
        self.iou = iou
        self.counts: Counter[str] = Counter()
        self.matched = self._matching(self.labels)

    def _matching(self, labels: np.ndarray) -> dict[int, int]:
        match = match_cells(self.truth, labels, self.iou)
        return dict(zip(match.reference_ids.tolist(), match.predicted_ids.tolist()))

    def next_id(self) -> int:
        return int(self.labels.max()) + 1

    def attempt(self, candidate: np.ndarray, true_id: int | None = None) -> bool:
        """Keep ``candidate`` if it matches ``true_id`` (or more cells) and loses no match."""
        matched = self._matching(candidate)
        kept = all(matched.get(t) is not None for t in self.matched)
        better = true_id in matched if true_id is not None else len(matched) > len(self.matched)
        if kept and better:
            self.labels, self.matched = candidate, matched
            return True
        return False

    def unmatched_predicted(self) -> set[int]:
        present = set(np.unique(self.labels[self.labels > 0]).tolist())
        return present - set(self.matched.values())


def applied(labels: np.ndarray, edit: PixelEdit) -> np.ndarray:
    """A copy of ``labels`` with ``edit`` applied."""
    out = labels.copy()
    out[edit.rows, edit.cols] = edit.values
    return out


def interior_point(mask: np.ndarray) -> tuple[int, int]:
    """The pixel of ``mask`` farthest from its outline (the image border counts as outline)."""
    distance = ndi.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    row, col = np.unravel_index(int(np.argmax(distance)), mask.shape)
    return int(row), int(col)


def pointing_place(mask: np.ndarray, labels: np.ndarray) -> tuple[tuple[int, int], bool]:
    """Where a person points to bring back a true cell, and whether that place is empty.

    The most interior point of the cell's unlabelled part when at least half of
    the cell is unlabelled (a person adds a cell by pointing at an empty place
    of it); else the most interior point of the whole cell, on the wrong cell
    that covers it.
    """
    empty = mask & (labels == 0)
    if 2 * np.count_nonzero(empty) >= np.count_nonzero(mask):
        return interior_point(empty), True
    return interior_point(mask), False


def _overlaps(session: _Session) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(true id, predicted id, shared pixels) of every overlapping pair, and the areas of both."""
    truth, labels = session.truth.ravel().astype(np.int64), session.labels.ravel().astype(np.int64)
    both = (truth > 0) & (labels > 0)
    stride = int(labels.max()) + 1
    pairs, shared = np.unique(truth[both] * stride + labels[both], return_counts=True)
    return pairs // stride, pairs % stride, shared, np.bincount(truth), np.bincount(labels)


def _merge_pieces(session: _Session) -> None:
    """Merge predicted pieces lying mostly inside one unmatched true cell until it matches."""
    true_ids, predicted_ids, shared, _, predicted_area = _overlaps(session)
    free = session.unmatched_predicted()
    for true_id in sorted(set(true_ids.tolist()) - set(session.matched)):
        pieces = [
            (int(count), int(p))
            for t, p, count in zip(true_ids, predicted_ids, shared)
            if t == true_id and p in free and 2 * count >= predicted_area[p]
        ]
        if len(pieces) < 2:
            continue
        pieces.sort(reverse=True)
        candidate, keep = session.labels, pieces[0][1]
        merges = 0
        for _, other in pieces[1:]:
            candidate = applied(candidate, merge_cells(candidate, keep, other))
            merges += 1
            if session.attempt(candidate, true_id):
                session.counts["merge"] += merges
                free -= {p for _, p in pieces}
                break


def _cut_lines(piece: np.ndarray, rest: np.ndarray, cell: np.ndarray) -> list[np.ndarray]:
    """Straight cuts a person would draw between ``piece`` and ``rest`` across ``cell``.

    First the line through the seam (pixels about as far from both sides),
    along its main direction; then the perpendicular bisector of the two sides'
    centres. Both run a little past the cell's bounding box.
    """
    rows, cols = np.nonzero(cell)
    span = float(np.hypot(np.ptp(rows), np.ptp(cols))) / 2 + 3
    lines = []
    seam = cell & (np.abs(ndi.distance_transform_edt(~piece) - ndi.distance_transform_edt(~rest)) <= 1.0)
    if seam.sum() >= 2:
        points = np.argwhere(seam).astype(float)
        centre = points.mean(axis=0)
        _, _, axes = np.linalg.svd(points - centre, full_matrices=False)
        lines.append(np.array([centre - span * axes[0], centre + span * axes[0]]))
    first, second = np.argwhere(piece).mean(axis=0), np.argwhere(rest).mean(axis=0)
    direction = np.array([second[1] - first[1], first[0] - second[0]])
    if np.hypot(*direction) > 0:
        direction /= np.hypot(*direction)
        centre = (first + second) / 2
        lines.append(np.array([centre - span * direction, centre + span * direction]))
    return lines


def _split_covers(session: _Session) -> None:
    """Cut predicted cells that cover two or more unmatched true cells, one cut per extra cell."""
    true_ids, predicted_ids, shared, true_area, _ = _overlaps(session)
    for cell_id in sorted(session.unmatched_predicted()):
        covered = [
            (int(count), int(t))
            for t, p, count in zip(true_ids, predicted_ids, shared)
            if p == cell_id and t not in session.matched and 2 * count >= true_area[t]
        ]
        covered.sort(reverse=True)
        current = cell_id
        for index, (_, true_id) in enumerate(covered[:-1]):
            cell = session.labels == current
            piece = cell & (session.truth == true_id)
            rest = cell & np.isin(session.truth, [t for _, t in covered[index + 1 :]])
            done = False
            for line in _cut_lines(piece, rest, cell):
                try:
                    edit, cut_id, new_id = split_cell(session.labels, line, session.next_id())
                except ValueError:
                    continue
                if cut_id != current:
                    continue
                candidate = applied(session.labels, edit)
                if session.attempt(candidate, true_id):
                    session.counts["split"] += 1
                    # cut the next cell from the piece that holds the rest of the true cells
                    holds_rest = (candidate[rest] == cut_id).sum() >= (candidate[rest] == new_id).sum()
                    current = cut_id if holds_rest else new_id
                    done = True
                    break
            if not done:
                break


def _box_around(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(mask)
    height, width = mask.shape
    pad_r = max(4, round(BOX_MARGIN * (np.ptp(rows) + 1)))
    pad_c = max(4, round(BOX_MARGIN * (np.ptp(cols) + 1)))
    return (
        max(int(rows.min()) - pad_r, 0),
        max(int(cols.min()) - pad_c, 0),
        min(int(rows.max()) + pad_r + 1, height),
        min(int(cols.max()) + pad_c + 1, width),
    )


def _assist(session: _Session, assistant: CellAssistant, true_id: int) -> bool:
    """Bring back one unmatched true cell with the model's help; the failed tries are taken back."""
    mask = session.truth == true_id
    point, _ = pointing_place(mask, session.labels)
    under = int(session.labels[point])
    if under and under in session.matched.values():
        return False  # a right cell of another true cell: nothing to point at
    if not under:
        # cells that match nothing but lie on this one: deleted now rather than at the end
        for other in sorted(set(np.unique(session.labels[mask]).tolist()) & session.unmatched_predicted()):
            session.labels = np.where(session.labels == other, 0, session.labels).astype(np.int32)
            session.counts["delete"] += 1
    before = session.labels
    spent: Counter[str] = Counter()
    left_a_cell = False
    if not under:
        result = assistant.add_cell_at(session.labels, point, session.next_id())
        if result is not None:
            spent["add"] += 1
            left_a_cell = True
            if session.attempt(applied(session.labels, result.edit), true_id):
                session.counts.update(spent)
                return True
            session.labels = applied(session.labels, result.edit)
    if under or left_a_cell:
        for _ in range(MAX_CYCLES):
            result = assistant.next_candidate_at(session.labels, point, session.next_id())
            if result is None:
                break
            spent["cycle"] += 1
            left_a_cell = True
            candidate = applied(session.labels, result.edit)
            if session.attempt(candidate, true_id):
                session.counts.update(spent)
                return True
            session.labels = candidate
    result = assistant.resegment_box(session.labels, _box_around(mask), session.next_id())
    if result is not None:
        spent["box"] += 1
        if session.attempt(applied(session.labels, result.edit), true_id):
            session.counts.update(spent)
            return True
        spent["undo"] += 1
    if left_a_cell and not under:
        # the wrong candidate the tries left (one that replaced a wrong cell is deleted with the rest)
        spent["delete"] += 1
    session.labels = before
    session.counts.update(spent)
    return False


def _draw_by_hand(session: _Session, true_id: int) -> float:
    """Paint the true cell with the brush over whatever is there; its perimeter in pixels."""
    from skimage.measure import perimeter

    mask = session.truth == true_id
    session.labels[mask] = session.next_id()
    box = ndi.find_objects(mask.astype(np.int8))[0]
    return float(perimeter(np.pad(mask[box], 1)))


def _delete_unmatched(session: _Session) -> None:
    session.matched = session._matching(session.labels)
    for cell_id in sorted(session.unmatched_predicted()):
        session.labels[session.labels == cell_id] = 0
        session.counts["delete"] += 1


def mask_ap50(labels: np.ndarray, truth: np.ndarray) -> float:
    """Mask AP50 of a label image against the true one, by pycocotools (every cell scored 1).

    Returns 1.0 when both hold no cell and 0.0 when only the truth is empty of cells.
    """
    from napari_livecell.core.formats.coco import encode_rle_in_box

    from .evaluate import evaluate

    def annotations(image: np.ndarray, scored: bool) -> list[dict]:
        out = []
        for index, box in enumerate(ndi.find_objects(image)):
            if box is None:
                continue
            local = image[box] == index + 1
            rows, cols = box
            out.append(
                {
                    "id": len(out) + 1,
                    "image_id": 1,
                    "category_id": 1,
                    "segmentation": encode_rle_in_box(local, rows.start, cols.start, image.shape),
                    "area": float(local.sum()),
                    "bbox": [cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start],
                    **({"score": 1.0} if scored else {}),
                }
            )
        return out

    labels, truth = np.asarray(labels), np.asarray(truth)
    truth_annotations = annotations(truth, scored=False)
    if not truth_annotations:
        return 1.0 if not labels.any() else 0.0
    height, width = truth.shape
    ground = {
        "images": [{"id": 1, "file_name": "frame", "height": height, "width": width}],
        "annotations": truth_annotations,
        "categories": [{"id": 1, "name": "cell"}],
    }
    return float(evaluate(ground, annotations(labels, scored=True))["segm"]["AP50"])


def annotate(
    prediction: np.ndarray, truth: np.ndarray, assistant: CellAssistant | None = None, iou: float = 0.7
) -> AnnotationCost:
    """Correct ``prediction`` until every true cell is matched at IoU >= ``iou``; count the cost.

    Parameters
    ----------
    prediction, truth : numpy.ndarray
        ``(H, W)`` label images (0 is background).
    assistant : CellAssistant, optional
        The model's help on this frame; ``None`` is brush-only correction
        (delete, merge, split and drawing by hand).
    iou : float
        Mask IoU at which a cell counts as right.

    Returns
    -------
    AnnotationCost
        Actions, cells drawn by hand, the final labels and their mask AP50.

    Raises
    ------
    ValueError
        Label images of different shapes, or not 2-D.
    """
    prediction, truth = np.asarray(prediction), np.asarray(truth)
    if prediction.ndim != 2 or prediction.shape != truth.shape:
        raise ValueError(f"need two 2-D label images of one shape, got {prediction.shape} and {truth.shape}")
    session = _Session(prediction, truth, iou)
    _merge_pieces(session)
    _split_covers(session)
    true_cells = sorted(set(np.unique(truth[truth > 0]).tolist()))
    if assistant is not None:
        for true_id in true_cells:
            if true_id not in session.matched:
                _assist(session, assistant, true_id)
    hand_drawn, perimeter = 0, 0.0
    for true_id in true_cells:
        if true_id not in session.matched:
            perimeter += _draw_by_hand(session, true_id)
            hand_drawn += 1
    _delete_unmatched(session)
    by_kind = {kind: int(session.counts[kind]) for kind in ACTION_KINDS}
    return AnnotationCost(
        actions=sum(by_kind.values()),
        hand_drawn=hand_drawn,
        hand_perimeter=perimeter,
        ap50=mask_ap50(session.labels, truth),
        by_kind=by_kind,
        final=session.labels,
    )


def missed_cells(prediction: np.ndarray, truth: np.ndarray) -> list[int]:
    """True cells no predicted cell matches at IoU >= 0.5 (misses in AP50's sense)."""
    match = match_cells(truth, prediction, 0.5)
    return sorted(set(np.unique(truth[truth > 0]).tolist()) - set(match.reference_ids.tolist()))


def pointing_recovery(
    prediction: np.ndarray, truth: np.ndarray, assistant: CellAssistant, iou: float = 0.7
) -> tuple[int, int, int]:
    """How many missed true cells one ``add_cell_at`` at an interior point brings back.

    Each missed cell (:func:`missed_cells`) is tried on its own, on the
    prediction as it is, at :func:`pointing_place`: the added cell must match
    the true cell at mask IoU ``>= iou``. A missed cell mostly covered by a
    wrong predicted cell (a merge, a wrong outline) has no empty place to point
    at and counts as not brought back.

    Returns
    -------
    recovered, empty, missed : int
        Cells brought back, missed cells with an empty place to point at, missed cells.
    """
    missed = missed_cells(prediction, truth)
    labels = np.asarray(prediction)
    new_id = int(labels.max()) + 1
    recovered = empty = 0
    for true_id in missed:
        mask = truth == true_id
        point, is_empty = pointing_place(mask, labels)
        if not is_empty:
            continue
        empty += 1
        result = assistant.add_cell_at(labels, point, new_id)
        if result is None:
            continue
        added = applied(labels, result.edit) == result.cell
        recovered += (added & mask).sum() >= iou * (added | mask).sum()
    return int(recovered), empty, len(missed)
