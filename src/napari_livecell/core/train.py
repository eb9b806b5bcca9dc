"""Training and fine-tuning YOLO-seg models on annotated cells, offline.

The dataset comes from :mod:`napari_livecell.core.training_data`; this module
runs Ultralytics on it with progress, cancel and resume, and stores how the
model was made inside the checkpoint.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .atomic import write_text_atomic
from .training_data import check_yolo_dataset

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
    from napari_livecell.core.safe_load import load_checkpoint

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
    from napari_livecell.core.model import check_weights_path
    from napari_livecell.core.offline import import_ultralytics
    from napari_livecell.core.safe_load import load_checkpoint, use_in_ultralytics

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
    trainer = model.trainer
    best = Path(trainer.best if Path(trainer.best).exists() else trainer.last)
    metrics = {k: float(v) for k, v in (trainer.metrics or {}).items()}

    checkpoint = load_checkpoint(best)
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
        if hasattr(loader, "close"):
            loader.close()
