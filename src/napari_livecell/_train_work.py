"""The Train on corrections widget's work, without Qt.

Pairs corrected Labels layers with their images, writes them (or an export
folder) as a YOLO dataset, and fine-tunes a model; runs in a worker thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_livecell._layers import RESULT_KEY

RESULT_SUFFIX = " cells"


def image_layer_for(labels_layer: Any, image_layers: Sequence[Any]) -> Any | None:
    """The image a Labels layer annotates: the one it was segmented from, else by name.

    ``<image> cells`` layers made by the Segment cells widget name their source
    in their metadata; layers read from COCO/YOLO files carry the image's stem.
    """
    info = labels_layer.metadata.get(RESULT_KEY, {}) if hasattr(labels_layer, "metadata") else {}
    candidates = [info.get("source"), labels_layer.name.removesuffix(RESULT_SUFFIX)]
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
    from napari_livecell._io import _layer_cells
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
        entries, names, _ = _layer_cells(labels, layer.attributes)
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


def export_folder_data(folder: Path, out: Path, crop: int | None, val_fraction: float) -> Path:
    """The data.yaml of an export folder: a YOLO dataset as is, or a COCO json + images."""
    from napari_livecell.core.training_data import DatasetError, coco_to_yolo_dataset

    folder = Path(folder)
    if (folder / "data.yaml").is_file():
        return folder / "data.yaml"
    jsons = sorted(folder.glob("*.json"))
    if len(jsons) == 1:
        images = folder / "images" if (folder / "images").is_dir() else folder
        return coco_to_yolo_dataset(jsons[0], images, out, crop=crop, val_fraction=val_fraction)
    raise DatasetError(
        f"{folder} is not an export folder: expected a YOLO dataset (data.yaml) "
        "or one COCO json beside its images"
    )


@dataclass
class TrainRequest:
    """What the widget asks for; ``layers`` or ``folder`` gives the data."""

    base: str
    out: Path
    epochs: int
    imgsz: int
    batch: int
    crop: int | None
    val_fraction: float
    device: str = "cpu"
    layers: list[CorrectedLayer] | None = None
    folder: Path | None = None


@dataclass
class TrainOutcome:
    """How a training run ended: ``weights`` on success, else a message."""

    weights: Path | None
    message: str
    cancelled: bool = False


def run_training(
    request: TrainRequest,
    on_progress: Callable[[Any], None],
    stop: threading.Event,
) -> TrainOutcome:
    """Build the dataset and fine-tune; every expected failure becomes a message."""
    from napari_livecell.core.train import TrainingCancelled, TrainSettings, train_model
    from napari_livecell.core.training_data import write_training_dataset

    try:
        dataset = request.out / "dataset"
        if request.folder is not None:
            data_yaml = export_folder_data(request.folder, dataset, request.crop, request.val_fraction)
        else:
            # relabelling every frame is real work: here in the worker, not on the GUI thread
            frames, names = training_frames(request.layers or [])
            data_yaml = write_training_dataset(
                frames, len(frames), names, dataset, request.crop, request.val_fraction
            )
        settings = TrainSettings.for_base(
            str(data_yaml),
            request.base,
            epochs=request.epochs,
            imgsz=request.imgsz,
            batch=request.batch,
            device=request.device,
            # data-loader processes forked from a GUI process with threads can hang
            workers=0,
        )
        metadata = {"source": "napari Train on corrections", "data": {"crop": request.crop}}
        result = train_model(
            settings, request.out, metadata=metadata, on_progress=on_progress, should_stop=stop.is_set
        )
    except TrainingCancelled as cancelled:
        return TrainOutcome(None, f"{cancelled}; no model written", cancelled=True)
    except (ValueError, OSError) as error:
        return TrainOutcome(None, f"training failed: {error}")
    mask_map = result.metrics.get("metrics/mAP50-95(M)")
    score = f" (validation mask mAP50-95 {mask_map:.3f})" if mask_map is not None else ""
    return TrainOutcome(result.weights, f"saved {result.weights}{score}")
