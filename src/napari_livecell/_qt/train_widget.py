"""The "Train on corrections" dock widget: fine-tune a model on proofread layers.

Epochs and batch left at 0 are planned from the data by optimizer steps
(core/training/train.py ``plan_finetune``); the plan and its warnings (data too small to
validate...) are shown before training, and mask AP50 of the base and the new
model on the held-out frames at the end. Training runs in a napari thread
worker; progress arrives per batch through a Qt signal (queued onto the GUI
thread), Cancel sets an event the trainer polls after every batch. A finished
model is added to the Segment cells widget's model picker.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from magicgui.types import FileDialogMode
from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    FloatSlider,
    Label,
    ProgressBar,
    PushButton,
    Select,
    SpinBox,
)
from qtpy.QtCore import QObject, Signal

from napari_livecell._qt.docking import fit_dock
from napari_livecell._qt.model_picker import chosen_weights, model_choices, offer_model
from napari_livecell._qt.run_controls import BackgroundRun, RunControls
from napari_livecell._qt.train_worker import TrainOutcome, TrainRequest, run_training
from napari_livecell.core.training.train import MIN_FINETUNE_STEPS, PRESETS, FinetunePlan
from napari_livecell.layers import CorrectedLayer, image_layer_for

# the widget fine-tunes with the laptop recipe; a run on a GPU changes the fields
WIDGET_PRESET = PRESETS["nano"]
# 0: planned from the data (enough optimizer steps for a handful of frames)
WIDGET_EPOCHS = 0
WIDGET_BATCH = 0

if TYPE_CHECKING:
    import napari


class _ProgressRelay(QObject):
    """Carries reports from the training thread to the GUI thread."""

    report = Signal(object)


def default_output_folder(name: str) -> Path:
    """``~/napari-livecell/models/<name>-<date-time>``: a new folder per run."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path.home() / "napari-livecell" / "models" / f"{name}-{stamp}"


