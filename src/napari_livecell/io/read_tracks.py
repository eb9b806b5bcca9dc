"""npe2 readers for tracking formats: Cell Tracking Challenge folders and ImageJ/Fiji ROI sets.

* A CTC folder (``res_track.txt`` + ``mask*.tif``, or ``man_track.txt`` +
  ``man_track*.tif``, or a ground-truth folder holding ``TRA/``) opens as a
  Labels stack whose ids are track ids, and a Tracks layer with the lineage.
* An ImageJ ROI set (``.zip`` of ``.roi`` files, or one ``.roi``) opens as a
  Labels layer: one cell per ROI, frames from the ROIs' positions.

Readers look cheaply (a lineage file in the folder, the zip's member names,
the ROI magic bytes) and return ``None`` for paths that are not theirs; they
never raise for foreign files.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

from napari_livecell.core.limits import MAX_DENSE_ID

# more frames than this are read lazily (one frame at a time, when shown)
LAZY_FRAMES = 64


def get_ctc_reader(path: str | list[str]):
    """Return a reader for a Cell Tracking Challenge folder, else ``None``."""
    from napari_livecell.core.formats.ctc import CtcFormatError, find_ctc

    if isinstance(path, list) or not os.path.isdir(path):
        return None
    try:
        masks, _ = find_ctc(path)
    except CtcFormatError:
        return read_ctc_layers  # a CTC folder with a damaged mask name: the reader says which
    except (FileNotFoundError, OSError):
        return None
    return read_ctc_layers if masks else None


def read_ctc_layers(path: str | list[str]) -> list[tuple]:
    """A CTC folder as a Labels stack (ids = track ids) and a Tracks layer with the lineage."""
    from napari_livecell.core.formats.ctc import find_ctc, read_ctc
    from napari_livecell.core.tracking.track import graph_from_lineage, tracks_from_labels

    folder = Path(path if isinstance(path, str) else path[0])
    masks, _ = find_ctc(folder)
    labels, lineage = read_ctc(folder, lazy=len(masks) > LAZY_FRAMES)
    if labels.ndim == 2:
        labels = labels[None]
    name = folder.name if folder.name not in ("TRA", "RES") else f"{folder.parent.name} {folder.name}"
    attributes: dict = {"name": name}
    relabelled = lineage.attrs.get("relabelled")
    if relabelled:
        # napari's Tracks layer sizes its tables by the largest id: say what was done, and keep it
        message = (
            f"{name}: track ids past {MAX_DENSE_ID:,} found, so every id is relabelled "
            f"1..{relabelled} in order"
        )
        warnings.warn(message, stacklevel=2)
        attributes["metadata"] = {"ctc_relabelled": message}
    layers: list[tuple] = [(labels, attributes, "labels")]
    table = tracks_from_labels(labels)
    if not table.empty:
        known = set(table["track_id"].tolist())
        # the lineage may name tracks the masks do not hold (an empty mask file): napari refuses those
        graph = {
            child: [parent for parent in parents if parent in known]
            for child, parents in graph_from_lineage(lineage).items()
            if child in known
        }
        graph = {child: parents for child, parents in graph.items() if parents}
        tracks = table[["track_id", "t", "y", "x"]].to_numpy(dtype=float)
        attributes = {
            "name": f"{name} tracks",
            "graph": graph,
            "features": table[["area"]],
            "tail_length": 10,
        }
        layers.append((tracks, attributes, "tracks"))
    return layers


def _is_roi_set(path: str) -> bool:
    """A zip whose members are all ``.roi`` files (Fiji's ROI Manager > Save)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [name for name in archive.namelist() if not name.endswith("/")]
    except (zipfile.BadZipFile, OSError):
        return False
    return bool(names) and all(name.lower().endswith(".roi") for name in names)


def _is_roi_file(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == b"Iout"
    except OSError:
        return False


def get_roi_reader(path: str | list[str]):
    """Return a reader for an ImageJ ROI set (``.zip``) or ``.roi`` file, else ``None``."""
    if isinstance(path, list) or not os.path.isfile(path):
        return None
    lower = str(path).lower()
    if lower.endswith(".zip") and _is_roi_set(path):
        return read_roi_layers
    if lower.endswith(".roi") and _is_roi_file(path):
        return read_roi_layers
    return None


def roi_set_shape(path: str | os.PathLike) -> tuple[int, int]:
    """``(Y, X)`` that holds every ROI of a set (ROI files do not store the image size)."""
    from napari_livecell.core.formats.roi import RoiFormatError, read_rois, rois_shape

    cells = read_rois(path)
    if not cells:
        raise RoiFormatError(f"{Path(path).name} holds no ROIs")
    return rois_shape(cells)


def _trim(labels: np.ndarray) -> np.ndarray:
    """Cut the rows and columns after the last cell: the image ends where its cells end."""
    filled = np.any(labels.reshape(-1, *labels.shape[-2:]), axis=0)
    rows, cols = np.flatnonzero(filled.any(axis=1)), np.flatnonzero(filled.any(axis=0))
    if rows.size == 0:
        return labels
    return labels[..., : rows[-1] + 1, : cols[-1] + 1]


def read_roi_layers(path: str | list[str]) -> list[tuple]:
    """An ImageJ ROI set as a Labels layer (a stack when the ROIs carry frames)."""
    from napari_livecell.core.formats.roi import RoiFormatError, paint_rois, read_rois, rois_shape

    path = path if isinstance(path, str) else path[0]
    cells = read_rois(path)
    if not cells:
        raise RoiFormatError(f"{Path(path).name} holds no ROIs")
    labels = _trim(paint_rois(cells, rois_shape(cells), Path(path).name))
    name = Path(path).stem
    return [
        (labels, {"name": name, "metadata": {"roi_set": str(path), "shape_from": "ROI extents"}}, "labels")
    ]
