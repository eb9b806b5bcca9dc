"""Segmentation results as napari layer data tuples (no napari import needed)."""

from __future__ import annotations

import numpy as np

from napari_livecell.core.segmentation import Segmentation

OUTLINE_EDGE_COLOR = "yellow"


def cell_features(segmentation: Segmentation, status: str = "predicted") -> dict:
    """Per-cell table (one row per label id) for a Labels layer's ``features``."""
    n_cells = segmentation.n_cells
    names = segmentation.class_names
    return {
        "index": np.arange(1, n_cells + 1),
        "score": segmentation.scores.astype(float),
        "class": [names.get(int(c), str(int(c))) for c in segmentation.classes],
        "area": segmentation.areas.astype(int),
        "status": [status] * n_cells,
    }


def outline_shapes(
    segmentations: list[Segmentation], leading_indices: list[tuple[int, ...]]
) -> tuple[list[np.ndarray], dict]:
    """Polygons (napari ``(..., row, col)`` vertices) and features of every cell ring."""
    shapes: list[np.ndarray] = []
    features: dict[str, list] = {"label": [], "score": [], "area": [], "frame": []}
    for segmentation, index in zip(segmentations, leading_indices):
        areas = segmentation.areas
        for cell, rings in enumerate(segmentation.polygons):
            for ring in rings:
                # COCO continuous (x, y) -> napari pixel-centre (row, col)
                rows_cols = np.asarray(ring)[:, ::-1] - 0.5
                if index:
                    prefix = np.broadcast_to(np.asarray(index, float), (len(ring), len(index)))
                    rows_cols = np.hstack([prefix, rows_cols])
                shapes.append(rows_cols)
                features["label"].append(cell + 1)
                features["score"].append(float(segmentation.scores[cell]))
                features["area"].append(int(areas[cell]))
                features["frame"].append(index[0] if index else 0)
    return shapes, features


def result_layer_data(
    segmentations: Segmentation | list[Segmentation],
    image_name: str,
    leading_shape: tuple[int, ...] = (),
    layer_kwargs: dict | None = None,
) -> list[tuple]:
    """Labels + outline Shapes ``LayerDataTuple`` s named after the image.

    Parameters
    ----------
    segmentations : Segmentation or list of Segmentation
        One result, or one per frame of a stack (C order of ``leading_shape``).
    image_name : str
        Name of the source image layer; layers are ``"<image> cells"`` and
        ``"<image> outlines"``.
    leading_shape : tuple of int
        Shape of the stack's leading axes (``()`` for a single frame).
    layer_kwargs : dict, optional
        Extra keyword arguments for both layers (``scale``, ``translate``...).

    Returns
    -------
    list of tuple
        ``[(labels, kwargs, "labels"), (shapes, kwargs, "shapes")]``.
    """
    if isinstance(segmentations, Segmentation):
        segmentations = [segmentations]
    indices = list(np.ndindex(*leading_shape)) if leading_shape else [()]
    frame_shape = segmentations[0].labels.shape
    labels = np.zeros((*leading_shape, *frame_shape), dtype=np.int32)
    for index, segmentation in zip(indices, segmentations):
        labels[index] = segmentation.labels
    common = dict(layer_kwargs or {})
    labels_kwargs = {"name": f"{image_name} cells", **common}
    if not leading_shape:
        labels_kwargs["features"] = cell_features(segmentations[0])
    shapes, shape_features = outline_shapes(segmentations, indices)
    shapes_kwargs = {
        "name": f"{image_name} outlines",
        "shape_type": "polygon",
        "edge_color": OUTLINE_EDGE_COLOR,
        "face_color": "transparent",
        "edge_width": 1,
        "features": shape_features,
        "ndim": labels.ndim,
        **common,
    }
    return [(labels, labels_kwargs, "labels"), (shapes, shapes_kwargs, "shapes")]
