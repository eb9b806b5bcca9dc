"""Follow cells through a time-lapse: link, relabel, lineage, per-track features.

Linking is done by :mod:`.linking` (mutual best overlap between successive
frames, then one small linear assignment per frame for gaps, fast movers
and divisions); `laptrack <https://github.com/yfukai/laptrack>`_ (Jaqaman et
al. 2008's global assignment) stays available as ``linker="laptrack"``, the
reference it was checked against. docs/tracking.md says why.

Everything here is plain numpy/pandas: a label stack ``(T, Y, X)`` goes in
(numpy, dask, zarr or a tifffile memmap: anything indexable by frame), and
the stack is read one frame at a time, so memory stays at one frame plus a
table of centroids.

Conventions
-----------
* Track ids start at 1; 0 is background.
* A division ends the parent track; each daughter starts a new track whose
  parent is the mother (the Cell Tracking Challenge's convention).
* ``graph`` is napari's Tracks-layer graph: ``{child_track: [parent_track]}``.

Examples
--------
>>> from napari_livecell.core.synthetic import synthesize_timelapse
>>> lapse = synthesize_timelapse(seed=0, n_frames=4, n_cells=20, shape=(160, 200))
>>> result = track_cells(lapse.labels)
>>> result.labels.shape, list(result.table.columns[:4])
((4, 160, 200), ['track_id', 't', 'y', 'x'])
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .images import is_lazy
from .steps import relay

TABLE_COLUMNS = ["track_id", "t", "y", "x", "area", "label"]
LINEAGE_COLUMNS = ["id", "first_frame", "last_frame", "parent"]
# "overlap": core/linking.py (the default); "laptrack": laptrack's global LAP, kept as the reference
LINKERS = ("overlap", "laptrack")


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
    from .images import computed_blocks

    yield from enumerate(frame for block in computed_blocks(whole_frames) for frame in block)


def _ids(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct ``values`` and each value's index among them (``np.unique`` with inverse).

    Label ids are small integers in practice, so a presence table is used
    instead of a sort whenever it is not much larger than the input.
    """
    if values.size == 0:
        return values.astype(np.int64), np.zeros(0, dtype=np.intp)
    top = int(values.max())
    if top > 4 * values.size + 65536:
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


_KERNELS: list = []


def _kernels():
    """The compiled kernels (module :mod:`._tracking_kernel`), or None without numba.

    Imported on first use: numba's import (~0.3 s) stays out of
    ``import napari_livecell`` and napari's start-up.
    """
    if not _KERNELS:
        try:
            from . import _tracking_kernel
        except ImportError:
            _tracking_kernel = None
        _KERNELS.append(_tracking_kernel)
    return _KERNELS[0]


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
    for done, (t, frame) in enumerate(iter_frames(labels, frames), start=1):
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


@dataclass
class TrackingResult:
    """Tracks of a label stack.

    Attributes
    ----------
    labels : array-like
        ``(T, Y, X)`` int32 stack relabelled so that a cell keeps one id
        (its track id) in every frame. A numpy array for numpy input; a lazy
        dask array (relabelled frame by frame when computed) for dask input.
    table : pandas.DataFrame
        One row per cell and frame: ``track_id, t, y, x, area, label``
        (``label`` is the cell's id in the input stack), sorted by track then
        time. ``table[["track_id", "t", "y", "x"]]`` is a napari Tracks layer.
    graph : dict of int to list of int
        ``{daughter_track: [mother_track]}``, napari's Tracks ``graph``.
    features : pandas.DataFrame
        One row per track, see :func:`track_features`.
    """

    labels: object
    table: pd.DataFrame
    graph: dict[int, list[int]]
    features: pd.DataFrame

    @property
    def napari_tracks(self) -> np.ndarray:
        """``(N, 4)`` float array ``track_id, t, y, x`` for ``viewer.add_tracks``."""
        return self.table[["track_id", "t", "y", "x"]].to_numpy(dtype=float)

    @property
    def lineage(self) -> pd.DataFrame:
        """CTC-style table ``id, first_frame, last_frame, parent`` (parent 0 = none)."""
        return lineage_table(self.table, self.graph)


