"""Instance masks from YOLO-seg prototypes, computed box by box at image size.

The row and column resampling that Ultralytics' ``retina_masks`` applies to
the whole prototype stack is separable, so it is expressed as two small
matrices and applied inside each box only. The masks equal Ultralytics' own
while memory stays at one label image, never cells x height x width floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType

import numpy as np

from napari_livecell.core._compiled import kernels
from napari_livecell.core._threads import balanced_id, in_two_threads

# from this many mask pixels in a window, two threads decode them (a thread hand-off costs ~0.1 ms)
PARALLEL_PIXELS = 50_000
PARALLEL_CELLS = 200  # the same for the pieces of cells


def _resize_matrix(n_in: int, n_out: int, scale: float | None = None) -> np.ndarray:
    """``(n_out, n_in)`` matrix of PyTorch's 1-D bilinear resize (align_corners=False)."""
    ratio = 1.0 / scale if scale else n_in / n_out
    source = np.clip((np.arange(n_out) + 0.5) * ratio - 0.5, 0, None)
    lower = np.minimum(np.floor(source).astype(int), n_in - 1)
    upper = np.minimum(lower + 1, n_in - 1)
    weight = source - lower
    matrix = np.zeros((n_out, n_in), dtype=np.float32)
    rows = np.arange(n_out)
    np.add.at(matrix, (rows, lower), 1 - weight)
    np.add.at(matrix, (rows, upper), weight)
    return matrix


