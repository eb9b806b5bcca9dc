"""Segmentation results <-> napari layer data, both ways, without Qt or napari.

Every entry point that shows or reads cells (the widgets, the readers and
writers, training on corrected layers) goes through this module, so that the
rules below exist once:

* the per-cell table a result Labels layer carries as ``features``
  (:data:`CELL_COLUMNS`, one row per cell, ``index`` = label id);
* the layer names (``<image> cells``, ``<image> outlines``) and our
  metadata entry (:data:`RESULT_KEY`);
* label ids that run on across the frames of a stack (:func:`napari_livecell.core.segmentation.offset_ids`);
* COCO's continuous ``(x, y)`` rings <-> napari's pixel-centre ``(row, col)``
  vertices (:func:`ring_to_vertices`);
* the outline layer's style (:data:`OUTLINE_STYLE`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_livecell.core.formats.coco import CocoImage
from napari_livecell.core.segmentation import Segmentation, stack_labels

# key of our entry in a layer's metadata (source image, edited flag, corrections...)
RESULT_KEY = "napari_livecell"
CELLS_SUFFIX = " cells"
OUTLINES_SUFFIX = " outlines"
OUTLINE_EDGE_COLOR = "yellow"
OUTLINE_STYLE: dict[str, Any] = {
    "shape_type": "polygon",
    "edge_color": OUTLINE_EDGE_COLOR,
    "face_color": "transparent",
    "edge_width": 1,
}
# the per-cell table of a result Labels layer: column -> what one value is
CELL_COLUMNS = {
    "index": "label id (int; unique within a frame, a track's id in every frame once tracked)",
    "frame": "frame of a stack, in C order of its leading axes (int)",
    "score": "model confidence (float; 1.0 for annotations)",
    "class": "class name (str)",
    "area": "pixels (int)",
    "status": "predicted | edited | added | accepted | annotated (str)",
}
# a result's cells over its image: low enough that the cell texture shows through
RESULT_LABELS_OPACITY = 0.4
# more cells than this: no outlines (napari would stall on that many shapes)
MAX_OUTLINES = 20_000
# a result's prediction is copied for proofreading at once up to this size, else when proofread
MAX_BASELINE_BYTES = 256 * 2**20


def cells_layer_name(image_name: str) -> str:
    """Name of the result Labels layer of an image layer."""
    return f"{image_name}{CELLS_SUFFIX}"


def outlines_layer_name(image_name: str) -> str:
    """Name of the result outlines (Shapes) layer of an image layer."""
    return f"{image_name}{OUTLINES_SUFFIX}"


def outlines_name_for(cells_name: str) -> str:
    """The outlines layer that belongs to a ``<image> cells`` layer."""
    return outlines_layer_name(cells_name.removesuffix(CELLS_SUFFIX))


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
    ids: Iterable[int],
    frames: Iterable[int],
    scores: Iterable[float],
    classes: Iterable[str],
    areas: Iterable[int],
    statuses: Iterable[str],
) -> dict[str, list]:
    """The per-cell ``features`` table (:data:`CELL_COLUMNS`) from its columns."""
    columns: dict[str, list[Any]] = {
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
    labels: Any = None,
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
    labels : array-like, optional
        The stack's labels, already filled frame by frame with ids running on
        (numpy or a compact zarr array, see
        :func:`~napari_livecell.core.segmentation.new_label_stack`); then the frames
        may be :class:`~napari_livecell.core.inference.run.FrameSummary` without labels.

    Returns
    -------
    list of tuple
        ``[(labels, kwargs, "labels"), (shapes, kwargs, "shapes")]``.
    """
    if isinstance(segmentations, Segmentation):
        segmentations = [segmentations]
    indices = list(np.ndindex(*leading_shape)) if leading_shape else [()]
    if labels is None:
        labels = stack_labels(segmentations, leading_shape)  # the CLI's label TIFF has the same ids
    common = dict(layer_kwargs or {})
    labels_kwargs = {
        "name": cells_layer_name(image_name),
        "features": cell_features(segmentations),
        "opacity": RESULT_LABELS_OPACITY,
        **copy.deepcopy(common),
    }
    metadata = labels_kwargs.setdefault("metadata", {})
    metadata[RESULT_KEY] = {
        **metadata.get(RESULT_KEY, {}),
        "categories": dict(segmentations[0].class_names),
        "baseline_status": "predicted",
        # the prediction, for the correction summary and exports; big stacks copy it when proofread
        "baseline": labels.copy()
        if isinstance(labels, np.ndarray) and labels.nbytes <= MAX_BASELINE_BYTES
        else None,
    }
    shapes: list[np.ndarray]
    shape_features: dict
    if sum(s.n_cells for s in segmentations) > MAX_OUTLINES:
        shapes, shape_features = [], {"label": [], "score": [], "area": [], "frame": []}
    else:
        shapes, shape_features = outline_shapes(segmentations, indices)
    shapes_kwargs = outline_layer_kwargs(
        outlines_layer_name(image_name), shape_features, labels.ndim, **copy.deepcopy(common)
    )
    return [(labels, labels_kwargs, "labels"), (shapes, shapes_kwargs, "shapes")]


