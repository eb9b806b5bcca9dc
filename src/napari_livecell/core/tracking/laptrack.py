"""laptrack's global gap-closing and splitting assignment: the reference linker.

``track_cells(linker="laptrack")``; docs/tracking.md says why :mod:`.linking`
replaced it as the default (as right on the synthetic benchmarks, 20-100x
faster).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .frame_cells import Overlaps


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