class TrainOnCorrectionsWidget(BackgroundRun, Container):
    """Fine-tune a YOLO-seg model on corrected Labels layers or an export folder."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self._stop = threading.Event()
        self._relay = _ProgressRelay()
        self._relay.report.connect(self._on_report)

        self._layers = Select(label="corrected labels", choices=self._labels_choices)
        self._folder = FileEdit(label="or export folder", mode=FileDialogMode.EXISTING_DIRECTORY)
        self._base = ComboBox(label="base model", choices=model_choices)
        self._epochs = SpinBox(label="epochs (0: plan)", value=WIDGET_EPOCHS, min=0, max=1000)
        self._steps = SpinBox(
            label="optimizer steps (plan)", value=MIN_FINETUNE_STEPS, min=1, max=100_000, step=50
        )
        self._imgsz = SpinBox(label="image size", value=WIDGET_PRESET["imgsz"], min=64, max=4096, step=32)
        self._crop = SpinBox(
            label="crop (0: whole)", value=WIDGET_PRESET["crop"] or 0, min=0, max=4096, step=32
        )
        self._batch = SpinBox(label="batch (0: plan)", value=WIDGET_BATCH, min=0, max=256)
        self._val_fraction = FloatSlider(label="validation share", value=0.2, min=0.0, max=0.5, step=0.05)
        self._out = FileEdit(label="save to (empty: new folder)", mode=FileDialogMode.EXISTING_DIRECTORY)
        self._train = PushButton(text="Train")
        self._cancel = PushButton(text="Cancel", enabled=False)
        self._progress = ProgressBar(label="progress", min=0, max=1, value=0)
        self._status = Label(label="status", value="")
        self._controls = RunControls(self._train, self._cancel, self._status, "training")
        self.extend(
            [
                self._layers,
                self._folder,
                self._base,
                self._epochs,
                self._steps,
                self._imgsz,
                self._crop,
                self._batch,
                self._val_fraction,
                self._out,
                self._train,
                self._cancel,
                self._progress,
                self._status,
            ]
        )
        fit_dock(self, [self._status])
        self._train.changed.connect(self.train)
        self._cancel.changed.connect(self.cancel)
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(self._layers.reset_choices)

    # choices -------------------------------------------------------------
    def _labels_choices(self, _widget=None) -> list:
        from napari.layers import Labels

        return [(layer.name, layer) for layer in self._viewer.layers if isinstance(layer, Labels)]

    # running -------------------------------------------------------------

    def _notify_error(self, message: str) -> None:
        self._controls.notify_error(message)

    def _request(self) -> TrainRequest:
        """Read the controls into a request; raises ValueError for a wrong choice."""
        from napari.layers import Image

        from napari_livecell.core.models.model import DEFAULT_MODEL

        folder = _chosen_path(self._folder.value)
        chosen = list(self._layers.value or [])
        if folder is None and not chosen:
            raise ValueError("choose corrected Labels layers, or an export folder")
        base = chosen_weights(self._base.value) or str(DEFAULT_MODEL)
        name = folder.name if folder is not None else chosen[0].name
        request = TrainRequest(
            base=base,
            out=_chosen_path(self._out.value) or default_output_folder(name.replace(" ", "_")),
            epochs=int(self._epochs.value) or None,
            imgsz=int(self._imgsz.value),
            batch=int(self._batch.value) or None,
            crop=int(self._crop.value) or None,
            val_fraction=float(self._val_fraction.value),
            steps=int(self._steps.value),
        )
        if (request.out / "best.pt").exists():
            raise ValueError(f"{request.out} already holds a best.pt; choose another folder")
        if folder is not None:
            request.folder = folder
            return request
        images = [layer for layer in self._viewer.layers if isinstance(layer, Image)]
        corrected = []
        for layer in chosen:
            image = image_layer_for(layer, images)
            if image is None:
                raise ValueError(f"no image layer found for {layer.name!r}; open the image it annotates")
            data = image.data[0] if getattr(image, "multiscale", False) else image.data
            # a copy: the user may go on editing while the worker reads it
            labels = np.array(layer.data)
            attributes = layer.as_layer_data_tuple()[1]
            corrected.append(CorrectedLayer(layer.name, labels, attributes, data, bool(image.rgb)))
        request.layers = corrected
        return request

    def train(self, _=None):
        """Start training; return the worker (or None when the choice is wrong)."""
        from napari.qt.threading import create_worker

        try:
            request = self._request()
        except ValueError as error:
            self._notify_error(str(error))
            return None
        self._stop.clear()
        worker = create_worker(run_training, request, self._relay.report.emit, self._stop)
        worker.returned.connect(self._on_returned)
        worker.finished.connect(self._controls.end)
        self._progress.value = 0
        return self._controls.begin(worker, f"building the dataset in {request.out}...")

    def cancel(self, _=None) -> None:
        """Stop after the batch in progress; no model is written."""
        self._stop.set()
        self._status.value = "cancelling after this batch..."

    def _on_report(self, progress) -> None:
        if self._stop.is_set():
            return
        if isinstance(progress, FinetunePlan):
            self._show_plan(progress)
            return
        total = max(progress.epochs * max(progress.batches, 1), 1)
        self._progress.max = total
        self._progress.value = min((progress.epoch - 1) * max(progress.batches, 1) + progress.batch, total)
        text = f"epoch {progress.epoch}/{progress.epochs}"
        if progress.loss is not None:
            text += f", loss {progress.loss:.3f}"
        if progress.mask_map is not None:
            text += f", mask mAP50-95 {progress.mask_map:.3f}"
        self._status.value = text

    def _show_plan(self, plan: FinetunePlan) -> None:
        """The plan in the status line; each warning about the data as a notification too."""
        from napari.utils.notifications import show_warning

        self._status.value = f"plan: {plan.reason}"
        for warning in plan.warnings:
            show_warning(f"Train on corrections: {warning}")

    def _on_returned(self, outcome: TrainOutcome) -> None:
        if outcome.weights is None:
            if outcome.cancelled:
                self._status.value = outcome.message
            else:
                self._notify_error(outcome.message)
            return
        offer_model(str(outcome.weights))
        self._base.reset_choices()
        self._progress.value = self._progress.max
        self._status.value = f"{outcome.message}; chosen in Segment cells"


def _chosen_path(value) -> Path | None:
    """A FileEdit's path, or None when it is left empty."""
    text = str(value or "").strip()
    return None if text in ("", ".") else Path(text).expanduser()
