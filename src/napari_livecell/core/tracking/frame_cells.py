"""Measure the cells of a label stack, frame by frame: centroids, areas and overlaps.

The first step of :func:`.tracking.track_cells`, and what
:func:`tracks_from_labels` builds a tracks table from. A label stack
``(T, Y, X)`` (numpy, dask, zarr or a tifffile memmap: anything indexable by
frame) is read one frame at a time, so memory stays at one frame plus a table
of centroids. Each frame is measured in one compiled pass
(:mod:`._tracking_kernel`, docs/numba.md), with a numpy fallback that gives
the same numbers.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd

from napari_livecell.core import _compiled
from napari_livecell.core.images import is_lazy

# the tracks table's columns: what napari's Tracks layer needs first, then the rest
TABLE_COLUMNS = ["track_id", "t", "y", "x", "area", "label"]
# frames read ahead of the measurement: memory stays at a few frames
READ_AHEAD = 2

Item = TypeVar("Item")
_DONE = object()


def _frame(labels, t: int) -> np.ndarray:
    """One frame as a numpy array (computes a dask chunk; reads a memmap page)."""
    frame = labels[t]
    if hasattr(frame, "compute"):
        frame = frame.compute()
    return np.asarray(frame)


def iter_frames(labels, frames: Iterable[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """``(t, frame)`` for each frame of a stack, as numpy arrays.

    A dask stack is computed block by block from its delayed chunks: computing
    ``labels[t]`` one frame at a time costs more in graph handling than
    decoding the frame (benchmarks/README.md, tracking).
    """
    if frames is not None or not is_lazy(labels):
        for t in range(labels.shape[0]) if frames is None else frames:
            yield t, _frame(labels, t)
        return
    whole_frames = (
        labels.rechunk({1: -1, 2: -1}) if len(labels.chunks[1]) + len(labels.chunks[2]) > 2 else labels
    )
    from napari_livecell.core.images import computed_blocks

    yield from enumerate(frame for block in computed_blocks(whole_frames) for frame in block)


def read_ahead(items: Iterator[Item], depth: int = READ_AHEAD) -> Iterator[Item]:
    """``items``, produced by a thread that runs up to ``depth`` items ahead of the consumer.

    Reading a frame (dask's graph, tifffile's parsing, zlib) and measuring
    the previous one (compiled, ``nogil``) then run at the same time where a
    core is free: the measurement releases the GIL, and so does decoding.
    Closing this generator stops the thread (after the item it is reading);
    an error in the reader is raised here, at the item it would have given.
    """
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(entry: tuple) -> bool:
        # a full queue waits for the consumer, or for close()
        while not stop.is_set():
            try:
                ready.put(entry, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def read() -> None:
        try:
            for item in items:
                if not offer((item, None)):
                    return
            offer((_DONE, None))
        except BaseException as error:  # raised again in the consumer's thread
            offer((_DONE, error))

    reader = threading.Thread(target=read, name="napari-livecell-read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            item, error = ready.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        reader.join()


def _reads_ahead(labels) -> bool:
    """Whether reading ``labels`` is worth a thread: frames to decode, and a second core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cores > 1 and not isinstance(labels, np.ndarray)


