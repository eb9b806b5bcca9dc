"""ImageJ/Fiji ROI sets (``.zip``, as the ROI Manager saves them) for label images.

One polygon ROI per cell, traced exactly by
:func:`napari_livecell.core.segmentation.mask_to_polygons`: the rings run a
quarter pixel inside the cell's pixel edges, so ImageJ's rule (a pixel is in
the ROI when its centre is) and :func:`polygons_to_mask` give back exactly
the cell's pixels. Coordinates are stored with sub-pixel precision. A cell
with holes or several parts becomes one composite ROI whose rings combine
even-odd, as ImageJ's ShapeRoi fills them.

ROIs of a stack carry their frame (``position`` and ``t_position``,
1-based as ImageJ counts) and are named ``TTTT-IIIII`` (frame from 1, cell
id), so reading the set back restores frame and id.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from napari_livecell.core.segmentation import labels_to_polygons, polygons_to_mask

_NAME = re.compile(r"^(?:(\d+)-)?(\d+)$")


def _frame(labels, t: int) -> np.ndarray:
    frame = labels[t]
    if hasattr(frame, "compute"):
        frame = frame.compute()
    return np.asarray(frame)


def _roi(rings: list[np.ndarray], name: str, t: int | None):
    """One ImageJ ROI from a cell's rings: a polygon, or a composite for several rings."""
    import roifile

    points = max(rings, key=len) if len(rings) == 1 else np.concatenate(rings)
    roi = roifile.ImagejRoi.frompoints(np.asarray(points, dtype=np.float32), name=name, position=t, t=t)
    if len(rings) == 1:
        roi.roitype = roifile.ROI_TYPE.POLYGON
        return roi
    # composite: ImageJ's ShapeRoi path (MOVETO, LINETO..., CLOSE per ring) in a RECT roi
    path: list[float] = []
    for ring in rings:
        path += [0.0, float(ring[0, 0]), float(ring[0, 1])]
        for x, y in ring[1:].tolist():
            path += [1.0, x, y]
        path.append(4.0)
    roi.roitype = roifile.ROI_TYPE.RECT
    roi.options &= ~roifile.ROI_OPTIONS.SUB_PIXEL_RESOLUTION
    roi.subpixel_coordinates = None
    roi.integer_coordinates = None
    roi.n_coordinates = 0
    roi.multi_coordinates = np.asarray(path, dtype=np.float32)
    roi.shape_roi_size = len(path)
    return roi


def labels_to_rois(labels) -> list:
    """ImageJ ROIs of every cell of a label image or stack.

    Parameters
    ----------
    labels : array-like
        ``(Y, X)`` label image or ``(T, Y, X)`` stack (read frame by frame).

    Returns
    -------
    list of roifile.ImagejRoi
        In frame, then id order.
    """
    stack = len(labels.shape) == 3
    frames: list[int | None] = list(range(labels.shape[0])) if stack else [None]
    rois = []
    for t in frames:
        frame = np.asarray(labels) if t is None else _frame(labels, t)
        for index, rings in enumerate(labels_to_polygons(frame)):
            if not rings:
                continue
            name = f"{index + 1:05d}" if t is None else f"{t + 1:04d}-{index + 1:05d}"
            rois.append(_roi(rings, name, t))
    return rois


def write_roi_zip(path: str | os.PathLike, labels) -> Path:
    """Write an ImageJ/Fiji ROI set (``.zip``) of a label image or stack, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Output ``.zip`` path (Fiji: ROI Manager > More > Open).
    labels : array-like
        ``(Y, X)`` label image or ``(T, Y, X)`` stack.

    Returns
    -------
    Path
        ``path``.
    """
    import roifile

    from napari_livecell.core.atomic import write_with

    rois = labels_to_rois(labels)
    if not rois:
        raise ValueError("no cells to write: the label image is empty")

    def write(temporary: Path) -> None:
        temporary.unlink()  # roiwrite appends to an existing zip
        roifile.roiwrite(temporary, rois)

    return write_with(path, write)


def roi_rings(roi) -> list[np.ndarray]:
    """``(x, y)`` rings of an ImageJ ROI (several for a composite ROI)."""
    rings = roi.coordinates(multi=True)
    out = []
    for ring in rings:
        ring = np.asarray(ring, dtype=float)
        if len(ring) > 1 and np.array_equal(ring[0], ring[-1]):
            ring = ring[:-1]  # CLOSE repeats the first point
        if len(ring) >= 3:
            out.append(ring)
    return out


def roi_frame(roi) -> int | None:
    """0-based frame of a ROI, ``None`` when it has none (a 2-D image's ROI)."""
    if roi.t_position > 0:
        return roi.t_position - 1
    if roi.position > 0:
        return roi.position - 1
    return None


def read_roi_zip(path: str | os.PathLike, shape: tuple[int, ...]) -> np.ndarray:
    """Paint an ImageJ ROI set (``.zip`` or single ``.roi``) into a label image.

    Parameters
    ----------
    path : str or os.PathLike
        ROI set written by Fiji's ROI Manager or :func:`write_roi_zip`.
    shape : tuple of int
        ``(Y, X)`` or ``(T, Y, X)``: ROI files do not store the image size.
        With ``(Y, X)``, ROIs that carry frames give a ``(T, Y, X)`` stack
        with ``T`` = the last frame used.

    Returns
    -------
    numpy.ndarray
        int32 labels. A ROI named ``TTTT-IIIII`` or ``IIIII`` (as written
        here) gets id ``IIIII``; other ROIs are numbered in file order, per
        frame, after the largest such id. Later ROIs paint over earlier ones
        where they overlap.
    """
    import roifile

    rois = roifile.roiread(path)
    if not isinstance(rois, list):
        rois = [rois]
    frames = [roi_frame(roi) for roi in rois]
    has_frames = any(frame is not None for frame in frames)
    if len(shape) == 3:
        labels = np.zeros(shape, dtype=np.int32)
    elif has_frames:
        labels = np.zeros((max(f for f in frames if f is not None) + 1, *shape), dtype=np.int32)
    else:
        labels = np.zeros(shape, dtype=np.int32)[None]
    named = [_NAME.match(roi.name or "") for roi in rois]
    next_id = max((int(match.group(2)) for match in named if match), default=0) + 1
    for roi, frame, match in zip(rois, frames, named):
        if match:
            cell = int(match.group(2))
        else:
            cell, next_id = next_id, next_id + 1
        t = frame or 0
        if t >= labels.shape[0]:
            raise ValueError(f"ROI {roi.name!r} is in frame {t + 1}, beyond the {labels.shape[0]} frames")
        mask = polygons_to_mask(roi_rings(roi), labels.shape[1:])
        labels[t][mask] = cell
    return labels if (len(shape) == 3 or has_frames) else labels[0]