def filter_mask(features: Any, min_score: float, min_area: int, max_area: int) -> np.ndarray:
    """Which rows of a cell (or outline) table pass the score and area filters.

    A cell without a score (NaN: drawn by a person) always passes the score filter.
    """
    score = np.asarray(features["score"], dtype=float)
    area = np.asarray(features["area"], dtype=float)
    return (np.isnan(score) | (score >= min_score)) & (area >= min_area) & (area <= max_area)


# the cell table kept true through edits ----------------------------------------
def layer_categories(info: dict, features: Any = None) -> dict[int, str]:
    """Class id -> name of a result layer: the model's own, never re-derived by sorting names.

    Layers made here store the model's ``names``; a table with a class the
    categories lack (a file from elsewhere) gets it appended with the next id.
    """
    categories = {int(k): str(v) for k, v in (info.get("categories") or {}).items()}
    if not categories:
        categories = {0: "cell"}
    if features is not None and len(features) and "class" in features:
        known = set(categories.values())
        for name in dict.fromkeys(str(c) for c in features["class"]):
            if name not in known and name not in ("None", "nan"):
                categories[max(categories) + 1] = name
                known.add(name)
    return categories


def default_class(info: dict, features: Any = None) -> str:
    """The class a cell painted by hand gets: the layer's one class, else the model's first."""
    if features is not None and len(features) and "class" in features:
        names = set(map(str, features["class"]))
        if len(names) == 1:
            return names.pop()
    categories = layer_categories(info)
    return categories[min(categories)]


def flat_frame(frame: tuple[int, ...], leading: tuple[int, ...]) -> int:
    """The ``frame`` column of a cell: its frame's position in C order of the leading axes."""
    return int(np.ravel_multi_index(frame, leading)) if leading else 0


def refresh_cell_rows(
    features: Any,
    frames: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray, np.ndarray]],
    touched: dict[tuple[int, ...], set[int]],
    leading: tuple[int, ...],
    memory: dict[tuple[int, int], dict],
    baseline_status: str,
    added_class: str,
) -> Any:
    """The cell table after an edit: rows of touched cells recomputed, one row per cell of each frame.

    A row is one cell of one frame, keyed by ``(frame, index)``: after
    tracking, an id names a cell in every frame of its track. A touched cell
    takes the row (score, class, status) of the cell of the same frame whose
    pixels it mostly holds in the snapshot before the edit, whatever the ids
    are now: so a relabel, a tracking run, their undo, a merge or a split
    carry every cell's attributes along. A cell that reappears (undo of a
    delete) gets its row back from ``memory``; a cell painted on background
    is ``added`` with the layer's class and no score (NaN).

    Parameters
    ----------
    features : pandas.DataFrame
        The table before the edit (:data:`CELL_COLUMNS`).
    frames : dict
        Frame index -> (current labels, labels before the edit, baseline
        labels) of each touched frame.
    touched : dict
        Frame index -> ids whose pixels changed there (before or after).
    leading : tuple of int
        The stack's leading shape (``()`` for 2-D).
    memory : dict
        ``(frame, id)`` -> last row of cells that left the table (updated in place).
    baseline_status : str
        Status of a cell whose pixels are the baseline's (``predicted`` or
        ``annotated``).
    added_class : str
        Class of a cell painted by hand.

    Returns
    -------
    pandas.DataFrame
        The new table, ordered by frame and id. A cell whose pixels only
        changed id keeps its status (``accepted`` included); any other
        touched cell's status follows from its pixels against the baseline:
        unchanged, ``edited`` or ``added``.
    """
    import pandas as pd

    from napari_livecell.core.analysis.edit import compare_to_baseline

    columns = list(CELL_COLUMNS)
    table = pd.DataFrame(features).copy() if features is not None else pd.DataFrame(columns=columns)
    for column in columns:
        if column not in table:
            table[column] = 0 if column == "frame" else None
    table["frame"] = table["frame"].fillna(0)
    before = {(int(row["frame"]), int(row["index"])): row for row in table[columns].to_dict("records")}
    rows = dict(before)
    for frame, ids in touched.items():
        flat = flat_frame(frame, leading)
        area_before = _areas(frames[frame][1])
        for cell in ids:
            key = (flat, cell)
            if key in before and cell in area_before:
                memory[key] = dict(before[key])
            rows.pop(key, None)
    for frame, ids in touched.items():
        flat = flat_frame(frame, leading)
        plane, snapshot, baseline = frames[frame]
        changes = compare_to_baseline(plane, baseline).changes
        area_now = _areas(plane)
        area_before = _areas(snapshot)
        source = _largest_sources(plane, snapshot, ids)
        for cell in sorted(ids & set(area_now)):
            count, old = source.get(cell, (0, 0))
            row = dict(before.get((flat, old)) or memory.get((flat, cell)) or {})
            identical = bool(row) and count == area_now[cell] == area_before.get(old)
            if not identical:
                change = changes[cell]
                row["status"] = {"unchanged": baseline_status, "edited": "edited", "added": "added"}[change]
                if change == "added" or "score" not in row:
                    row["score"] = float("nan")  # drawn by a person: no model score
            if not isinstance(row.get("class"), str) or row["class"] in ("None", "nan", ""):
                row["class"] = added_class
            row.update(index=cell, area=area_now[cell], frame=flat)
            rows[(flat, cell)] = row
    ordered = [rows[key] for key in sorted(rows)]
    result = pd.DataFrame(ordered, columns=columns)
    return result.astype({"index": np.int64, "frame": np.int64, "score": float, "area": np.int64})


