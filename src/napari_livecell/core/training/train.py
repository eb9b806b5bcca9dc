"""Training and fine-tuning YOLO-seg models on annotated cells, offline.

The dataset comes from :mod:`napari_livecell.core.training.data`; this module
runs Ultralytics on it with progress, cancel and resume, and stores how the
model was made inside the checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from napari_livecell.core.atomic import write_text_atomic

from .data import DatasetStats, check_yolo_dataset

# fine-tuning a trained model: no warm-up (it would unlearn at a high rate first),
# and a small AdamW step so that twenty images do not wash out what it knew
FINETUNE_OVERRIDES = {"warmup_epochs": 0, "optimizer": "AdamW", "lr0": 0.0005}

# A fine-tune is planned by optimizer steps, not epochs: 7 frames at batch 4 are
# 2 batches an epoch, and Ultralytics by default accumulates 64 / batch batches
# per step (nbs), so "100 epochs" were ~12 steps and taught nothing
# (issue 16). Steps it gets at least (benchmarks/README.md, finetune_small_data.py).
MIN_FINETUNE_STEPS = 300
# epochs a plan never goes below (learning-rate decay and mosaic closing need room)
# nor above (one image at batch 1 would otherwise be hundreds of validations)
MIN_PLANNED_EPOCHS = 3
MAX_PLANNED_EPOCHS = 200
# training images (crops count) below which quarter turns are written as extra images
ROTATE_BELOW_IMAGES = 64
# validation smaller than this gives scores too rough to choose a model by
MIN_VALIDATION_IMAGES = 2
MIN_VALIDATION_CELLS = 20
# training cells below which the model mostly learns these frames by heart
MIN_TRAINING_CELLS = 50
# a small set's learning rate: a handful of images needs the model to move; 1e-3
# (Ultralytics' own AdamW default) took a new look from AP50 0.02 to 0.95 in 300
# steps; 5e-4 at one step per batch was not compared (benchmarks/README.md)
SMALL_SET_LR = 0.001
# augmentation suited to microscopy: no up or down (both flips), intensity gain
# (Ultralytics' hsv_v scales the gray level: brightness and contrast about
# black), scale jitter; hue and saturation mean nothing on gray frames. Mosaic
# on: 0.948 held out after 300 steps; off learns sooner (0.848 against 0.750
# after 100 steps) but was not run to 300 (benchmarks/README.md)
MICROSCOPY_AUGMENTATION = {
    "flipud": 0.5,
    "fliplr": 0.5,
    "scale": 0.3,
    "hsv_v": 0.4,
    "hsv_h": 0.0,
    "hsv_s": 0.0,
    "degrees": 0.0,
    "mosaic": 1.0,
}
# batch of a small set: more optimizer steps per epoch, so fewer epochs (and validations)
SMALL_SET_BATCH = 4
# frames scored before and after a fine-tune (each is segmented twice)
MAX_SCORED_FRAMES = 50


@dataclass
class FinetunePlan:
    """How a fine-tune will run, and why.

    Attributes
    ----------
    epochs : int
        Epochs to train.
    batch : int
        Images per batch (and per optimizer step: ``nbs`` is set to it).
    imgsz : int
        Network input size; no larger than the training images (rounded up
        to stride 32), so cells keep their pixel size as at inference.
    steps_per_epoch : int
        Optimizer steps in one epoch (with the quarter turns, if any).
    rotate : bool
        Write 90, 180 and 270-degree turns of the training images as extra
        images (:func:`~napari_livecell.core.training.data.write_rotated_training_set`).
    overrides : dict
        Ultralytics arguments: optimizer, learning rate, warm-up, ``nbs``,
        augmentation.
    reason : str
        One line saying how epochs were chosen.
    warnings : list of str
        What the user should know about their data (too small to validate...).
    validation : str
        ``"val"`` when held-out frames exist, ``"train"`` when the model is
        validated (and scored) on its own training frames.
    """

    epochs: int
    batch: int
    imgsz: int
    steps_per_epoch: int
    rotate: bool
    overrides: dict
    reason: str
    warnings: list[str] = field(default_factory=list)
    validation: str = "val"

    @property
    def steps(self) -> int:
        """Optimizer steps of the whole run."""
        return self.epochs * self.steps_per_epoch

    def summary(self) -> dict:
        """Plain values for json (metrics.json, the checkpoint, the CLI summary)."""
        return {**asdict(self), "steps": self.steps}


def plan_finetune(
    stats: DatasetStats,
    batch: int | None = None,
    epochs: int | None = None,
    min_steps: int = MIN_FINETUNE_STEPS,
    rotate: bool | None = None,
    imgsz: int = 320,
    default_batch: int = 8,
) -> FinetunePlan:
    """Plan a fine-tune from the size of the data: epochs by optimizer steps, augmentation, checks.

    Parameters
    ----------
    stats : DatasetStats
        Images and cells per split (:func:`~napari_livecell.core.training.data.describe_yolo_dataset`).
    batch : int, optional
        Images per batch; every batch is one optimizer step. By default
        :data:`SMALL_SET_BATCH` for a small set, else ``default_batch``.
    epochs : int, optional
        Train exactly this many epochs (a warning says when that is fewer
        than ``min_steps`` steps); planned from ``min_steps`` when omitted.
    min_steps : int
        Optimizer steps to reach at least.
    rotate : bool, optional
        Add quarter turns of the training images; by default when there are
        fewer than :data:`ROTATE_BELOW_IMAGES` training images.
    imgsz : int
        Largest network input; smaller training images train at their own
        size (rounded up to 32): Ultralytics would otherwise enlarge them,
        and cells would be larger in training than at inference.
    default_batch : int
        Batch of a set that is not small, when ``batch`` is omitted.

    Returns
    -------
    FinetunePlan
    """
    small = stats.train_images < ROTATE_BELOW_IMAGES
    batch = (SMALL_SET_BATCH if small else default_batch) if batch is None else batch
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if stats.max_side:
        imgsz = min(imgsz, 32 * math.ceil(stats.max_side / 32))
    rotate = small if rotate is None else rotate
    images = stats.train_images * (4 if rotate else 1)
    steps_per_epoch = math.ceil(images / batch)
    overrides: dict[str, Any] = {
        **FINETUNE_OVERRIDES,
        **MICROSCOPY_AUGMENTATION,
        # every batch is an optimizer step (Ultralytics' default accumulates to 64 images)
        "nbs": batch,
        "lr0": SMALL_SET_LR if small else FINETUNE_OVERRIDES["lr0"],
    }
    turns = " x 4 quarter turns" if rotate else ""
    asked = None
    if epochs is None:
        wanted = math.ceil(min_steps / steps_per_epoch)
        epochs = min(max(wanted, MIN_PLANNED_EPOCHS), MAX_PLANNED_EPOCHS)
        how = f"planned for at least {min_steps} optimizer steps"
        if wanted > MAX_PLANNED_EPOCHS:
            how = f"capped at {MAX_PLANNED_EPOCHS} epochs (aimed at {min_steps} steps)"
    else:
        how = "epochs as asked"
        asked = epochs
        if epochs * steps_per_epoch < min_steps:
            # AdamW's first steps move every weight by about lr0 whatever its gradient: the
            # planned run unlearns for ~40 steps before it learns (benchmarks/README.md), so a
            # short run asked for takes proportionally smaller steps and cannot wreck a model
            # that works (12 steps at 1e-3 took the shipped model from AP50 0.98 to 0.00)
            fraction = epochs * steps_per_epoch / min_steps
            overrides["lr0"] = float(f"{overrides['lr0'] * fraction:.3g}")
    reason = (
        f"{epochs} epochs x {steps_per_epoch} steps = {epochs * steps_per_epoch} optimizer steps "
        f"({how}; {stats.train_images} training images{turns}, {stats.train_cells} cells, batch {batch}, "
        f"imgsz {imgsz}, lr0 {overrides['lr0']:g})"
    )
    warnings = []
    if asked is not None and asked * steps_per_epoch < min_steps:
        warnings.append(
            f"only {epochs * steps_per_epoch} optimizer steps ({epochs} epochs x {steps_per_epoch}): "
            f"fine-tunes need about {min_steps}; leave epochs to the plan"
        )
    validation = "val"
    if stats.val_images == 0 or stats.val_is_train:
        validation = "train"
        warnings.append(
            "too few frames to hold any out: validating on the training frames, so the scores say how "
            f"well the model fits them, not how it does on new images; correct at least "
            f"{MIN_VALIDATION_IMAGES + 1} frames"
        )
    elif stats.val_images < MIN_VALIDATION_IMAGES or stats.val_cells < MIN_VALIDATION_CELLS:
        warnings.append(
            f"validation holds {stats.val_images} frame(s) with {stats.val_cells} cells: its scores are "
            f"rough (at least {MIN_VALIDATION_IMAGES} frames and {MIN_VALIDATION_CELLS} cells are better)"
        )
    if stats.train_cells < MIN_TRAINING_CELLS:
        warnings.append(
            f"only {stats.train_cells} training cells: the model will mostly learn these frames; "
            f"{MIN_TRAINING_CELLS}+ corrected cells generalise better"
        )
    return FinetunePlan(
        epochs, batch, imgsz, steps_per_epoch, rotate, overrides, reason, warnings, validation
    )


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
            # every batch an optimizer step: see MIN_FINETUNE_STEPS
            settings.extra.update({**FINETUNE_OVERRIDES, "nbs": settings.batch})
        return settings

    @classmethod
    def for_plan(cls, data: str, model: str, plan: FinetunePlan, **kwargs) -> TrainSettings:
        """Settings that carry out a :class:`FinetunePlan` (epochs, batch, recipe)."""
        settings = cls(
            data=data, model=model, epochs=plan.epochs, batch=plan.batch, imgsz=plan.imgsz, **kwargs
        )
        settings.close_mosaic = min(settings.close_mosaic, max(plan.epochs - 1, 0))
        settings.extra.update(plan.overrides)
        return settings


@dataclass
class TrainResult:
    """Where the trained model is and how well it validated."""

    weights: Path
    metrics: dict
    settings: TrainSettings
    seconds: float
    before_after: dict | None = None


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
    from napari_livecell.core.models.safe_load import load_checkpoint

    last = Path(out) / "run" / "weights" / "last.pt"
    if not last.is_file():
        return None
    # Ultralytics strips the optimizer from last.pt when a run finishes
    checkpoint = load_checkpoint(last)
    finished = not isinstance(checkpoint, dict) or checkpoint.get("optimizer") is None
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
    on_progress: Callable[[TrainProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: bool = False,
    score: bool = True,
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
    score : bool
        Score the base model (a ``.pt`` only) and the trained one on the
        validation frames with pycocotools (:func:`score_before_after`);
        stored as ``before_after`` in ``metrics.json``, the checkpoint and
        :attr:`TrainResult.before_after`.

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
    from napari_livecell.core.models.model import check_weights_path
    from napari_livecell.core.models.offline import import_ultralytics
    from napari_livecell.core.models.safe_load import load_checkpoint, use_in_ultralytics

    out = Path(out).resolve()
    if not resume and str(settings.model).lower().endswith(".pt"):
        # a base .pt is a pickle: refuse a payload before anything opens it
        check_weights_path(settings.model)
    import_ultralytics()
    import torch
    from ultralytics import YOLO

    use_in_ultralytics()
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
    _add_callbacks(model, on_progress, should_stop)
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
    trainer: Any = model.trainer  # set by train(): Ultralytics declares it None
    best = Path(trainer.best if Path(trainer.best).exists() else trainer.last)
    metrics = {k: float(v) for k, v in (trainer.metrics or {}).items()}
    before_after = None
    if score:
        base = settings.model if str(settings.model).lower().endswith(".pt") else None
        on = (metadata or {}).get("plan", {}).get("validation", "val")
        before_after = score_before_after(settings.data, base, best, device=settings.device, on=on)

    checkpoint = load_checkpoint(best)
    checkpoint["napari_livecell"] = {
        **_inherited(settings.model),
        **inherited_pixel_size(settings.model),
        "settings": asdict(settings),
        "metrics": metrics,
        "train_seconds": round(seconds, 1),
        **(metadata or {}),
        **({"before_after": before_after} if before_after else {}),
    }
    target = out / "best.pt"
    temporary = target.with_suffix(".tmp")
    torch.save(checkpoint, temporary)
    os.replace(temporary, target)
    report = {"metrics": metrics, "settings": asdict(settings), "seconds": seconds}
    if plan := (metadata or {}).get("plan"):
        report["plan"] = plan
    if before_after:
        report["before_after"] = before_after
    write_text_atomic(out / "metrics.json", json.dumps(report, indent=2))
    return TrainResult(
        weights=target, metrics=metrics, settings=settings, seconds=seconds, before_after=before_after
    )


def _inherited(base: str) -> dict:
    """What a fine-tuned model keeps from its base: the modality it sees (phase or fluorescence).

    Ultralytics writes a new checkpoint without our keys; without this a model
    fine-tuned from a fluorescence model would be read as phase contrast and
    its frames inverted at inference.
    """
    from napari_livecell.core.models.safe_load import load_checkpoint

    if not str(base).lower().endswith(".pt"):
        return {}
    checkpoint = load_checkpoint(base)
    info = (checkpoint.get("napari_livecell") if isinstance(checkpoint, dict) else None) or {}
    return {key: info[key] for key in ("modality",) if key in info}


def base_modality(base: str | os.PathLike | None) -> str | None:
    """What a fine-tuning base model sees (``"phase"``/``"fluorescence"``); ``None`` for a yaml recipe.

    The training data are shown to it in that polarity
    (:func:`napari_livecell.core.training.data.write_training_dataset`).
    Weights that do not say are phase-contrast models, like the shipped one.
    """
    if base is None or str(base) == "default":
        return "phase"
    if not str(base).lower().endswith(".pt"):
        return None
    return _inherited(str(base)).get("modality", "phase")


def inherited_pixel_size(base: str) -> dict:
    """The training pixel size a fine-tuned model keeps from its base: ``{"pixel_size_um": ...}`` or ``{}``.

    Fine-tuning data is taken to be imaged like the base model's (the
    ``metadata`` given to :func:`train_model` may say otherwise with its own
    ``pixel_size_um``). The shipped model's documented size counts, though
    its checkpoint does not carry the key (see
    :func:`napari_livecell.core.models.model.checkpoint_pixel_size`).
    """
    from napari_livecell.core.models.model import checkpoint_pixel_size
    from napari_livecell.core.models.safe_load import load_checkpoint

    if not str(base).lower().endswith(".pt") or not Path(base).is_file():
        return {}
    checkpoint = load_checkpoint(base)
    info = (checkpoint.get("napari_livecell") if isinstance(checkpoint, dict) else None) or {}
    size = checkpoint_pixel_size(info, base)
    return {} if size is None else {"pixel_size_um": size}


def score_before_after(
    data_yaml: str | os.PathLike,
    base: str | os.PathLike | None,
    tuned: str | os.PathLike,
    device: str = "cpu",
    on: str = "val",
    conf: float | None = None,
) -> dict | None:
    """Mask AP50 (and AP) of the base and the trained model on the dataset's validation frames.

    The numbers a user needs after a fine-tune: did the model get better on
    frames it did not train on? Scored with pycocotools (LIVECell protocol),
    class-agnostic, at the confidence Segment cells uses.

    Parameters
    ----------
    data_yaml : path
        The dataset trained on; its ``val`` split is scored (at most
        :data:`MAX_SCORED_FRAMES` frames).
    base : path or None
        The model fine-tuned from; None (training from scratch) scores only
        the trained model.
    tuned : path
        The trained model.
    device : str
        Where to run inference.
    on : str
        ``"val"`` (held-out frames) or ``"train"`` (a dataset too small to
        hold any out: the validation split is the training frames), recorded
        with the scores.
    conf : float, optional
        Confidence threshold; Segment cells' default when omitted.

    Returns
    -------
    dict or None
        ``{"on", "frames", "cells", "conf", "base": {"AP50", "AP"} | None,
        "tuned": {"AP50", "AP"}}``; None when the split holds no cells.
    """
    from napari_livecell.core.analysis.evaluate import evaluate
    from napari_livecell.core.formats.coco import CocoImage, build_coco, segmentation_annotations
    from napari_livecell.core.inference.predict import DEFAULT_CONF, PredictSettings
    from napari_livecell.core.inference.recipe import FrameRecipe
    from napari_livecell.core.segmentation import Segmentation
    from napari_livecell.core.training.data import split_frames

    frames = split_frames(data_yaml, "val", limit=MAX_SCORED_FRAMES)
    truth = build_coco(
        [
            CocoImage(image_id=number, file_name=f"{name}.png", segmentation=Segmentation.from_labels(labels))
            for number, (name, _, labels) in enumerate(frames, start=1)
        ],
        class_names={0: "cell"},
    )
    if not truth["annotations"]:
        return None
    conf = DEFAULT_CONF if conf is None else conf

    def scores(weights) -> dict:
        from napari_livecell.core.models.model import load_model

        # the dataset's frames are at the model's pixel size already (native crops): nothing to resample
        recipe = FrameRecipe.plan(load_model(weights, device=device), PredictSettings(conf=conf))
        results: list[dict] = []
        for number, (_, image, _) in enumerate(frames, start=1):
            segmentation = recipe.segment(image).segmentation
            results += segmentation_annotations(segmentation, number, len(results) + 1, with_scores=True)
        for result in results:
            result["category_id"] = 1  # class-agnostic: a cell found is a cell found
        segm = evaluate(truth, results)["segm"]
        return {"AP50": round(segm["AP50"], 4), "AP": round(segm["AP"], 4)}

    return {
        "on": on,
        "frames": len(frames),
        "cells": len(truth["annotations"]),
        "conf": conf,
        "base": scores(base) if base is not None else None,
        "tuned": scores(tuned),
    }


def describe_before_after(before_after: dict | None) -> str:
    """One line for a status bar or a log: held-out mask AP50 before -> after."""
    if not before_after:
        return "no validation cells to score"
    where = (
        "held-out" if before_after["on"] == "val" else "training (nothing held out)"
    ) + f" frames: {before_after['frames']}, {before_after['cells']} cells"
    tuned = before_after["tuned"]["AP50"]
    if before_after["base"] is None:
        return f"mask AP50 {tuned:.2f} on {where}"
    return f"mask AP50 {before_after['base']['AP50']:.2f} -> {tuned:.2f} on {where}"


def _add_callbacks(model, on_progress, should_stop) -> None:
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
        if loader is not None and hasattr(loader, "close"):
            loader.close()
