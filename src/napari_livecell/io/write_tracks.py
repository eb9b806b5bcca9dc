"""npe2 writer for tracking formats: a Labels layer as an ImageJ/Fiji ROI set (``.zip``)."""

from __future__ import annotations

from typing import Any


def write_labels_roi_zip(path: str, data: Any, attributes: dict) -> list[str]:
    """Write a Labels layer (2-D or ``(T, Y, X)`` stack) as an ImageJ ROI set.

    One ROI per cell (and frame), named ``TTTT-IIIII`` (frame, id) or
    ``IIIII``, holes and several parts kept as composite ROIs; Fiji opens it
    with ROI Manager > More > Open. :func:`napari_livecell.io.read_tracks.read_roi_layers`
    reads it back.
    """
    from napari_livecell.core.formats.roi import write_roi_zip

    if not str(path).lower().endswith(".zip"):
        path = f"{path}.zip"
    return [str(write_roi_zip(path, data))]
