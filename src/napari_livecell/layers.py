"""Segmentation results <-> napari layer data, both ways, without Qt or napari.

Every entry point that shows or reads cells (the widgets, the readers and
writers, training on corrected layers) goes through this module, so that the
rules below exist once:

* the per-cell table a result Labels layer carries as ``features``
  (:data:`CELL_COLUMNS`, one row per cell, ``index`` = label id);
* the layer names (``<image> cells``, ``<image> outlines``) and our
  metadata entry (:data:`RESULT_KEY`);
* label ids that run on across the frames of a stack (:func:`offset_ids`);
* COCO's continuous ``(x, y)`` rings <-> napari's pixel-centre ``(row, col)``
  vertices (:func:`ring_to_vertices`);
* the outline layer's style (:data:`OUTLINE_STYLE`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_livecell.core.coco import CocoImage
from napari_livecell.core.segmentation import Segmentation

# key of our entry in a layer's metadata (source image, edited flag, corrections...)
RESULT_KEY = "napari_livecell"
CELLS_SUFFIX = " cells"
OUTLINES_SUFFIX = " outlines"
OUTLINE_EDGE_COLOR = "yellow"
OUTLINE_STYLE = {
    "shape_type": "polygon",
    "edge_color": OUTLINE_EDGE_COLOR,
    "face_color": "transparent",
    "edge_width": 1,
}
# the per-cell table of a result Labels layer: column -> what one value is
CELL_COLUMNS = {
    "index": "label id (int)",
    "frame": "frame of a stack, in C order of its leading axes (int)",
    "score": "model confidence (float; 1.0 for annotations)",
    "class": "class name (str)",
    "area": "pixels (int)",
    "status": "predicted | edited | added | accepted | annotated (str)",
}
# more cells than this: labels only (napari would stall on that many shapes)
MAX_OUTLINES = 20_000


def cells_layer_name(image_name: str) -> str:
    """Name of the result Labels layer of an image layer."""
    return f"{image_name}{CELLS_SUFFIX}"


def outlines_layer_name(image_name: str) -> str:
    """Name of the result outlines (Shapes) layer of an image layer."""
    return f"{image_name}{OUTLINES_SUFFIX}"


def outlines_name_for(cells_name: str) -> str:
    """The outlines layer that belongs to a ``<image> cells`` layer."""
    return outlines_layer_name(cells_name.removesuffix(CELLS_SUFFIX))


def offset_ids(labels: np.ndarray, first_id: int) -> np.ndarray:
    """A frame's labels with ids that follow the previous frames' (``first_id`` cells before it)."""
    return np.where(labels > 0, labels + first_id, 0).astype(np.int32)


def ring_to_vertices(ring: np.ndarray, leading_index: Sequence[float] = ()) -> np.ndarray:
    """A COCO ``(x, y)`` ring as napari ``(..., row, col)`` vertices.

    COCO coordinates are continuous (a pixel spans ``x .. x + 1``); napari
    puts pixel centres on integers, hence the half-pixel shift.
    """
    rows_cols = np.asarray(ring, float)[:, ::-1] - 0.5
    if len(leading_index):
        prefix = np.broadcast_to(np.asarray(leading_index, float), (len(rows_cols), len(leading_index)))
        rows_cols = np.hstack([prefix, rows_cols])
    return rows_cols


def cell_table(
    ids: Sequence[int],
    frames: Sequence[int],
    scores: Sequence[float],
    classes: Sequence[str],
    areas: Sequence[int],
    statuses: Sequence[str],
) -> dict[str, list]:
    """The per-cell ``features`` table (:data:`CELL_COLUMNS`) from its columns."""
    columns = {
        "index": [int(i) for i in ids],
        "frame": [int(f) for f in frames],
        "score": [float(s) for s in scores],
        "class": [str(c) for c in classes],
        "area": [int(a) for a in areas],
        "status": [str(s) for s in statuses],
    }
    lengths = {len(values) for values in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"cell table columns differ in length: { {k: len(v) for k, v in columns.items()} }")
    return columns


def cell_features(segmentations: list[Segmentation], status: str = "predicted") -> dict[str, list]:
    """Per-cell table for a Labels layer's ``features`` (``index`` = label id).

    Ids run on across frames (frame 2's first cell follows frame 1's last),
    so that one Labels layer over a stack still has one row per cell.
    """
    ids: list[int] = []
    frames: list[int] = []
    scores: list[float] = []
    classes: list[str] = []
    areas: list[int] = []
    first_id = 1
    for frame, segmentation in enumerate(segmentations):
        n_cells = segmentation.n_cells
        names = segmentation.class_names
        ids += range(first_id, first_id + n_cells)
        frames += [frame] * n_cells
        scores += segmentation.scores.astype(float).tolist()
        classes += [names.get(int(c), str(int(c))) for c in segmentation.classes]
        areas += segmentation.areas.astype(int).tolist()
        first_id += n_cells
    return cell_table(ids, frames, scores, classes, areas, [status] * len(ids))


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
                shapes.append(ring_to_vertices(ring, index))
                features["label"].append(first_id + cell)
                features["score"].append(float(segmentation.scores[cell]))
                features["area"].append(int(areas[cell]))
                features["frame"].append(frame)
        first_id += segmentation.n_cells
    return shapes, features


def outline_layer_kwargs(name: str, features: dict, ndim: int, **extra: Any) -> dict:
    """Keyword arguments of an outlines Shapes layer (our one outline style)."""
    return {"name": name, **OUTLINE_STYLE, "features": features, "ndim": ndim, **extra}


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
        labels[index] = offset_ids(segmentation.labels, first_id)
        first_id += segmentation.n_cells
    common = dict(layer_kwargs or {})
    labels_kwargs = {
        "name": cells_layer_name(image_name),
        "features": cell_features(segmentations),
        **copy.deepcopy(common),
    }
    shapes, shape_features = outline_shapes(segmentations, indices)
    shapes_kwargs = outline_layer_kwargs(
        outlines_layer_name(image_name), shape_features, labels.ndim, **copy.deepcopy(common)
    )
    return [(labels, labels_kwargs, "labels"), (shapes, shapes_kwargs, "shapes")]


def filter_mask(features: Any, min_score: float, min_area: int, max_area: int) -> np.ndarray:
    """Which rows of a cell (or outline) table pass the score and area filters."""
    score = np.asarray(features["score"], dtype=float)
    area = np.asarray(features["area"], dtype=float)
    return (score >= min_score) & (area >= min_area) & (area <= max_area)


# Labels layer -> per-frame cells ---------------------------------------------
def layer_cells(data: Any, attributes: dict) -> tuple[list[CocoImage], dict[int, str], bool]:
    """Per-frame Segmentations, file names and statuses from a Labels layer.

    Parameters
    ----------
    data : array-like
        The layer's labels, 2-D or a stack (leading axes in C order).
    attributes : dict
        The layer's attributes as napari hands them to writers (``features``,
        ``metadata``, ``name``).

    Returns
    -------
    entries : list of CocoImage
        One per frame, with scores and statuses from the cell table.
    class_names : dict
        Class id -> name.
    with_scores : bool
        Whether the table had scores (a prediction, not an annotation).
    """
    labels = np.asarray(data)
    if labels.ndim < 2:
        raise ValueError(f"a label image must be at least 2-D, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    features = attributes.get("features")
    info = (attributes.get("metadata") or {}).get(RESULT_KEY, {})
    max_id = int(labels.max()) if labels.size else 0
    scores = np.ones(max_id, np.float32)
    classes = np.zeros(max_id, np.int32)
    statuses = np.array(["edited"] * max_id, dtype=object)
    class_names = {0: "cell"}
    if features is not None and len(features) and "index" in features:
        ids = np.asarray(features["index"], dtype=np.int64)
        valid = (ids >= 1) & (ids <= max_id)
        if "score" in features:
            scores[ids[valid] - 1] = np.asarray(features["score"], float)[valid]
        if "status" in features:
            statuses[ids[valid] - 1] = np.asarray(features["status"], dtype=object)[valid]
        if "class" in features:
            names = sorted(set(map(str, features["class"])))
            class_names = dict(enumerate(names))
            lookup = {name: i for i, name in class_names.items()}
            classes[ids[valid] - 1] = [lookup[str(c)] for c in np.asarray(features["class"])[valid]]
    base = Path(str(info.get("source_path") or info.get("source") or attributes.get("name", "image"))).name
    frames = labels.reshape(-1, *labels.shape[-2:])
    file_names = info.get("file_names") or []
    entries = []
    for index, frame in enumerate(frames):
        segmentation = Segmentation.from_labels(frame, scores, classes, class_names)
        present = np.flatnonzero(np.bincount(frame.ravel(), minlength=2)[1:]) + 1
        file_name = file_names[index] if index < len(file_names) else base
        entries.append(
            CocoImage(
                image_id=index + 1,
                file_name=str(file_name),
                segmentation=segmentation,
                frame=index if len(frames) > 1 else None,
                statuses=list(statuses[present - 1]),
            )
        )
    return entries, class_names, bool(features is not None and "score" in features)


# corrected Labels layers -> training frames ----------------------------------
def image_layer_for(labels_layer: Any, image_layers: Sequence[Any]) -> Any | None:
    """The image a Labels layer annotates: the one it was segmented from, else by name.

    ``<image> cells`` layers made by the Segment cells widget name their source
    in their metadata; layers read from COCO/YOLO files carry the image's stem.
    """
    info = labels_layer.metadata.get(RESULT_KEY, {}) if hasattr(labels_layer, "metadata") else {}
    candidates = [info.get("source"), labels_layer.name.removesuffix(CELLS_SUFFIX)]
    if info.get("source_path"):
        candidates.append(Path(info["source_path"]).stem)
    by_name = {layer.name: layer for layer in image_layers}
    for name in candidates:
        if name in by_name:
            return by_name[name]
    return None


@dataclass
class CorrectedLayer:
    """A Labels layer's data and attributes with the image it annotates."""

    name: str
    labels: Any
    attributes: dict
    image: Any
    rgb: bool


