"""Follow cells through a time-lapse: link, relabel, lineage, per-track features.

:func:`track_cells` reads a label stack ``(T, Y, X)`` once, frame by frame
(:mod:`.track_measure`: centroids, areas and overlaps), links the cells
(:mod:`.linking`: mutual best overlap between successive frames, then one
small linear assignment per frame for gaps, fast movers and divisions), and
numbers the tracks. `laptrack <https://github.com/yfukai/laptrack>`_
(Jaqaman et al. 2008's global assignment) stays available as
``linker="laptrack"`` (:mod:`.track_laptrack`), the reference the linker was
checked against; docs/tracking.md says why.

The rest lives by purpose and is importable from here too:
:mod:`.track_relabel` (the relabelled stack, lazy for a lazy input),
:mod:`.track_lineage` (lineage and per-track features), :mod:`.track_review`
(tracks worth a look), :mod:`.track_export` (the tracks CSV) and
:mod:`.track_accuracy` (links right against ground truth).

Conventions
-----------
* Track ids start at 1; 0 is background.
* A division ends the parent track; each daughter starts a new track whose
  parent is the mother (the Cell Tracking Challenge's convention).
* ``graph`` is napari's Tracks-layer graph: ``{child_track: [parent_track]}``.

Examples
--------
>>> from napari_livecell.core.training.synthetic import synthesize_timelapse
>>> lapse = synthesize_timelapse(seed=0, n_frames=4, n_cells=20, shape=(160, 200))
>>> result = track_cells(lapse.labels)
>>> result.labels.shape, list(result.table.columns[:4])
((4, 160, 200), ['track_id', 't', 'y', 'x'])
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from napari_livecell.core.images import is_lazy
from napari_livecell.core.steps import relay

from .accuracy import link_accuracy
from .flags import REVIEW_COLUMNS, review_flags
from .frame_cells import (
    TABLE_COLUMNS,
    FrameCells,
    Overlaps,
    _measure_stack,
    cell_table,
    iter_frames,
    measure_frame,
    tracks_from_labels,
)
from .laptrack import _link_laptrack
from .lineage import LINEAGE_COLUMNS, graph_from_lineage, lineage_table, track_features
from .relabel import _apply_lookup, _lookups, relabel_stack
from .tracks_csv import TRACKS_CSV_COLUMNS, read_tracks_csv, tracks_csv_table, write_tracks_csv

__all__ = [
    "LINEAGE_COLUMNS",
    "LINKERS",
    "REVIEW_COLUMNS",
    "TABLE_COLUMNS",
    "TRACKS_CSV_COLUMNS",
    "FrameCells",
    "Overlaps",
    "TrackingResult",
    "cell_table",
    "graph_from_lineage",
    "iter_frames",
    "iter_track_cells",
    "lineage_table",
    "link_accuracy",
    "measure_frame",
    "read_tracks_csv",
    "relabel_stack",
    "review_flags",
    "track_cells",
    "track_features",
    "tracks_csv_table",
    "tracks_from_labels",
    "write_tracks_csv",
]

# "overlap": core/tracking/linking.py (the default); "laptrack": laptrack's global LAP, kept as the reference
LINKERS = ("overlap", "laptrack")


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
    if not cells.empty and int(cells["label"].min()) < 0:
        first = cells[cells["label"] < 0].iloc[0]
        raise ValueError(
            f"frame {int(first['t'])} holds the negative label {int(first['label'])}: "
            "labels are 0 (background) or positive ids"
        )
    if max_distance is None:
        max_distance = _default_max_distance(cells)
    if cells.empty:
        table = pd.DataFrame({column: pd.Series(dtype=np.int64) for column in TABLE_COLUMNS})
        graph: dict[int, list[int]] = {}
        ids = table
    else:
        # cells come sorted by frame, then label (what linking and numbering rely on)
        yield "linking", 0, 1
        link = _link_laptrack if linker == "laptrack" else _link_overlaps
        raw, splits = link(cells, overlaps, labels.shape[0], float(max_distance), max_gap, divisions)
        yield "linking", 1, 1
        table, graph, track = _number_tracks(cells, raw, splits)
        # the cells' own (t, label) order: the lookups need no sort
        ids = pd.DataFrame({"t": cells["t"], "label": cells["label"], "track_id": track})
    result_labels = labels
    if relabel and is_lazy(labels):
        result_labels = relabel_stack(labels, ids)
    elif relabel:
        result_labels = np.empty(labels.shape, dtype=np.int32)
        lookups = _lookups(ids)
        for t, frame in iter_frames(labels):
            result_labels[t] = _apply_lookup(frame, lookups.get(t))
            yield "relabelling", t + 1, labels.shape[0]
    return TrackingResult(
        labels=result_labels, table=table, graph=graph, features=track_features(table, graph)
    )


def _number_tracks(
    cells: pd.DataFrame, raw: np.ndarray, splits: list[tuple[int, int]]
) -> tuple[pd.DataFrame, dict[int, list[int]], np.ndarray]:
    """Tracks table, graph and each cell row's track id, from a segment number per cell row.

    Segments are renumbered by first appearance (then input id), so frame 0's
    cells keep their order and ids are deterministic.
    """
    # in numpy: pandas' sorts and drop_duplicates cost more than linking the movie;
    # cells are sorted by (t, label), so a segment's first row is its first appearance
    _, first = np.unique(raw, return_index=True)
    order = raw[np.sort(first)]
    renumber = np.zeros(int(raw.max()) + 1, dtype=np.int64)
    renumber[order] = np.arange(1, len(order) + 1)
    track = renumber[raw]
    # by track, then time: a stable sort keeps each track's rows in frame order
    rows = np.argsort(track, kind="stable")
    table = pd.DataFrame(
        {
            column: (track if column == "track_id" else cells[column].to_numpy())[rows]
            for column in TABLE_COLUMNS
        }
    )
    graph: dict[int, list[int]] = {}
    for mother, daughter in splits:
        graph.setdefault(int(renumber[daughter]), []).append(int(renumber[mother]))
    return table, graph, track


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
    """Row of each ``(t, label)`` in a table sorted by ``(t, label)`` that holds them all.

    A table per frame indexed by ``label - smallest label`` (frames in one
    array, each from its offset): a binary search over all cells of the movie
    cost as much as linking it. Ids spread far wider than the cells are
    searched instead.
    """
    n = len(cell_t)
    first = np.searchsorted(cell_t, np.arange(int(cell_t[-1]) + 2))
    present = first[1:] > first[:-1]
    low = np.where(present, cell_label[np.minimum(first[:-1], n - 1)], 0)
    sizes = np.where(present, cell_label[first[1:] - 1] - low + 1, 0)
    offsets = np.r_[0, np.cumsum(sizes)]
    if offsets[-1] > 4 * n + 65536:
        span = int(max(cell_label.max(initial=0), label.max(initial=0))) + 1
        keys = cell_t.astype(np.int64) * span + cell_label
        return np.searchsorted(keys, t.astype(np.int64) * span + label)
    rows = np.zeros(int(offsets[-1]), dtype=np.int64)
    rows[offsets[cell_t] + cell_label - low[cell_t]] = np.arange(n)
    return rows[offsets[t] + label - low[t]]
