"""npe2 readers: COCO json and YOLO-seg txt -> Labels (+ outline Shapes, + images).

Readers look cheaply (extension, a json key) and return ``None`` for files
that are not theirs; once a file is theirs, a malformed one gets a clear
message. The writers in :mod:`napari_livecell.io.write` are their inverse.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np

from napari_livecell.core.formats.coco import (
    CocoFormatError,
    annotation_mask,
)
from napari_livecell.core.formats.yolo import parse_yolo_lines, yolo_to_labels
from napari_livecell.core.limits import MAX_LABEL_ID
from napari_livecell.core.segmentation import mask_to_polygons
from napari_livecell.layers import (
    MAX_OUTLINES,
    RESULT_KEY,
    cell_table,
    cells_layer_name,
    outline_layer_kwargs,
    outlines_layer_name,
    ring_to_vertices,
)


def get_coco_reader(path: str | list[str]):
    """Return a reader for a COCO instance json, else ``None``.

    The whole file is parsed (and kept for the reader): a web manifest, a
    Label Studio or VIA export, or any json whose ``images`` are not COCO
    image records is not ours. A file that mentions ``images`` and
    ``annotations`` but is not readable json is claimed, so that its reader
    says what is wrong with it.
    """
    if isinstance(path, list):
        return None
    if not str(path).lower().endswith(".json") or not os.path.isfile(path):
        return None
    try:
        coco = _parse_json(path)
    except (ValueError, UnicodeDecodeError):
        with open(path, "rb") as handle:
            content = handle.read()
        return read_coco_layers if b'"images"' in content and b'"annotations"' in content else None
    return read_coco_layers if _looks_like_coco(coco) else None


def _parse_json(path: str | os.PathLike) -> Any:
    """The parsed json, once per file version: the claim check and the reader share it."""
    stat = os.stat(path)
    return _parse_json_cached(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=2)
def _parse_json_cached(path: str, _mtime_ns: int, _size: int) -> Any:
    import orjson

    with open(path, "rb") as handle:
        return orjson.loads(handle.read())


def _looks_like_coco(coco: Any) -> bool:
    if not isinstance(coco, dict):
        return False
    images, annotations = coco.get("images"), coco.get("annotations", [])
    if not isinstance(images, list) or not isinstance(annotations, list | dict):
        return False
    return all(isinstance(image, dict) and "width" in image and "height" in image for image in images[:100])


def read_coco_layers(path: str) -> list[tuple]:
    """Labels (+ outlines, + the images when found) from a COCO json.

    Several images of one size open as a stack (frames in ``frame`` order when
    the json has it), rasterised lazily frame by frame. A file this plugin
    wrote comes back as it was saved: the layer's cell ids (``label``), each
    cell's status and score, the model's categories, and the prediction
    baseline, so proofreading can go on where it stopped.
    """
    from napari_livecell.core.formats.coco_stack import read_coco_stack

    json_path = Path(path)
    stack = read_coco_stack(json_path, _parse_json)
    coco, images, per_frame, ids = stack.coco, stack.images, stack.per_frame, stack.ids
    height, width, names = stack.height, stack.width, stack.names
    features = cell_table(**stack.cell_columns())
    ours = coco.get("napari_livecell") if isinstance(coco.get("napari_livecell"), dict) else {}
    file_names = [image.get("file_name") for image in images]
    source = Path(str(file_names[0])).stem if len(images) == 1 else json_path.stem
    info = {"source": source, "file_names": file_names, "categories": names, "edited": False}
    # a file this plugin wrote is proofread: its labels are edited in memory, not rasterised lazily
    labels: Any = stack.labels(lazy=not (len(images) == 1 or ours))
    if ours:
        info["baseline"] = _baseline(labels, per_frame, ours, images, height, width)
        info["baseline_status"] = str(ours.get("baseline_status", "predicted"))
        info["edited"] = bool(ours.get("edited", False))
    layers = []
    image_layer = _image_layer(json_path, stack.image_files())
    if image_layer is not None:
        layers.append(image_layer)
    labels_kwargs = {
        "name": cells_layer_name(json_path.stem),
        "features": features,
        "metadata": {RESULT_KEY: info},
    }
    layers.append((labels, labels_kwargs, "labels"))
    if len(features["index"]) <= MAX_OUTLINES:
        shapes, shape_features = _coco_outlines(per_frame, ids, height, width, len(images) > 1, features)
        outline_kwargs = outline_layer_kwargs(
            outlines_layer_name(json_path.stem), shape_features, labels.ndim
        )
        layers.append((shapes, outline_kwargs, "shapes"))
    return layers


def _is_label(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


def _baseline(labels, per_frame, ours: dict, images: list[dict], height: int, width: int) -> np.ndarray:
    """The prediction as it was before proofreading: unchanged cells + the saved baseline cells."""
    saved = [a.get("baseline_label") for frame_annotations in per_frame for a in frame_annotations]
    saved += [a.get("label") for a in ours.get("baseline_annotations", []) if isinstance(a, dict)]
    wide = any(_is_label(value) and value > MAX_LABEL_ID for value in saved)
    baseline = np.zeros(np.shape(labels), np.int64 if wide else labels.dtype)
    frame_of = {image["id"]: index for index, image in enumerate(images)}
    planes = baseline.reshape(-1, height, width)
    for frame, frame_annotations in enumerate(per_frame):
        for annotation in frame_annotations:
            if _is_label(annotation.get("baseline_label")):
                planes[frame][annotation_mask(annotation, height, width)] = annotation["baseline_label"]
    for annotation in ours.get("baseline_annotations", []):
        if not isinstance(annotation, dict):
            raise CocoFormatError("a baseline annotation is not a json object")
        found = frame_of.get(annotation.get("image_id"))
        if found is None or not _is_label(annotation.get("label")):
            raise CocoFormatError(
                f"baseline annotation {annotation.get('id', '?')} names no known image or label"
            )
        planes[found][annotation_mask(annotation, height, width)] = annotation["label"]
    return baseline


def _coco_outlines(per_frame, ids, height, width, is_stack, features):
    shapes, columns = [], {"label": [], "score": [], "frame": []}
    score_of = dict(zip(zip(features["frame"], features["index"]), features["score"]))
    for frame, (frame_annotations, frame_ids) in enumerate(zip(per_frame, ids)):
        for annotation, label in zip(frame_annotations, frame_ids):
            segmentation = annotation.get("segmentation")
            if isinstance(segmentation, list):
                rings = [np.asarray(r, float).reshape(-1, 2) for r in segmentation]
            else:
                rings = mask_to_polygons(annotation_mask(annotation, height, width))
            for ring in rings:
                shapes.append(ring_to_vertices(ring, (frame,) if is_stack else ()))
                columns["label"].append(label)
                columns["score"].append(score_of[(frame, label)])
                columns["frame"].append(frame)
    return shapes, columns


def _image_layer(json_path: Path, found: list[Path] | None) -> tuple | None:
    if found is None:
        return None
    from napari_livecell.core.formats.coco_stack import read_images

    data = read_images(found)
    name = Path(found[0]).stem if len(found) == 1 else json_path.stem
    info: dict[str, Any] = {"paths": [str(p) for p in found]}
    from napari_livecell.core.inference.pixel_size import file_pixel_size

    # kept as metadata, not as the layer's scale: the labels beside it are in pixels
    pixel_size = file_pixel_size(found[0])
    if pixel_size is not None:
        info["pixel_size_um"] = pixel_size
    return data, {"name": name, "metadata": {RESULT_KEY: info}}, "image"


def get_yolo_reader(path: str | list[str]):
    """Return a reader for a YOLO-seg label ``.txt``, else ``None``.

    Ours only when every line is ``class x1 y1 ...`` numbers and the image it
    labels is found (YOLO coordinates are fractions of the image size): a
    ``.txt`` of numbers with no image beside it is not a label file we can open.
    """
    if isinstance(path, list) or not str(path).lower().endswith(".txt"):
        return None
    if not os.path.isfile(path):
        return None
    with open(path, "rb") as handle:
        first = handle.readline().split()
    try:
        [float(token) for token in first]
    except ValueError:
        return None  # prose, not labels
    if len(first) < 5:
        return None  # a class and (x, y) pairs: one or a few numbers per line are something else
    if _yolo_image_for(Path(path)) is None:
        return None
    return read_yolo_layers


def _yolo_image_for(txt: Path) -> Path | None:
    from napari_livecell.core.images import IMAGE_SUFFIXES

    folders = [txt.parent]
    if txt.parent.parent.name == "labels":  # dataset/labels/<split>/x.txt
        folders.append(txt.parent.parent.parent / "images" / txt.parent.name)
    if txt.parent.name == "labels":
        folders.append(txt.parent.parent / "images")
    for folder in folders:
        for suffix in IMAGE_SUFFIXES:
            candidate = folder / f"{txt.stem}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def _yolo_names(txt: Path) -> dict[int, str] | None:
    from napari_livecell.core.formats.yolo import read_data_yaml

    for folder in (txt.parent, txt.parent.parent, txt.parent.parent.parent):
        if (folder / "data.yaml").is_file():
            return read_data_yaml(folder / "data.yaml")["names"]
    return None


def read_yolo_layers(path: str) -> list[tuple]:
    """Labels from a YOLO-seg txt; the image size comes from its sibling image."""
    from napari_livecell.core.images import read_image

    txt = Path(path)
    image_path = _yolo_image_for(txt)
    if image_path is None:
        raise FileNotFoundError(
            f"no image named {txt.stem}.* beside {txt.name} (or in the dataset's images/ "
            "folder): YOLO coordinates are relative, so the image size is needed"
        )
    image = read_image(image_path)
    height, width = image.shape[:2]
    names = _yolo_names(txt)
    cells = parse_yolo_lines(txt.read_text(), txt.name, len(names) if names else None)
    labels, classes = yolo_to_labels(cells, height, width)
    names = names or {0: "cell"}
    n_cells = len(classes)
    features = cell_table(
        ids=range(1, n_cells + 1),
        frames=[0] * n_cells,
        scores=[1.0] * n_cells,
        classes=[names.get(int(c), str(int(c))) for c in classes],
        areas=np.bincount(labels.ravel(), minlength=n_cells + 1)[1 : n_cells + 1],
        statuses=["annotated"] * n_cells,
    )
    metadata = {RESULT_KEY: {"source": image_path.stem, "source_path": str(image_path), "categories": names}}
    labels_kwargs = {"name": cells_layer_name(image_path.stem), "features": features, "metadata": metadata}
    return [(image, {"name": image_path.stem}, "image"), (labels, labels_kwargs, "labels")]
