"""Tracks worth a look: singletons, flickering tracks and jumps, in the order to review them."""

from __future__ import annotations

import numpy as np
import pandas as pd

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
