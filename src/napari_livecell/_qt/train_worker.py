"""The Train on corrections widget's worker-thread side, without Qt.

Writes corrected layers (or an export folder) as a YOLO dataset and
fine-tunes a model; runs in a worker thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from napari_livecell.layers import CorrectedLayer


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
    from napari_livecell.core.training_data import resolve_training_data, write_training_dataset
    from napari_livecell.layers import training_frames

    try:
        dataset = request.out / "dataset"
        if request.folder is not None:
            data_yaml, _ = resolve_training_data(
                request.folder, dataset, crop=request.crop, val_fraction=request.val_fraction
            )
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
