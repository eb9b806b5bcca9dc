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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .atomic import write_text_atomic
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


class DatasetError(ValueError):
    """Training data that cannot train a model; the message names the problem."""


@dataclass
class TrainingFrame:
    """One annotated frame to train on.

    Attributes
    ----------
    name : str
        File stem in the dataset (crops get ``_r<row>_c<col>`` appended).
    image : numpy.ndarray
        ``(H, W)`` or ``(H, W, 3)`` image, any dtype (scaled to uint8 as for
        inference).
    labels : numpy.ndarray
        ``(H, W)`` label image, 0 = background.
    classes : sequence of int, optional
        Class id of each label ``1..N`` (all 0 when omitted).
    """

    name: str
    image: np.ndarray
    labels: np.ndarray
    classes: Sequence[int] | None = None


def write_training_dataset(
    frames: Iterable[TrainingFrame],
    n_frames: int,
    names: dict[int, str],
    out: str | os.PathLike,
    crop: int | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> Path:
    """Write annotated frames as a YOLO-seg dataset with a train/val split by frame.

    Parameters
    ----------
    frames : iterable of TrainingFrame
        Read lazily, one at a time, so large datasets need not fit in memory.
    n_frames : int
        How many frames ``frames`` yields (for the split).
    names : dict
        Class id -> name.
    out : path
        Dataset folder; gets ``images/``, ``labels/`` and ``data.yaml``.
    crop : int, optional
        Cut every frame into ``crop`` x ``crop`` tiles at native resolution.
    val_fraction : float
        Share of *frames* (not tiles) held out for validation; a single frame
        trains and validates on itself.
    seed : int
        Seed of the train/val split.

    Returns
    -------
    Path
        ``data.yaml``.
    """
    from .predict import to_uint8

    if n_frames < 1:
        raise DatasetError("empty dataset: no annotated frames to train on")
    out = Path(out)
    val_ids = validation_picks(n_frames, val_fraction, seed)
    n_cells = 0
    for position, frame in enumerate(frames):
        n_classes = len(names)
        if frame.classes is not None and len(frame.classes) and max(frame.classes) >= n_classes:
            raise DatasetError(
                f"{frame.name}: class id {max(frame.classes)} is not among the {n_classes} "
                f"class name(s) ({', '.join(names.values())})"
            )
        n_cells += len(np.unique(frame.labels)) - (1 if (frame.labels == 0).any() else 0)
        split = "val" if position in val_ids else "train"
        image = to_uint8(np.asarray(frame.image))
        for suffix, image_piece, label_piece in _crops(image, np.asarray(frame.labels), crop):
            sample = YoloSample(frame.name + suffix, image_piece, label_piece, frame.classes)
            write_yolo_sample(out, split, sample)
    if n_cells == 0:
        raise DatasetError("empty dataset: the frames hold no annotated cells")
    return write_data_yaml(out, names, ["train", "val"] if val_ids else ["train"])


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

    Raises
    ------
    DatasetError
        No images, no annotations, or an annotation whose category is not
        among the json's ``categories``.
    FileNotFoundError
        An image named in the json is not in ``images_dir``.
    """
    from .images import read_image

    coco = load_coco(coco_json)
    images_dir = Path(images_dir)
    if not coco["images"]:
        raise DatasetError(f"empty dataset: {Path(coco_json).name} lists no images")
    by_image = annotations_by_image(coco)
    category_ids = sorted(int(c["id"]) for c in coco["categories"])
    # YOLO class ids are 0..n-1 whatever ids the json uses
    class_of = {category: index for index, category in enumerate(category_ids)}
    names = {class_of[int(c["id"])]: str(c["name"]) for c in coco["categories"]}
    for entry in coco["images"]:
        if not (images_dir / entry["file_name"]).exists():
            raise FileNotFoundError(f"image {entry['file_name']} not found in {images_dir}")

    def frames() -> Iterator[TrainingFrame]:
        for entry in coco["images"]:
            annotations = by_image.get(entry["id"], [])
            unknown = [a for a in annotations if int(a["category_id"]) not in class_of]
            if unknown:
                raise DatasetError(
                    f"{entry['file_name']}: annotation {unknown[0].get('id')} has category_id "
                    f"{unknown[0]['category_id']}, not among the categories {category_ids}"
                )
            yield TrainingFrame(
                name=Path(entry["file_name"]).stem,
                image=read_image(images_dir / entry["file_name"]),
                labels=annotations_to_labels(annotations, entry["height"], entry["width"]),
                classes=[class_of[int(a["category_id"])] for a in annotations],
            )

    return write_training_dataset(frames(), len(coco["images"]), names, out, crop, val_fraction, seed)


def check_yolo_dataset(data_yaml: str | os.PathLike) -> dict[str, int]:
    """Check a YOLO-seg dataset before training; return image counts per split.

    Ultralytics skips images whose labels it cannot read, with a warning in
    a log: a dataset that lost half its labels would train silently on the
    rest. Here every label file is parsed and the first problem is raised.

    Raises
    ------
    DatasetError
        Missing image folders, no training images, malformed label lines,
        class ids beyond the dataset's names, or no labelled cells at all.
    """
    from .images import IMAGE_SUFFIXES
    from .yolo import YoloFormatError, parse_yolo_lines, read_data_yaml

    data_yaml = Path(data_yaml)
    if not data_yaml.is_file():
        raise DatasetError(f"dataset description not found: {data_yaml}")
    try:
        data = read_data_yaml(data_yaml)
    except YoloFormatError as error:
        raise DatasetError(str(error)) from None
    root = Path(data.get("path") or data_yaml.parent)
    if not root.is_absolute():
        root = data_yaml.parent / root
    n_classes = len(data["names"])
    counts: dict[str, int] = {}
    n_cells = 0
    for split in ("train", "val"):
        entry = data.get(split)
        if not isinstance(entry, str):
            continue  # lists and txt files of images are Ultralytics' to check
        folder = root / entry
        if not folder.is_dir():
            raise DatasetError(f"missing images: the {split} folder {folder} does not exist")
        images = [p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES]
        counts[split] = len(images)
        for image in images:
            # Ultralytics' rule: the last /images/ in the path becomes /labels/
            head, sep, tail = str(image).rpartition(f"{os.sep}images{os.sep}")
            label = Path(f"{head}{os.sep}labels{os.sep}{tail}" if sep else image).with_suffix(".txt")
            if label.is_file():
                try:
                    cells = parse_yolo_lines(label.read_text(), str(label.relative_to(root)), n_classes)
                except YoloFormatError as error:
                    raise DatasetError(str(error)) from None
                n_cells += len(cells) if split == "train" else 0
    if not counts.get("train"):
        raise DatasetError(f"empty dataset: no training images under {root}")
    if n_cells == 0:
        raise DatasetError(f"empty dataset: no labelled cells in the training images under {root}")
    return counts


# fine-tuning a trained model: no warm-up (it would unlearn at a high rate first),
# and a small AdamW step so that twenty images do not wash out what it knew
FINETUNE_OVERRIDES = {"warmup_epochs": 0, "optimizer": "AdamW", "lr0": 0.0005}

# named starting points; explicit arguments override them
PRESETS: dict[str, dict] = {
    # fits a laptop CPU: the shipped model's own recipe (native-resolution 320 px crops)
    "nano": {"model": "yolov8n-seg.yaml", "imgsz": 320, "batch": 8, "crop": 320},
    # the original LIVECell work: YOLOv8x-seg on square 704 px inputs (a GPU job)
    "livecell-x": {"model": "yolov8x-seg.yaml", "imgsz": 704, "batch": 16, "crop": None},
}


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

    @classmethod
    def for_base(cls, data: str, model: str, **kwargs) -> TrainSettings:
        """Settings for ``model``: fine-tuning defaults when it is a trained ``.pt``."""
        settings = cls(data=data, model=model, **kwargs)
        if str(model).endswith(".pt"):
            settings.extra.update(FINETUNE_OVERRIDES)
        return settings


@dataclass
class TrainResult:
    """Where the trained model is and how well it validated."""

    weights: Path
    metrics: dict
    settings: TrainSettings
    seconds: float


@dataclass
class TrainProgress:
    """Where a training run is, reported after every batch and every epoch.

    Attributes
    ----------
    epoch : int
        Current epoch, 1-based.
    epochs : int
        Total epochs.
    batch : int
        Batches done in this epoch (``batches`` once the epoch is validated).
    batches : int
        Batches per epoch.
    loss : float or None
        Mean training loss of the epoch so far (box + seg + cls + dfl).
    metrics : dict
        Validation metrics of the last finished epoch (``metrics/mAP50-95(M)``
        is mask mAP50-95); empty during the first epoch.
    epoch_done : bool
        True for the report at the end of an epoch (after validation).
    """

    epoch: int
    epochs: int
    batch: int
    batches: int
    loss: float | None
    metrics: dict
    epoch_done: bool = False

    @property
    def mask_map(self) -> float | None:
        """Mask mAP50-95 on the validation split after the last finished epoch."""
        value = self.metrics.get("metrics/mAP50-95(M)")
        return None if value is None else float(value)


class TrainingCancelled(Exception):
    """Training was stopped on request; ``best.pt`` was not written."""


SETTINGS_FILE = "settings.json"


def last_checkpoint(out: str | os.PathLike) -> Path | None:
    """The checkpoint of an interrupted run in ``out``, if there is one to resume."""
    import torch

    last = Path(out) / "run" / "weights" / "last.pt"
    if not last.is_file():
        return None
    # Ultralytics strips the optimizer from last.pt when a run finishes
    finished = torch.load(last, map_location="cpu", weights_only=False).get("optimizer") is None
    return None if finished else last


def saved_run(out: str | os.PathLike) -> tuple[TrainSettings, dict]:
    """Settings and provenance that a run in ``out`` started with (for resuming)."""
    path = Path(out) / SETTINGS_FILE
    try:
        saved = json.loads(path.read_text())
        return TrainSettings(**saved["settings"]), saved.get("metadata", {})
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise FileNotFoundError(f"no readable {SETTINGS_FILE} in {out}: not a napari-livecell run") from error


def train_model(
    settings: TrainSettings,
    out: str | os.PathLike,
    metadata: dict | None = None,
    on_epoch: Callable[[int, int, dict], None] | None = None,
    on_progress: Callable[[TrainProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: bool = False,
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
    on_progress : callable, optional
        Called with a :class:`TrainProgress` after every batch and epoch.
    should_stop : callable, optional
        Polled after every batch; when it returns True training stops at once
        and :class:`TrainingCancelled` is raised. Checkpoints of finished
        epochs stay in ``out/run/weights`` (``resume=True`` continues), and
        ``out/best.pt`` is neither written nor touched.
    resume : bool
        Continue the interrupted run in ``out`` from its ``last.pt`` (with the
        settings it started with) instead of starting again.

    Returns
    -------
    TrainResult

    Raises
    ------
    DatasetError
        The dataset cannot train (see :func:`check_yolo_dataset`).
    TrainingCancelled
        ``should_stop`` returned True.
    """
    from napari_livecell.core.offline import import_ultralytics

    out = Path(out).resolve()
    import_ultralytics()
    import torch
    from ultralytics import YOLO

    checkpoint_to_resume = last_checkpoint(out) if resume else None
    if resume and checkpoint_to_resume is None:
        raise FileNotFoundError(f"nothing to resume in {out}: no unfinished run (run/weights/last.pt)")
    if checkpoint_to_resume is None:
        check_yolo_dataset(settings.data)
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(
            out / SETTINGS_FILE,
            json.dumps({"settings": asdict(settings), "metadata": metadata or {}}, indent=2),
        )
    model = YOLO(str(checkpoint_to_resume or settings.model), task="segment")
    _add_callbacks(model, on_epoch, on_progress, should_stop)
    started = time.perf_counter()
    try:
        if checkpoint_to_resume is not None:
            model.train(resume=True, data=settings.data, device=settings.device, workers=settings.workers)
        else:
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
    except TrainingCancelled:
        _close_loaders(model.trainer)
        raise
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
    write_text_atomic(
        out / "metrics.json",
        json.dumps({"metrics": metrics, "settings": asdict(settings), "seconds": seconds}, indent=2),
    )
    return TrainResult(weights=target, metrics=metrics, settings=settings, seconds=seconds)


def _add_callbacks(model, on_epoch, on_progress, should_stop) -> None:
    def progress(trainer, epoch_done: bool) -> TrainProgress:
        batches = len(trainer.train_loader) if getattr(trainer, "train_loader", None) is not None else 0
        loss = getattr(trainer, "tloss", None)
        return TrainProgress(
            # the final validation of best.pt reports once more, past the last epoch
            epoch=min(trainer.epoch + 1, trainer.epochs),
            epochs=trainer.epochs,
            batch=batches if epoch_done else getattr(trainer, "_livecell_batch", 0),
            batches=batches,
            loss=_total_loss(loss),
            metrics={k: float(v) for k, v in (trainer.metrics or {}).items()},
            epoch_done=epoch_done,
        )

    def epoch_started(trainer) -> None:
        trainer._livecell_batch = 0

    def batch_done(trainer) -> None:
        trainer._livecell_batch = getattr(trainer, "_livecell_batch", 0) + 1
        if on_progress is not None:
            on_progress(progress(trainer, epoch_done=False))
        if should_stop is not None and should_stop():
            # raised, not trainer.stop: Ultralytics would validate and save a half epoch first
            raise TrainingCancelled(f"training cancelled in epoch {trainer.epoch + 1}")

    def epoch_done(trainer) -> None:
        if on_epoch is not None:
            on_epoch(min(trainer.epoch + 1, trainer.epochs), trainer.epochs, dict(trainer.metrics or {}))
        if on_progress is not None:
            on_progress(progress(trainer, epoch_done=True))

    model.add_callback("on_train_epoch_start", epoch_started)
    model.add_callback("on_train_batch_end", batch_done)
    model.add_callback("on_fit_epoch_end", epoch_done)


def _total_loss(loss) -> float | None:
    """Sum of the loss terms (a tensor, or a dict of named terms in newer Ultralytics)."""
    if loss is None:
        return None
    values = loss.values() if isinstance(loss, dict) else [loss]
    return float(sum(float(v.sum()) if hasattr(v, "sum") else float(v) for v in values))


def _close_loaders(trainer) -> None:
    """Shut down data-loader worker processes that an exception left running."""
    for loader in (getattr(trainer, "train_loader", None), getattr(trainer, "test_loader", None)):
        if hasattr(loader, "close"):
            loader.close()
