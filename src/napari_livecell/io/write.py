"""npe2 writers: a Labels layer as COCO json or YOLO-seg txt; image + labels as a YOLO dataset.

The inverse of :mod:`napari_livecell.io.read`. Every file is written
atomically (a failed write leaves no partial file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from napari_livecell.core.coco import build_coco, write_coco
from napari_livecell.core.yolo import write_yolo_txt
from napari_livecell.layers import RESULT_KEY, CorrectedLayer, layer_cells, training_frames


def write_labels_coco(path: str, data: Any, attributes: dict) -> list[str]:
    """Write a Labels layer (2-D or stack) as COCO instance json."""
    entries, class_names, with_scores = layer_cells(data, attributes)
    coco = build_coco(entries, class_names=class_names, with_scores=with_scores)
    corrections = (attributes.get("metadata") or {}).get(RESULT_KEY, {}).get("corrections")
    if corrections:
        coco["info"]["corrections"] = corrections  # what proofreading changed, for the record
    return [str(write_coco(path, coco))]


def write_labels_yolo(path: str, data: Any, attributes: dict) -> list[str]:
    """Write a Labels layer as YOLO-seg txt: one file, or one per frame of a stack."""
    entries, _, _ = layer_cells(data, attributes)
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