def proto_to_image_matrices(
    proto_shape: tuple[int, int], image_shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Row and column maps from prototype grid to image pixels.

    They reproduce Ultralytics' ``process_mask_native``: an integer upsampling
    that lets the letterbox padding be cropped on whole pixels, the crop, then
    a bilinear resize to the image size.

    Returns
    -------
    tuple of numpy.ndarray
        ``(H, mh)`` and ``(W, mw)`` float32 matrices.
    """
    mh, mw = proto_shape
    h, w = image_shape
    gain = min(4 * mh / h, 4 * mw / w)
    pad = (4 * mh - max(round(h * gain), 1)) | (4 * mw - max(round(w * gain), 1))
    factor = 4 // math.gcd(4, pad | pad // 2)
    up_h, up_w = mh * factor, mw * factor
    gain = min(up_h / h, up_w / w)
    pad_w = (up_w - max(round(w * gain), 1)) / 2
    pad_h = (up_h - max(round(h * gain), 1)) / 2
    top, left = round(pad_h - 0.1), round(pad_w - 0.1)
    bottom, right = top + max(round(h * gain), 1), left + max(round(w * gain), 1)
    rows = _resize_matrix(bottom - top, h) @ _resize_matrix(mh, up_h, factor)[top:bottom]
    cols = _resize_matrix(right - left, w) @ _resize_matrix(mw, up_w, factor)[left:right]
    return rows, cols


@lru_cache(maxsize=16)
def _proto_maps(proto_shape: tuple[int, int], image_shape: tuple[int, int]):
    """Resampling matrices and their non-zero column spans, cached per shape pair."""
    row_map, col_map = proto_to_image_matrices(proto_shape, image_shape)
    return row_map, col_map, _support(row_map), _support(col_map)


@lru_cache(maxsize=16)
def _column_taps(proto_shape: tuple[int, int], image_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Each image column's prototype columns and weights: its non-zero span, padded with zero weights.

    ``(W, K)`` indices and ``(W, K)`` float32 weights, ``K`` the widest span
    (2 for YOLO-seg's 4x prototypes), so that the compiled resampling runs a
    fixed loop per pixel; padding taps repeat the span's first column.
    """
    _, col_map, _, (first, last) = _proto_maps(proto_shape, image_shape)
    n_taps = int((last - first).max())
    taps = np.minimum(first[:, None] + np.arange(n_taps), last[:, None] - 1)
    inside = first[:, None] + np.arange(n_taps) < last[:, None]
    weights = np.where(inside, np.take_along_axis(col_map, taps, axis=1), 0).astype(np.float32)
    taps = np.where(inside, taps, first[:, None])
    return np.ascontiguousarray(taps, dtype=np.int64), np.ascontiguousarray(weights)


def _support(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    nonzero = matrix != 0
    first = nonzero.argmax(axis=1)
    last = matrix.shape[1] - 1 - nonzero[:, ::-1].argmax(axis=1)
    return first, last + 1


def compiled() -> ModuleType:
    """The mask kernels (:mod:`._mask_kernels`), loaded on first use (:func:`.._compiled.kernels`)."""
    return kernels("inference._mask_kernels")


def compiled_nms() -> ModuleType:
    """The kernels of :func:`non_max_suppression` (:mod:`._nms_kernels`), loaded on first use."""
    return kernels("inference._nms_kernels")


def non_max_suppression(
    prediction: np.ndarray,
    n_classes: int,
    conf: float,
    iou: float,
    max_det: int,
    agnostic: bool = False,
) -> np.ndarray | None:
    """Ultralytics' ``non_max_suppression`` for one image, in numpy and numba, with the same result.

    The same float32 arithmetic in the same order (box corners, class
    offsets, IoU) and torchvision's stable descending sort give the same rows
    in the same order; ~20-50x faster on a CPU for hundreds of cells.

    Parameters
    ----------
    prediction : numpy.ndarray
        ``(4 + n_classes + n_extra, anchors)`` float32 network output: ``xywh``
        boxes, class scores, mask coefficients.
    n_classes : int
        Number of classes.
    conf, iou : float
        Confidence threshold and NMS IoU threshold.
    max_det : int
        Most detections kept.
    agnostic : bool
        Class-agnostic NMS.

    Returns
    -------
    numpy.ndarray or None
        ``(N, 6 + n_extra)`` rows ``x1, y1, x2, y2, score, class, extra...``
        in descending score; ``None`` when more candidates pass ``conf`` than
        Ultralytics' ``max_nms`` (30000), which it would cut by an unstable
        sort: the caller then runs Ultralytics' own.
    """
    prediction = np.ascontiguousarray(prediction, dtype=np.float32)
    # numpy compares float32 scores with a Python float in float32 (NEP 50), as does torch
    rows = compiled_nms().candidate_rows(prediction, n_classes, np.float32(conf))
    if len(rows) > 30000:
        return None
    offset = rows[:, 5:6] * np.float32(0 if agnostic else 7680)  # Ultralytics' max_wh
    order = compiled_nms().descending_order(np.ascontiguousarray(rows[:, 4]))  # torchvision's stable sort
    keep = compiled_nms().nms(np.ascontiguousarray(rows[:, :4] + offset), order, float(iou))
    return rows[keep[:max_det]]


@dataclass
class RawInstances:
    """Network output after NMS, before masks: boxes in image pixels."""

    boxes: np.ndarray  # (N, 4) xyxy
    scores: np.ndarray  # (N,)
    classes: np.ndarray  # (N,)
    coefficients: np.ndarray  # (N, C)
    protos: np.ndarray  # (C, mh, mw)


class MaskPainter:
    """Paint box-sized masks into one label image as they come, the higher score on top.

    A pixel ends with the highest-scoring mask that covers it (of equal
    scores, the later one): the result of painting every mask in ascending
    order of score, with no list of all the frame's masks kept until the end.
    A tiled frame is painted tile by tile, so its memory is the label image
    plus one tile's masks, whatever its size.

    Parameters
    ----------
    image_shape : tuple of int
        ``(H, W)`` of the label image.
    """

    def __init__(self, image_shape: tuple[int, int]) -> None:
        # zeroed when first painted, by the threads that paint it, each its own band: zeroed here,
        # before the forward pass, its lines had left the caches, and every painted run of a
        # cell then waited on memory (~0.4 ms a frame of ~500 cells: benchmarks/README.md)
        self._labels = np.empty(image_shape, dtype=np.int32)
        self._blank = True
        self._count = 0
        # score of label id i at [i]; id 0 (background) loses to every cell
        self._scores = np.full(1024, -np.inf)
        self._classes = np.zeros(1024, dtype=np.int32)
        # a box of the label image holding every pixel id i may have: first row, row end, first
        # column, column end (first row -1: none), so that finish() needs no search for them
        self._painted = np.full((1024, 4), -1, dtype=np.int64)
        self.boxes: np.ndarray | None = None  # set by finish()
        self.areas: np.ndarray | None = None

    @property
    def labels(self) -> np.ndarray:
        """The ``(H, W)`` int32 label image painted so far (0: background)."""
        if self._blank:
            self._labels.fill(0)
            self._blank = False
        return self._labels

    def add(self, score: float, row: int, col: int, mask: np.ndarray, class_id: int = 0) -> None:
        """Paint one instance's mask (box corner ``row``, ``col``) where it outscores what is there."""
        self._reserve(1)
        self._count += 1
        self._scores[self._count] = score
        self._classes[self._count] = class_id
        height, width = self.labels.shape
        # masks from a padded window may reach past the frame: clip them
        mask = mask[: max(0, height - row), : max(0, width - col)]
        region = self.labels[row : row + mask.shape[0], col : col + mask.shape[1]]
        beneath = region[mask]
        region[mask] = np.where(self._scores[beneath] <= score, self._count, beneath)
        self._painted[self._count] = (row, row + mask.shape[0], col, col + mask.shape[1]) if mask.size else -1

    def _reserve(self, n: int) -> None:
        """Room for ``n`` more ids in the tables of scores, classes and boxes."""
        size = len(self._scores)
        if self._count + n + 1 < size:
            return
        grown = max(2 * size, self._count + n + 2)
        self._scores = np.concatenate([self._scores, np.full(grown - size, -np.inf)])
        self._classes = np.concatenate([self._classes, np.zeros(grown - size, np.int32)])
        self._painted = np.concatenate([self._painted, np.full((grown - size, 4), -1, np.int64)])

    def add_instances(
        self,
        raw: RawInstances,
        window: tuple[int, int],
        origin: tuple[int, int] = (0, 0),
        within: tuple[int, int] | None = None,
        selected: np.ndarray | None = None,
    ) -> None:
        """Make and paint every instance of one network window, as if in order: one compiled pass per band.

        Each instance's mask is ``row_map @ (coefficients . protos) @ col_map.T > 0``
        inside its box (Ultralytics' upsampling and crop), painted as :meth:`add`
        paints it, ~10x faster than numpy per instance: no Python or numpy call
        per cell (``tests/core/inference/test_decode_kernel.py`` has the numpy statement).

        Parameters
        ----------
        raw : RawInstances
            The window's instances; boxes in window pixels.
        window : tuple of int
            ``(height, width)`` the network saw (masks are made at this size).
        origin : tuple of int
            ``(row, col)`` of the window's top-left pixel in the label image.
        within : tuple of int, optional
            ``(height, width)`` of the window's own pixels when it was padded:
            masks are cut to it, and instances with no pixel there are skipped.
        selected : numpy.ndarray, optional
            Boolean ``(N,)``: the instances to paint (all by default).
        """
        n = len(raw.boxes)
        if n == 0:
            return
        _, mh, mw = raw.protos.shape
        shapes = ((int(mh), int(mw)), (int(window[0]), int(window[1])))
        row_map, _, (row_first, row_last), (col_first, col_last) = _proto_maps(*shapes)
        col_taps, col_weights = _column_taps(*shapes)
        self._reserve(n)
        kernels = compiled()
        if selected is None:
            selected = np.ones(n, np.bool_)
        # every instance with a box gets the next id; those left without a pixel vanish in finish()
        spans, ids, order, middle, pixels = kernels.plan_paint(
            np.ascontiguousarray(raw.boxes, dtype=np.float32),
            np.array(window, np.int64),
            np.array(within or window, np.int64),
            np.asarray(selected, np.bool_),
            np.array(origin, np.int64),
            np.array(self._labels.shape, np.int64),
            self._count + 1,
            np.asarray(raw.scores),
            np.asarray(raw.classes),
            self._scores,
            self._classes,
            self._painted,
        )
        self._count += int(np.count_nonzero(ids >= 0))
        coefficients = np.ascontiguousarray(raw.coefficients, dtype=np.float32)
        protos = np.ascontiguousarray(raw.protos, dtype=np.float32)
        origin_array = np.array(origin, np.int64)
        labels, clear = self._labels, self._blank
        self._blank = False
        height = labels.shape[0]

        def paint_rows(row_lo: int, row_hi: int) -> None:
            kernels.decode_and_paint(
                labels, clear, self._scores, ids, order, row_lo, row_hi, spans, origin_array, coefficients,
                protos, row_map, row_first, row_last, col_first, col_last, col_taps, col_weights,
            )  # fmt: skip

        # two bands of rows at once, split where half of the instances' pixels lie above
        worth_it = pixels >= PARALLEL_PIXELS
        in_two_threads(lambda: paint_rows(0, middle), lambda: paint_rows(middle, height), worth_it)

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Keep the largest piece of each cell and number the cells ``1..K``.

        Returns
        -------
        labels : numpy.ndarray
            ``(H, W)`` int32 with consecutive ids ``1..K`` (relabelled in place).
        kept : numpy.ndarray
            Index, in the order ids were given (one per :meth:`add`, one per
            instance with a box in :meth:`add_instances`), of the instance that
            became label ``k + 1``; instances left without a pixel are dropped.
        scores, classes : numpy.ndarray
            ``(K,)`` score (float64) and class of each kept cell.

        Afterwards ``boxes`` (``(K + 1, 4)``: first row, row end, first
        column, column end of each id) and ``areas`` (``(K + 1,)`` pixels)
        describe the final ids, measured by the pieces pass (from each id's
        kept runs). When an id is left without a pixel, the ids after it are
        renumbered within their boxes, not in a pass over the whole image.
        """
        labels = self.labels
        kernels = compiled()
        painted = self._painted[: self._count + 1]
        present = np.zeros(self._count + 1, np.bool_)
        kept_boxes = np.full((self._count + 1, 4), -1, np.int64)
        kept_areas = np.zeros(self._count + 1, np.int64)
        measured = (present, kept_boxes, kept_areas)
        middle = balanced_id(painted, 1, len(painted))
        in_two_threads(
            lambda: kernels.keep_largest_pieces(labels, painted, 1, middle, *measured),
            lambda: kernels.keep_largest_pieces(labels, painted, middle, len(painted), *measured),
            len(painted) > PARALLEL_CELLS,
        )
        kept = np.flatnonzero(present[1:])
        if len(kept) == self._count:
            # no id left without a pixel: the ids are 1..K already, and measured
            self.boxes, self.areas = kept_boxes, kept_areas
            return labels, kept, self._scores[kept + 1], self._classes[kept + 1]
        # ids 1..K in order, each where it was, with the box and area the pieces pass measured
        lookup = np.zeros(self._count + 1, dtype=np.int32)
        lookup[kept + 1] = np.arange(1, len(kept) + 1, dtype=np.int32)
        first_moved = int(np.flatnonzero(~present[1:])[0]) + 1
        kernels.renumber_in_boxes(labels, lookup, kept_boxes, first_moved)
        self.boxes = np.concatenate([kept_boxes[:1], kept_boxes[kept + 1]])
        self.areas = np.concatenate([kept_areas[:1], kept_areas[kept + 1]])
        return labels, kept, self._scores[kept + 1], self._classes[kept + 1]


def paint_masks(
    masks: list[tuple[float, int, int, np.ndarray]], image_shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Paint box-sized masks into one label image, higher scores on top.

    Parameters
    ----------
    masks : list of (score, row, col, mask)
        Each instance's score, box corner and boolean mask.
    image_shape : tuple of int
        ``(H, W)`` of the label image.

    Returns
    -------
    labels : numpy.ndarray
        ``(H, W)`` int32 with consecutive ids ``1..K``.
    kept : numpy.ndarray
        Index into ``masks`` of label ``k + 1``; instances that lost every
        pixel to higher-scoring ones are dropped.
    """
    painter = MaskPainter(image_shape)
    for score, row, col, mask in masks:
        painter.add(score, row, col, mask)
    labels, kept, _, _ = painter.finish()
    return labels, kept
