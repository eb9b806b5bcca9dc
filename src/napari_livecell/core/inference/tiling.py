"""Overlapping tiles for frames larger than the model input.

Each tile owns a *core*: the tiles' cores split the frame without gaps or
overlap, with seams in the middle of each overlap. An instance is kept only by
the tile whose core holds its box centre, so no cell is counted twice; with an
overlap wider than the largest cell, a kept cell also lies wholly inside its
tile, so no cell is cut in two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_OVERLAP = 128  # px; LIVECell cells are rarely wider than ~60 px


@dataclass(frozen=True)
class Tile:
    """A window of the frame and the part of it (its core) that it answers for."""

    row: slice
    col: slice
    core_row: tuple[float, float]
    core_col: tuple[float, float]

    def owns(self, center_row: float, center_col: float) -> bool:
        """Whether a point in frame coordinates lies in this tile's core."""
        return (
            self.core_row[0] <= center_row < self.core_row[1]
            and self.core_col[0] <= center_col < self.core_col[1]
        )


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def _cores(starts: list[int], tile: int) -> list[tuple[float, float]]:
    seams = [(starts[i - 1] + tile + starts[i]) / 2 for i in range(1, len(starts))]
    bounds = [-math.inf, *seams, math.inf]
    return [(bounds[i], bounds[i + 1]) for i in range(len(starts))]


def tile_grid(
    shape: tuple[int, int], tile: int | tuple[int, int], overlap: int = DEFAULT_OVERLAP
) -> list[Tile]:
    """Cover a ``(height, width)`` frame with ``tile`` x ``tile`` windows.

    Parameters
    ----------
    shape : tuple of int
        Frame ``(height, width)``.
    tile : int or tuple of int
        Window edge, or ``(height, width)``, in pixels (windows shrink to the
        frame where it is smaller).
    overlap : int
        Minimum overlap of neighbouring windows.

    Returns
    -------
    list of Tile
        Row-major windows whose cores partition the frame.
    """
    tile_h, tile_w = (tile, tile) if isinstance(tile, int) else tile
    if overlap >= min(tile_h, tile_w):
        raise ValueError(f"overlap ({overlap}) must be smaller than the tile ({tile})")
    height, width = shape
    row_starts, col_starts = _starts(height, tile_h, overlap), _starts(width, tile_w, overlap)
    row_cores, col_cores = _cores(row_starts, tile_h), _cores(col_starts, tile_w)
    return [
        Tile(
            row=slice(r, min(r + tile_h, height)),
            col=slice(c, min(c + tile_w, width)),
            core_row=row_core,
            core_col=col_core,
        )
        for r, row_core in zip(row_starts, row_cores)
        for c, col_core in zip(col_starts, col_cores)
    ]
