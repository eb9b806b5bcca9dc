"""COCO instance-segmentation json, in LIVECell's layout.

LIVECell's files hold one category ("cell") and polygon segmentations; some of
its released files store ``annotations`` as a dict keyed by id instead of a
list, so :func:`load_coco` accepts both.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_livecell.core.limits import (  # noqa: F401  (MAX_LABEL_GIB_VARIABLE: kept importable here)
    MAX_LABEL_GIB_VARIABLE,
    LimitError,
    check_label_shape,
    max_label_bytes,
)
from napari_livecell.core.segmentation import Segmentation, polygons_to_mask


class CocoFormatError(ValueError):
    """A COCO json that cannot be used, with the reason in the message."""


@dataclass
class CocoImage:
    """One image entry and the segmentation of its cells."""

    image_id: int
    file_name: str
    segmentation: Segmentation
    frame: int | None = None
    statuses: Sequence[str] | None = None  # proofreading status of each cell
    labels: Sequence[int] | None = None  # each cell's id in the napari layer, kept for a round trip


def _round(values: Iterable[float] | np.ndarray) -> list[float]:
    return np.round(np.asarray(values, dtype=float), 2).ravel().tolist()


def encode_rle(mask: np.ndarray) -> dict:
    """COCO compressed RLE (``counts`` as a string) of a full-size boolean mask."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def encode_rle_in_box(local: np.ndarray, top: int, left: int, shape: tuple[int, int]) -> dict:
    """Full-image COCO compressed RLE of a mask given only inside its bounding box.

    Gives the same ``counts`` as :func:`encode_rle` of the full-size mask, at a
    cost that grows with the box, not the frame (a 20000 x 20000 frame holds
    400 M pixels; a cell's box a few hundred).

    Parameters
    ----------
    local : numpy.ndarray
        Boolean mask of the box, ``(box height, box width)``.
    top, left : int
        Row and column of the box's top-left pixel in the image.
    shape : tuple of int
        ``(height, width)`` of the image.

    Returns
    -------
    dict
        ``{"size": [height, width], "counts": str}``.

    Notes
    -----
    COCO RLE runs down the columns (Fortran order), starting with a run of
    zeros. Each box column is padded with a zero above and below, so every
    change of value inside the padded column is a run boundary of the full
    image at ``(left + column) * height + top + row``. A box as tall as the
    image makes a column's last boundary and the next column's first one
    coincide; such pairs cancel (the run continues across the columns).
    """
    from pycocotools import mask as mask_utils

    height, width = (int(v) for v in shape)
    box_height, box_width = local.shape
    padded = np.zeros((box_width, box_height + 2), dtype=np.int8)
    padded[:, 1:-1] = local.T  # one row per box column
    flat = padded.ravel()
    changes = np.flatnonzero(flat[1:] != flat[:-1])
    column, row = np.divmod(changes, box_height + 2)
    boundaries = (left + column).astype(np.int64) * height + top + row
    if box_height == height and len(boundaries) > 1:
        same = np.flatnonzero(boundaries[1:] == boundaries[:-1])
        boundaries = np.delete(boundaries, np.concatenate([same, same + 1]))
    counts = np.diff(np.concatenate([[0], boundaries, [height * width]]))
    if len(counts) > 1 and counts[-1] == 0:
        counts = counts[:-1]  # pycocotools writes no empty run after a mask that ends the image
    rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts.tolist()}, height, width)
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}


def cell_annotation(
    local: np.ndarray,
    corner: tuple[int, int],
    shape: tuple[int, int],
    annotation_id: int,
    image_id: int,
    category_id: int,
    area: int,
    score: float | None = None,
    rle: bool = False,
) -> dict:
    """One cell's COCO annotation from its mask in its box (``corner``: the box's top-left pixel).

    Polygons, one per part, unless ``rle`` or the cell has a hole (RLE over
    the image of ``shape`` then). ``score``: written when given (NaN as null).
    """
    from napari_livecell.core.segmentation import mask_rings

    top, left = corner
    rings, holes = mask_rings(local, (top, left))
    encoded: dict | list
    if rle or any(holes):
        encoded = encode_rle_in_box(local, top, left, shape)
    else:
        # traced vertices are exact quarter pixels: nothing to round
        encoded = [ring.ravel().tolist() for ring in rings]
    height, width = local.shape
    annotation: dict[str, Any] = {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": category_id,
        "segmentation": encoded,
        "area": area,
        "bbox": [float(left), float(top), float(width), float(height)],
        "iscrowd": 0,
    }
    if score is not None:
        annotation["score"] = None if score != score else score  # NaN: no model score
    return annotation


