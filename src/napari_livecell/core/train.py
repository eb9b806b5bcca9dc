"""Training YOLO-seg models on annotated cells, offline.

COCO annotations (LIVECell's, ours, or corrections exported from napari) are
turned into a YOLO dataset, optionally cut into native-resolution crops: cells
keep their pixel size, so a model trained on 320-px crops segments full
704 x 520 frames at image size 704, while training costs ~4x less per image.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .coco import annotations_by_image, annotations_to_labels, load_coco
from .yolo import YoloSample, validation_picks, write_data_yaml, write_yolo_sample

MIN_FRAGMENT_AREA = 8  # px; cell pieces left at a crop border smaller than this are dropped


def tile_starts(length: int, tile: int) -> list[int]:
    """Evenly spaced starts of ``tile``-long windows that cover ``length``."""
    if tile >= length:
        return [0]
    count = math.ceil(length / tile)
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def _crops(
    image: np.ndarray, labels: np.ndarray, crop: int | None
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    if crop is None:
        return [("", image, labels)]
    pieces = []
    for row in tile_starts(labels.shape[0], crop):
        for col in tile_starts(labels.shape[1], crop):
            window = np.s_[row : row + crop, col : col + crop]
            piece = labels[window].copy()
            areas = np.bincount(piece.ravel())
            small = np.flatnonzero(areas < MIN_FRAGMENT_AREA)
            piece[np.isin(piece, small[small > 0])] = 0
            pieces.append((f"_r{row}_c{col}", image[window], piece))
    return pieces


def coco_to_yolo_dataset(
    coco_json: str | os.PathLike,
    images_dir: str | os.PathLike,
    out: str | os.PathLike,
    crop: int | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> Path:
    """Convert a COCO json and its images into a YOLO-seg dataset.

    Parameters
    ----------
    coco_json : path
        COCO instance annotations (list- or dict-style ``annotations``).
    images_dir : path
        Folder holding the images named in the json.
    out : path
        Dataset folder; gets ``images/``, ``labels/`` and ``data.yaml``.
    crop : int, optional
        Cut every image into ``crop`` x ``crop`` tiles at native resolution.
    val_fraction : float
        Share of *images* (not tiles) held out for validation.
    seed : int
        Seed of the train/val split.

    Returns
    -------
    Path
        ``data.yaml``.
    """
    from .images import read_image

    coco = load_coco(coco_json)
    images_dir, out = Path(images_dir), Path(out)
    if not coco["images"]:
        raise ValueError(f"{Path(coco_json).name} lists no images")
    by_image = annotations_by_image(coco)
    names = {int(c["id"]) - 1: str(c["name"]) for c in coco["categories"]}

    val_ids = validation_picks(len(coco["images"]), val_fraction, seed)
    for position, entry in enumerate(coco["images"]):
        image_path = images_dir / entry["file_name"]
        if not image_path.exists():
            raise FileNotFoundError(f"image {entry['file_name']} not found in {images_dir}")
        image = read_image(image_path)
        annotations = by_image.get(entry["id"], [])
        labels = annotations_to_labels(annotations, entry["height"], entry["width"])
        classes = [int(a["category_id"]) - 1 for a in annotations]
        split = "val" if position in val_ids else "train"
        for suffix, image_piece, label_piece in _crops(image, labels, crop):
            write_yolo_sample(
                out,
                split,
                YoloSample(Path(entry["file_name"]).stem + suffix, image_piece, label_piece, classes),
            )
    return write_data_yaml(out, names, ["train", "val"] if val_ids else ["train"])


@dataclass
class TrainSettings:
    """Everything that determines a training run (stored with the model)."""

    data: str
    model: str = "yolov8n-seg.yaml"
    epochs: int = 15
    imgsz: int = 320
    batch: int = 8
    device: str = "cpu"
    seed: int = 0
    workers: int = 2
    patience: int = 100
    close_mosaic: int = 3
    # microscopy has no up or down, and cells keep their pixel size at inference
    extra: dict = field(default_factory=lambda: {"flipud": 0.5, "scale": 0.3})


@dataclass
class TrainResult:
    """Where the trained model is and how well it validated."""

    weights: Path
    metrics: dict
    settings: TrainSettings
    seconds: float


def train_model(
    settings: TrainSettings,
    out: str | os.PathLike,
    metadata: dict | None = None,
    on_epoch: Callable[[int, int, dict], None] | None = None,
) -> TrainResult:
    """Train a YOLO-seg model with Ultralytics, offline, and store provenance.

    Parameters
    ----------
    settings : TrainSettings
        Data yaml, base model (a ``.yaml`` architecture trains from scratch, a
        ``.pt`` fine-tunes), epochs, image size and so on.
    out : path
        Output folder: ``best.pt``, ``metrics.json`` and Ultralytics' run folder.
    metadata : dict, optional
        Extra provenance (e.g. the data recipe) stored in the checkpoint under
        ``napari_livecell``.
    on_epoch : callable, optional
        Called as ``on_epoch(epoch, epochs, metrics)`` after each epoch.

    Returns
    -------
    TrainResult
    """
    from napari_livecell.core.offline import import_ultralytics

    import_ultralytics()
    import torch
    from ultralytics import YOLO

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    model = YOLO(settings.model, task="segment")
    if on_epoch is not None:

        def report(trainer) -> None:
            on_epoch(trainer.epoch + 1, trainer.epochs, dict(trainer.metrics or {}))

        model.add_callback("on_fit_epoch_end", report)
    started = time.perf_counter()
    model.train(
        data=settings.data,
        epochs=settings.epochs,
        imgsz=settings.imgsz,
        batch=settings.batch,
        device=settings.device,
        seed=settings.seed,
        workers=settings.workers,
        patience=settings.patience,
        close_mosaic=settings.close_mosaic,
        project=str(out),
        name="run",
        exist_ok=True,
        plots=False,
        amp=False,
        deterministic=True,
        verbose=False,
        **settings.extra,
    )
    seconds = time.perf_counter() - started
    trainer = model.trainer
    best = Path(trainer.best if Path(trainer.best).exists() else trainer.last)
    metrics = {k: float(v) for k, v in (trainer.metrics or {}).items()}

    checkpoint = torch.load(best, map_location="cpu", weights_only=False)
    checkpoint["napari_livecell"] = {
        "settings": asdict(settings),
        "metrics": metrics,
        "train_seconds": round(seconds, 1),
        **(metadata or {}),
    }
    target = out / "best.pt"
    temporary = target.with_suffix(".tmp")
    torch.save(checkpoint, temporary)
    os.replace(temporary, target)
    (out / "metrics.json").write_text(
        json.dumps(
            {"metrics": metrics, "settings": asdict(settings), "seconds": seconds},
            indent=2,
        )
    )
    return TrainResult(weights=target, metrics=metrics, settings=settings, seconds=seconds)
