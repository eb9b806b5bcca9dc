"""COCO instance-segmentation json, in LIVECell's layout.

LIVECell's files hold one category ("cell") and polygon segmentations; some of
its released files store ``annotations`` as a dict keyed by id instead of a
list, so :func:`load_coco` accepts both.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_livecell.core.atomic import write_text_atomic
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


def _round(values: Iterable[float]) -> list[float]:
    return [round(float(v), 2) for v in values]


def segmentation_annotations(
    segmentation: Segmentation,
    image_id: int,
    first_annotation_id: int,
    with_scores: bool,
) -> list[dict]:
    """COCO annotation dicts for every cell of ``segmentation``.

    Category ids are the model's class ids + 1 (COCO reserves 0).
    """
    annotations = []
    areas = segmentation.areas
    boxes = segmentation.bboxes
    for index in range(segmentation.n_cells):
        rings = segmentation.polygons[index] if segmentation.polygons else []
        if not rings or areas[index] == 0:
            continue
        annotation = {
            "id": first_annotation_id + len(annotations),
            "image_id": image_id,
            "category_id": int(segmentation.classes[index]) + 1,
            "segmentation": [_round(np.asarray(ring).ravel()) for ring in rings],
            "area": int(areas[index]),
            "bbox": _round(boxes[index]),
            "iscrowd": 0,
        }
        if with_scores:
            annotation["score"] = round(float(segmentation.scores[index]), 5)
        annotations.append(annotation)
    return annotations


def build_coco(
    images: Sequence[CocoImage],
    class_names: dict[int, str] | None = None,
    with_scores: bool = False,
) -> dict:
    """Assemble a COCO dict (LIVECell layout) from segmented images."""
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
            )
        )
    return coco


def write_coco(path: str | os.PathLike, coco: dict) -> Path:
    """Write a COCO dict to ``path`` atomically."""
    return write_text_atomic(path, json.dumps(coco, separators=(",", ":")))


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
    except json.JSONDecodeError as error:
        raise CocoFormatError(f"{path.name} is not valid json: {error}") from None
    if not isinstance(coco, dict) or not isinstance(coco.get("images"), list):
        raise CocoFormatError(f"{path.name} is not a COCO file: no 'images' list")
    annotations = coco.get("annotations", [])
    if isinstance(annotations, dict):
        annotations = list(annotations.values())
    if not isinstance(annotations, list):
        raise CocoFormatError(f"{path.name}: 'annotations' must be a list or dict")
    coco["annotations"] = annotations
    coco.setdefault("categories", [{"id": 1, "name": "cell"}])
    return coco


def annotations_to_labels(annotations: Iterable[dict], height: int, width: int) -> np.ndarray:
    """Rasterise polygon annotations into a label image (ids in file order)."""
    labels = np.zeros((height, width), dtype=np.int32)
    for number, annotation in enumerate(annotations, start=1):
        segmentation = annotation["segmentation"]
        if isinstance(segmentation, dict):
            from pycocotools import mask as mask_utils

            rle = segmentation
            if isinstance(rle.get("counts"), list):
                rle = mask_utils.frPyObjects(rle, height, width)
            mask = mask_utils.decode(rle).astype(bool)
        else:
            rings = [np.asarray(ring, dtype=float).reshape(-1, 2) for ring in segmentation]
            mask = polygons_to_mask(rings, (height, width))
        labels[mask & (labels == 0)] = number
    return labels