def lineage_table(table: pd.DataFrame, graph: dict[int, list[int]]) -> pd.DataFrame:
    """Cell Tracking Challenge lineage (``man_track.txt`` rows) of a tracks table.

    Parameters
    ----------
    table : pandas.DataFrame
        Tracks table with ``track_id`` and ``t`` columns.
    graph : dict of int to list of int
        ``{daughter: [mother]}``.

    Returns
    -------
    pandas.DataFrame
        Columns ``id, first_frame, last_frame, parent`` (int64), sorted by id.
    """
    spans = table.groupby("track_id")["t"].agg(["min", "max"])
    parents = [int(graph.get(int(track), [0])[0]) for track in spans.index]
    return pd.DataFrame(
        {
            "id": spans.index.to_numpy(dtype=np.int64),
            "first_frame": spans["min"].to_numpy(dtype=np.int64),
            "last_frame": spans["max"].to_numpy(dtype=np.int64),
            "parent": np.asarray(parents, dtype=np.int64),
        },
        columns=LINEAGE_COLUMNS,
    )


def graph_from_lineage(lineage) -> dict[int, list[int]]:
    """``{daughter: [mother]}`` from a lineage table (DataFrame or ``(N, 4)`` array)."""
    rows = np.asarray(lineage, dtype=np.int64).reshape(-1, 4)
    return {int(track): [int(parent)] for track, _, _, parent in rows if parent > 0}


def track_features(table: pd.DataFrame, graph: dict[int, list[int]]) -> pd.DataFrame:
    """Per-track summary: lifetime, motion and divisions.

    Parameters
    ----------
    table : pandas.DataFrame
        Tracks table (``track_id, t, y, x``), as :attr:`TrackingResult.table`.
    graph : dict of int to list of int
        ``{daughter: [mother]}``.

    Returns
    -------
    pandas.DataFrame
        One row per track: ``track_id, first_frame, last_frame, length``
        (frames in which the cell was seen), ``gaps`` (frames missed between
        first and last), ``mean_speed`` (pixels per frame over the steps
        between successive sightings; NaN for a single sighting),
        ``mean_area``, ``parent`` (0 = none), ``divides`` (has daughters).
    """
    ordered = table.sort_values(["track_id", "t"])
    track = ordered["track_id"].to_numpy()
    same = np.r_[False, track[1:] == track[:-1]]
    dt = np.diff(ordered["t"].to_numpy(), prepend=0).astype(float)
    step = np.hypot(np.diff(ordered["y"].to_numpy(), prepend=0), np.diff(ordered["x"].to_numpy(), prepend=0))
    # a step over a missed frame covers two frames of motion: divide by the frames it spans
    speed = np.where(same, step / np.where(same, dt, 1.0), np.nan)
    grouped = ordered.assign(speed=speed).groupby("track_id")
    features = pd.DataFrame(
        {
            "first_frame": grouped["t"].min(),
            "last_frame": grouped["t"].max(),
            "length": grouped["t"].size(),
            "mean_speed": grouped["speed"].mean(),
        }
    )
    if "area" in ordered:
        features["mean_area"] = grouped["area"].mean()
    features["gaps"] = features["last_frame"] - features["first_frame"] + 1 - features["length"]
    features.index.name = "track_id"
    features = features.reset_index()
    mothers = {parents[0] for parents in graph.values()}
    features["parent"] = [int(graph.get(int(t), [0])[0]) for t in features["track_id"]]
    features["divides"] = features["track_id"].isin(mothers)
    return features


def _default_max_distance(cells: pd.DataFrame) -> float:
    """A cell diameter: cells rarely move farther than that between frames."""
    if cells.empty:
        return 20.0
    return float(max(2 * np.sqrt(np.median(cells["area"]) / np.pi), 5.0))


