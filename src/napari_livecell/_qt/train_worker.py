"""The Train on corrections widget's worker-thread side, without Qt.

Writes corrected layers (or an export folder) as a YOLO dataset, plans the
fine-tune from its size (core/training/train.py ``plan_finetune``) and runs it; runs in
a worker thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from napari_livecell.layers import CorrectedLayer


@dataclass
class TrainRequest:
    """What the widget asks for; ``layers`` or ``folder`` gives the data.

    ``epochs`` and ``batch`` None leave them to the plan, which aims at
    ``steps`` optimizer steps (fine-tuning a ``.pt``; from an architecture
    yaml, epochs default to :data:`~napari_livecell.core.training.pipeline.SCRATCH_EPOCHS`).
    """

    base: str
    out: Path
    epochs: int | None
    imgsz: int
    batch: int | None
    crop: int | None
    val_fraction: float
    device: str = "cpu"
    layers: list[CorrectedLayer] | None = None
    folder: Path | None = None
    steps: int | None = None


@dataclass
class TrainOutcome:
    """How a training run ended: ``weights`` on success, else a message."""

    weights: Path | None
    message: str
    cancelled: bool = False
    before_after: dict | None = None
    warnings: list[str] = field(default_factory=list)


def run_training(
    request: TrainRequest,
    on_progress: Callable[[Any], None],
    stop: threading.Event,
) -> TrainOutcome:
    """Build the dataset, plan and fine-tune; every expected failure becomes a message.

    ``on_progress`` receives the :class:`~napari_livecell.core.training.train.FinetunePlan`
    first (before training starts), then :class:`~napari_livecell.core.training.train.TrainProgress`
    reports.
    """
    from napari_livecell.core.training.data import resolve_training_data, write_training_dataset
    from napari_livecell.core.training.pipeline import TrainingOptions, run_training
    from napari_livecell.core.training.train import TrainingCancelled, base_modality, describe_before_after
    from napari_livecell.layers import training_frames

    warnings: list[str] = []

    def planned(plan) -> None:
        warnings.extend(plan.warnings)
        on_progress(plan)

    try:
        dataset = request.out / "dataset"
        # the frames as the base model will see them at inference (fluorescence inverted for phase)
        modality = base_modality(request.base)
        if request.folder is not None:
            data_yaml, _ = resolve_training_data(
                request.folder,
                dataset,
                crop=request.crop,
                val_fraction=request.val_fraction,
                model_modality=modality,
            )
        else:
            # relabelling every frame is real work: here in the worker, not on the GUI thread
            frames, names = training_frames(request.layers or [])
            data_yaml = write_training_dataset(
                frames,
                len(frames),
                names,
                dataset,
                crop=request.crop,
                val_fraction=request.val_fraction,
                model_modality=modality,
            )
        options = TrainingOptions(
            epochs=request.epochs,
            steps=request.steps,
            imgsz=request.imgsz,
            batch=request.batch,
            device=request.device,
            workers=0,  # data-loader processes forked from a GUI process with threads can hang
        )
        result = run_training(
            data_yaml,
            request.base,
            request.out,
            options,
            metadata={"source": "napari Train on corrections", "data": {"crop": request.crop}},
            on_plan=planned,
            on_progress=on_progress,
            should_stop=stop.is_set,
        )
    except TrainingCancelled as cancelled:
        return TrainOutcome(None, f"{cancelled}; no model written", cancelled=True, warnings=warnings)
    except (ValueError, OSError) as error:
        return TrainOutcome(None, f"training failed: {error}", warnings=warnings)
    mask_map = result.metrics.get("metrics/mAP50-95(M)")
    score = f" (validation mask mAP50-95 {mask_map:.3f})" if mask_map is not None else ""
    message = f"saved {result.weights}{score}"
    if result.before_after is not None:
        message += f"; {describe_before_after(result.before_after)}"
    return TrainOutcome(result.weights, message, before_after=result.before_after, warnings=warnings)
