"""npe2 readers and writers: COCO json and YOLO-seg txt <-> Labels (+ outline Shapes).

Readers look cheaply (extension, a json key) and return ``None`` for files
that are not theirs; once a file is theirs, a malformed one gets a clear
message. Writers are the inverse of the readers and write atomically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from napari_livecell._layers import OUTLINE_EDGE_COLOR, RESULT_KEY
from napari_livecell.core.coco import (
    CocoFormatError,
    CocoImage,
    annotation_mask,
    annotations_by_image,
    annotations_to_labels,
    build_coco,
    check_image_entry,
    load_coco,
    write_coco,
)
from napari_livecell.core.segmentation import Segmentation, mask_to_polygons
from napari_livecell.core.yolo import parse_yolo_lines, write_yolo_txt, yolo_to_labels

MAX_OUTLINES = 20_000  # more cells than this: labels only (napari would stall on shapes)


# readers -----------------------------------------------------------------
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
    layers.append((labels, {"name": f"{name} cells", "features": features, "metadata": metadata}, "labels"))
    if len(features["index"]) <= MAX_OUTLINES:
        shapes, shape_features = _coco_outlines(per_frame, height, width, len(images) > 1, features)
        layers.append(
            (
                shapes,
                {
                    "name": f"{name} outlines",
                    "shape_type": "polygon",
                    "edge_color": OUTLINE_EDGE_COLOR,
                    "face_color": "transparent",
                    "edge_width": 1,
                    "features": shape_features,
                    "ndim": 3 if len(images) > 1 else 2,
                },
                "shapes",
            )
        )
    return layers


def _coco_features(per_frame: list[list[dict]], names: dict[int, str]) -> dict[str, list]:
    columns: dict[str, list] = {"index": [], "frame": [], "score": [], "class": [], "area": [], "status": []}
    for frame, frame_annotations in enumerate(per_frame):
        for annotation in frame_annotations:
            columns["index"].append(len(columns["index"]) + 1)
            columns["frame"].append(frame)
            columns["score"].append(float(annotation.get("score", 1.0)))
            columns["class"].append(names.get(annotation.get("category_id"), "cell"))
            columns["area"].append(float(annotation.get("area", 0)))
            columns["status"].append(str(annotation.get("status", "annotated")))
    return columns


def _lazy_label_stack(per_frame: list[list[dict]], height: int, width: int):
    import dask
    import dask.array as da

    @dask.delayed
    def rasterise(frame_annotations: list[dict], first_id: int) -> np.ndarray:
        labels = annotations_to_labels(frame_annotations, height, width)
        return np.where(labels > 0, labels + first_id, 0).astype(np.int32)

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
                rows_cols = ring[:, ::-1] - 0.5
                if is_stack:
                    rows_cols = np.hstack([np.full((len(ring), 1), frame, float), rows_cols])
                shapes.append(rows_cols)
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
    features = {
        "index": list(range(1, len(classes) + 1)),
        "class": [names.get(int(c), str(int(c))) for c in classes],
        "score": [1.0] * len(classes),
        "area": np.bincount(labels.ravel(), minlength=len(classes) + 1)[1:].tolist(),
        "status": ["annotated"] * len(classes),
    }
    metadata = {RESULT_KEY: {"source": image_path.stem, "source_path": str(image_path), "categories": names}}
    return [
        (image, {"name": image_path.stem}, "image"),
        (labels, {"name": f"{image_path.stem} cells", "features": features, "metadata": metadata}, "labels"),
    ]


# writers -----------------------------------------------------------------
def _layer_cells(data: np.ndarray, attributes: dict):
    """Per-frame Segmentations, file names and statuses from a Labels layer."""
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


def write_labels_coco(path: str, data: Any, attributes: dict) -> list[str]:
    """Write a Labels layer (2-D or stack) as COCO instance json."""
    entries, class_names, with_scores = _layer_cells(data, attributes)
    coco = build_coco(entries, class_names=class_names, with_scores=with_scores)
    corrections = (attributes.get("metadata") or {}).get(RESULT_KEY, {}).get("corrections")
    if corrections:
        coco["info"]["corrections"] = corrections  # what proofreading changed, for the record
    return [str(write_coco(path, coco))]


def write_labels_yolo(path: str, data: Any, attributes: dict) -> list[str]:
    """Write a Labels layer as YOLO-seg txt: one file, or one per frame of a stack."""
    entries, _, _ = _layer_cells(data, attributes)
    target = Path(path)
    if len(entries) == 1:
        segmentation = entries[0].segmentation
        return [str(write_yolo_txt(target, segmentation.labels, segmentation.classes))]
    written = []
    for index, entry in enumerate(entries):
        frame_path = target.with_name(f"{target.stem}_t{index:04d}.txt")
        written.append(str(write_yolo_txt(frame_path, entry.segmentation.labels, entry.segmentation.classes)))
    return written


def write_yolo_dataset_layers(path: str, layer_data: list[tuple]) -> list[str]:
    """Write an image layer and its corrected Labels layer as a YOLO training dataset.

    ``path`` names the dataset: ``corrections.yaml`` becomes the folder
    ``corrections/`` with ``images/``, ``labels/`` and ``data.yaml``, which
    ``napari-livecell train`` and Ultralytics read as is. A stack gives one
    sample per frame with cells; a fifth of them (when there are several)
    go to the validation split.
    """
    from napari_livecell._train_work import CorrectedLayer, training_frames
    from napari_livecell.core.training_data import write_training_dataset

    images = [(data, meta) for data, meta, kind in layer_data if kind == "image"]
    labels = [(data, meta) for data, meta, kind in layer_data if kind == "labels"]
    if len(images) != 1 or len(labels) != 1:
        raise ValueError("select one image layer and its Labels layer to save a YOLO dataset")
    (image, image_meta), (label_data, label_meta) = images[0], labels[0]
    corrected = CorrectedLayer(
        label_meta.get("name", "labels"),
        label_data,
        label_meta,
        image[0] if isinstance(image, list) else image,  # multiscale: full resolution; read per frame
        bool(image_meta.get("rgb")),
    )
    frames, names = training_frames([corrected])
    folder = Path(path).with_suffix("")
    data_yaml = write_training_dataset(frames, len(frames), names, folder, val_fraction=0.2)
    return [str(data_yaml)]
