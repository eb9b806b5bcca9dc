"""The model's help in proofreading: add a missed cell, swap a wrong one, re-segment a box.

The network has usually seen the cells a run missed: they sit among its
candidates below the confidence threshold, or show at a larger scale. A
:class:`CellAssistant` runs the same model, through the same frame recipe
(8-bit conversion, polarity, pixel size), on a window around the place a
person points at, keeps every candidate with its own mask
(:mod:`napari_livecell.core.inference.candidates`), and turns the one that
fits into a :class:`~.edit.PixelEdit` the napari glue applies as one undoable
step. No second model: the candidates are the segmenting model's own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from napari_livecell.core.inference.candidates import Candidate, network_side, window_candidates, window_input
from napari_livecell.core.inference.frame_input import Polarity, uint8_scale
from napari_livecell.core.inference.recipe import FrameRecipe

from .edit import PixelEdit

WINDOW = 256  # network pixels around the point: ~25 cells, ~25 ms on a CPU
UPSCALE = 2.0  # a box of small cells is re-segmented at twice the size
LOOKS = (1.0, 1.5, 2.0)  # a place is looked at as the run saw it and upscaled: small, dim cells show
MIN_SCORE = 0.08  # below it the network's candidates on empty dish are noise
MIN_SCORE_ALONE = 0.25  # the same in a frame with no cell to compare sizes with
SIZE_RANGE = (0.1, 5.0)  # an added cell's area against the frame's median cell
LARGE = 3.0  # of the median area: a candidate this large comes after the others
MIN_PIXELS = 12  # never a cell smaller than this, whatever the frame's cells
SMALL_CELL = 150  # model pixels: a box whose cells are smaller is re-segmented upscaled
MAX_ALTERNATIVES = 8


@dataclass(frozen=True)
class AssistEdit:
    """One proofreading step the model proposed, ready to apply.

    Attributes
    ----------
    edit : PixelEdit
        The pixels of the 2-D plane to set.
    cell : int
        The id added or replacing (0 when the edit only removes).
    score : float
        The candidate's network score (nan for a removal or a restored cell).
    message : str
        One line for the status bar.
    scores : dict
        Every new or replacing id -> its network score (nan: a cell restored as it was).
    """

    edit: PixelEdit
    cell: int
    score: float
    message: str
    scores: dict[int, float] = field(default_factory=dict)


@dataclass
class _Cycle:
    """The alternatives of one place, the one shown, and what the labels there looked like."""

    box: tuple[int, int, int, int]
    original: np.ndarray  # labels of the box when the cycle began
    alternatives: list[tuple[tuple[Candidate, ...], frozenset[int]]]  # masks, cells they replace
    cell: int
    index: int = -1
    shown: np.ndarray | None = None  # labels of the box after the last step
    place: np.ndarray | None = None  # pixels of the box any alternative (or the original) covers


class CellAssistant:
    """The model's help on one 2-D frame: candidates below the confidence threshold, other scales.

    Parameters
    ----------
    image : numpy.ndarray
        The 2-D (or ``(H, W, 3)``) frame as shown.
    recipe : FrameRecipe
        The Segment dock's model, settings and pixel size.
    cell_areas : numpy.ndarray, optional
        The frame's cell areas in pixels (the size check); measured from the labels when omitted.

    Attributes
    ----------
    reason : str
        Why the last call returned ``None``, one line.
    """

    def __init__(self, image: np.ndarray, recipe: FrameRecipe, cell_areas: np.ndarray | None = None) -> None:
        self.image = np.asarray(image)
        if self.image.ndim not in (2, 3):
            raise ValueError(f"the model's help works on one 2-D frame, got shape {self.image.shape}")
        self.recipe = recipe
        self.cell_areas = None if cell_areas is None else np.asarray(cell_areas, float)
        self._scale = uint8_scale(self.image)
        self._polarity = recipe.polarity(self.image)
        self._zoom = recipe.resampling.zoom if recipe.resampling.applied else 1.0
        self._cache: dict[tuple, list[Candidate]] = {}
        self._cycle: _Cycle | None = None
        self.reason = ""

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` of the frame."""
        return self.image.shape[0], self.image.shape[1]

    # candidates --------------------------------------------------------------------------------

    def window(self, point: tuple[float, float], upscale: float = 1.0) -> tuple[int, int, int, int]:
        """The frame window whose candidates answer for ``point``: ``(row0, col0, row1, col1)``."""
        zoom = self._zoom * upscale
        side = max(8, math.floor(network_side(self.recipe.model, self.recipe.settings, WINDOW) / zoom))
        step = max(8, side // 8)  # nearby points share a window, and its candidates
        box = []
        for axis, length in enumerate(self.shape):
            centre = round(point[axis] / step) * step
            start = min(max(0, centre - side // 2), max(0, length - side))
            box.append((start, min(length, start + side)))
        return box[0][0], box[1][0], box[0][1], box[1][1]

    def candidates_at(self, point: tuple[float, float], upscale: float = 1.0) -> list[Candidate]:
        """The network's candidates in the window around ``point`` (cached per window), best first."""
        box = self.window(point, upscale)
        key = (box, upscale)
        if key not in self._cache:
            self._cache[key] = window_candidates(
                self.image, box, self.recipe.model, self.recipe.settings, self._scale,
                self._polarity.inverted, self._zoom * upscale,
            )  # fmt: skip
        return self._cache[key]

    def size_range(self, labels: np.ndarray) -> tuple[float, float]:
        """Smallest and largest area (pixels) a cell added to ``labels`` may have."""
        areas = self.cell_areas
        if areas is None or not len(areas):
            counts = np.bincount(np.asarray(labels).ravel().astype(np.int64))[1:]
            areas = counts[counts > 0]
        if not len(areas):
            return float(MIN_PIXELS), float(labels.size) / 4
        median = float(np.median(areas))
        return max(float(MIN_PIXELS), SIZE_RANGE[0] * median), SIZE_RANGE[1] * median

    # add ---------------------------------------------------------------------------------------

    def add_cell_at(self, labels: np.ndarray, point: tuple[float, float], new_id: int) -> AssistEdit | None:
        """The best candidate containing ``point``, clipped to unlabelled pixels, as cell ``new_id``.

        The candidates come from the window as the run saw it and upscaled
        (:data:`LOOKS`: small, dim cells and cells at the frame's edge show
        better there). Among those that contain the point and pass the size
        check, the one that overlaps existing cells least (in steps of a third
        of its area), then one not over :data:`LARGE` times the median cell
        (two cells as one), then the best of score x (area / median area) ^
        0.75 (of a cell's candidates, pieces score about as well as the whole)
        x exp(-0.5 x its centre's distance from the point / sqrt(area)), an
        upscaled look's candidates larger than the median cell at half their
        score (of a large cell it proposes pieces). ``None`` (and
        :attr:`reason`) when nothing fits: no change then.
        """
        row, col = self._pixel(labels, point)
        if row is None:
            return None
        if labels[row, col]:
            self.reason = (
                f"cell {int(labels[row, col])} is there already: point at an empty place to add a cell"
            )
            return None
        smallest, largest = self.size_range(labels)
        median = largest / SIZE_RANGE[1]
        # with no cell in the frame to compare sizes with, only a fairly sure candidate is a cell
        least = MIN_SCORE if np.any(labels) or self.cell_areas is not None else MIN_SCORE_ALONE
        best = None
        for upscale in LOOKS:
            for candidate in self.candidates_at((row, col), upscale):
                if candidate.score < least or not candidate.contains(row, col):
                    continue
                r0, c0, r1, c1 = candidate.box
                free = labels[r0:r1, c0:c1] == 0
                overlap = 1.0 - np.count_nonzero(free & candidate.mask) / candidate.area
                clipped = _piece_at(candidate.mask & free, row - r0, col - c0)
                area = int(np.count_nonzero(clipped))
                # a cell cut by the frame's edge may be any part of one
                at_edge = min(r0, c0) == 0 or r1 == self.shape[0] or c1 == self.shape[1]
                if not (smallest / 2 if at_edge else smallest) <= area <= largest:
                    continue
                key = _add_key(candidate.score, clipped, overlap, median, upscale, (row - r0, col - c0))
                if best is None or key < best[0]:
                    best = (key, candidate, clipped, upscale)
        if best is None:
            self.reason = f"no cell candidate of a plausible size at ({row}, {col}): draw it by hand"
            return None
        _, candidate, clipped, upscale = best
        rows, cols = np.nonzero(clipped)
        edit = PixelEdit(rows + candidate.row, cols + candidate.col, np.full(len(rows), new_id, labels.dtype))
        where = "" if upscale == 1.0 else f", seen at {upscale:g}x"
        message = f"added cell {new_id} (score {candidate.score:.2f}{where})"
        return AssistEdit(edit, int(new_id), candidate.score, message, {int(new_id): candidate.score})

    def _pixel(self, labels: np.ndarray, point: tuple[float, float]) -> tuple[int | None, int]:
        if np.asarray(labels).shape != self.shape:
            raise ValueError(f"labels {np.asarray(labels).shape} and frame {self.shape} differ in shape")
        row, col = round(float(point[0])), round(float(point[1]))
        if not (0 <= row < self.shape[0] and 0 <= col < self.shape[1]):
            self.reason = f"({row}, {col}) is outside the frame"
            return None, 0
        return row, col

    # cycle -------------------------------------------------------------------------------------

    def next_candidate_at(
        self, labels: np.ndarray, point: tuple[float, float], new_id: int
    ) -> AssistEdit | None:
        """Replace the cell(s) at ``point`` with the model's next alternative there; repeated calls cycle.

        The alternatives are the candidates over the cell: another outline,
        one candidate over it and its neighbour (the merged version), two
        candidates that share it (the split version); best fit first, and the
        place as it was last. The cycle goes on while the labels of the place
        are what its last step left.
        """
        row, col = self._pixel(labels, point)
        if row is None:
            return None
        cycle = self._cycle
        if cycle is None or not _continues(cycle, labels, row, col):
            cell = int(labels[row, col])
            if cell == 0:
                self.reason = "no cell there to replace: add one instead"
                return None
            cycle = self._start_cycle(labels, row, col, cell)
            if cycle is None:
                self.reason = f"the model proposes nothing else for cell {cell}"
                return None
            self._cycle = cycle
        cycle.index = (cycle.index + 1) % len(cycle.alternatives)
        masks, replaced = cycle.alternatives[cycle.index]
        r0, c0, r1, c1 = cycle.box
        target = cycle.original.copy()
        target[np.isin(target, list(replaced))] = 0
        scores: dict[int, float] = {}
        next_new = int(new_id)
        for number, candidate in enumerate(masks):
            if np.isnan(candidate.score) and candidate.row < 0:
                ident = -candidate.row  # a cell of the original, restored with its id
            elif number == 0:
                ident = cycle.cell
            else:
                ident, next_new = next_new, next_new + 1
            local = _local(candidate, cycle.box) & (target == 0)
            target[local] = ident
            scores[ident] = candidate.score
        current = labels[r0:r1, c0:c1]
        changed = np.nonzero(current != target)
        edit = PixelEdit(changed[0] + r0, changed[1] + c0, target[changed].astype(labels.dtype))
        cycle.shown = target
        first = next(iter(scores))
        last = cycle.index == len(cycle.alternatives) - 1
        what = "as it was" if last else f"{len(masks)} cell(s), score {np.nanmean(list(scores.values())):.2f}"
        message = f"alternative {cycle.index + 1} of {len(cycle.alternatives)}: {what}"
        return AssistEdit(edit, first, scores[first], message, scores)

    def _start_cycle(self, labels: np.ndarray, row: int, col: int, cell: int) -> _Cycle | None:
        smallest, largest = self.size_range(labels)
        candidates = self.candidates_at((row, col))
        box = self.window((row, col))
        r0, c0, r1, c1 = box
        local = labels[r0:r1, c0:c1]
        ids, areas = np.unique(local, return_counts=True)
        area_of = dict(zip(ids.tolist(), areas.tolist()))
        current = local == cell
        near = []
        for candidate in candidates:
            if candidate.score < MIN_SCORE or not smallest <= candidate.area <= largest:
                continue
            mask = _local(candidate, box)
            inside = np.count_nonzero(mask & current) / candidate.area
            if candidate.contains(row, col) or inside >= 0.5:
                near.append((candidate, mask, inside))
            if len(near) == 12:
                break
        options: list[tuple[float, tuple[Candidate, ...], frozenset[int]]] = []
        groups = [[item] for item in near if item[0].contains(row, col)]
        for i, a in enumerate(near):
            for b in near[i + 1 :]:
                shared = np.count_nonzero(a[1] & b[1]) / min(a[0].area, b[0].area)
                if (
                    shared <= 0.2
                    and min(a[2], b[2]) >= 0.5
                    and (a[0].contains(row, col) or b[0].contains(row, col))
                ):
                    groups.append([a, b] if a[0].contains(row, col) else [b, a])
        seen: list[np.ndarray] = []
        for group in groups:
            union = np.logical_or.reduce([mask for _, mask, _ in group])
            covered = np.bincount(local[union].astype(np.int64), minlength=int(local.max()) + 1)
            replaced = {cell} | {
                int(d) for d in np.flatnonzero(covered) if d and covered[d] * 2 >= area_of[d]
            }
            region = np.isin(local, list(replaced))
            fit = np.count_nonzero(region & union) / np.count_nonzero(region | union)
            same = len(group) == len(replaced) and all(
                _iou(mask, local == int(np.bincount(local[mask]).argmax())) >= 0.9 for _, mask, _ in group
            )
            if same or any(_iou(union, other) >= 0.95 for other in seen):
                continue
            seen.append(union)
            score = float(np.mean([c.score for c, _, _ in group]))
            options.append((-fit * (0.25 + score), tuple(c for c, _, _ in group), frozenset(replaced)))
        if not options:
            return None
        options.sort(key=lambda option: option[0])
        alternatives = [(masks, replaced) for _, masks, replaced in options[:MAX_ALTERNATIVES]]
        everything = frozenset().union(*(replaced for _, replaced in alternatives))
        original = tuple(
            Candidate(math.nan, -ident, 0, local == ident)
            for ident in sorted(everything, key=lambda d: d != cell)
        )
        alternatives.append((original, everything))
        place = np.isin(local, list(everything))
        for masks, _ in alternatives[:-1]:
            for candidate in masks:
                place |= _local(candidate, box)
        return _Cycle(box, local.copy(), alternatives, cell, shown=local.copy(), place=place)

    # box ---------------------------------------------------------------------------------------

    def resegment_box(
        self, labels: np.ndarray, box: tuple[int, int, int, int], first_new_id: int
    ) -> AssistEdit | None:
        """Cells mostly inside ``box`` replaced by the model's cells there (upscaled when cells are small).

        ``box`` is ``(row0, col0, row1, col1)``, half-open. The model runs on
        the box and a margin (so that cells on its edge are whole) with the
        run's confidence; its cells with their centre in the box are painted
        on the pixels that no remaining cell holds.
        """
        from napari_livecell.core.inference.pixel_size import labels_to_grid
        from napari_livecell.core.inference.predict import segment_frame

        height, width = self.shape
        r0, c0 = max(0, int(box[0])), max(0, int(box[1]))
        r1, c1 = min(height, int(box[2])), min(width, int(box[3]))
        if r1 - r0 < 4 or c1 - c0 < 4:
            self.reason = "draw a box of at least 4 x 4 pixels over the frame"
            return None
        smallest, _ = self.size_range(labels)
        median = smallest / SIZE_RANGE[0]
        upscale = UPSCALE if median * self._zoom**2 < SMALL_CELL else 1.0
        margin = max(8, round(2 * math.sqrt(median)))
        outer = (max(0, r0 - margin), max(0, c0 - margin), min(height, r1 + margin), min(width, c1 + margin))
        zoom = self._zoom * upscale
        image = window_input(self.image, outer, self._scale, self._polarity.inverted, zoom)
        model = self.recipe.model
        as_is = Polarity(model.modality, model.modality)  # the window is inverted already where needed
        found = segment_frame(image, model, self.recipe.settings, self.recipe.tile, as_is)
        shape = (outer[2] - outer[0], outer[3] - outer[1])
        new = labels_to_grid(found.labels, shape) if found.labels.shape != shape else found.labels
        inner = (slice(r0 - outer[0], r1 - outer[0]), slice(c0 - outer[1], c1 - outer[1]))
        local = labels[outer[0] : outer[2], outer[1] : outer[3]]
        inside = np.zeros(shape, bool)
        inside[inner] = True
        ids, areas = np.unique(local, return_counts=True)
        held = np.bincount(local[inside].astype(np.int64), minlength=int(local.max()) + 1)
        replaced = [int(d) for d, a in zip(ids, areas) if d and held[d] * 2 >= a]
        target = local.copy()
        target[np.isin(target, replaced)] = 0
        scores: dict[int, float] = {}
        ident = int(first_new_id)
        for label, score in zip(range(1, int(new.max()) + 1), found.scores):
            rows, cols = np.nonzero(new == label)
            if not len(rows) or not inside[round(rows.mean()), round(cols.mean())]:
                continue
            paint = (new == label) & (target == 0)
            if np.count_nonzero(paint) < MIN_PIXELS:
                continue
            target[paint] = ident
            scores[ident] = float(score)
            ident += 1
        changed = np.nonzero(local != target)
        if not len(changed[0]):
            self.reason = "the model finds the same cells in this box"
            return None
        edit = PixelEdit(changed[0] + outer[0], changed[1] + outer[1], target[changed].astype(labels.dtype))
        first = next(iter(scores), 0)
        message = f"box: {len(replaced)} cell(s) replaced by the model's {len(scores)}"
        if upscale != 1.0:
            message += f" (seen at {upscale:g}x)"
        return AssistEdit(edit, first, scores.get(first, math.nan), message, scores)


def _add_key(
    score: float,
    clipped: np.ndarray,
    overlap: float,
    median: float,
    upscale: float,
    point: tuple[int, int],
) -> tuple[int, bool, float]:
    """Sort key of one candidate for :meth:`CellAssistant.add_cell_at` (smallest first).

    ``clipped`` is the candidate's piece at ``point`` (both in the candidate's
    box) after clipping to unlabelled pixels. Measured on held-out synthetic
    frames (seeds 32000-32022 of ``benchmarks/bench_annotator.py``, both
    confidences): of a missed cell's candidates the pieces score about as well
    as the whole, so size weighs with an exponent of 0.75 (0.25 picked a piece
    too often), and a candidate centred away from the point (its centre half
    its diameter off costs 30 % of its merit) is more often a neighbour's or
    a piece.
    """
    area = int(np.count_nonzero(clipped))
    rows, cols = np.nonzero(clipped)
    off = math.hypot(rows.mean() - point[0], cols.mean() - point[1]) / math.sqrt(area)
    trust = 1.0 if upscale == 1.0 or area <= median else 0.5
    merit = score * (area / median) ** 0.75 * trust * math.exp(-0.5 * off)
    return (math.floor(overlap * 3), area > LARGE * median, -merit)


def _local(candidate: Candidate, box: tuple[int, int, int, int]) -> np.ndarray:
    """A candidate's mask on the grid of ``box`` (cut to it)."""
    r0, c0, r1, c1 = box
    out = np.zeros((r1 - r0, c1 - c0), bool)
    top, left = candidate.row - r0, candidate.col - c0
    if candidate.row < 0:  # a restored original cell: its mask is the box's already
        return candidate.mask.copy()
    mask = candidate.mask
    rs, cs = max(0, -top), max(0, -left)
    re, ce = min(mask.shape[0], out.shape[0] - top), min(mask.shape[1], out.shape[1] - left)
    if re > rs and ce > cs:
        out[top + rs : top + re, left + cs : left + ce] = mask[rs:re, cs:ce]
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


def _piece_at(mask: np.ndarray, row: int, col: int) -> np.ndarray:
    """The connected piece of ``mask`` that holds ``(row, col)`` (empty when the point is not in it)."""
    if not mask[row, col]:
        return np.zeros_like(mask)
    pieces, _ = ndi.label(mask)
    return pieces == pieces[row, col]


def _continues(cycle: _Cycle, labels: np.ndarray, row: int, col: int) -> bool:
    """Whether the point lies in the cycle's place and the labels there are what its last step left."""
    r0, c0, r1, c1 = cycle.box
    if not (r0 <= row < r1 and c0 <= col < c1) or cycle.shown is None or cycle.place is None:
        return False
    if not cycle.place[row - r0, col - c0]:
        return False
    here = labels[r0:r1, c0:c1]
    return (
        here.shape == cycle.shown.shape and bool(np.array_equal(here, cycle.shown)) and bool(labels[row, col])
    )