def track_cells(
    labels,
    *,
    max_distance: float | None = None,
    max_gap: int = 1,
    divisions: bool = True,
    relabel: bool = True,
    linker: str = "overlap",
) -> TrackingResult:
    """Link the cells of a segmented time-lapse into tracks with lineage.

    Cells of successive frames are linked when each is the other's best
    overlap (intersection over union); what is left (a cell missed in up to
    ``max_gap`` frames, a cell that moved past its own size, a division) is
    settled by one small linear assignment per frame (cost: squared centroid
    distance, see :mod:`.linking`). A track that starts on top of a cell of
    the previous frame becomes that cell's daughter; the mother is chosen by
    overlap (the share of the daughter's pixels the mother covered one frame
    earlier), because at a division the nearest centroid is often a
    neighbour's: the daughters sit half a cell away from their mother's
    centre.

    Parameters
    ----------
    labels : array-like
        ``(T, Y, X)`` integer label stack (ids per frame need not be
        consecutive nor related between frames). Numpy, dask or anything
        indexable by frame; read one frame at a time.
    max_distance : float, optional
        Farthest a cell may move between frames (pixels), also the farthest a
        daughter may appear from its mother. Default: the median cell
        diameter.
    max_gap : int
        Frames a cell may be missed (undetected) and still keep its track;
        0 disables gap closing.
    divisions : bool
        Detect divisions (track splitting).
    relabel : bool
        Build the relabelled stack (``result.labels``); with ``False`` the
        input is returned unchanged and only the tables are computed.
    linker : str
        ``"overlap"`` (:mod:`.linking`, the default) or ``"laptrack"``
        (laptrack's global gap-closing and splitting assignment: as right on
        the synthetic benchmarks, 20-100x slower; kept as the reference).

    Returns
    -------
    TrackingResult
        Relabelled stack, tracks table, lineage graph and per-track features.
    """
    if linker not in LINKERS:
        raise ValueError(f"unknown linker {linker!r}: choose one of {', '.join(LINKERS)}")
    steps = iter_track_cells(
        labels,
        max_distance=max_distance,
        max_gap=max_gap,
        divisions=divisions,
        relabel=relabel,
        linker=linker,
    )
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def iter_track_cells(
    labels,
    *,
    max_distance: float | None = None,
    max_gap: int = 1,
    divisions: bool = True,
    relabel: bool = True,
    linker: str = "overlap",
) -> Generator[tuple[str, int, int], None, TrackingResult]:
    """:func:`track_cells` step by step, for a thread worker that shows progress and can stop.

    Yields ``(stage, done, total)``: ``"measuring"`` after each frame read,
    ``"linking"`` before and after linking (one step: it cannot be
    interrupted), ``"relabelling"`` after each frame relabelled (numpy input
    only; a lazy input's relabelled stack stays lazy). Returns the
    :class:`TrackingResult` (``result = yield from iter_track_cells(...)``).
    Parameters as :func:`track_cells`.
    """
    overlaps = Overlaps()
    # overlaps are measured in the same pass: the linker needs them
    measuring = _measure_stack(labels, None, overlaps)
    cells = yield from relay(measuring, lambda progress: ("measuring", *progress))
    if max_distance is None:
        max_distance = _default_max_distance(cells)
    if cells.empty:
        table = pd.DataFrame({column: pd.Series(dtype=np.int64) for column in TABLE_COLUMNS})
        graph: dict[int, list[int]] = {}
    else:
        cells = cells.sort_values(["t", "label"], ignore_index=True)
        yield "linking", 0, 1
        link = _link_laptrack if linker == "laptrack" else _link_overlaps
        raw, splits = link(cells, overlaps, labels.shape[0], float(max_distance), max_gap, divisions)
        yield "linking", 1, 1
        table, graph = _number_tracks(cells, raw, splits)
    result_labels = labels
    if relabel and is_lazy(labels):
        result_labels = relabel_stack(labels, table)
    elif relabel:
        result_labels = np.empty(labels.shape, dtype=np.int32)
        lookups = _lookups(table)
        for t, frame in iter_frames(labels):
            result_labels[t] = _apply_lookup(frame, lookups.get(t))
            yield "relabelling", t + 1, labels.shape[0]
    return TrackingResult(
        labels=result_labels, table=table, graph=graph, features=track_features(table, graph)
    )