def segmentation_annotations(
    segmentation: Segmentation,
    image_id: int,
    first_annotation_id: int,
    with_scores: bool,
    statuses: Sequence[str] | None = None,
    rle: bool = False,
    should_stop: Callable[[], bool] | None = None,
    labels: Sequence[int] | None = None,
) -> list[dict]:
    """COCO annotation dicts for every cell of ``segmentation``.

    Category ids are the model's class ids + 1 (COCO reserves 0). Cells are
    written as polygons (one per part; COCO joins the parts of a cell by
    union) unless ``rle`` is set. A cell with a hole is always written as
    RLE, because a union of polygons cannot keep a hole. ``should_stop`` is
    polled every 256 cells; when it returns True,
    :class:`napari_livecell.core.errors.Cancelled` is raised. ``labels``,
    when given, are written as each cell's ``label`` (its id in a napari
    layer); a score that is NaN (a cell a person added) is written as null.
    """
    from napari_livecell.core.segmentation import cell_boxes

    annotations: list[dict] = []
    # plain Python values once per frame: numpy scalars are slow per cell
    areas = segmentation.areas.tolist()
    categories = (segmentation.classes + 1).tolist()
    scores = np.round(segmentation.scores.astype(float), 5).tolist()
    slices = cell_boxes(segmentation.labels)  # once: Segmentation.bboxes would search again
    for index in range(segmentation.n_cells):
        if should_stop is not None and index % 256 == 0 and should_stop():
            from napari_livecell.core.errors import Cancelled

            raise Cancelled(f"cancelled after {index} of {segmentation.n_cells} cells")
        box = slices[index] if index < len(slices) else None
        if box is None or areas[index] == 0:
            continue
        rows, cols = box
        local = segmentation.labels[box] == index + 1
        annotation = cell_annotation(
            local,
            (rows.start, cols.start),
            segmentation.labels.shape,
            first_annotation_id + len(annotations),
            image_id,
            categories[index],
            areas[index],
            scores[index] if with_scores else None,
            rle,
        )
        if statuses is not None:
            annotation["status"] = str(statuses[index])
        if labels is not None:
            annotation["label"] = int(labels[index])
        annotations.append(annotation)
    return annotations


def build_coco(
    images: Sequence[CocoImage],
    class_names: dict[int, str] | None = None,
    with_scores: bool = False,
    rle: bool = False,
    should_stop: Callable[[], bool] | None = None,
) -> dict:
    """Assemble a COCO dict (LIVECell layout) from segmented images.

    Parameters
    ----------
    images : sequence of CocoImage
        Image entries (ids, file names, frames) and their cells.
    class_names : dict, optional
        Class id -> name; taken from the first segmentation when omitted.
    with_scores : bool
        Write each cell's ``score`` (prediction files).
    rle : bool
        Write every cell as compressed RLE instead of polygons.
    should_stop : callable, optional
        Polled every 256 cells; returning True raises
        :class:`napari_livecell.core.errors.Cancelled`.

    Returns
    -------
    dict
        ``info``, ``licenses``, ``images``, ``annotations``, ``categories``.
    """
    if class_names is None:
        class_names = images[0].segmentation.class_names if images else {0: "cell"}
    coco: dict = {
        "info": {"description": "napari-livecell", "version": "1.0"},
        "licenses": [],
        "images": [],
        "annotations": [],
        "categories": [
            {"supercategory": "cell", "id": class_id + 1, "name": name}
            for class_id, name in sorted(class_names.items())
        ],
    }
    for entry in images:
        height, width = entry.segmentation.labels.shape
        image = {
            "id": entry.image_id,
            "file_name": entry.file_name,
            "width": int(width),
            "height": int(height),
        }
        if entry.frame is not None:
            image["frame"] = entry.frame
        coco["images"].append(image)
        coco["annotations"].extend(
            segmentation_annotations(
                entry.segmentation,
                entry.image_id,
                len(coco["annotations"]) + 1,
                with_scores,
                entry.statuses,
                rle,
                should_stop,
                entry.labels,
            )
        )
    return coco


def write_coco(path: str | os.PathLike, coco: dict) -> Path:
    """Write a COCO dict to ``path`` atomically (orjson: ~10x faster than json)."""
    import orjson

    from napari_livecell.core.atomic import write_with

    payload = orjson.dumps(coco, option=orjson.OPT_SERIALIZE_NUMPY)
    return write_with(path, lambda temporary: temporary.write_bytes(payload))


def load_coco(path: str | os.PathLike) -> dict:
    """Read a COCO json; ``annotations`` is always returned as a list.

    Raises
    ------
    CocoFormatError
        When the file is not json or lacks the COCO ``images`` list.
    """
    path = Path(path)
    try:
        coco = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise CocoFormatError(
            f"{path.name} is not UTF-8 text (json must be): {error.reason} at byte {error.start}"
        ) from None
    except json.JSONDecodeError as error:
        raise CocoFormatError(f"{path.name} is not valid json: {error}") from None
    return normalize_coco(coco, path.name)


