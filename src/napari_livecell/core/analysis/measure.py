"""Per-cell measurements and per-image summaries of a label image or stack.

The shape and intensity numbers come from :func:`skimage.measure.regionprops_table`
(docs/measurements.md says why), one frame at a time so that a lazy (dask,
memmap) stack is never read whole. Lengths and areas are in micrometres when
the pixel size is known, else in pixels; the column names say which.

Examples
--------
>>> from napari_livecell.core.training.synthetic import synthesize_image
>>> frame = synthesize_image(seed=0, n_cells=10, shape=(96, 128))
>>> result = measure_cells(frame.labels, frame.image, pixel_size_um=0.5)
>>> list(result.cells.columns[:8])
['frame', 'label', 'class', 'score', 'status', 'area_um2', 'perimeter_um', 'equivalent_diameter_um']
"""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from napari_livecell.core.images import check_pixel_size

from .growth import frame_growth

# regionprops_table property -> our column stem; the unit suffix follows from the pixel size
REGIONPROPS = {
    "label": "label",
    "area": "area",
    "perimeter": "perimeter",
    "equivalent_diameter_area": "equivalent_diameter",
    "eccentricity": "eccentricity",
    "solidity": "solidity",
    "intensity_mean": "mean_intensity",
    "intensity_max": "max_intensity",
    "centroid": "centroid",
}
# how each length-like column scales with the pixel size (power of it)
_SCALED = {"area": 2, "perimeter": 1, "equivalent_diameter": 1}
# columns the layer's cell table (``features``) brings; NaN / "" where it has no row
JOINED = ("class", "score", "status")


def unit_suffixes(pixel_size_um: float | None) -> dict[str, str]:
    """The unit suffix of each scaled column: ``um2``/``um`` with a pixel size, else ``px``."""
    if pixel_size_um is None:
        return {"area": "px", "perimeter": "px", "equivalent_diameter": "px"}
    return {"area": "um2", "perimeter": "um", "equivalent_diameter": "um"}


def cell_columns(pixel_size_um: float | None = None) -> list[str]:
    """Columns of the per-cell table, in order, for a pixel size (``None``: pixels)."""
    units = unit_suffixes(pixel_size_um)
    scaled = [f"{stem}_{units[stem]}" for stem in ("area", "perimeter", "equivalent_diameter")]
    return [
        "frame",
        "label",
        *JOINED,
        *scaled,
        "eccentricity",
        "solidity",
        "mean_intensity",
        "max_intensity",
        "centroid_y_px",
        "centroid_x_px",
    ]


def summary_columns(pixel_size_um: float | None = None) -> list[str]:
    """Columns of the per-image (per-frame) summary, in order."""
    area = "mean_cell_area_um2" if pixel_size_um is not None else "mean_cell_area_px"
    return ["frame", "cell_count", "confluence_percent", area]


@dataclass
class Measurements:
    """Per-cell measurements and the per-frame summary of one label image or stack.

    Attributes
    ----------
    cells : pandas.DataFrame
        One row per cell (:func:`cell_columns`), ordered by frame and label.
    summary : pandas.DataFrame
        One row per frame (:func:`summary_columns`).
    pixel_size_um : float or None
        Micrometres per pixel the lengths and areas are in; ``None``: pixels.
    """

    cells: pd.DataFrame
    summary: pd.DataFrame
    pixel_size_um: float | None = None


def _plane(data: Any, index: tuple[int, ...]) -> np.ndarray:
    """One 2-D frame (or RGB frame) as numpy: computes a dask chunk, reads a memmap page."""
    plane = data[index] if index else data
    if hasattr(plane, "compute"):
        plane = plane.compute()
    return np.asarray(plane)


def _grey(plane: np.ndarray, rgb: bool) -> np.ndarray:
    # one intensity per pixel: the mean of an RGB(A) image's colour channels
    return plane[..., :3].mean(axis=-1) if rgb else plane