def _ids(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct ``values`` and each value's index among them (``np.unique`` with inverse).

    Label ids are small integers in practice, so a presence table is used
    instead of a sort whenever it is not much larger than the input.
    """
    if values.size == 0:
        return values.astype(np.int64), np.zeros(0, dtype=np.intp)
    top = int(values.max())
    if top > 4 * values.size + 65536 or int(values.min()) < 0:
        # sparse or negative ids (which tracking then refuses): no table indexed by id
        return np.unique(values, return_inverse=True)
    present = np.zeros(top + 1, dtype=bool)
    present[values] = True
    ids = np.flatnonzero(present)
    index = np.zeros(top + 1, dtype=np.intp)
    index[ids] = np.arange(len(ids))
    return ids, index[values]


@dataclass
class FrameCells:
    """What one pass over a label frame measures (see :func:`measure_frame`).

    Attributes
    ----------
    label, y, x, area : numpy.ndarray
        Per cell, sorted by label: id, centroid (row, column) and pixels.
    overlap_label, overlap_previous, overlap_pixels : numpy.ndarray
        Pairs (cell, cell of the previous frame) that share pixels, and how
        many; empty when no previous frame was given.
    """

    label: np.ndarray
    y: np.ndarray
    x: np.ndarray
    area: np.ndarray
    overlap_label: np.ndarray
    overlap_previous: np.ndarray
    overlap_pixels: np.ndarray


def measure_frame(frame: np.ndarray, previous: np.ndarray | None = None) -> FrameCells:
    """Centroid and area of every cell of a label frame, and its overlaps with the previous frame.

    One pass over the frame: the frame is cut into horizontal runs of one
    label (and one label of ``previous``), and every sum is taken over the
    runs, which are ~20x fewer than the pixels. The pass is compiled with
    numba (:mod:`._tracking_kernel`, docs/numba.md); numpy needs several
    passes for the same and stays as the fallback (no numba, negative ids, or
    ids spread far wider than the pixels), with the same numbers bit for bit.
    The centroids equal ``skimage.measure.regionprops_table``'s bit for bit
    (both divide an exact integer sum of coordinates by the area);
    regionprops builds one Python object per cell and is about ten times
    slower (benchmarks/README.md).

    Parameters
    ----------
    frame : numpy.ndarray
        2-D integer label image; 0 is background.
    previous : numpy.ndarray, optional
        The previous frame (same shape), for the overlaps.

    Returns
    -------
    FrameCells
        Per-cell measurements sorted by label, and the overlap pairs.
    """
    frame = np.asarray(frame)
    if frame.ndim != 2:
        raise ValueError(f"expected a 2-D label frame, got shape {frame.shape}")
    if previous is not None:
        previous = np.asarray(previous)
        if previous.shape != frame.shape:
            raise ValueError(f"frames differ in shape: {previous.shape} and {frame.shape}")
    cells = _measure_compiled(frame, previous)
    return cells if cells is not None else _measure_frame_numpy(frame, previous)


def _kernels():
    """The compiled measurement and relabelling (:mod:`._tracking_kernel`), or None without numba."""
    return _compiled.kernels("tracking._tracking_kernel")


def _measure_compiled(frame: np.ndarray, previous: np.ndarray | None) -> FrameCells | None:
    """:func:`measure_frame` by the compiled kernel; None where the numpy path must do it."""
    kernels = _kernels()
    if kernels is None or frame.size == 0 or frame.dtype.kind not in "iu":
        return None
    if previous is not None and previous.dtype != frame.dtype:
        # one compiled version per dtype pair: mixed pairs are rare, widen both
        if previous.dtype.kind not in "iu":
            return None
        frame, previous = frame.astype(np.int64), previous.astype(np.int64)
    frame = np.ascontiguousarray(frame)
    ok, *tables = kernels.measure_runs(
        frame, frame if previous is None else np.ascontiguousarray(previous), previous is not None
    )
    return FrameCells(*tables) if ok else None


def _measure_frame_numpy(frame: np.ndarray, previous: np.ndarray | None = None) -> FrameCells:
    """:func:`measure_frame` in numpy (vectorised over runs, several passes): the fallback."""
    empty = np.zeros(0, dtype=np.int64)
    width = frame.shape[1]
    flat = frame.ravel()
    if flat.size == 0:
        return FrameCells(empty, empty.astype(float), empty.astype(float), empty, empty, empty, empty)
    # a run ends where the label changes, where the previous frame's label
    # changes (so each run lies in one overlap pair) and at the end of a row
    change = flat[1:] != flat[:-1]
    if previous is not None:
        before = previous.ravel()
        change |= before[1:] != before[:-1]
    change[width - 1 :: width] = True
    starts = np.empty(int(np.count_nonzero(change)) + 1, dtype=np.intp)
    starts[0] = 0
    starts[1:] = np.flatnonzero(change) + 1
    lengths = np.diff(starts, append=flat.size)
    labels = flat[starts].astype(np.int64)
    # background runs are kept (as label 0, dropped from the sums at the end):
    # selecting the cell runs costs more than summing them all, since cell and
    # background runs alternate and defeat the CPU's branch prediction
    ids, which = _ids(labels)
    # exact: a float quotient of integers below 2**53 never rounds up to the next integer
    rows = np.floor(starts / width)
    cols = starts - rows * width
    n = len(ids)
    # float64 sums of integers stay exact below 2**53: centroids are exact means
    area = np.bincount(which, weights=lengths, minlength=n)
    sum_y = np.bincount(which, weights=rows * lengths, minlength=n)
    sum_x = np.bincount(which, weights=cols * lengths + lengths * (lengths - 1) / 2, minlength=n)
    overlap = (empty, empty, empty)
    if previous is not None:
        earlier = before[starts].astype(np.int64)
        span = int(earlier.max()) + 1
        codes, where = _ids(which * span + earlier)
        shared = np.bincount(where, weights=lengths, minlength=len(codes)).astype(np.int64)
        cell, previous_cell = ids[codes // span], codes % span
        both = (cell > 0) & (previous_cell > 0)
        overlap = (cell[both], previous_cell[both], shared[both])
    if len(ids) and ids[0] == 0:
        ids, area, sum_y, sum_x = ids[1:], area[1:], sum_y[1:], sum_x[1:]
    return FrameCells(ids.astype(np.int64), sum_y / area, sum_x / area, area.astype(np.int64), *overlap)


class Overlaps:
    """Pixels shared by a cell and the cells of the previous frame, for every frame measured.

    Filled by :func:`cell_table`; :meth:`shared` looks one pair up. Stored
    as arrays per frame (a dict per cell costs more than measuring the frame).
    """

    def __init__(self) -> None:
        self._frames: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._lookups: dict[int, dict[tuple[int, int], int]] = {}

    def add(self, t: int, cells: FrameCells) -> None:
        """Record frame ``t``'s overlaps with frame ``t - 1``."""
        self._frames[t] = (cells.overlap_label, cells.overlap_previous, cells.overlap_pixels)

    def pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """All overlap pairs as arrays ``t, label, previous_label, pixels`` (frame ``t`` vs ``t - 1``)."""
        frames = sorted(self._frames)
        parts = [self._frames[t] for t in frames]
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty, empty
        t = np.repeat(np.asarray(frames, dtype=np.int64), [len(part[0]) for part in parts])
        label, previous, pixels = (np.concatenate([part[i] for part in parts]) for i in range(3))
        return t, label.astype(np.int64), previous.astype(np.int64), pixels.astype(np.int64)

    def shared(self, t: int, label: int, previous_label: int) -> int:
        """Pixels of cell ``label`` in frame ``t`` that ``previous_label`` held in frame ``t - 1``."""
        lookup = self._lookups.get(t)
        if lookup is None:
            label_, previous_, pixels = self._frames.get(t, (np.zeros(0),) * 3)
            lookup = dict(zip(zip(label_.tolist(), previous_.tolist()), pixels.tolist()))
            self._lookups[t] = lookup
        return lookup.get((int(label), int(previous_label)), 0)

    def of(self, t: int, label: int) -> dict[int, int]:
        """``{cell of frame t - 1: shared pixels}`` of cell ``label`` in frame ``t``."""
        label_, previous_, pixels = self._frames.get(t, (np.zeros(0),) * 3)
        mine = label_ == label
        return dict(zip(previous_[mine].tolist(), pixels[mine].tolist()))


def cell_table(labels, frames: Iterable[int] | None = None, overlaps: Overlaps | None = None) -> pd.DataFrame:
    """Centroid and area of every cell of every frame, read frame by frame.

    Parameters
    ----------
    labels : array-like
        ``(T, Y, X)`` integer label stack; numpy, dask or anything that
        returns a 2-D frame for ``labels[t]``.
    frames : iterable of int, optional
        Frames to measure; all by default.
    overlaps : Overlaps, optional
        Filled with the pixels each cell shares with the cells of frame
        ``t - 1`` (what division detection needs), from the same pass.

    Returns
    -------
    pandas.DataFrame
        Columns ``t, label, y, x, area`` (one row per cell and frame, sorted
        by ``t`` then ``label``); the same numbers as
        ``skimage.measure.regionprops_table`` (see :func:`measure_frame`).
    """
    steps = _measure_stack(labels, frames, overlaps)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def _measure_stack(labels, frames: Iterable[int] | None, overlaps: Overlaps | None):
    """:func:`cell_table` as a generator: yields ``(frames done, frames in all)`` after each frame."""
    if len(labels.shape) != 3:
        raise ValueError(f"expected a (T, Y, X) label stack, got shape {labels.shape}")
    order = list(range(labels.shape[0]) if frames is None else frames)
    parts: list[FrameCells] = []
    previous: tuple[int, np.ndarray] | None = None
    reading = iter_frames(labels, frames)
    if _reads_ahead(labels):
        reading = read_ahead(reading)
    for done, (t, frame) in enumerate(reading, start=1):
        # previous is only kept when overlaps are wanted
        before = previous[1] if previous is not None and previous[0] == t - 1 else None
        cells = measure_frame(frame, before)
        if overlaps is not None:
            overlaps.add(t, cells)
            previous = (t, frame)
        parts.append(cells)
        yield done, len(order)
    if not parts:
        return pd.DataFrame({"t": [], "label": [], "y": [], "x": [], "area": []})
    return pd.DataFrame(
        {
            "t": np.repeat(np.asarray(order, dtype=np.int64), [len(p.label) for p in parts]),
            "label": np.concatenate([p.label for p in parts]),
            "y": np.concatenate([p.y for p in parts]),
            "x": np.concatenate([p.x for p in parts]),
            "area": np.concatenate([p.area for p in parts]),
        }
    )


def tracks_from_labels(labels) -> pd.DataFrame:
    """Tracks table of a stack whose label ids already are track ids.

    Use it for stacks tracked earlier, proofread by hand, or read from the
    Cell Tracking Challenge format.

    Parameters
    ----------
    labels : array-like
        ``(T, Y, X)`` label stack, one id per cell for its whole life.

    Returns
    -------
    pandas.DataFrame
        Columns ``track_id, t, y, x, area, label`` sorted by track then time
        (napari's Tracks layer needs that order); ``label == track_id``.
    """
    table = cell_table(labels)
    table["track_id"] = table["label"]
    return table[TABLE_COLUMNS].sort_values(["track_id", "t"], ignore_index=True)