def training_frames(layers: Sequence[CorrectedLayer]) -> tuple[list, dict[int, str]]:
    """Frames with at least one cell, as :class:`~napari_livecell.core.training_data.TrainingFrame`.

    Class names are collected over all layers (features ``class``), so the
    same name gets the same class id everywhere.

    Raises
    ------
    ValueError
        An image whose frames do not match its labels, or no cells at all.
    """
    from napari_livecell.core.training_data import DatasetError, TrainingFrame

    per_layer = []
    all_names: set[str] = set()
    for layer in layers:
        labels = np.asarray(layer.labels)
        image_shape = tuple(layer.image.shape[:-1] if layer.rgb else layer.image.shape)
        if image_shape != labels.shape:
            raise DatasetError(
                f"{layer.name!r} has shape {labels.shape} but its image has {image_shape}; "
                "labels and image must cover the same pixels"
            )
        entries, names, _ = layer_cells(labels, layer.attributes)
        per_layer.append((layer, entries, names))
        all_names.update(names.values())
    class_names = dict(enumerate(sorted(all_names)))
    class_id = {name: index for index, name in class_names.items()}
    frames = []
    for layer, entries, names in per_layer:
        remap = np.array([class_id[names[i]] for i in sorted(names)], dtype=np.int32)
        images = layer.image.reshape(-1, *layer.image.shape[-(3 if layer.rgb else 2) :])
        for index, entry in enumerate(entries):
            segmentation = entry.segmentation
            if segmentation.n_cells == 0:
                continue  # an untouched, empty frame teaches nothing
            suffix = f"_t{index:04d}" if len(entries) > 1 else ""
            frames.append(
                TrainingFrame(
                    name=_safe_stem(layer.name) + suffix,
                    image=np.asarray(images[index]),
                    labels=segmentation.labels,
                    classes=remap[np.asarray(segmentation.classes, dtype=np.int64)].tolist(),
                )
            )
    if not frames:
        raise DatasetError("empty dataset: the chosen Labels layers hold no cells")
    return frames, class_names


def _safe_stem(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._") or "layer"