def _number_tracks(
    cells: pd.DataFrame, raw: np.ndarray, splits: list[tuple[int, int]]
) -> tuple[pd.DataFrame, dict[int, list[int]]]:
    """Tracks table and graph from a segment number per cell row.

    Segments are renumbered by first appearance (then input id), so frame 0's
    cells keep their order and ids are deterministic.
    """
    t = cells["t"].to_numpy()
    # in numpy: pandas' sorts and drop_duplicates cost more than linking the movie
    ranked = raw[np.lexsort((cells["label"].to_numpy(), t))]
    _, first = np.unique(ranked, return_index=True)
    order = ranked[np.sort(first)]
    renumber = np.zeros(int(raw.max()) + 1, dtype=np.int64)
    renumber[order] = np.arange(1, len(order) + 1)
    track = renumber[raw]
    # (track, t) is unique per row: any sort gives this order
    rows = np.lexsort((t, track))
    table = pd.DataFrame(
        {
            column: (track if column == "track_id" else cells[column].to_numpy())[rows]
            for column in TABLE_COLUMNS
        }
    )
    graph: dict[int, list[int]] = {}
    for mother, daughter in splits:
        graph.setdefault(int(renumber[daughter]), []).append(int(renumber[mother]))
    return table, graph


def _link_overlaps(
    cells: pd.DataFrame, overlaps: Overlaps, n_frames: int, max_distance: float, max_gap: int, divisions: bool
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Segments of ``cells`` (sorted by ``t, label``) by :mod:`.linking` (overlap, then small assignments)."""
    from .linking import link_cells, segments

    t = cells["t"].to_numpy()
    label = cells["label"].to_numpy()
    pair_t, pair_label, pair_previous, pair_pixels = overlaps.pairs()
    child = _rows_of(pair_t, pair_label, t, label)
    parent = _rows_of(pair_t - 1, pair_previous, t, label)
    links = link_cells(
        t,
        cells["y"].to_numpy(),
        cells["x"].to_numpy(),
        cells["area"].to_numpy(dtype=float),
        child,
        parent,
        pair_pixels,
        max_distance=max_distance,
        max_gap=max_gap,
        divisions=divisions,
    )
    return segments(len(cells), links)


def _rows_of(t: np.ndarray, label: np.ndarray, cell_t: np.ndarray, cell_label: np.ndarray) -> np.ndarray:
    """Row of each ``(t, label)`` in a table sorted by ``(t, label)``."""
    span = int(max(cell_label.max(initial=0), label.max(initial=0))) + 1
    keys = cell_t.astype(np.int64) * span + cell_label
    return np.searchsorted(keys, t.astype(np.int64) * span + label)


def _link_laptrack(
    cells: pd.DataFrame, overlaps: Overlaps, n_frames: int, max_distance: float, max_gap: int, divisions: bool
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Segments of ``cells`` by laptrack's global gap closing and splitting (the reference linker)."""
    from laptrack import LapTrack

    # coordinates are (y, x, t): t makes every centroid a unique key for the
    # division cost and adds the same 1 to every frame-to-frame cost
    cutoff = float(max_distance) ** 2 + 1.0
    tracker = LapTrack(
        metric="sqeuclidean",
        cutoff=cutoff,
        gap_closing_metric="sqeuclidean",
        # laptrack counts the frame difference: one missed frame is a difference of 2
        gap_closing_cutoff=cutoff + (max_gap + 1) ** 2 if max_gap > 0 else False,
        gap_closing_max_frame_count=max_gap + 1,
        splitting_metric=_division_cost(cells, overlaps, cutoff),
        splitting_cutoff=cutoff if divisions else False,
        merging_cutoff=False,
    )
    return _predict(tracker, cells, n_frames)


def _predict(tracker, cells: pd.DataFrame, n_frames: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Run laptrack; return a segment number per row of ``cells`` and ``(mother, daughter)`` segments.

    laptrack's own ``predict_dataframe`` converts its graph with one pandas
    assignment per cell (26 of 29 s for 40 frames x 300 cells); the graph is
    converted here with arrays instead: a node with two successors is a
    division, and cutting those edges leaves one chain per track.
    """
    import networkx as nx

    t = cells["t"].to_numpy()
    counts = np.bincount(t, minlength=n_frames)
    offsets = np.r_[0, np.cumsum(counts)]
    points = np.column_stack([cells["y"].to_numpy(), cells["x"].to_numpy(), t.astype(float)])
    coords = [points[offsets[frame] : offsets[frame + 1]] for frame in range(n_frames)]
    tree = tracker.predict(coords)
    chains = nx.Graph()
    chains.add_nodes_from(tree.nodes)
    divisions: list[tuple[tuple[int, int], tuple[int, int]]] = []
    for node in tree.nodes:
        children = list(tree.successors(node))
        if len(children) > 1:
            divisions += [(node, child) for child in children]
        else:
            chains.add_edges_from((node, child) for child in children)
    segment = np.empty(len(cells), dtype=np.int64)
    for number, component in enumerate(nx.connected_components(chains)):
        rows = [offsets[frame] + index for frame, index in component]
        segment[rows] = number
    splits = [(int(segment[offsets[m[0]] + m[1]]), int(segment[offsets[d[0]] + d[1]])) for m, d in divisions]
    return segment, splits


def _division_cost(cells: pd.DataFrame, overlaps: Overlaps, cutoff: float):
    """Division (splitting) cost for laptrack: low when the mother covered most of the daughter.

    laptrack calls it with coordinate rows ``(y, x, t)`` of a track's first
    cell and of a candidate mother one frame earlier. The cost is in the
    units of the linking cost (squared pixels), so that laptrack's
    automatic "no division" cost stays meaningful: ``(1 - covered) *
    cutoff``, where ``covered`` is the share of the daughter's pixels that the
    candidate held in the previous frame. No overlap: no division.
    """
    t_all = cells["t"].to_numpy()
    bounds = np.searchsorted(t_all, np.arange(int(t_all.max()) + 2)) if len(t_all) else np.zeros(1, int)
    keys: dict[int, dict[tuple[float, float], tuple[int, int]]] = {}

    def find(t: int, y: float, x: float) -> tuple[int, int] | None:
        # one frame's (y, x) -> (label, area), built when laptrack first asks about that frame
        if t not in keys:
            rows = cells.iloc[bounds[t] : bounds[t + 1]] if 0 <= t < len(bounds) - 1 else cells.iloc[:0]
            keys[t] = dict(
                zip(
                    zip(rows["y"].tolist(), rows["x"].tolist()),
                    zip(rows["label"].tolist(), rows["area"].tolist()),
                )
            )
        return keys[t].get((y, x))

    def cost(u: np.ndarray, v: np.ndarray) -> float:
        if u[2] < v[2]:
            u, v = v, u
        daughter = find(int(u[2]), u[0], u[1])
        mother = find(int(v[2]), v[0], v[1])
        if daughter is None or mother is None:
            return np.inf
        covered = overlaps.shared(int(u[2]), daughter[0], mother[0]) / daughter[1]
        return np.inf if covered <= 0 else (1.0 - covered) * cutoff

    return cost


def _lookups(table: pd.DataFrame) -> dict[int, np.ndarray]:
    """Per frame, an array mapping input label -> track id (0 for labels not in the table)."""
    t = table["t"].to_numpy(dtype=np.int64)
    label = table["label"].to_numpy(dtype=np.int64)
    if t.size == 0:
        return {}
    rows = np.lexsort((label, t))
    t, label = t[rows], label[rows]
    # all frames' lookups in one array, each frame's from its offset: one groupby per
    # frame cost more than relabelling it
    frames, first = np.unique(t, return_index=True)
    sizes = label[np.r_[first[1:], t.size] - 1] + 1  # each frame's largest label + 1
    offsets = np.r_[0, np.cumsum(sizes)]
    flat = np.zeros(int(offsets[-1]), dtype=np.int32)
    flat[offsets[np.searchsorted(frames, t)] + label] = table["track_id"].to_numpy(dtype=np.int32)[rows]
    return {int(frame): flat[offsets[i] : offsets[i + 1]] for i, frame in enumerate(frames.tolist())}


def _apply_lookup(frame: np.ndarray, lookup: np.ndarray | None) -> np.ndarray:
    if lookup is None:
        return np.zeros(frame.shape, dtype=np.int32)
    kernels = _kernels()
    if kernels is not None and frame.dtype.kind in "iu" and frame.ndim == 2:
        return kernels.relabel(frame, lookup)
    if frame.size and int(frame.max()) < len(lookup):
        return lookup[frame]
    # ids above the table's largest (none if the table came from this stack) become background
    return lookup[np.minimum(frame, len(lookup) - 1)] * (frame < len(lookup))


def relabel_stack(labels, table: pd.DataFrame):
    """Give every cell its track id: ``out[t][labels[t] == label] = track_id``.

    Parameters
    ----------
    labels : array-like
        ``(T, Y, X)`` input label stack.
    table : pandas.DataFrame
        Rows ``t, label, track_id``.

    Returns
    -------
    numpy.ndarray or dask.array.Array
        int32 stack; lazy (relabelled chunk by chunk) when ``labels`` is a
        dask array, so a lazy stack stays lazy.
    """
    lookups = _lookups(table)
    if is_lazy(labels):
        # first frame of each block along time: dask's block_info builds a dict per block,
        # ~0.1 ms per frame at 1,000 frames; block_id is a tuple
        first_frames = np.r_[0, np.cumsum(labels.chunks[0])]

        def relabel_block(block: np.ndarray, block_id=None) -> np.ndarray:
            start = int(first_frames[block_id[0]])
            out = np.empty(block.shape, dtype=np.int32)
            for offset in range(block.shape[0]):
                out[offset] = _apply_lookup(block[offset], lookups.get(start + offset))
            return out

        return labels.map_blocks(relabel_block, dtype=np.int32)
    out = np.empty(labels.shape, dtype=np.int32)
    for t, frame in iter_frames(labels):
        out[t] = _apply_lookup(frame, lookups.get(t))
    return out


# --------------------------------------------------------------------------- accuracy


def _node_links(table: pd.DataFrame, graph: dict[int, list[int]]) -> set[tuple[int, int, int, int]]:
    """Links ``(t0, track0, t1, track1)`` between successive sightings and at divisions."""
    ordered = table.sort_values(["track_id", "t"])
    track = ordered["track_id"].to_numpy()
    t = ordered["t"].to_numpy()
    same = track[1:] == track[:-1]
    links = set(
        zip(t[:-1][same].tolist(), track[:-1][same].tolist(), t[1:][same].tolist(), track[1:][same].tolist())
    )
    last = ordered.groupby("track_id")["t"].max()
    first = ordered.groupby("track_id")["t"].min()
    for daughter, parents in graph.items():
        for mother in parents:
            if mother in last.index and daughter in first.index:
                links.add((int(last[mother]), int(mother), int(first[daughter]), int(daughter)))
    return links


def _match_to_truth(true_labels, pred_labels, min_iou: float = 0.5) -> dict[tuple[int, int], int]:
    """``(t, predicted id) -> true id`` for cells overlapping a true cell with IoU > ``min_iou``.

    IoU above 0.5 makes the match one-to-one; computed frame by frame from the
    joint histogram of the two label frames.
    """
    matches: dict[tuple[int, int], int] = {}
    for t in range(true_labels.shape[0]):
        truth = _frame(true_labels, t).ravel().astype(np.int64)
        pred = _frame(pred_labels, t).ravel().astype(np.int64)
        both = (truth > 0) & (pred > 0)
        pairs, overlap = np.unique(np.stack([truth[both], pred[both]]), axis=1, return_counts=True)
        true_area = np.bincount(truth)
        pred_area = np.bincount(pred)
        iou = overlap / (true_area[pairs[0]] + pred_area[pairs[1]] - overlap)
        for true_id, pred_id in pairs[:, iou > min_iou].T.tolist():
            matches[(t, pred_id)] = true_id
    return matches


def link_accuracy(
    true_labels,
    true_graph: dict[int, list[int]],
    pred_labels,
    pred_graph: dict[int, list[int]],
) -> dict[str, float]:
    """Fraction of correct links of a tracking result against ground truth.

    A link joins two sightings of a cell (the same track in successive
    frames, or a mother's last sighting and a daughter's first). Predicted
    cells are matched to true cells by IoU > 0.5 in each frame; a true link
    is found when both its ends are matched and the predicted cells are
    linked.

    Parameters
    ----------
    true_labels, pred_labels : array-like
        ``(T, Y, X)`` stacks whose ids are track ids.
    true_graph, pred_graph : dict of int to list of int
        ``{daughter: [mother]}`` of each.

    Returns
    -------
    dict
        ``recall`` (true links found / true links: "fraction of correct
        links"), ``precision`` (predicted links that are true / predicted
        links), ``links``, ``divisions`` (true divisions), ``divisions_found``
        (true divisions whose mother -> daughter links were all found),
        ``divisions_predicted``.
    """
    true_table = tracks_from_labels(true_labels)
    pred_table = tracks_from_labels(pred_labels)
    true_links = _node_links(true_table, true_graph)
    pred_links = _node_links(pred_table, pred_graph)
    match = _match_to_truth(true_labels, pred_labels)
    mapped = set()
    for t0, a, t1, b in pred_links:
        if (t0, a) in match and (t1, b) in match:
            mapped.add((t0, match[(t0, a)], t1, match[(t1, b)]))
    found = true_links & mapped
    true_divisions: dict[int, set] = {}
    for daughter, parents in true_graph.items():
        true_divisions.setdefault(parents[0], set()).add(daughter)
    division_links = {(t0, a, t1, b) for (t0, a, t1, b) in true_links if a != b}
    divisions_found = sum(
        all(link in found for link in division_links if link[1] == mother) for mother in true_divisions
    )
    return {
        "recall": len(found) / max(len(true_links), 1),
        "precision": len(found) / max(len(pred_links), 1),
        "links": float(len(true_links)),
        "divisions": float(len(true_divisions)),
        "divisions_found": float(divisions_found),
        "divisions_predicted": float(len({p[0] for p in pred_graph.values()})),
    }


# --------------------------------------------------------------------------- review


REVIEW_COLUMNS = ["track_id", "kind", "t", "y", "x", "score", "detail"]


def review_flags(
    table: pd.DataFrame,
    *,
    jump_distance: float | None = None,
    flicker_gaps: int = 2,
) -> pd.DataFrame:
    """Tracks worth a look, in the order to review them.

    Three kinds of suspicious tracks:

    * ``"singleton"``: a cell seen in one frame only (a false detection, or a
      track broken on both sides), except in the movie's first and last
      frames, where a cell may simply enter or be born;
    * ``"flicker"``: a track that disappears and reappears ``flicker_gaps``
      times or more (an unstable detection, or ids swapped between cells);
    * ``"jump"``: a step between successive sightings longer than
      ``jump_distance`` (an id passed on to another cell).

    Parameters
    ----------
    table : pandas.DataFrame
        Tracks table with ``track_id, t, y, x`` (:attr:`TrackingResult.table`
        or :func:`tracks_from_labels` of a stack whose ids are track ids).
    jump_distance : float, optional
        Step length in pixels per frame that counts as a jump. Default: the
        larger of a cell diameter (from ``area`` when present) and 4 times
        the median step.
    flicker_gaps : int
        Disappearances (runs of missed frames inside a track) that make it
        flicker.

    Returns
    -------
    pandas.DataFrame
        Columns ``track_id, kind, t, y, x, score, detail``: one row per flag,
        at the frame and position to look at, sorted by frame, then
        position, so that "next" walks through the movie. ``score`` orders
        flags of one kind by severity (frames missed, pixels jumped).
    """
    if table.empty:
        return pd.DataFrame({column: [] for column in REVIEW_COLUMNS})
    ordered = table.sort_values(["track_id", "t"], ignore_index=True)
    track = ordered["track_id"].to_numpy()
    t = ordered["t"].to_numpy()
    y, x = ordered["y"].to_numpy(dtype=float), ordered["x"].to_numpy(dtype=float)
    same = np.r_[False, track[1:] == track[:-1]]
    dt = np.r_[0, np.diff(t)]
    step = np.hypot(np.r_[0.0, np.diff(y)], np.r_[0.0, np.diff(x)])
    per_frame = np.where(same, step / np.maximum(dt, 1), np.nan)
    if jump_distance is None:
        steps = per_frame[same]
        typical = 4 * float(np.median(steps)) if steps.size else 0.0
        diameter = 2 * float(np.sqrt(np.median(ordered["area"]) / np.pi)) if "area" in ordered else 0.0
        jump_distance = max(typical, diameter, 1.0)
    rows: list[dict] = []
    sizes = ordered.groupby("track_id")["t"].size()
    starts = np.flatnonzero(~same)
    first_frame, last_frame = t.min(), t.max()
    for index in starts[sizes.loc[track[starts]].to_numpy() == 1]:
        if t[index] in (first_frame, last_frame):
            continue
        rows.append(_flag(track[index], "singleton", t[index], y[index], x[index], 1.0, "seen in one frame"))
    gap = same & (dt > 1)
    gaps = pd.Series(gap).groupby(track).sum()
    for track_id, count in gaps[gaps >= flicker_gaps].items():
        index = np.flatnonzero((track == track_id) & gap)[0]
        missed = int((dt[(track == track_id) & gap] - 1).sum())
        rows.append(
            _flag(
                track_id,
                "flicker",
                t[index],
                y[index],
                x[index],
                float(missed),
                f"disappears {int(count)} times ({missed} frames missed)",
            )
        )
    for index in np.flatnonzero(same & (per_frame > jump_distance)):
        rows.append(
            _flag(
                track[index],
                "jump",
                t[index],
                y[index],
                x[index],
                float(step[index]),
                f"moves {step[index]:.0f} px from frame {t[index - 1]}",
            )
        )
    flags = pd.DataFrame(rows, columns=REVIEW_COLUMNS)
    return flags.sort_values(["t", "y", "x", "track_id"], ignore_index=True)


def _flag(track_id, kind: str, t, y, x, score: float, detail: str) -> dict:
    return {
        "track_id": int(track_id),
        "kind": kind,
        "t": int(t),
        "y": float(y),
        "x": float(x),
        "score": score,
        "detail": detail,
    }


# --------------------------------------------------------------------------- export


TRACKS_CSV_COLUMNS = ["frame", "id", "parent", "y", "x", "area"]


def tracks_csv_table(table: pd.DataFrame, graph: dict[int, list[int]]) -> pd.DataFrame:
    """The tracks table as labs exchange it: ``frame, id, parent, y, x, area``.

    ``parent`` is the mother track of the cell's track (0 = none), repeated on
    every row of the track so that each row stands alone in a spreadsheet.
    """
    ordered = table.sort_values(["t", "track_id"], ignore_index=True)
    parents = ordered["track_id"].map(lambda track: graph.get(int(track), [0])[0])
    return pd.DataFrame(
        {
            "frame": ordered["t"].astype(np.int64),
            "id": ordered["track_id"].astype(np.int64),
            "parent": parents.astype(np.int64),
            "y": ordered["y"].round(3),
            "x": ordered["x"].round(3),
            "area": ordered["area"].astype(np.int64),
        },
        columns=TRACKS_CSV_COLUMNS,
    )


def write_tracks_csv(path, table: pd.DataFrame, graph: dict[int, list[int]]):
    """Write :func:`tracks_csv_table` to ``path`` atomically; returns the path."""
    from napari_livecell.core.atomic import write_text_atomic

    return write_text_atomic(path, tracks_csv_table(table, graph).to_csv(index=False))


def read_tracks_csv(path) -> tuple[pd.DataFrame, dict[int, list[int]]]:
    """Read a tracks CSV back: ``(table, graph)`` as :class:`TrackingResult` has them."""
    rows = pd.read_csv(path)
    table = pd.DataFrame(
        {
            "track_id": rows["id"].astype(np.int64),
            "t": rows["frame"].astype(np.int64),
            "y": rows["y"].astype(float),
            "x": rows["x"].astype(float),
            "area": rows["area"].astype(np.int64),
            "label": rows["id"].astype(np.int64),
        }
    ).sort_values(["track_id", "t"], ignore_index=True)
    parents = rows.drop_duplicates("id").set_index("id")["parent"]
    graph = {int(track): [int(parent)] for track, parent in parents.items() if parent > 0}
    return table, graph