def _largest_sources(plane: np.ndarray, snapshot: np.ndarray, ids: set[int]) -> dict[int, tuple[int, int]]:
    """Cell id now -> (pixels, id before) of the cell before the edit that it holds most of."""
    from napari_livecell.core.analysis.edit import pair_counts

    source: dict[int, tuple[int, int]] = {}
    firsts, seconds, counts = pair_counts(plane, snapshot)
    for cell, old, count in zip(firsts.tolist(), seconds.tolist(), counts.tolist()):
        if cell in ids and count > source.get(cell, (0, 0))[0]:
            source[cell] = (count, old)
    return source


def pure_id_changes(plane: np.ndarray, snapshot: np.ndarray) -> dict[int, int]:
    """Id before -> id now of the cells of a frame whose pixels stayed the same under another id."""
    from napari_livecell.core.analysis.edit import pair_counts

    area_now = _areas(plane)
    area_before = _areas(snapshot)
    firsts, seconds, counts = pair_counts(plane, snapshot)
    return {
        old: cell
        for cell, old, count in zip(firsts.tolist(), seconds.tolist(), counts.tolist())
        if cell != old and count == area_now[cell] == area_before[old]
    }


def follow_ids(
    baseline_plane: np.ndarray, mapping: dict[int, int], first_free: int
) -> tuple[np.ndarray, int]:
    """A baseline frame with its cells renamed by ``mapping`` (old id -> new id), all at once.

    Baseline cells whose id a renamed cell now takes, and that are not
    renamed themselves (a deleted cell's id given to another), get fresh ids
    from ``first_free`` on (above every id of the stack, so ids that were
    unique across the stack stay so). Returns the frame and the next free id.
    """
    if not mapping:
        return baseline_plane, first_free
    present = np.unique(baseline_plane[baseline_plane > 0])
    targets = set(mapping.values())
    clashing = [int(cell) for cell in present if int(cell) in targets and int(cell) not in mapping]
    full = {int(cell): int(cell) for cell in present}
    full.update(mapping)
    full.update({cell: first_free + i for i, cell in enumerate(clashing)})
    olds = np.array(sorted(full), dtype=np.int64)
    news = np.array([full[o] for o in olds], dtype=np.int64)
    where = np.minimum(np.searchsorted(olds, baseline_plane), len(olds) - 1)
    found = olds[where] == baseline_plane
    out = np.where(found, news[where], baseline_plane)
    return out.astype(baseline_plane.dtype, copy=False), first_free + len(clashing)


