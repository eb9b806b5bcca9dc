"""The "Review dataset" dock: segment a folder in the background, then proofread image after image.

Each image shows with its cells and outlines (named after the image, so
Proofread cells works on them as on any result); every change is saved to
the dataset (``napari-livecell-review/`` beside the images) within a second
and when another image is opened, so closing napari loses nothing and
opening the folder again resumes where the review stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import Container, Label, LineEdit, ProgressBar, PushButton
from qtpy.QtWidgets import QListWidget

from napari_livecell._qt.docking import fit_dock
from napari_livecell._qt.inference_stack import loading_first, starting_message
from napari_livecell._qt.layout import add_browse_button
from napari_livecell._qt.model_picker import chosen_weights, model_choices
from napari_livecell._qt.run_controls import BackgroundRun, RunControls
from napari_livecell.layers import cells_layer_name, outlines_layer_name

if TYPE_CHECKING:
    import napari

    from napari_livecell.io.review import ReviewDataset

AUTOSAVE_DELAY_MS = 500
STEP_PAUSE_MS = 5  # between inserting one image's layers, so that the GUI breathes between them
NEXT_KEY, PREVIOUS_KEY = "PageDown", "PageUp"
WAITING_KEY = "napari-livecell: waiting for cells"  # metadata flag of an image's empty cells layers
# the waiting outlines layer's one shape: drawn (invisibly) so that its GL programs are built on the click
WARM_UP_TRIANGLE = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
OUTLINES_PER_TURN = 400


def segment_dataset(dataset, names: list[str], weights: str | None, settings):
    """Worker: segment the images that have no cells yet, saving each; yields (done, total, name)."""
    from napari_livecell.core.images import read_image
    from napari_livecell.core.inference.pixel_size import file_pixel_size
    from napari_livecell.core.inference.run import Backend, FrameResult, iter_segment
    from napari_livecell.core.training.learning import LearningLog, model_label

    backend = Backend(weights=weights, device="auto", runtime="auto")  # the fastest installed
    log, label = LearningLog(dataset.index), model_label(dataset.index, weights)
    yield 0, len(names), ""
    for done, name in enumerate(names, start=1):
        path = dataset.index.entry(name).image
        image = read_image(path)
        pixel_size = file_pixel_size(path)  # a TIFF's own pixel size: resampled to the model's
        source = "file metadata" if pixel_size else ""
        events = iter_segment(image, backend, settings, None, pixel_size, source)
        results = [e.segmentation for e in events if isinstance(e, FrameResult)]
        if dataset.save_prediction(name, results[0]) is not None:
            log.record_segmented(name, label)
        yield done, len(names), name


def measure_dataset(dataset, path: Path):
    """Worker: measure every image's cells (yields (done, total)); write the per-cell and summary CSVs."""
    from napari_livecell.core.analysis.measure import summary_path, write_measurements_csv

    measurements = yield from dataset.iter_measure()
    write_measurements_csv(path, measurements.cells)
    write_measurements_csv(summary_path(path), measurements.summary)
    return path, len(measurements.cells), len(measurements.summary)


def build_cell_layers(dataset, name: str) -> list:
    """An image's saved cells as napari layers, built off the GUI thread (reading, polygons)."""
    from napari.layers import Layer

    return [Layer.create(data, kwargs, kind) for data, kwargs, kind in dataset.cell_layers(name)]


def match_placement(target, source) -> None:
    """Give ``target`` the scale and translate of ``source``, setting only what differs.

    Each napari setter costs 30-60 ms (events, dims, a refresh) even when the
    value is the same.
    """
    for attribute in ("scale", "translate"):
        if not np.array_equal(getattr(target, attribute), getattr(source, attribute)):
            setattr(target, attribute, getattr(source, attribute))


def same_layer(first, second) -> bool:
    """Whether two layer handles are one layer (napari hands plugins a new proxy on every access)."""
    if first is None or second is None:
        return False
    return getattr(first, "__wrapped__", first) is getattr(second, "__wrapped__", second)


