"""npe2 readers: COCO json and YOLO-seg txt -> Labels (+ outline Shapes, + images).

Readers look cheaply (extension, a json key) and return ``None`` for files
that are not theirs; once a file is theirs, a malformed one gets a clear
message. The writers in :mod:`napari_livecell.io.write` are their inverse.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from napari_livecell.core.coco import (
    CocoFormatError,
    annotation_mask,
    annotations_by_image,
    annotations_to_labels,
    check_image_entry,
    load_coco,
)
from napari_livecell.core.segmentation import mask_to_polygons
from napari_livecell.core.yolo import parse_yolo_lines, yolo_to_labels
from napari_livecell.layers import (
    MAX_OUTLINES,
    RESULT_KEY,
    cell_table,
    cells_layer_name,
    offset_ids,
    outline_layer_kwargs,
    outlines_layer_name,
    ring_to_vertices,
)


def get_coco_reader(path: str | list[str]):
    """Return a reader for a COCO instance json, else ``None``."""
    if isinstance(path, list):
        return None
    if not str(path).lower().endswith(".json") or not os.path.isfile(path):
        return None
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    if b'"images"' not in head and b'"annotations"' not in head:
        return None
    return read_coco_layers


def _frame_order(images: list[dict]) -> list[dict]:
    if all("frame" in image for image in images):
        return sorted(images, key=lambda image: (image["frame"], str(image.get("file_name"))))
    return list(images)


def _find_image_file(json_path: Path, file_name: str) -> Path | None:
    name = Path(str(file_name)).name
    for folder in (json_path.parent, json_path.parent / "images", json_path.parent.parent / "images"):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def read_coco_layers(path: str) -> list[tuple]:
    """Labels (+ outlines, + the images when found) from a COCO json.

    Several images of one size open as a stack (frames in ``frame`` order when
    the json has it), rasterised lazily frame by frame.
    """
    json_path = Path(path)
    coco = load_coco(json_path)
    images = _frame_order(coco["images"])
    if not images:
        raise CocoFormatError(f"{json_path.name} lists no images")
    sizes = {check_image_entry(image, json_path.name) for image in images}
    if len(sizes) > 1:
        raise CocoFormatError(
            f"{json_path.name} holds images of {len(sizes)} different sizes; "
            "split it to open them as one stack"
        )
    (height, width) = sizes.pop()
    grouped = annotations_by_image(coco)
    known = {image["id"] for image in images}
    stray = set(grouped) - known
    if stray:
        raise CocoFormatError(
            f"{json_path.name}: annotations refer to image id(s) {sorted(stray, key=str)[:3]} "
            "that are not in 'images'"
        )
    names = {int(c["id"]): str(c.get("name", c["id"])) for c in coco["categories"]}
    per_frame = [grouped.get(image["id"], []) for image in images]
    features = _coco_features(per_frame, names)
    name = json_path.stem
    metadata = {
        RESULT_KEY: {
            "source": name,
            "file_names": [image.get("file_name") for image in images],
            "categories": names,
            "edited": False,
        }
    }
    if len(images) == 1:
        labels: Any = annotations_to_labels(per_frame[0], height, width)
    else:
        labels = _lazy_label_stack(per_frame, height, width)
    layers = []
    image_layer = _image_layer(json_path, images)
    if image_layer is not None:
        layers.append(image_layer)
    labels_kwargs = {"name": cells_layer_name(name), "features": features, "metadata": metadata}
    layers.append((labels, labels_kwargs, "labels"))
    if len(features["index"]) <= MAX_OUTLINES:
        shapes, shape_features = _coco_outlines(per_frame, height, width, len(images) > 1, features)
        outline_kwargs = outline_layer_kwargs(outlines_layer_name(name), shape_features, labels.ndim)
        layers.append((shapes, outline_kwargs, "shapes"))
    return layers


def _coco_features(per_frame: list[list[dict]], names: dict[int, str]) -> dict[str, list]:
    annotations = [(frame, a) for frame, frame_annotations in enumerate(per_frame) for a in frame_annotations]
    return cell_table(
        ids=range(1, len(annotations) + 1),
        frames=[frame for frame, _ in annotations],
        scores=[float(a.get("score", 1.0)) for _, a in annotations],
        classes=[names.get(a.get("category_id"), "cell") for _, a in annotations],
        areas=[round(float(a.get("area", 0))) for _, a in annotations],
        statuses=[str(a.get("status", "annotated")) for _, a in annotations],
    )


def _lazy_label_stack(per_frame: list[list[dict]], height: int, width: int):
    import dask
    import dask.array as da

    @dask.delayed
    def rasterise(frame_annotations: list[dict], first_id: int) -> np.ndarray:
        return offset_ids(annotations_to_labels(frame_annotations, height, width), first_id)

    frames, first_id = [], 0
    for frame_annotations in per_frame:
        frames.append(da.from_delayed(rasterise(frame_annotations, first_id), (height, width), np.int32))
        first_id += len(frame_annotations)
    return da.stack(frames)


def _coco_outlines(per_frame, height, width, is_stack, features):
    shapes, columns = [], {"label": [], "score": [], "frame": []}
    label = 0
    for frame, frame_annotations in enumerate(per_frame):
        for annotation in frame_annotations:
            label += 1
            segmentation = annotation.get("segmentation")
            if isinstance(segmentation, list):
                rings = [np.asarray(r, float).reshape(-1, 2) for r in segmentation]
            else:
                rings = mask_to_polygons(annotation_mask(annotation, height, width))
            for ring in rings:
                shapes.append(ring_to_vertices(ring, (frame,) if is_stack else ()))
                columns["label"].append(label)
                columns["score"].append(features["score"][label - 1])
                columns["frame"].append(frame)
    return shapes, columns


def _image_layer(json_path: Path, images: list[dict]) -> tuple | None:
    found = [_find_image_file(json_path, image.get("file_name", "")) for image in images]
    if not found or any(path is None for path in found):
        return None
    from napari_livecell.core.images import read_image

    if len(found) == 1:
        data: Any = read_image(found[0])
    else:
        import dask
        import dask.array as da

        first = read_image(found[0])
        data = da.stack(
            [da.from_delayed(dask.delayed(read_image)(p), first.shape, first.dtype) for p in found]
        )
    name = Path(found[0]).stem if len(found) == 1 else json_path.stem
    return data, {"name": name, "metadata": {RESULT_KEY: {"paths": [str(p) for p in found]}}}, "image"


def get_yolo_reader(path: str | list[str]):
    """Return a reader for a YOLO-seg label ``.txt``, else ``None``."""
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
    from napari_livecell.core.yolo import read_data_yaml

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
