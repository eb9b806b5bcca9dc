"""Segmentation results as napari layer data tuples (no napari import needed)."""

from __future__ import annotations

import copy

import numpy as np

from napari_livecell.core.segmentation import Segmentation

OUTLINE_EDGE_COLOR = "yellow"
# key of our entry in a layer's metadata (source image, edited flag, corrections...)
RESULT_KEY = "napari_livecell"


def cell_features(
    segmentations: list[Segmentation], status: str = "predicted"
) -> dict[str, np.ndarray | list]:
    """Per-cell table for a Labels layer's ``features`` (``index`` = label id).

    Ids run on across frames (frame 2's first cell follows frame 1's last),
    so that one Labels layer over a stack still has one row per cell.
    """
    columns: dict[str, list] = {
        "index": [],
        "frame": [],
        "score": [],
        "class": [],
        "area": [],
        "status": [],
    }
    first_id = 1
    for frame, segmentation in enumerate(segmentations):
        n_cells = segmentation.n_cells
        names = segmentation.class_names
        columns["index"] += range(first_id, first_id + n_cells)
        columns["frame"] += [frame] * n_cells
        columns["score"] += segmentation.scores.astype(float).tolist()
        columns["class"] += [names.get(int(c), str(int(c))) for c in segmentation.classes]
        columns["area"] += segmentation.areas.astype(int).tolist()
        columns["status"] += [status] * n_cells
        first_id += n_cells
    return columns


def outline_shapes(
    segmentations: list[Segmentation], leading_indices: list[tuple[int, ...]]
) -> tuple[list[np.ndarray], dict]:
    """Polygons (napari ``(..., row, col)`` vertices) and features of every cell ring."""
    shapes: list[np.ndarray] = []
    features: dict[str, list] = {"label": [], "score": [], "area": [], "frame": []}
    first_id = 1
    for frame, (segmentation, index) in enumerate(zip(segmentations, leading_indices)):
        areas = segmentation.areas
        for cell, rings in enumerate(segmentation.polygons):
            for ring in rings:
                # COCO continuous (x, y) -> napari pixel-centre (row, col)
                rows_cols = np.asarray(ring)[:, ::-1] - 0.5
                if index:
                    prefix = np.broadcast_to(np.asarray(index, float), (len(ring), len(index)))
                    rows_cols = np.hstack([prefix, rows_cols])
                shapes.append(rows_cols)
                features["label"].append(first_id + cell)
                features["score"].append(float(segmentation.scores[cell]))
                features["area"].append(int(areas[cell]))
                features["frame"].append(frame)
        first_id += segmentation.n_cells
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
    first_id = 0
    for index, segmentation in zip(indices, segmentations):
        frame_labels = segmentation.labels
        labels[index] = np.where(frame_labels > 0, frame_labels + first_id, 0)
        first_id += segmentation.n_cells
    common = dict(layer_kwargs or {})
    labels_kwargs = {
        "name": f"{image_name} cells",
        "features": cell_features(segmentations),
        **copy.deepcopy(common),
    }
    shapes, shape_features = outline_shapes(segmentations, indices)
    shapes_kwargs = {
        "name": f"{image_name} outlines",
        "shape_type": "polygon",
        "edge_color": OUTLINE_EDGE_COLOR,
        "face_color": "transparent",
        "edge_width": 1,
        "features": shape_features,
        "ndim": labels.ndim,
        **copy.deepcopy(common),
    }
    return [(labels, labels_kwargs, "labels"), (shapes, shapes_kwargs, "shapes")]


def filter_colors(layer, min_score: float, min_area: int, max_area: int):
    """Colours that hide cells failing the filters, for a result Labels or Shapes layer.

    Returns a ``DirectLabelColormap`` for Labels (hidden cells transparent, the
    layer's own colours otherwise; cells painted later use one extra colour)
    or an ``(N, 4)`` edge-colour array for Shapes; ``None`` if nothing applies.
    """
    features = layer.features
    if len(features) == 0:
        return None
    keep = (
        (features["score"].to_numpy() >= min_score)
        & (features["area"].to_numpy() >= min_area)
        & (features["area"].to_numpy() <= max_area)
    )
    from napari.layers import Shapes

    if isinstance(layer, Shapes):
        from napari.utils.colormaps.standardize_color import transform_color

        colors = np.repeat(transform_color(OUTLINE_EDGE_COLOR), len(keep), axis=0)
        colors[~keep, 3] = 0.0
        return colors
    from napari.utils.colormaps import DirectLabelColormap

    base = layer.metadata.setdefault("napari_livecell", {}).setdefault("base_colormap", layer.colormap)
    if keep.all():
        return base
    ids = np.array(features["index"], dtype=np.int64)
    colors = np.asarray(base.map(ids), dtype=np.float32)
    colors[~keep, 3] = 0.0
    color_dict = {int(i): c for i, c in zip(ids, colors)}
    color_dict[0] = np.zeros(4, np.float32)
    color_dict[None] = np.array([1.0, 0.0, 1.0, 1.0], np.float32)
    return DirectLabelColormap(color_dict=color_dict)
