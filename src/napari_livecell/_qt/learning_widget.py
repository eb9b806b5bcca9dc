"""The Review dataset dock's "learn as I go": rounds of fine-tuning in the background while a person reviews.

Every N images marked done, a round (:func:`~napari_livecell.core.training.learning.run_round`)
fine-tunes the model in use on all done images in a worker thread; a better
model then segments the images nobody opened again, in another worker. The
panel shows the history (model, images used, held-out AP50 before and after)
and lets the person put an earlier model back in use. The GUI thread only
starts workers and reads their results: the training's progress is read by
a timer, never pushed through the event loop batch by batch.
"""

from __future__ import annotations

import importlib.util
import threading
from typing import TYPE_CHECKING, Any

from magicgui.widgets import CheckBox, ComboBox, Label, PushButton, SpinBox
from qtpy.QtWidgets import QListWidget

from napari_livecell.core.training.learning import LEARN_EVERY, SHIPPED, describe_model, describe_round

if TYPE_CHECKING:
    from napari_livecell.io.review import ReviewDataset

PROGRESS_POLL_MS = 300
TRAIN_EXTRA_MISSING = "learning trains models: pip install 'napari-livecell[train]' (PyTorch, Ultralytics)"


def training_installed() -> bool:
    """Whether the ``train`` extra (PyTorch and Ultralytics) is installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "ultralytics"))


class LearningPanel:
    """Learn as I go: the option, N, the round in progress, the history and the model in use.

    ``review`` is the Review dataset dock: the panel reads its dataset, the
    image shown (never segmented again under the person's eyes) and the model
    the review was segmented with, and asks it to refresh its list. The dock
    lays out :attr:`widgets` in its own form (one label column: a nested
    form would widen the dock) and :attr:`history` below its image list.
    """

    def __init__(self, review: Any) -> None:
        self._review = review
        self.steps: int | None = None  # optimizer steps of a round: the plan's unless set (tests)
        self.learn = CheckBox(text="learn as I go", value=False)
        self.learn.tooltip = "fine-tune the model in the background on the images marked done"
        self.every = SpinBox(label="every N done", min=1, max=1000, value=LEARN_EVERY)
        self.every.tooltip = "a learning round starts each time this many more images are marked done"
        self.model = ComboBox(label="use model", choices=[describe_model(SHIPPED)])
        self.model.tooltip = "go back to an earlier model: the images nobody opened are segmented again"
        self.stop_button = PushButton(text="Stop learning round", enabled=False)
        self.state = Label(value="")
        self.history = QListWidget()
        self.history.setMinimumHeight(60)
        self.history.setToolTip(
            "learning rounds, newest first: model, images used, held-out AP50 before -> after"
        )
        self.widgets = [self.learn, self.every, self.model, self.stop_button, self.state]
        self._labels: dict[str, str] = {describe_model(SHIPPED): SHIPPED}
        self._stop = threading.Event()
        self._progress: Any = None  # the last TrainProgress, written by the training thread
        self.training: Any = None  # the round's worker while it runs
        self.resegmenting: Any = None  # the worker segmenting unopened images again
        self.last_round: Any = None  # the last round this panel ran (for the status line and tests)
        self._finished: Any = None
        self._log: Any = None
        self._changing_model = False
        if not training_installed():
            self.learn.enabled = False
            self.learn.tooltip = TRAIN_EXTRA_MISSING
            self.state.value = TRAIN_EXTRA_MISSING
        self.learn.changed.connect(lambda _=None: self.after_done())
        self.model.changed.connect(self._model_chosen)
        self.stop_button.changed.connect(lambda _=None: self.stop())
        from qtpy.QtCore import QTimer
        from qtpy.QtWidgets import QApplication

        # napari closing (or the dock) stops a round at its next batch: the model in use stays
        stop = self._stop
        review.native.destroyed.connect(lambda *_: stop.set())
        application = QApplication.instance()
        if application is not None:
            application.aboutToQuit.connect(stop.set)
        self._timer = QTimer()
        self._timer.setInterval(PROGRESS_POLL_MS)
        self._timer.timeout.connect(self._show_progress)

    # state ---------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """A round or its re-segmentation is running."""
        return self.training is not None or self.resegmenting is not None

    def attach(self, dataset: ReviewDataset) -> None:
        """A dataset was opened: its history and model in use."""
        from napari_livecell.core.training.learning import LearningLog

        self._log = LearningLog(dataset.index)
        self._refresh()

    def model_of(self) -> dict[str, str]:
        """Image name -> the model that segmented it, for the list (images of unknown model: absent)."""
        if self._log is None:
            return {}
        return {name: describe_model(label) for name, label in self._log.segmented_with().items()}

    def _refresh(self) -> None:
        from qtpy.QtWidgets import QListWidgetItem

        self.history.clear()
        if self._log is None:
            return
        rounds = self._log.rounds()
        for learned in reversed(rounds):
            self.history.addItem(QListWidgetItem(describe_round(learned)))
        labels = [SHIPPED, *dict.fromkeys(r.base for r in rounds), *(r.model for r in rounds if r.accepted)]
        self._labels = {describe_model(label): label for label in dict.fromkeys(labels)}
        self._changing_model = True
        try:
            self.model.choices = list(self._labels)
            self.model.value = describe_model(self._log.current())
        finally:
            self._changing_model = False

    # rounds --------------------------------------------------------------------
    def after_done(self) -> Any:
        """Start a round when learning is on and enough images were marked done; the worker or None."""
        from napari_livecell.core.training.learning import round_due

        dataset = self._review.dataset
        if not self.learn.value or dataset is None or self.busy or self._log is None:
            return None
        if not round_due(dataset.index, self.every.value):
            return None
        return self.start_round()

    def start_round(self) -> Any:
        """Fine-tune on every done image now, in a worker (one round at a time)."""
        from napari.qt.threading import create_worker

        from napari_livecell._qt.gc_hold import hold_collector
        from napari_livecell._qt.model_picker import chosen_weights
        from napari_livecell.core.training.learning import run_round

        dataset = self._review.dataset
        if dataset is None or self.busy:
            return None
        self._stop.clear()
        self._progress = None
        worker = create_worker(
            run_round,
            dataset.index,
            chosen_weights(self._review._model.value),
            self.steps,
            on_progress=self._note_progress,
            should_stop=self._stop.is_set,
        )
        worker.returned.connect(self._round_finished)
        worker.errored.connect(self._round_failed)
        worker.finished.connect(self._training_ended)
        self.training = worker
        self.stop_button.enabled = True
        self.state.value = "learning round: preparing the done images..."
        hold_collector()  # full collections of torch's objects would stall the GUI (see gc_hold)
        self._timer.start()
        worker.start()
        return worker

    def stop(self) -> None:
        """Stop the round at the next batch (nothing is recorded; the model in use stays)."""
        self._stop.set()
        if self.resegmenting is not None:
            self.resegmenting.quit()

    def _note_progress(self, progress: Any) -> None:  # the training thread
        self._progress = progress

    def _show_progress(self) -> None:
        progress = self._progress
        if progress is not None and self.training is not None:
            self.state.value = (
                f"learning round: epoch {progress.epoch}/{progress.epochs}, "
                f"batch {progress.batch}/{progress.batches}"
            )

    def _round_finished(self, learned: Any) -> None:
        self.last_round = self._finished = learned
        self.state.value = describe_round(learned)
        self._refresh()

    def _round_failed(self, error: BaseException) -> None:
        from napari_livecell.core.training.train import TrainingCancelled

        if isinstance(error, TrainingCancelled):
            self.state.value = "learning round stopped: the model in use is unchanged"
        else:
            self.state.value = f"learning round failed ({error}): the model in use is unchanged"

    def _training_ended(self) -> None:
        from napari_livecell._qt.gc_hold import release_collector

        release_collector()
        self._timer.stop()
        self.training = None
        self.stop_button.enabled = False
        learned, self._finished = self._finished, None
        if learned is not None and learned.accepted:
            self.resegment()
        if learned is not None and self.resegmenting is None:
            self.after_done()  # more images may have been marked done meanwhile

    # segmenting again ----------------------------------------------------------
    def resegment(self) -> Any:
        """Segment the images nobody opened with the model in use, in a worker; the worker or None."""
        from napari.qt.threading import create_worker

        from napari_livecell.core.inference.predict import PredictSettings
        from napari_livecell.core.training.learning import to_resegment
        from napari_livecell.io.review import resegment_unopened

        dataset = self._review.dataset
        if dataset is None or self._log is None or self.resegmenting is not None:
            return None
        names = [name for name in to_resegment(dataset.index) if name != self._review.current]
        if not names:
            return None
        weights = self._log.weights(self._log.current())
        worker = create_worker(resegment_unopened, dataset, names, weights, PredictSettings())
        worker.yielded.connect(self._resegmented_one)
        worker.errored.connect(self._resegment_failed)
        worker.finished.connect(self._resegment_ended)
        self.resegmenting = worker
        self.stop_button.enabled = True
        model = describe_model(self._log.current())
        self.state.value = f"segmenting {len(names)} unopened image(s) with {model}"
        worker.start()
        return worker

    def _resegment_failed(self, error: BaseException) -> None:
        self.state.value = f"segmenting again failed: {error}"

    def _resegmented_one(self, progress: tuple) -> None:
        done, total, name = progress
        if name:
            self.state.value = f"segmented {name} again ({done} of {total})"
            self._review._refresh_list()

    def _resegment_ended(self) -> None:
        self.resegmenting = None
        self.stop_button.enabled = False
        self._review._refresh_list()
        self.after_done()

    def _model_chosen(self, choice: str) -> None:
        """The person put another model in use: the unopened images are segmented with it."""
        if self._changing_model or self._log is None or choice not in self._labels:
            return
        label = self._labels[choice]
        if label == self._log.current():
            return
        self._log.use(label)
        self.state.value = f"{describe_model(label)} in use"
        self.resegment()