def measure_frame(
    labels: np.ndarray, image: np.ndarray | None = None, pixel_size_um: float | None = None
) -> pd.DataFrame:
    """Measure the cells of one 2-D label frame with ``regionprops_table``.

    Parameters
    ----------
    labels : numpy.ndarray
        2-D integer labels; 0 is background, every other id one cell.
    image : numpy.ndarray, optional
        2-D intensity image of the same shape (grey; an RGB image is
        averaged over its channels first). Without it the intensity columns
        are NaN.
    pixel_size_um : float, optional
        Micrometres per pixel: areas in um^2, perimeters and diameters in um.

    Returns
    -------
    pandas.DataFrame
        :func:`cell_columns` less ``frame`` and the joined columns.

    Raises
    ------
    ValueError
        ``labels`` not 2-D or not integer, or ``image`` of another shape.
    """
    from skimage.measure import regionprops_table

    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"a label frame must be 2-D, not shape {labels.shape}")
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise ValueError(f"labels must be integers, not {labels.dtype}")
    size = check_pixel_size(pixel_size_um)
    properties = [p for p in REGIONPROPS if image is not None or not p.startswith("intensity")]
    if image is not None:
        image = np.asarray(image)
        if image.shape != labels.shape:
            raise ValueError(f"image shape {image.shape} differs from labels shape {labels.shape}")
    raw = regionprops_table(labels.astype(np.int64, copy=False), image, properties=properties)
    table = pd.DataFrame(
        {
            "label": raw["label"].astype(np.int64),
            "area": raw["area"].astype(float),
            "perimeter": raw["perimeter"],
            "equivalent_diameter": raw["equivalent_diameter_area"],
            "eccentricity": raw["eccentricity"],
            "solidity": raw["solidity"],
            "mean_intensity": raw.get("intensity_mean", np.full(len(raw["label"]), np.nan)),
            "max_intensity": raw.get("intensity_max", np.full(len(raw["label"]), np.nan)).astype(float),
            "centroid_y_px": raw["centroid-0"],
            "centroid_x_px": raw["centroid-1"],
        }
    )
    units = unit_suffixes(size)
    renames = {}
    for stem, power in _SCALED.items():
        if size is not None:
            table[stem] = table[stem] * size**power
        renames[stem] = f"{stem}_{units[stem]}"
    return table.rename(columns=renames)


def _cell_rows(features: Any) -> pd.DataFrame | None:
    """The joinable part of a layer's cell table: label, frame (if any), class, score, status."""
    if features is None or len(features) == 0 or "index" not in features:
        return None
    table = pd.DataFrame(features)
    keep = ["index", *(c for c in ("frame", *JOINED) if c in table)]
    rows = table[keep].rename(columns={"index": "label"}).astype({"label": np.int64})
    if "frame" in rows:
        rows = rows.astype({"frame": np.int64})
    # one row per key: a table from elsewhere may repeat an id
    return rows.drop_duplicates(subset=[c for c in ("frame", "label") if c in rows], keep="last")


def join_cell_table(cells: pd.DataFrame, features: Any = None) -> pd.DataFrame:
    """Add class, score and status from a Labels layer's cell table (``features``).

    Rows are matched on ``(frame, label)`` when the table has a ``frame``
    column, else on ``label``; a cell the table lacks gets NaN score and
    empty class and status.

    Parameters
    ----------
    cells : pandas.DataFrame
        Measurements with ``frame`` and ``label`` columns.
    features : pandas.DataFrame or dict, optional
        The layer's table (``index`` = label id, see ``CELL_COLUMNS``).

    Returns
    -------
    pandas.DataFrame
        ``cells`` with ``class``, ``score``, ``status`` filled in.
    """
    result = cells.drop(columns=[c for c in JOINED if c in cells])
    rows = _cell_rows(features)
    if rows is not None:
        keys = [c for c in ("frame", "label") if c in rows]
        result = result.merge(rows, on=keys, how="left")
    for column in JOINED:
        if column not in result:
            result[column] = np.nan if column == "score" else ""
    result["score"] = pd.to_numeric(result["score"], errors="coerce").astype(float)
    for column in ("class", "status"):
        result[column] = result[column].astype(object).where(result[column].notna(), "").astype(str)
    return result