def normalize_coco(coco: object, name: str) -> dict:
    """A parsed COCO json checked and made uniform: ``annotations`` a list, ``categories`` present.

    Raises
    ------
    CocoFormatError
        No ``images`` list, or ``annotations`` neither a list nor a dict.
    """
    if not isinstance(coco, dict) or not isinstance(coco.get("images"), list):
        raise CocoFormatError(f"{name} is not a COCO file: no 'images' list")
    annotations = coco.get("annotations", [])
    if isinstance(annotations, dict):
        annotations = list(annotations.values())
    if not isinstance(annotations, list):
        raise CocoFormatError(f"{name}: 'annotations' must be a list or dict")
    coco["annotations"] = annotations
    categories = coco.get("categories") or [{"id": 1, "name": "cell"}]
    if not isinstance(categories, list) or not all(
        isinstance(c, dict) and isinstance(c.get("id"), int) and not isinstance(c.get("id"), bool)
        for c in categories
    ):
        raise CocoFormatError(f"{name}: 'categories' must be a list of objects with an integer 'id'")
    coco["categories"] = categories
    return coco


def _ring_arrays(segmentation: list, width: int, height: int, where: str) -> list[np.ndarray]:
    rings = []
    for ring in segmentation:
        try:
            values = np.asarray(ring, dtype=float)
        except (TypeError, ValueError):
            raise CocoFormatError(f"{where}: a polygon is not a list of numbers") from None
        if values.ndim != 1 or len(values) % 2:
            raise CocoFormatError(f"{where}: a polygon has an odd number of coordinates")
        if len(values) < 6:
            raise CocoFormatError(f"{where}: a polygon needs at least 3 points")
        points = values.reshape(-1, 2)
        # LIVECell coordinates may touch the border; allow one pixel of slack
        if (points < -1).any() or (points[:, 0] > width + 1).any() or (points[:, 1] > height + 1).any():
            raise CocoFormatError(
                f"{where}: polygon outside the {width} x {height} image "
                f"(x {points[:, 0].min():.1f}..{points[:, 0].max():.1f}, "
                f"y {points[:, 1].min():.1f}..{points[:, 1].max():.1f})"
            )
        rings.append(points)
    return rings


def annotation_mask(annotation: dict, height: int, width: int) -> np.ndarray:
    """Boolean mask of one annotation (polygons joined by union, or RLE).

    Raises
    ------
    CocoFormatError
        Malformed polygons (odd length, < 3 points, outside the image) or RLE.
    """
    where = f"annotation {annotation.get('id', '?')}"
    segmentation = annotation.get("segmentation")
    if isinstance(segmentation, dict):
        from pycocotools import mask as mask_utils

        size = segmentation.get("size")
        if size is not None and list(size) != [height, width]:
            raise CocoFormatError(f"{where}: RLE size {size} differs from the image {height} x {width}")
        rle = segmentation
        if isinstance(rle.get("counts"), list):
            rle = mask_utils.frPyObjects(rle, height, width)
        try:
            return mask_utils.decode(rle).astype(bool)
        except Exception as error:
            raise CocoFormatError(f"{where}: unreadable RLE ({error})") from None
    if not isinstance(segmentation, list) or not segmentation:
        raise CocoFormatError(f"{where}: no polygon or RLE segmentation")
    rings = _ring_arrays(segmentation, width, height, where)
    return polygons_to_mask(rings, (height, width), combine="union")


def annotations_to_labels(annotations: Iterable[dict], height: int, width: int) -> np.ndarray:
    """Rasterise annotations into a label image (ids in file order, earlier on top).

    Raises
    ------
    CocoFormatError
        A malformed annotation, or one that covers no pixel (zero area).
    """
    labels = np.zeros((height, width), dtype=np.int32)
    for number, annotation in enumerate(annotations, start=1):
        mask = annotation_mask(annotation, height, width)
        if not mask.any():
            raise CocoFormatError(f"annotation {annotation.get('id', '?')} covers no pixel (zero area)")
        labels[mask & (labels == 0)] = number
    return labels


def check_image_entry(entry: dict, source: str) -> tuple[int, int]:
    """Height and width of a COCO image entry, or a clear error."""
    try:
        height, width = int(entry["height"]), int(entry["width"])
    except (KeyError, TypeError, ValueError):
        raise CocoFormatError(
            f"{source}: image {entry.get('id', '?')} lacks an integer width/height"
        ) from None
    if height <= 0 or width <= 0:
        raise CocoFormatError(f"{source}: image {entry.get('id', '?')} has size {width} x {height}")
    try:
        check_label_shape((height, width), f"{source}: image {entry.get('id', '?')}")
    except LimitError as error:
        raise CocoFormatError(str(error)) from None
    return height, width


def annotations_by_image(coco: dict) -> dict[int, list[dict]]:
    """Annotations grouped by image id (file order kept)."""
    grouped: dict[int, list[dict]] = {}
    for annotation in coco["annotations"]:
        if not isinstance(annotation, dict) or "image_id" not in annotation:
            raise CocoFormatError("an annotation lacks its 'image_id'")
        grouped.setdefault(annotation["image_id"], []).append(annotation)
    return grouped
