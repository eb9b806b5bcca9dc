"""The one result type, and conversions between label images and polygons.

Coordinates follow COCO: ``x`` to the right and ``y`` down, continuous, with
pixel ``(row, col)`` covering ``[col, col + 1) x [row, row + 1)``. Rings
traced by :func:`mask_to_polygons` and filled again by
:func:`polygons_to_mask` give back the same pixels (holes are separate rings,
combined with XOR).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Polygon = np.ndarray  # (K, 2) float array of (x, y) vertices


def mask_to_polygons(mask: np.ndarray, offset: tuple[float, float] = (0.0, 0.0)) -> list[Polygon]:
    """Trace every ring (outer borders, holes, separate parts) of a binary mask.

    The rings are OpenCV's ``findContours`` (all contours, holes included)
    on the mask doubled in size, traced by the compiled tracer
    (:mod:`._trace_kernel`, the same points and order): the traced points
    are then a quarter pixel inside the true pixel edges, so every pixel
    centre of the mask lies inside the rings and every other centre outside.
    Filling the rings with :func:`polygons_to_mask` therefore gives back
    exactly the same pixels (measured on hundreds of touching cells, holes
    and diagonal pixels included), ~9x faster than ``skimage.measure.find_contours``.

    Parameters
    ----------
    mask : numpy.ndarray
        2-D boolean mask.
    offset : tuple of float
        ``(row, col)`` of the mask's top-left pixel in the full image.

    Returns
    -------
    list of numpy.ndarray
        ``(K, 2)`` float ``(x, y)`` rings in continuous image coordinates,
        closed implicitly (the first vertex is not repeated), ``K >= 3``.
    """
    return mask_rings(mask, offset)[0]


def mask_rings(
    mask: np.ndarray, offset: tuple[float, float] = (0.0, 0.0)
) -> tuple[list[Polygon], list[bool]]:
    """:func:`mask_to_polygons`, plus which rings are holes.

    OpenCV's ``RETR_CCOMP`` order: each part's outer ring followed by its
    holes, the parts last found (in raster order of their first pixel) first.
    """
    from ._compiled import kernels

    bounding_boxes = kernels("_box_kernel").bounding_boxes
    trace_rings = kernels("_trace_kernel").trace_rings
    labels = np.ascontiguousarray(mask, dtype=np.int32)
    points, lengths, cells, pieces = trace_rings(labels, bounding_boxes(labels, 1), 1, 2)
    if len(pieces):
        from scipy import ndimage as ndi

        # one label per 8-connected part (OpenCV's connectivity), numbered in raster order
        labels, n_parts = ndi.label(labels, structure=np.ones((3, 3), bool))
        labels = labels.astype(np.int32, copy=False)
        points, lengths, cells, pieces = trace_rings(labels, bounding_boxes(labels, n_parts), 1, n_parts + 1)
    if not len(lengths):
        return [], []
    points += (offset[1], offset[0])
    rings = np.split(points, np.cumsum(lengths[:-1]))
    holes = [False, *(cells[1:] == cells[:-1]).tolist()]
    if cells[-1] != cells[0]:  # the parts last found first, each keeping its rings' order
        order = sorted(range(len(rings)), key=lambda ring: (-int(cells[ring]), ring))
        rings, holes = [rings[i] for i in order], [holes[i] for i in order]
    for index, ring in enumerate(rings):
        if len(ring) < 3:  # a 1 x 1 px part traces as fewer points; keep a valid ring
            rings[index] = np.vstack([ring, np.repeat(ring[-1:], 3 - len(ring), axis=0)])
    return rings, holes


def polygons_to_mask(polygons: list[Polygon], shape: tuple[int, int], combine: str = "xor") -> np.ndarray:
    """Fill rings into a boolean mask, combining them with XOR (holes stay holes).

    Parameters
    ----------
    polygons : list of numpy.ndarray
        ``(K, 2)`` ``(x, y)`` rings in continuous image coordinates.
    shape : tuple of int
        ``(height, width)`` of the mask.
    combine : {"xor", "union"}
        ``"xor"`` for our own rings (holes are rings), ``"union"`` for COCO
        polygon lists, whose rings are parts of one object.

    Returns
    -------
    numpy.ndarray
        Boolean mask; a pixel is inside a ring when its centre is.
    """
    from skimage.draw import polygon as draw_polygon

    mask = np.zeros(shape, dtype=bool)
    for ring in polygons:
        ring = np.asarray(ring, dtype=float)
        rr, cc = draw_polygon(ring[:, 1] - 0.5, ring[:, 0] - 0.5, shape=shape)
        if combine == "union":
            mask[rr, cc] = True
        else:
            mask[rr, cc] ^= True
    return mask


def cell_boxes(labels: np.ndarray) -> list[tuple[slice, slice] | None]:
    """Bounding slices of each label 1..max (``None`` for absent ids), as ``scipy.ndimage.find_objects``.

    One compiled pass (``_box_kernel``): scipy.ndimage's import (~0.3 s of
    a fresh ``segment``) stays out of the command line's path.
    """
    from ._compiled import kernels

    labels = np.asarray(labels)
    if labels.dtype != np.int32:
        labels = labels.astype(np.int32)
    n_ids = int(labels.max()) if labels.size else 0
    boxes = kernels("_box_kernel").bounding_boxes(labels, max(n_ids, 0)).tolist()
    return [None if r0 < 0 else (slice(r0, r1), slice(c0, c1)) for r0, r1, c0, c1 in boxes[1:]]


TRACE_CHUNK = 2000  # cells outlined between two progress reports (a few tenths of a second)
PARALLEL_TRACE_CELLS = 200  # from this many cells, two threads trace them (a thread costs ~0.1 ms)


def labels_to_polygons(labels: np.ndarray, boxes: np.ndarray | None = None) -> list[list[Polygon]]:
    """Outline every cell of a label image.

    ``boxes``: each id's box (see :func:`trace_polygons_steps`), when measured already.

    Returns
    -------
    list of list of numpy.ndarray
        Entry ``i`` holds the rings of label ``i + 1`` (empty when absent).
    """
    steps = trace_polygons_steps(labels, boxes=boxes)
    while True:
        try:
            next(steps)
        except StopIteration as finished:
            return finished.value


def trace_polygons_steps(
    labels: np.ndarray, chunk: int = TRACE_CHUNK, boxes: np.ndarray | None = None
) -> Generator[tuple[int, int], None, list]:
    """:func:`labels_to_polygons` as a generator yielding ``(cells done, cells)`` every ``chunk`` cells.

    A 400-megapixel frame holds ~330,000 cells, whose outlines take 10-15 s:
    the reports let a run show progress and stop in between. ``boxes``: the
    ``(ids + 1, 4)`` boxes of ``_box_kernel.bounding_boxes``, when known
    (:class:`.masks.MaskPainter` measures them): one pass over the image less.
    """
    from ._compiled import kernels

    if boxes is None:
        n_ids = int(labels.max()) if labels.size else 0
        boxes = kernels("_box_kernel").bounding_boxes(np.ascontiguousarray(labels, dtype=np.int32), n_ids)
    n_ids = len(boxes) - 1
    outlines: list[list[Polygon]] = []
    for start in range(0, n_ids, chunk):
        if start:
            yield start, n_ids
        outlines += _trace_in_threads(labels, boxes, start + 1, min(start + chunk, n_ids) + 1)
    yield n_ids, n_ids
    return outlines


def _trace_in_threads(labels: np.ndarray, boxes: np.ndarray, first: int, stop: int) -> list[list[Polygon]]:
    """:func:`_trace_cells` of ids ``first..stop - 1``, in two halves at once when there are many.

    The compiled tracer releases the GIL, so the halves run on two cores;
    each cell is traced alone, whichever half it is in.
    """
    from ._threads import balanced_id, in_two_threads

    middle = balanced_id(boxes, first, stop, per_pixel=0, per_edge=1)
    halves = in_two_threads(
        lambda: _trace_cells(labels, boxes, first, middle),
        lambda: _trace_cells(labels, boxes, middle, stop),
        stop - first >= PARALLEL_TRACE_CELLS,
    )
    return halves[0] + halves[1]


def _trace_cells(labels: np.ndarray, boxes: np.ndarray, first: int, stop: int) -> list[list[Polygon]]:
    """The rings of cells ``first..stop - 1``, as :func:`mask_to_polygons` traces each alone.

    :func:`._trace_kernel.trace_rings` runs OpenCV's border following on each
    cell's doubled mask, made in one small reused buffer: the same points,
    start and order of rings as OpenCV, ~2x faster than OpenCV on a canvas of
    all cells doubled, and no Python call per cell. Cells of several pieces
    (a user's painting, never a model's cells) are traced by :func:`mask_to_polygons`.

    Parameters
    ----------
    labels : numpy.ndarray
        ``(H, W)`` label image.
    boxes : numpy.ndarray
        ``(ids + 1, 4)`` first row, row end, first column, column end of each id
        (first row -1 for absent ids), as made by ``_box_kernel.bounding_boxes``.
    first, stop : int
        The ids to trace.

    Returns
    -------
    list of list of numpy.ndarray
        The rings of each id (empty when absent).
    """
    from ._compiled import kernels

    trace_rings = kernels("_trace_kernel").trace_rings
    outlines: list[list[Polygon]] = [[] for _ in range(stop - first)]
    labels = np.ascontiguousarray(labels, dtype=np.int32)
    points, lengths, cells, pieces = trace_rings(labels, boxes, first, stop)
    bounds = np.concatenate([[0], np.cumsum(lengths)]).tolist()
    for index, cell in enumerate((cells - first).tolist()):
        ring = points[bounds[index] : bounds[index + 1]]
        if len(ring) < 3:  # a 1 x 1 px part traces as fewer points; keep a valid ring
            ring = np.vstack([ring, np.repeat(ring[-1:], 3 - len(ring), axis=0)])
        outlines[cell].append(ring)
    for cell in pieces.tolist():
        r0, r1, c0, c1 = boxes[cell].tolist()
        outlines[cell - first] = mask_to_polygons(labels[r0:r1, c0:c1] == cell, (r0, c0))
    return outlines


@dataclass
class Segmentation:
    """Cells found in one 2-D frame.

    Attributes
    ----------
    labels : numpy.ndarray
        ``(H, W)`` int32 label image, 0 = background, cells ``1..N``.
    scores : numpy.ndarray
        ``(N,)`` confidence of cell ``i + 1`` (1.0 for ground truth).
    classes : numpy.ndarray
        ``(N,)`` class id of each cell.
    class_names : dict
        Class id -> name, as stored in the model.
    polygons : list of list of numpy.ndarray
        Rings of each cell (computed lazily from ``labels``).
    """

    labels: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    class_names: dict[int, str] = field(default_factory=lambda: {0: "cell"})
    _polygons: list[list[Polygon]] | None = field(default=None, repr=False)
    # each id's box and pixel count, when measured as the labels were made (MaskPainter.finish)
    _boxes: np.ndarray | None = field(default=None, repr=False, compare=False)
    _areas: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def polygons(self) -> list[list[Polygon]]:
        """Rings of each cell in continuous ``(x, y)`` image coordinates.

        Traced from the label image on first use, so callers that need only
        labels never pay for outlines.
        """
        if self._polygons is None:
            self._polygons = labels_to_polygons(self.labels, self._boxes)
        return self._polygons

    def trace_steps(self) -> Generator[tuple[int, int], None, None]:
        """Trace the outlines now (see :attr:`polygons`), yielding ``(cells done, cells)`` on the way."""
        if self._polygons is None:
            self._polygons = yield from trace_polygons_steps(self.labels, boxes=self._boxes)

    @property
    def n_cells(self) -> int:
        """Number of cells."""
        return len(self.scores)

    @property
    def areas(self) -> np.ndarray:
        """``(N,)`` area of each cell in pixels."""
        if self._areas is not None:
            return self._areas[1 : self.n_cells + 1]
        counts = np.bincount(self.labels.ravel(), minlength=self.n_cells + 1)
        return counts[1 : self.n_cells + 1]

    @property
    def bboxes(self) -> np.ndarray:
        """``(N, 4)`` COCO boxes ``[x, y, width, height]``."""
        boxes = np.zeros((self.n_cells, 4), dtype=float)
        for index, box in enumerate(cell_boxes(self.labels)[: self.n_cells]):
            if box is not None:
                rows, cols = box
                boxes[index] = (
                    cols.start,
                    rows.start,
                    cols.stop - cols.start,
                    rows.stop - rows.start,
                )
        return boxes

    @classmethod
    def from_labels(
        cls,
        labels: np.ndarray,
        scores: np.ndarray | None = None,
        classes: np.ndarray | None = None,
        class_names: dict[int, str] | None = None,
    ) -> Segmentation:
        """Build a result from a label image (ids are made consecutive).

        ``scores`` and ``classes``, when given, are indexed by original label
        id - 1; they follow their cells through the renumbering.
        """
        labels = np.asarray(labels)
        if labels.ndim != 2:
            raise ValueError(f"labels must be 2-D, got shape {labels.shape}")
        if labels.size and labels.min() < 0:
            raise ValueError("labels must not be negative")
        size = int(labels.max()) if labels.size else 0
        present = np.bincount(labels.ravel(), minlength=size + 1)[1:] > 0
        old_ids = np.flatnonzero(present) + 1
        if len(old_ids) == size:
            relabelled = labels.astype(np.int32, copy=False)
        else:
            lookup = np.zeros(size + 1, dtype=np.int32)
            lookup[old_ids] = np.arange(1, len(old_ids) + 1, dtype=np.int32)
            relabelled = lookup[labels]
        # scores/classes are indexed by the *original* label id - 1
        scores = np.ones(size, np.float32) if scores is None else np.asarray(scores)
        classes = np.zeros(size, np.int32) if classes is None else np.asarray(classes)
        if len(scores) < size or len(classes) < size:
            raise ValueError(
                f"need a score and class for every label id up to {size}, "
                f"got {len(scores)} scores and {len(classes)} classes"
            )
        scores, classes = scores[old_ids - 1], classes[old_ids - 1]
        return cls(
            labels=relabelled,
            scores=np.asarray(scores, dtype=np.float32),
            classes=np.asarray(classes, dtype=np.int32),
            class_names=dict(class_names or {0: "cell"}),
        )

    @classmethod
    def from_painted(
        cls,
        labels: np.ndarray,
        scores: np.ndarray,
        classes: np.ndarray,
        class_names: dict[int, str],
        boxes: np.ndarray | None = None,
        areas: np.ndarray | None = None,
    ) -> Segmentation:
        """Wrap a label image whose ids are already ``1..len(scores)``.

        ``boxes`` and ``areas``: each id's box and pixel count (index 0 the
        background), when measured already (:meth:`.masks.MaskPainter.finish`).
        """
        return cls(
            labels=labels,
            scores=np.asarray(scores, dtype=np.float32),
            classes=np.asarray(classes, dtype=np.int32),
            class_names=dict(class_names),
            _boxes=boxes,
            _areas=areas,
        )


# label stacks: a run's frames as one label array --------------------------------------


def offset_ids(labels: np.ndarray, first_id: int) -> np.ndarray:
    """A frame's labels with ids that follow the previous frames' (``first_id`` cells before it).

    The one rule for a stack's ids, shared by the napari result layer and the
    CLI's label TIFF: ids run on across frames, so that an id names one cell
    of the whole stack.
    """
    return np.where(labels > 0, labels + first_id, 0).astype(np.int32)


def stack_labels(frames: list[Segmentation], leading: tuple[int, ...]) -> np.ndarray:
    """One int32 label array ``(*leading, H, W)`` from per-frame results, ids run on (:func:`offset_ids`)."""
    labels = np.zeros((*leading, *frames[0].labels.shape), dtype=np.int32)
    first_id = 0
    for index, frame in zip(np.ndindex(*leading) if leading else [()], frames):
        labels[index] = offset_ids(frame.labels, first_id)
        first_id += frame.n_cells
    return labels


# int32 label stacks larger than this are kept compressed in memory (zarr), one chunk per frame:
# 1,000 frames of 704 x 520 are 1.46 GB as numpy, ~30 MB compressed (benchmarks/README.md)
COMPACT_LABELS_BYTES = 256 * 2**20


def new_label_stack(shape: tuple[int, ...], compact_above: int | None = None) -> Any:
    """An all-zero int32 label stack to fill frame by frame: numpy, or a compressed zarr array if large.

    Parameters
    ----------
    shape : tuple of int
        ``(*leading, H, W)``.
    compact_above : int, optional
        Size in bytes above which the stack is a zarr array in memory,
        chunked by frame (default :data:`COMPACT_LABELS_BYTES`). napari
        shows and paints zarr-backed Labels layers; ``np.asarray`` or a
        frame index gives numpy back.

    Returns
    -------
    numpy.ndarray or zarr.Array
    """
    limit = COMPACT_LABELS_BYTES if compact_above is None else compact_above
    if math.prod(shape) * 4 <= limit:
        return np.zeros(shape, np.int32)  # maps untouched frames lazily: costs memory as it fills
    import zarr

    chunks = (1,) * (len(shape) - 2) + tuple(shape[-2:])
    return zarr.create_array(
        store=zarr.storage.MemoryStore(), shape=shape, chunks=chunks, dtype="int32", fill_value=0
    )