class ReviewWidget(BackgroundRun, Container):
    """Open a folder of images (or a COCO json beside its images) and review it image by image."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        from magicgui.widgets import ComboBox

        super().__init__(labels=True)
        self._viewer = viewer
        self.dataset: ReviewDataset | None = None
        self.current: str | None = None
        self._dirty = False
        self._source = LineEdit(label="images", value="")
        self._source.tooltip = "a folder of images, or a COCO json beside its images"
        self._open = PushButton(text="Open (resumes a review)")
        self._model = ComboBox(label="model", choices=model_choices)
        self._segment = PushButton(text="Segment all (in the background)")
        self._cancel = PushButton(text="Cancel", enabled=False)
        self._progress = ProgressBar(label="progress", min=0, max=1, value=0)
        self._previous = PushButton(text=f"Previous ({PREVIOUS_KEY})")
        self._next = PushButton(text=f"Next ({NEXT_KEY})")
        self._done = PushButton(text="Mark done")
        self._save_csv = PushButton(text="Save measurements CSV…")
        self._save_csv.tooltip = "one CSV of every cell of every image"
        self._measuring = None  # the worker measuring the dataset, while it runs
        self._status = Label(label="status", value="")
        self._images_list = QListWidget()
        self._images_list.setMinimumHeight(120)
        self._controls = RunControls(self._segment, self._cancel, self._status, "segmenting the dataset")
        from napari_livecell._qt.learning_widget import LearningPanel

        self.learning = LearningPanel(self)
        self.extend(
            [
                self._source,
                self._open,
                self._model,
                self._segment,
                self._cancel,
                self._progress,
                self._previous,
                self._next,
                self._done,
                self._save_csv,
                *self.learning.widgets,
                self._status,
            ]
        )
        self.native.layout().addWidget(self._images_list)
        self.native.layout().addWidget(self.learning.history)
        self._open.changed.connect(lambda: self.open(self._source.value))
        self._segment.changed.connect(self.segment_all)
        self._cancel.changed.connect(self.cancel)
        self._previous.changed.connect(lambda: self.step(-1))
        self._next.changed.connect(lambda: self.step(1))
        self._done.changed.connect(self.mark_done)
        self._save_csv.changed.connect(lambda: self.save_dataset_csv())
        self._images_list.itemClicked.connect(lambda item: self.show_image(item.data(256)))
        from qtpy.QtCore import QTimer

        self._autosave = QTimer()
        self._autosave.setSingleShot(True)
        self._autosave.setInterval(AUTOSAVE_DELAY_MS)
        self._autosave.timeout.connect(self.save)
        viewer.bind_key(NEXT_KEY, lambda _viewer: self.step(1), overwrite=True)
        viewer.bind_key(PREVIOUS_KEY, lambda _viewer: self.step(-1), overwrite=True)
        add_browse_button(
            self._source,
            [("Folder of images…", "d", ""), ("COCO json…", "r", "COCO json (*.json);;all files (*)")],
        )
        fit_dock(self, [self._status, self.learning.state])
        from napari_livecell._qt.layer_updates import warm_up_text_glyphs

        QTimer.singleShot(0, lambda: warm_up_text_glyphs(self))  # once docked in napari's window

    # dataset -------------------------------------------------------------------

    def notify_error(self, message: str) -> None:
        """Report a problem in one line."""
        self._controls.notify_error(message)

    def open(self, source: str) -> None:
        """Open (or resume) the review of a folder or COCO json."""
        from napari_livecell.core.training.review import ReviewError
        from napari_livecell.io.review import ReviewDataset

        text = str(source or "").strip()
        if not text:
            self.notify_error("type the folder of images (or a COCO json beside its images) to review")
            return
        try:
            dataset = ReviewDataset.open(Path(text).expanduser())
            entries = dataset.index.entries
        except (ReviewError, OSError, ValueError) as error:
            self.notify_error(str(error))
            return
        if not entries:
            self.notify_error(f"{dataset.folder} lists no images: nothing to review")
            return
        self.save()  # the dataset shown so far keeps its last edit
        if self.dataset is not None and self.dataset.index is not dataset.index:
            self.dataset.index.close()
        self.dataset = dataset
        self.current = None
        self.learning.attach(dataset)
        self._refresh_list()
        self.show_image(self.dataset.queue()[0])
        waiting = sum(e.state != "done" for e in entries)
        rebuilt = dataset.index.rebuilt_because
        self._status.value = f"{len(entries)} images, {waiting} to finish; saved in {dataset.folder.name}/"
        if rebuilt:
            from napari.utils.notifications import show_warning

            message = f"the review's index was rebuilt from its cells files ({rebuilt}): nothing is lost"
            self._status.value += f"; {message}"
            show_warning(message)

    def _refresh_list(self) -> None:
        from qtpy.QtWidgets import QListWidgetItem

        self._images_list.clear()
        if self.dataset is None:
            return
        entries = {entry.name: entry for entry in self.dataset.index.entries}
        models = self.learning.model_of()
        for name in self.dataset.queue():
            entry = entries[name]
            cells = f"{entry.n_cells} cells" if entry.segmented else "not segmented"
            if entry.segmented and entry.origin == "model" and name in models:
                cells += f" ({models[name]})"
            marker = "> " if name == self.current else "  "
            item = QListWidgetItem(f"{marker}{name}: {entry.state}, {cells}")
            item.setData(256, name)  # Qt.UserRole
            self._images_list.addItem(item)

    # background segmentation ---------------------------------------------------
    def segment_all(self, _=None):
        """Segment every image without cells in one worker; progress across the dataset."""
        from napari.qt.threading import create_worker

        from napari_livecell.core.inference.predict import PredictSettings

        if self.dataset is None:
            self.notify_error("open a folder of images first")
            return None
        self.dataset.index.reconcile()  # cells saved meanwhile from another window count as cells
        names = [e.name for e in self.dataset.index.entries if not e.segmented]
        if not names:
            self._status.value = "every image has cells already"
            return None
        worker = create_worker(
            loading_first(segment_dataset),
            self.dataset,
            names,
            chosen_weights(self._model.value),
            PredictSettings(),
        )
        worker.yielded.connect(self._on_progress)
        worker.finished.connect(self._on_finished)
        self._progress.value = 0
        return self._controls.begin(worker, starting_message(f"segmenting {len(names)} image(s)..."))

    def cancel(self, _=None) -> None:
        """Stop after the image in progress (what is done stays saved)."""
        if self._controls.worker is not None:
            self._controls.worker.quit()

    def _on_progress(self, progress) -> None:
        done, total, name = progress
        self._progress.max = max(total, 1)
        self._progress.value = done
        if name:
            self._status.value = f"segmented {name} ({done} of {total})"
            if name == self.current:
                self._show_cells_in_background(name)
        self._refresh_list()

    def _on_finished(self) -> None:
        self._controls.end()
        self._refresh_list()

    # stepping ------------------------------------------------------------------
    def step(self, direction: int) -> str | None:
        """Open the next (1) or previous (-1) image in queue order."""
        if self.dataset is None:
            self.notify_error("open a folder of images first")
            return None
        queue = self.dataset.queue()
        if not queue:
            self.notify_error("this dataset lists no images")
            return None
        position = queue.index(self.current) if self.current in queue else -1
        target = queue[(position + direction) % len(queue)]
        self.show_image(target)
        return target

    def mark_done(self, _=None) -> None:
        """The current image is reviewed."""
        if self.dataset is None or self.current is None:
            self.notify_error("open a folder of images first")
            return
        self.save()
        try:
            self.dataset.set_state(self.current, "done")
        except (OSError, ValueError) as error:
            self.notify_error(f"could not mark {self.current} done: {error}")
            return
        self._refresh_list()
        self.learning.after_done()

    def show_image(self, name: str) -> None:
        """Save the image on show, then show ``name`` with its cells."""
        if self.dataset is None or name is None:
            return
        self.save()
        try:  # read before anything is removed: an image that cannot be read leaves the view as it is
            entry = self.dataset.index.entry(name)
            data, kwargs, _ = self.dataset.image_layer(name)
        except (OSError, ValueError) as error:
            self.notify_error(f"cannot open {name}: {error}")
            return
        # the outlines layer is kept and refilled, never removed: napari 0.9 with vispy 0.17 on
        # software OpenGL (and some Windows drivers) segfaults at the first paint after a Shapes
        # layer is removed (napari issue 6472, vispy issue 1611; docs/napari_crash.md)
        outlines = self._reuse_outlines(name)
        for old in (self.current, name):
            if old is None:
                continue
            for layer_name in (old, cells_layer_name(old)):
                if layer_name in self._viewer.layers:
                    self._viewer.layers.remove(layer_name)
        self.current = name
        self._dirty = False
        image = self._viewer.add_image(data, **kwargs)
        if outlines is not None:  # the image goes below the outlines it keeps
            layers = self._viewer.layers
            layers.move(layers.index(image), layers.index(outlines))
        self._viewer.reset_view()  # the new image fills the canvas, whatever the last one's zoom
        status = f"{name}: {entry.state}"
        try:
            self._show_cells(name)
            if entry.state == "to review":
                self.dataset.set_state(name, "in progress")
                status = f"{name}: in progress"
        except (OSError, ValueError) as error:  # a damaged cells file: shown, never overwritten
            self.notify_error(f"cannot show {name}'s cells: {error}")
            status = self._status.value
        self._refresh_list()
        self._status.value = status

    def _reuse_outlines(self, name: str):
        """The outlines Shapes layer shown so far, emptied and renamed ``<name> outlines`` (or None)."""
        from napari.layers import Shapes

        layers = self._viewer.layers
        target = outlines_layer_name(name)
        for owner in (name, self.current):
            layer_name = None if owner is None else outlines_layer_name(owner)
            if layer_name not in layers or not isinstance(layers[layer_name], Shapes):
                continue
            if layer_name != target and target in layers:
                continue  # the name is taken by a layer of the user's
            layer = layers[layer_name]
            layer.name = target
            layer.data = []
            layer.metadata = {}
            layer.editable = False
            return layer
        return None

    def _show_cells(self, name: str) -> None:
        from napari.layers import Shapes

        self._remove_cells(name)
        layers = build_cell_layers(self.dataset, name)
        for layer in layers:
            target = self._outlines_layer(name)
            if isinstance(layer, Shapes) and target is not None:
                for step in self._outline_fill_steps(target, layer, name):
                    step()  # on the user's click: at once
                continue
            self._insert_cells(layer)
        if not layers:
            self._insert_waiting_layer(name)

    def _outlines_layer(self, name: str):
        """``<name> outlines`` if it is a Shapes layer in the viewer, else None."""
        from napari.layers import Shapes

        layer_name = outlines_layer_name(name)
        if layer_name in self._viewer.layers and isinstance(self._viewer.layers[layer_name], Shapes):
            return self._viewer.layers[layer_name]
        return None

    def _insert_waiting_layer(self, name: str) -> None:
        """Empty, locked ``<name> cells`` and ``<name> outlines`` layers that the background run fills in.

        napari's insertion of a Labels layer takes 0.15-0.25 s on the GUI
        thread (its vispy overlays and layer controls), and the first paint
        of a Shapes layer compiles its GL programs (0.23 s on software
        OpenGL): too long a freeze to happen by surprise mid-run. Both happen
        here, on the user's click: the outlines layer holds one invisible
        triangle so that it is drawn now, and the cells later only replace
        the data. Locked so that nothing is painted that the prediction would
        then overwrite.
        """
        from napari.layers import Labels, Shapes

        image = self._viewer.layers[name]
        shape = image.data.shape[:2] if image.rgb else image.data.shape
        placement = {"scale": image.scale[: len(shape)], "translate": image.translate[: len(shape)]}
        waiting = Labels(
            np.zeros(shape, np.int32), name=cells_layer_name(name), metadata={WAITING_KEY: True}, **placement
        )
        waiting.editable = False
        self._insert_cells(waiting, name, connect=False)
        kept = self._outlines_layer(name)
        if kept is not None:  # drawn before: its GL programs are built
            kept.metadata = {WAITING_KEY: True}
            kept.editable = False
            return
        outlines = Shapes(
            [WARM_UP_TRIANGLE],
            shape_type="polygon",
            edge_color="transparent",
            face_color="transparent",
            name=outlines_layer_name(name),
            metadata={WAITING_KEY: True},
            **placement,
        )
        self._insert_cells(outlines, name, connect=False)
        outlines.editable = False  # after the insertion, which makes a 2-D Shapes layer editable

    def _show_cells_in_background(self, name: str) -> None:
        """Show cells that were just segmented: built in a worker, inserted one layer per turn.

        Reading the cells file and building the outlines take most of a second
        for a few hundred cells, and napari's insertion of a Labels and a
        Shapes layer ~0.1 s each: together in one event-loop turn they froze
        the GUI for 2.8 s (benchmarks/README.md, "Review dataset heartbeat").
        """
        from napari.layers import Labels, Shapes
        from napari.qt.threading import create_worker

        from napari_livecell._qt.layer_updates import run_in_turns

        def insert_in_turns(layers: list) -> None:
            if name != self.current:
                return  # the user moved on while the layers were built
            waiting = self._waiting_layer(name)
            self._remove_cells(name, keep=waiting)
            outlines_target = self._outlines_layer(name)  # waiting, or kept from the image before
            # inserted hidden, shown a turn later: a layer's first paint builds its GL programs
            steps = []
            for layer in layers:
                if waiting is not None and isinstance(layer, Labels):
                    steps.append(lambda layer=layer: self._fill_waiting_layer(waiting, layer, name, "data"))
                    steps.append(lambda layer=layer: self._fill_waiting_layer(waiting, layer, name, "rest"))
                    continue
                if outlines_target is not None and isinstance(layer, Shapes):
                    steps.extend(self._outline_fill_steps(outlines_target, layer, name))
                    continue
                layer.visible = False
                steps.append(lambda layer=layer: self._insert_cells(layer, name))
                steps.append(lambda layer=layer: setattr(layer, "visible", True))
            run_in_turns(steps, STEP_PAUSE_MS)

        worker = create_worker(build_cell_layers, self.dataset, name)
        worker.returned.connect(insert_in_turns)
        worker.errored.connect(lambda error: self.notify_error(f"could not show {name}'s cells: {error}"))
        worker.start()

    def _remove_cells(self, name: str, keep=None) -> None:
        """Remove ``<name> cells`` (unless it is ``keep``); its outlines layer stays, to be refilled."""
        layer_name = cells_layer_name(name)
        if layer_name in self._viewer.layers and not same_layer(self._viewer.layers[layer_name], keep):
            self._viewer.layers.remove(layer_name)

    def _waiting_layer(self, name: str):
        """The empty cells layer waiting for ``name``'s cells, if it is still in the viewer."""
        layer_name = cells_layer_name(name)
        if layer_name in self._viewer.layers:
            layer = self._viewer.layers[layer_name]
            if layer.metadata.get(WAITING_KEY):
                return layer
        return None

    def _outline_fill_steps(self, target, outlines, name: str) -> list:
        """Steps (one per event-loop turn) giving the Shapes layer ``target`` ``outlines``' shapes and table.

        ``target`` is the image's outlines layer, waiting or kept from the
        image before: refilled, never replaced (see :meth:`show_image`). napari
        triangulates the added polygons on the GUI thread (~0.1 ms each), so
        they go in chunks; the layer keeps its GL programs.
        """

        def still_current() -> bool:
            return name == self.current and same_layer(self._outlines_layer(name), target)

        def clear() -> None:
            if still_current():
                target.visible = False  # shown complete, not chunk by chunk
                target.data = []

        def add(start: int) -> None:
            if still_current():
                end = start + OUTLINES_PER_TURN
                target.add(
                    outlines.data[start:end],
                    shape_type=outlines.shape_type[start:end],
                    edge_width=list(outlines.edge_width[start:end]),
                    edge_color=outlines.edge_color[start:end],
                    face_color=outlines.face_color[start:end],
                )

        def finish() -> None:
            if still_current():
                target.features = outlines.features
                target.metadata = outlines.metadata  # without the waiting flag from now on
                match_placement(target, outlines)
                target.editable = True
                target.visible = outlines.visible

        chunks = [lambda start=start: add(start) for start in range(0, len(outlines.data), OUTLINES_PER_TURN)]
        return [clear, *chunks, finish]

    def _fill_waiting_layer(self, waiting, cells, name: str, part: str) -> None:
        """Give the waiting layer the cells' ``"data"``, then (a turn later) the ``"rest"``.

        Each napari setter costs 30-60 ms here (events, dims, a refresh), so
        the data and the attributes take a turn each, and the placement is set
        only when it differs. With the rest it becomes the editable result.
        """
        if name != self.current or not same_layer(self._waiting_layer(name), waiting):
            return
        if part == "data":
            waiting.data = cells.data
            return
        match_placement(waiting, cells)
        waiting.opacity = cells.opacity
        waiting.features = cells.features
        waiting.metadata = cells.metadata  # without the waiting flag from now on
        waiting.editable = True
        self._connect_autosave(waiting)

    def _insert_cells(self, layer, name: str | None = None, connect: bool = True) -> None:
        """Put one cell layer in the viewer (if its image is still the current one)."""
        from napari.layers import Labels

        from napari_livecell._qt.layer_updates import insert_inactive

        if name is not None and name != self.current:
            return
        if layer.name in self._viewer.layers:
            self._viewer.layers.remove(layer.name)
        # below the image's outlines layer, when one is kept (it is refilled, not inserted)
        outlines = self._outlines_layer(self.current) if self.current else None
        index = len(self._viewer.layers) if outlines is None else self._viewer.layers.index(outlines)
        insert_inactive(self._viewer.layers, index, layer)
        if connect and isinstance(layer, Labels):
            self._connect_autosave(layer)

    def _connect_autosave(self, layer) -> None:
        for event in (layer.events.paint, layer.events.set_data, layer.events.features):
            event.connect(self._changed)

    # measurements --------------------------------------------------------------
    def save_dataset_csv(self, path: str | Path | None = None):
        """Measure every segmented image in the background into one per-cell CSV and its summary.

        The current image's edits are saved first, so the CSV holds what the
        viewer shows. Returns the thread worker (``None`` when nothing starts).
        """
        from napari.qt.threading import create_worker

        if self.dataset is None:
            self.notify_error("open a folder of images first")
            return None
        if path is None:
            from qtpy.QtWidgets import QFileDialog

            suggested = self.dataset.folder.parent / f"{self.dataset.folder.parent.name}_cells.csv"
            chosen, _ = QFileDialog.getSaveFileName(
                self.native, "Save the dataset's measurements", str(suggested), "CSV (*.csv)"
            )
            if not chosen:
                return None
            path = chosen
        path = Path(path)
        if path.suffix.lower() != ".csv":
            self.notify_error(f"{path.name}: measurements are saved as a .csv file")
            return None
        self.save()
        worker = create_worker(measure_dataset, self.dataset, path)
        worker.yielded.connect(self._on_measure_progress)
        worker.returned.connect(self._on_measured)
        worker.errored.connect(lambda error: self.notify_error(f"measuring the dataset failed: {error}"))
        worker.finished.connect(self._end_measuring)
        self._save_csv.enabled = False
        self._measuring = worker
        worker.start()
        return worker

    def _on_measure_progress(self, progress: tuple[int, int]) -> None:
        done, total = progress
        self._progress.max = max(total, 1)
        self._progress.value = done
        self._status.value = f"measuring: {done} of {total} image(s)"

    def _on_measured(self, result: tuple[Path, int, int]) -> None:
        path, n_cells, n_images = result
        self._status.value = f"{n_cells} cells of {n_images} image(s) measured: {path.name} and its summary"

    def _end_measuring(self) -> None:
        self._measuring = None
        self._save_csv.enabled = True

    # saving --------------------------------------------------------------------
    def _changed(self, _event=None) -> None:
        self._dirty = True
        self._autosave.start()

    def save(self, _=None) -> None:
        """Write the current image's cells to the dataset now, if they changed (atomic)."""
        self._autosave.stop()
        if self.dataset is None or self.current is None or not self._dirty:
            return
        name = cells_layer_name(self.current)
        if name not in self._viewer.layers or self._viewer.layers[name].metadata.get(WAITING_KEY):
            return  # a layer still waiting for its cells holds nothing of the user's
        data, attributes, _ = self._viewer.layers[name].as_layer_data_tuple()
        try:
            self.dataset.save_cells(self.current, data, attributes)
        except (OSError, ValueError) as error:
            self.notify_error(f"could not save {self.current}: {error}")
            return
        self._dirty = False
        self._status.value = f"saved {self.current}"
