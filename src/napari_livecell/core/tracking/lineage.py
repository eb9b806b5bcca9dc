"""Lineage and per-track summaries of a tracks table (``track_id, t, y, x, area``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

# the Cell Tracking Challenge's man_track.txt columns
LINEAGE_COLUMNS = ["id", "first_frame", "last_frame", "parent"]


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