def iter_measure(
    labels: Any,
    image: Any = None,
    pixel_size_um: float | None = None,
    features: Any = None,
    rgb: bool | None = None,
) -> Generator[tuple[int, int], None, Measurements]:
    """Measure a label image or stack frame by frame, yielding ``(done, total)`` after each.

    The generator form lets a napari thread worker report progress and stop
    between frames; :func:`measure_cells` runs it to the end.

    Parameters
    ----------
    labels : array-like
        ``(..., Y, X)`` integer labels (numpy, dask, memmap); leading axes are
        frames, numbered in C order (the cell table's ``frame``).
    image : array-like, optional
        The intensity image the labels annotate: same shape, or same shape
        plus a trailing RGB(A) axis.
    pixel_size_um : float, optional
        Micrometres per pixel; ``None`` measures in pixels.
    features : pandas.DataFrame or dict, optional
        The Labels layer's cell table, for class, score and status.
    rgb : bool, optional
        Whether ``image`` has a trailing colour axis; guessed from the shapes
        when not given.

    Returns
    -------
    Measurements
        The generator's return value (``StopIteration.value``).

    Raises
    ------
    ValueError
        Labels of fewer than 2 dimensions, an image that does not match them,
        or a bad pixel size.
    """
    size = check_pixel_size(pixel_size_um)
    shape = tuple(labels.shape)
    if len(shape) < 2:
        raise ValueError(f"labels must have at least 2 dimensions, not shape {shape}")
    if image is not None:
        image_shape = tuple(image.shape)
        if rgb is None:
            rgb = image_shape[:-1] == shape and image_shape[-1] in (3, 4)
        if (image_shape[:-1] if rgb else image_shape) != shape:
            raise ValueError(f"image shape {image_shape} does not match labels shape {shape}")
    leading = shape[:-2]
    indices = list(np.ndindex(*leading)) if leading else [()]
    frames, summary = [], []
    for frame, index in enumerate(indices):
        plane = _plane(labels, index)
        grey = None if image is None else _grey(_plane(image, index), bool(rgb))
        table = measure_frame(plane, grey, size)
        table.insert(0, "frame", frame)
        frames.append(table)
        count, confluence, mean_area = frame_growth(plane)
        summary.append((frame, count, confluence, mean_area * (size**2 if size is not None else 1.0)))
        yield frame + 1, len(indices)
    if not frames:  # a stack with an empty leading axis
        frames.append(measure_frame(np.zeros((1, 1), np.int32), None, size).iloc[:0])
        frames[0].insert(0, "frame", 0)
    cells = pd.concat(frames, ignore_index=True)
    cells = join_cell_table(cells, features)[cell_columns(size)]
    cells = cells.astype({"frame": np.int64, "label": np.int64})
    summary_table = pd.DataFrame(summary, columns=summary_columns(size)).astype(
        {"frame": np.int64, "cell_count": np.int64}
    )
    return Measurements(cells=cells, summary=summary_table, pixel_size_um=size)


def measure_cells(
    labels: Any,
    image: Any = None,
    pixel_size_um: float | None = None,
    features: Any = None,
    rgb: bool | None = None,
) -> Measurements:
    """Measure every cell of a label image or stack; see :func:`iter_measure`."""
    from napari_livecell.core.steps import drain

    return drain(iter_measure(labels, image, pixel_size_um, features, rgb))


def with_image_name(table: pd.DataFrame, name: str) -> pd.DataFrame:
    """``table`` with an ``image`` column first (for tables of several images in one CSV)."""
    result = table.copy()
    result.insert(0, "image", name)
    return result


def summary_path(cells_csv: str | os.PathLike) -> Path:
    """Where the summary of a per-cell CSV goes: ``<stem>_summary.csv`` beside it."""
    path = Path(cells_csv)
    return path.with_name(f"{path.stem}_summary.csv")


def write_measurements_csv(path: str | os.PathLike, table: pd.DataFrame) -> Path:
    """Write a measurements or summary table as CSV, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Output ``.csv``; an existing file is replaced only once the new one
        is complete.
    table : pandas.DataFrame
        :attr:`Measurements.cells` or :attr:`Measurements.summary` (with or
        without an ``image`` column).

    Returns
    -------
    Path
        ``path``.
    """
    from napari_livecell.core.atomic import write_text_atomic

    return write_text_atomic(path, table.to_csv(index=False, float_format="%.6g"))
