"""Correct a track's id from one frame on, touching only the two tracks involved.

Proofreading a tracked time-lapse mostly means fixing one wrong link: an id
passed on to a neighbour at frame ``t`` (two tracks to swap from there), two
pieces of one cell's life under two ids (a merge), or one id covering two
cells (a split). All three are one operation: *from frame t on, track A is
called B and track B is called A* (B may be a new id). Only the link into
frame ``t`` changes; every other track, and both tracks before ``t``, keep
their ids, table rows and features, so nothing is tracked again.

Plain numpy/pandas; the widget applies :attr:`TrackCorrection.changed` with
one undoable ``data_setitem`` and undoes with :attr:`TrackCorrection.before`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .track import TrackingResult, track_features


@dataclass
class TrackCorrection:
    """One id correction and what undoes it.

    Attributes
    ----------
    result : TrackingResult
        Tracks after the correction (``labels`` is the stack passed in, not
        yet changed: apply ``labels[changed] = after``).
    previous : TrackingResult
        Tracks before, as given: restored by undo.
    changed : tuple of numpy.ndarray
        ``(t, y, x)`` indices of the pixels whose id changes.
    before, after : numpy.ndarray
        Their ids before and after.
    tracks : tuple of int
        The two track ids involved (A, B).
    relinked_frames : tuple of int
        Frames whose link to the previous sighting was re-decided: only ``t``.
    touched_tracks : tuple of int
        Tracks whose table rows, lineage or features changed (A, B and
        daughters given another mother).
    """

    result: TrackingResult
    previous: TrackingResult
    changed: tuple[np.ndarray, ...]
    before: np.ndarray
    after: np.ndarray
    tracks: tuple[int, int]
    relinked_frames: tuple[int, ...]
    touched_tracks: tuple[int, ...]


def correct_track_id(
    labels: np.ndarray, result: TrackingResult, t: int, track_id: int, new_id: int
) -> TrackCorrection:
    """From frame ``t`` on, give track ``track_id`` the id ``new_id`` (and ``new_id``'s cells ``track_id``).

    Parameters
    ----------
    labels : numpy.ndarray
        ``(T, Y, X)`` in-memory stack whose ids are track ids (the tracked
        Labels layer's data); read, not changed.
    result : TrackingResult
        Its tracks (table, graph, features).
    t : int
        First frame to correct; ``track_id`` must have a cell there.
    track_id : int
        The track whose id is wrong from ``t`` on (A).
    new_id : int
        The right id (B): an existing track (swap or merge from ``t``) or an
        unused id (a split: A's cells from ``t`` on become a new track).

    Returns
    -------
    TrackCorrection
        New tracks, the pixel changes, and the tracks before (for undo).
    """
    labels = np.asarray(labels) if not isinstance(labels, np.ndarray) else labels
    if labels.ndim != 3:
        raise ValueError(f"expected a (T, Y, X) stack, got shape {labels.shape}")
    t, a, b = int(t), int(track_id), int(new_id)
    if not 0 <= t < labels.shape[0]:
        raise ValueError(f"frame {t} is outside the stack (0..{labels.shape[0] - 1})")
    if a <= 0 or b <= 0:
        raise ValueError(f"track ids must be positive, got {a} and {b}")
    if a == b:
        raise ValueError(f"track {a} already has id {b}")
    if np.issubdtype(labels.dtype, np.integer) and b > np.iinfo(labels.dtype).max:
        raise ValueError(f"id {b} does not fit the stack's {labels.dtype}")
    table = result.table
    track, frame = table["track_id"].to_numpy(), table["t"].to_numpy()
    if not ((track == a) & (frame == t)).any():
        raise ValueError(f"track {a} has no cell in frame {t}")
    in_a, in_b, tail = track == a, track == b, frame >= t
    head = {a: bool((in_a & ~tail).any()), b: bool((in_b & ~tail).any())}
    has_tail = {a: True, b: bool((in_b & tail).any())}
    new_track = track.copy()
    new_track[in_a & tail], new_track[in_b & tail] = b, a
    new_table = table.assign(track_id=new_track).sort_values(["track_id", "t"], ignore_index=True)
    graph, touched = _swap_lineage(result.graph, a, b, head, has_tail)
    features = _splice_features(result.features, new_table, graph, touched)

    tail_frames = np.unique(frame[(in_a | in_b) & tail])
    parts, before = [], []
    for f in tail_frames.tolist():
        plane = labels[f]
        rows, cols = np.nonzero((plane == a) | (plane == b))
        parts.append((np.full(rows.size, f, dtype=np.intp), rows, cols))
        before.append(plane[rows, cols])
    changed = (
        tuple(np.concatenate([p[i] for p in parts]) for i in range(3))
        if parts
        else (np.zeros(0, np.intp),) * 3
    )
    old = np.concatenate(before) if before else np.zeros(0, dtype=labels.dtype)
    new = np.where(old == a, b, a).astype(labels.dtype)
    corrected = TrackingResult(labels=labels, table=new_table, graph=graph, features=features)
    return TrackCorrection(
        result=corrected,
        previous=result,
        changed=changed,
        before=old,
        after=new,
        tracks=(a, b),
        relinked_frames=(t,),
        touched_tracks=tuple(sorted(touched)),
    )


def _swap_lineage(
    graph: dict[int, list[int]], a: int, b: int, head: dict[int, bool], has_tail: dict[int, bool]
) -> tuple[dict[int, list[int]], set[int]]:
    """Lineage after swapping the tails of tracks ``a`` and ``b``; also the tracks it touched.

    A track's mother belongs to its first cell (its head, or its tail when it
    has no head); its daughters belong to its last cell (the tail when it has
    one).
    """
    other = {a: b, b: a}
    new_graph = {d: list(m) for d, m in graph.items() if d not in (a, b)}
    touched = {a, b}
    for x in (a, b):
        y = other[x]
        if head[x]:
            mother = graph.get(x)
        elif not head[y] and has_tail[y]:
            mother = graph.get(y)
        else:
            mother = None
        if mother and mother[0] != x and (head[x] or has_tail[y]):
            new_graph[x] = list(mother)
    for daughter, (parent,) in list(new_graph.items()):
        if parent in (a, b) and has_tail[parent]:
            new_graph[daughter] = [other[parent]]
            touched.add(daughter)
    # a track left without cells has no lineage
    for x in (a, b):
        if not head[x] and not has_tail[other[x]]:
            new_graph.pop(x, None)
    new_graph = {d: m for d, m in new_graph.items() if m[0] != d}
    return new_graph, touched


def _splice_features(
    features: pd.DataFrame, table: pd.DataFrame, graph: dict[int, list[int]], touched: set[int]
) -> pd.DataFrame:
    """Per-track features with only the ``touched`` tracks recomputed."""
    kept = features[~features["track_id"].isin(touched)]
    fresh = track_features(table[table["track_id"].isin(touched)], graph)
    return pd.concat([kept, fresh], ignore_index=True).sort_values("track_id", ignore_index=True)