def _areas(plane: np.ndarray) -> dict[int, int]:
    ids, counts = np.unique(plane[plane > 0], return_counts=True)
    return dict(zip(ids.tolist(), counts.tolist()))


# Labels layer -> per-frame cells ---------------------------------------------
def layer_cells(data: Any, attributes: dict) -> tuple[list[CocoImage], dict[int, str], bool]:
    """Per-frame Segmentations, file names and statuses from a Labels layer.

    Memory grows with the number of cells, not with the largest id: ids are
    made compact per frame before anything is indexed by them.

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
        One per frame, with scores, statuses and the layer's ids
        (``CocoImage.labels``) from the cell table.
    class_names : dict
        Class id -> name (the model's categories).
    with_scores : bool
        Whether the table had scores (a prediction, not an annotation).
    """
    labels = np.asarray(data)
    if labels.ndim < 2:
        raise ValueError(f"a label image must be at least 2-D, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise ValueError("labels must not be negative")
    features = attributes.get("features")
    info = (attributes.get("metadata") or {}).get(RESULT_KEY, {})
    table = features if features is not None and len(features) and "index" in features else None
    class_names = layer_categories(info, table)
    class_id = {name: cid for cid, name in class_names.items()}
    fallback_class = default_class(info, table)
    # keyed by (frame, id): after tracking, an id names a cell in every frame of its track;
    # a table without frames (from elsewhere) keys its rows by id alone (frame None)
    rows: dict[tuple[int | None, int], tuple[float, int, str]] = {}
    if table is not None:
        ids = np.asarray(table["index"], dtype=np.int64)
        frame_of = (
            np.asarray(table["frame"], dtype=np.int64).tolist() if "frame" in table else [None] * len(ids)
        )
        scores = np.asarray(table["score"], dtype=np.float64) if "score" in table else np.ones(len(ids))
        statuses = list(map(str, table["status"])) if "status" in table else ["edited"] * len(ids)
        names = list(map(str, table["class"])) if "class" in table else [fallback_class] * len(ids)
        for cell, frame, score, name, status in zip(ids.tolist(), frame_of, scores.tolist(), names, statuses):
            rows[(frame, cell)] = (score, class_id.get(name, class_id[fallback_class]), status)
    base = info.get("source_path") or info.get("source") or attributes.get("name", "image")
    base_name = Path(str(base)).name
    if not Path(base_name).suffix:
        base_name += ".tif"  # an image made in napari has no file: name it as we would save it
    frames = labels.reshape(-1, *labels.shape[-2:])
    file_names = info.get("file_names") or []
    entries = []
    for index, frame in enumerate(frames):
        present, compact = np.unique(frame, return_inverse=True)
        compact = compact.reshape(frame.shape).astype(np.int32)
        if present.size and present[0] != 0:
            compact += 1
            present = np.concatenate([[0], present])
        cells = present[1:].tolist()
        missing = (1.0, class_id[fallback_class], "edited")
        attributes_of = [rows.get((index, cell), rows.get((None, cell), missing)) for cell in cells]
        segmentation = Segmentation.from_painted(
            compact,
            np.array([a[0] for a in attributes_of], np.float32),
            np.array([a[1] for a in attributes_of], np.int32),
            class_names,
        )
        file_name = file_names[index] if index < len(file_names) else base_name
        entries.append(
            CocoImage(
                image_id=index + 1,
                file_name=str(file_name),
                segmentation=segmentation,
                frame=index if len(frames) > 1 else None,
                statuses=[a[2] for a in attributes_of],
                labels=cells,
            )
        )
    return entries, class_names, table is not None and "score" in table


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
    """Frames with at least one cell, as :class:`~napari_livecell.core.training.data.TrainingFrame`.

    Class ids are the first layer's own (its model's categories); names that
    only later layers have follow them, so the same name gets the same id
    everywhere and a multi-class model's order is kept.

    Raises
    ------
    ValueError
        An image whose frames do not match its labels, or no cells at all.
    """
    from napari_livecell.core.training.data import DatasetError, TrainingFrame

    per_layer = []
    all_names: dict[str, None] = {}  # insertion-ordered: the first layer's class ids stay as they are
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
        all_names.update(dict.fromkeys(names[i] for i in sorted(names)))
    class_names = dict(enumerate(all_names))
    class_id = {name: index for index, name in class_names.items()}
    frames = []
    for layer, entries, names in per_layer:
        remap = np.zeros(max(names) + 1, dtype=np.int32)
        for index, name in names.items():
            remap[index] = class_id[name]
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
