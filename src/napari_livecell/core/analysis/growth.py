"""Growth curves of a segmented time-lapse: cell count, confluence, mean cell area.

Read one frame at a time (numpy, dask or memmap stacks), so memory stays at
one frame.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

GROWTH_COLUMNS = ["frame", "cell_count", "confluence_percent", "mean_cell_area_px"]


def frame_growth(labels: np.ndarray) -> tuple[int, float, float]:
    """Cell count, confluence (% of the frame covered) and mean cell area of one frame.

    Parameters
    ----------
    labels : numpy.ndarray
        2-D label image; 0 is background, every other id one cell.

    Returns
    -------
    tuple
        ``(count, confluence_percent, mean_area_px)``; the mean area is NaN
        on an empty frame.
    """
    labels = np.asarray(labels)
    if labels.size == 0:
        return 0, 0.0, float("nan")
    # bincount over the ids: one pass, no per-cell mask
    areas = np.bincount(labels.ravel())[1:]
    areas = areas[areas > 0]
    covered = int(areas.sum())
    count = len(areas)
    return count, 100.0 * covered / labels.size, covered / count if count else float("nan")


def growth_curves(labels, pixel_size_um: float | None = None) -> pd.DataFrame:
    """Per-frame cell count, confluence and mean cell area of a label stack.

    Parameters
    ----------
    labels : array-like
        ``(T, Y, X)`` label stack (numpy, dask, memmap), or one ``(Y, X)``
        frame.
    pixel_size_um : float, optional
        Pixel size in micrometres; adds ``mean_cell_area_um2``.

    Returns
    -------
    pandas.DataFrame
        Columns ``frame, cell_count, confluence_percent, mean_cell_area_px``
        (and ``mean_cell_area_um2``), one row per frame.
    """
    from napari_livecell.core.tracking.track import iter_frames

    if len(labels.shape) == 2:
        labels = np.asarray(labels)[None]
    rows = [(t, *frame_growth(frame)) for t, frame in iter_frames(labels)]
    table = pd.DataFrame(rows, columns=GROWTH_COLUMNS).astype({"frame": np.int64, "cell_count": np.int64})
    if pixel_size_um is not None:
        table["mean_cell_area_um2"] = table["mean_cell_area_px"] * pixel_size_um**2
    return table


def write_growth_csv(path: str | os.PathLike, table: pd.DataFrame) -> Path:
    """Write a :func:`growth_curves` table as CSV, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Output ``.csv`` path; an existing file is replaced only once the new
        one is complete.
    table : pandas.DataFrame
        Output of :func:`growth_curves`.

    Returns
    -------
    Path
        ``path``.
    """
    from napari_livecell.core.atomic import write_text_atomic

    return write_text_atomic(path, table.to_csv(index=False, float_format="%.6g"))


GROWTH_PANELS = (
    ("cell_count", "cells"),
    ("confluence_percent", "confluence (%)"),
    ("mean_cell_area_px", "mean area (px)"),
)


def plot_growth(figure, table: pd.DataFrame, title: str = "") -> list:
    """Draw growth curves on a matplotlib figure: count, confluence, mean area over frames.

    Parameters
    ----------
    figure : matplotlib.figure.Figure
        Figure to draw on (cleared first): a ``FigureCanvasQTAgg``'s in the
        napari dock, a plain one for PNG files.
    table : pandas.DataFrame
        Output of :func:`growth_curves`.
    title : str
        Figure title (the layer's name).

    Returns
    -------
    list of matplotlib.axes.Axes
        One per curve, top to bottom, in :data:`GROWTH_PANELS` order.
    """
    figure.clear()
    axes = figure.subplots(len(GROWTH_PANELS), 1, sharex=True)
    frames = table["frame"].to_numpy()
    for ax, (column, label) in zip(axes, GROWTH_PANELS):
        ax.plot(frames, table[column].to_numpy(), marker="o", markersize=3)
        ax.set_ylabel(label, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        # counts, percentages and areas from 0: a 3.0-3.8 % change must not fill the panel
        ax.set_ylim(bottom=0)
    axes[-1].set_xlabel("frame", fontsize=8)
    if title:
        figure.suptitle(_fitted_title(figure, title, TITLE_FONT_SIZE), fontsize=TITLE_FONT_SIZE)
    figure.tight_layout()
    return list(axes)


TITLE_FONT_SIZE = 9


def _fitted_title(figure, title: str, font_size: float) -> str:
    """``title`` shortened in the middle to fit the figure's width (a layer name's ends say the most)."""
    # ~0.6 em a character in matplotlib's default sans-serif; a margin of two characters
    char_px = 0.6 * font_size * figure.dpi / 72
    most = max(8, int(figure.get_figwidth() * figure.dpi / char_px) - 2)
    if len(title) <= most:
        return title
    head = (most - 1) // 2
    return f"{title[:head]}…{title[len(title) - (most - 1 - head) :]}"


def write_growth_png(path: str | os.PathLike, table: pd.DataFrame, title: str = "") -> Path:
    """Save :func:`plot_growth` as a PNG, atomically (matplotlib's Agg canvas, no GUI).

    Parameters
    ----------
    path : str or os.PathLike
        Output ``.png`` path.
    table : pandas.DataFrame
        Output of :func:`growth_curves`.
    title : str
        Figure title.

    Returns
    -------
    Path
        ``path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from napari_livecell.core.atomic import write_with

    # a Figure with its own Agg canvas: no pyplot, so no global backend is chosen or changed
    figure = Figure(figsize=(5, 6), dpi=100)
    FigureCanvasAgg(figure)
    plot_growth(figure, table, title)
    return write_with(path, lambda temporary: figure.savefig(temporary, format="png"))
