"""The tracks table as a CSV (``frame, id, parent, y, x, area``), written and read back."""

from __future__ import annotations

import numpy as np
import pandas as pd

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
