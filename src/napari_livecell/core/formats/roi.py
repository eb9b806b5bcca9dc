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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_livecell.core.limits import MAX_COORDINATE, MAX_LABEL_ID, check_label_shape
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


class RoiFormatError(ValueError):
    """An ROI set that cannot be read, with the reason in one line."""


# uncompressed bytes of a ROI set read at all: an ImageJ ROI is tens of bytes to a few kB
MAX_ROI_SET_BYTES = 256 * 2**20


@dataclass
class RoiCell:
    """One ROI of a set, checked: its cell id (None: unnamed), 0-based frame (None: none), rings."""

    name: str
    cell: int | None
    frame: int | None
    rings: list[np.ndarray]


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


def _roiread(path: str | os.PathLike) -> list:
    import zipfile

    import roifile

    name = Path(path).name
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                size = sum(member.file_size for member in archive.infolist())
        except (zipfile.BadZipFile, OSError, ValueError) as error:
            raise RoiFormatError(f"{name} is not a readable zip: {error}") from None
        if size > MAX_ROI_SET_BYTES:
            raise RoiFormatError(
                f"{name} unpacks to {size / 2**20:,.0f} MiB; ROI sets beyond "
                f"{MAX_ROI_SET_BYTES / 2**20:.0f} MiB are refused"
            )
    try:
        rois = roifile.roiread(path)
    except Exception as error:  # roifile raises many types for a damaged file
        raise RoiFormatError(f"{name} is not a readable ImageJ ROI set ({type(error).__name__})") from None
    return rois if isinstance(rois, list) else [rois]


def read_rois(path: str | os.PathLike) -> list[RoiCell]:
    """The ROIs of a set (``.zip`` or single ``.roi``), checked before anything is painted.

    Raises
    ------
    RoiFormatError
        For a file that is not an ROI set, a name that is an id beyond
        :data:`~napari_livecell.core.limits.MAX_LABEL_ID`, or a ROI whose
        coordinates are not finite, negative or beyond any frame
        (:data:`~napari_livecell.core.limits.MAX_COORDINATE`): one line naming the ROI.
    """
    cells: list[RoiCell] = []
    for roi in _roiread(path):
        name = str(getattr(roi, "name", "") or "")
        where = f"ROI {name!r}" if name else f"ROI {len(cells) + 1}"
        try:
            rings = roi_rings(roi)
            frame = roi_frame(roi)
        except Exception as error:  # roifile's coordinates of a damaged ROI
            raise RoiFormatError(f"{where} is unreadable ({type(error).__name__})") from None
        for ring in rings:
            bad = ring[
                ~np.isfinite(ring).all(axis=1) | (ring < 0).any(axis=1) | (ring > MAX_COORDINATE).any(axis=1)
            ]
            if len(bad):
                raise RoiFormatError(
                    f"{where} has a point at x = {bad[0, 0]:g}, y = {bad[0, 1]:g}, outside any frame "
                    f"(0 to {MAX_COORDINATE:,} px)"
                )
        match = _NAME.match(name)
        cell = int(match.group(2)) if match else None
        if cell is not None and cell > MAX_LABEL_ID:
            raise RoiFormatError(
                f"{where} names cell id {cell}, beyond the largest label id {MAX_LABEL_ID:,}"
            )
        cells.append(RoiCell(name, cell or None, frame, rings))
    return cells


def rois_shape(cells: list[RoiCell]) -> tuple[int, int]:
    """``(Y, X)`` that holds every ROI (ROI files do not store the image size), 2 pixels to spare."""
    points = [ring for cell in cells for ring in cell.rings]
    if not points:
        return 1, 1
    bottom = max(float(ring[:, 1].max()) for ring in points)
    right = max(float(ring[:, 0].max()) for ring in points)
    return int(np.ceil(bottom)) + 2, int(np.ceil(right)) + 2


def paint_rois(cells: list[RoiCell], shape: tuple[int, ...], source: str = "ROI set") -> np.ndarray:
    """Paint checked ROIs into an int32 label image or stack (see :func:`read_roi_zip`).

    Each ROI is filled inside its own bounding box, so the cost is ROIs x ROI
    area, not ROIs x frame area. The array is sized from ``shape`` and the
    ROIs' frames and checked against the label limit before it is allocated.

    Raises
    ------
    napari_livecell.core.limits.LimitError
        When the label array would pass the label limit.
    RoiFormatError
        For a ROI in a frame beyond a ``(T, Y, X)`` shape.
    """
    frames = [cell.frame for cell in cells]
    has_frames = any(frame is not None for frame in frames)
    if len(shape) == 3:
        full = tuple(shape)
    elif has_frames:
        full = (max(f for f in frames if f is not None) + 1, *shape)
    else:
        full = (1, *shape)
    check_label_shape(full, source)
    labels = np.zeros(full, dtype=np.int32)
    height, width = full[1:]
    next_id = max((cell.cell for cell in cells if cell.cell), default=0) + 1
    if next_id + sum(cell.cell is None for cell in cells) > MAX_LABEL_ID:
        raise RoiFormatError(f"{source}: unnamed ROIs would be numbered beyond {MAX_LABEL_ID:,}")
    for cell in cells:
        if cell.cell:
            label = cell.cell
        else:
            label, next_id = next_id, next_id + 1
        t = cell.frame or 0
        if t >= full[0]:
            raise RoiFormatError(f"ROI {cell.name!r} is in frame {t + 1}, beyond the {full[0]} frames")
        if not cell.rings:
            continue
        points = np.concatenate(cell.rings)
        # a pixel is inside when its centre is: pixels whose centre lies within the rings' extent
        top, left = (max(int(np.floor(v)) - 1, 0) for v in (points[:, 1].min(), points[:, 0].min()))
        bottom = min(int(np.ceil(points[:, 1].max())) + 1, height)
        right = min(int(np.ceil(points[:, 0].max())) + 1, width)
        if bottom <= top or right <= left:
            continue
        shifted = [ring - (left, top) for ring in cell.rings]
        mask = polygons_to_mask(shifted, (bottom - top, right - left))
        labels[t, top:bottom, left:right][mask] = label
    return labels if (len(shape) == 3 or has_frames) else labels[0]


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

    Raises
    ------
    RoiFormatError
        For a damaged set or ROI (:func:`read_rois`).
    napari_livecell.core.limits.LimitError
        When the labels would pass the label limit.
    """
    return paint_rois(read_rois(path), shape, Path(path).name)
