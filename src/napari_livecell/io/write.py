"""npe2 writers: a Labels layer as COCO json or YOLO-seg txt; image + labels as a YOLO dataset.

The inverse of :mod:`napari_livecell.io.read`. Every file is written
atomically (a failed write leaves no partial file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from napari_livecell.core.atomic import write_text_atomic
from napari_livecell.core.formats.coco import build_coco, write_coco
from napari_livecell.layers import RESULT_KEY, CorrectedLayer, layer_cells, training_frames


def write_labels_coco(path: str, data: Any, attributes: dict) -> list[str]:
    """Write a Labels layer (2-D or stack) as COCO instance json.

    Besides the cells (the model's categories, file names with their
    extension), the file keeps what proofreading needs to go on later: each
    cell's layer id (``label``), status and score, and the prediction
    baseline (``napari_livecell.baseline_annotations`` holds the predicted
    cells that were edited, merged or deleted; an unchanged cell names its
    ``baseline_label``). :func:`napari_livecell.io.read.read_coco_layers`
    restores all of it.
    """
    return [str(write_coco(path, labels_coco(data, attributes)))]


def labels_coco(data: Any, attributes: dict) -> dict:
    """A Labels layer as the COCO dict :func:`write_labels_coco` writes."""
    entries, class_names, with_scores = layer_cells(data, attributes)
    coco = build_coco(entries, class_names=class_names, with_scores=with_scores)
    info = (attributes.get("metadata") or {}).get(RESULT_KEY, {})
    if info.get("corrections"):
        coco["info"]["corrections"] = info["corrections"]  # what proofreading changed, for the record
    baseline = info.get("baseline")
    if baseline is not None and np.shape(baseline) == np.shape(data):
        coco["napari_livecell"] = _baseline_block(np.asarray(data), np.asarray(baseline), coco, info)
    return coco


def _baseline_block(labels: np.ndarray, baseline: np.ndarray, coco: dict, info: dict) -> dict:
    from napari_livecell.core.analysis.edit import compare_to_baseline
    from napari_livecell.core.formats.coco import segmentation_annotations
    from napari_livecell.core.segmentation import Segmentation

    by_frame: dict[int, dict[int, dict]] = {}
    for annotation in coco["annotations"]:
        by_frame.setdefault(annotation["image_id"], {})[annotation.get("label")] = annotation
    saved: list[dict] = []
    planes = labels.reshape(-1, *labels.shape[-2:])
    base_planes = baseline.reshape(-1, *baseline.shape[-2:])
    for index, (plane, base_plane) in enumerate(zip(planes, base_planes)):
        image_id = index + 1
        comparison = compare_to_baseline(plane, base_plane)
        unchanged = {
            cell: base for cell, base in comparison.matches.items() if comparison.changes[cell] == "unchanged"
        }
        for cell, base in unchanged.items():
            by_frame.get(image_id, {}).get(cell, {})["baseline_label"] = int(base)
        changed = sorted(set(comparison.baseline_ids) - set(unchanged.values()))
        if not changed:
            continue
        keep = np.isin(base_plane, changed)
        present, compact = np.unique(np.where(keep, base_plane, 0), return_inverse=True)
        cells = present[present > 0].tolist()
        segmentation = Segmentation.from_painted(
            compact.reshape(plane.shape).astype(np.int32),
            np.ones(len(cells)),
            np.zeros(len(cells)),
            {0: "cell"},
        )
        saved += segmentation_annotations(
            segmentation, image_id, len(saved) + 1, with_scores=False, rle=True, labels=cells
        )
    return {
        "baseline_status": str(info.get("baseline_status", "predicted")),
        "edited": bool(info.get("edited", False)),
        "baseline_annotations": saved,
    }


def write_labels_yolo(path: str, data: Any, attributes: dict) -> list[str]:
    """Write a Labels layer as YOLO-seg txt: one file, or one per frame of a stack.

    Class ids are the model's (its categories), whatever the classes are
    named. A stack is written all or nothing: every frame's text is made
    before the first file is written.
    """
    from napari_livecell.core.formats.yolo import labels_to_yolo_lines

    entries, _, _ = layer_cells(data, attributes)
    target = Path(path)
    texts = {}
    for index, entry in enumerate(entries):
        frame_path = target if len(entries) == 1 else target.with_name(f"{target.stem}_t{index:04d}.txt")
        lines = labels_to_yolo_lines(entry.segmentation.labels, entry.segmentation.classes)
        texts[frame_path] = "\n".join(lines) + ("\n" if lines else "")
    written: list[Path] = []
    try:
        for frame_path, text in texts.items():
            written.append(write_text_atomic(frame_path, text))
    except OSError:
        for done in written:
            done.unlink(missing_ok=True)
        raise
    return [str(p) for p in written]


def write_yolo_dataset_layers(path: str, layer_data: list[tuple]) -> list[str]:
    """Write an image layer and its corrected Labels layer as a YOLO training dataset.

    ``path`` names the dataset: ``corrections.yaml`` becomes the folder
    ``corrections/`` with ``images/``, ``labels/`` and ``data.yaml``, which
    ``napari-livecell train`` and Ultralytics read as is. A stack gives one
    sample per frame with cells; a fifth of them (when there are several)
    go to the validation split.
    """
    from napari_livecell.core.training.data import write_training_dataset

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
