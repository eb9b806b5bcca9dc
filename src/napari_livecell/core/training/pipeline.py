"""The one training sequence: plan, rotate, settings, train, score before and after.

The Train on corrections widget (``_qt/train_worker.py``) and ``napari-livecell
train`` each build a YOLO dataset their own way (corrected layers, an export
folder, a COCO json) and then call :func:`run_training`, so that a fine-tune
is planned, turned and scored the same whichever started it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .train import TrainResult, TrainSettings

# training from an architecture yaml is not planned: the shipped model's recipe
SCRATCH_EPOCHS = 15
SCRATCH_BATCH = 8


@dataclass(frozen=True)
class TrainingOptions:
    """What a user may say about a run; ``None`` leaves it to the plan.

    Attributes
    ----------
    epochs : int, optional
        Epochs; a fine-tune plans them to reach ``steps`` optimizer steps,
        training from scratch takes :data:`SCRATCH_EPOCHS`.
    steps : int, optional
        Optimizer steps a fine-tune plans for (``MIN_FINETUNE_STEPS`` by default).
    imgsz : int
        Network input size.
    batch : int, optional
        Images per batch (planned for a fine-tune).
    default_batch : int
        The batch when none is given and the plan does not pick a smaller one.
    device, workers, seed
        Where and how Ultralytics trains.
    """

    epochs: int | None = None
    steps: int | None = None
    imgsz: int = 320
    batch: int | None = None
    default_batch: int = SCRATCH_BATCH
    device: str = "cpu"
    workers: int = 0
    seed: int = 0


def training_settings(
    data_yaml: str | os.PathLike,
    base: str,
    out: str | os.PathLike,
    options: TrainingOptions,
    on_plan: Callable[[Any], None] | None = None,
) -> tuple[TrainSettings, dict | None]:
    """The settings a run trains with: a planned fine-tune of a ``.pt``, or the from-scratch recipe.

    Parameters
    ----------
    data_yaml : path
        The YOLO dataset.
    base : str
        A ``.pt`` (fine-tune) or an architecture yaml (from scratch).
    out : path
        The run's folder: a small set's quarter-turned copy goes to ``out/dataset-turned``.
    options : TrainingOptions
        What the user asked for.
    on_plan : callable, optional
        Called with the :class:`~napari_livecell.core.training.train.FinetunePlan`
        before anything is written (a fine-tune only).

    Returns
    -------
    (TrainSettings, dict or None)
        The settings, and the plan's summary for the provenance (``None`` from scratch).
    """
    from .data import describe_yolo_dataset, write_rotated_training_set
    from .train import MIN_FINETUNE_STEPS, plan_finetune

    common = {"device": options.device, "workers": options.workers, "seed": options.seed}
    if not str(base).lower().endswith(".pt"):
        settings = TrainSettings.for_base(
            str(data_yaml),
            base,
            epochs=options.epochs or SCRATCH_EPOCHS,
            imgsz=options.imgsz,
            batch=options.batch or options.default_batch,
            **common,
        )
        return settings, None
    plan = plan_finetune(
        describe_yolo_dataset(data_yaml),
        batch=options.batch,
        epochs=options.epochs,
        min_steps=options.steps or MIN_FINETUNE_STEPS,
        imgsz=options.imgsz,
        default_batch=options.default_batch,
    )
    if on_plan is not None:
        on_plan(plan)
    if plan.rotate:
        data_yaml = write_rotated_training_set(data_yaml, Path(out) / "dataset-turned")
    return TrainSettings.for_plan(str(data_yaml), base, plan, **common), plan.summary()


def run_training(
    data_yaml: str | os.PathLike,
    base: str,
    out: str | os.PathLike,
    options: TrainingOptions,
    metadata: dict | None = None,
    on_plan: Callable[[Any], None] | None = None,
    on_progress: Callable[[Any], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Plan, train and score one run (see :func:`training_settings` and :func:`.train.train_model`).

    Parameters
    ----------
    data_yaml, base, out, options, on_plan
        As for :func:`training_settings`.
    metadata : dict, optional
        Provenance stored with the model (the plan's summary is added as ``plan``).
    on_progress : callable, optional
        Called with each :class:`~napari_livecell.core.training.train.TrainProgress`.
    should_stop : callable, optional
        Polled after every batch (see :func:`.train.train_model`).

    Returns
    -------
    TrainResult
        The model, its validation metrics and its before/after scores on the held-out frames.
    """
    from .train import train_model

    settings, plan = training_settings(data_yaml, base, out, options, on_plan)
    metadata = dict(metadata or {})
    if plan is not None:
        metadata["plan"] = plan
    return train_model(settings, out, metadata=metadata, on_progress=on_progress, should_stop=should_stop)
