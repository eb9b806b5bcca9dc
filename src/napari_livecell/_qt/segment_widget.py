"""The "Segment cells" dock widget: thin glue between napari and the core.

The model runs in a napari thread worker that yields once per frame (and
tile), so the progress bar moves, Cancel takes effect within one frame and
the GUI never waits on the network. Result layers are built from the core's
:class:`~napari_livecell.core.segmentation.Segmentation` by
:func:`napari_livecell.layers.result_layer_data`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.types import FileDialogMode
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSlider,
    FloatSpinBox,
    Label,
    LineEdit,
    ProgressBar,
    PushButton,
    SpinBox,
)

from napari_livecell._qt.docking import fit_dock
from napari_livecell._qt.inference_stack import loading_first, starting_message
from napari_livecell._qt.layer_updates import (
    activate,
    filter_colors,
    insert_inactive,
    layer_kind,
    mark_edited,
    replace_layer,
    shown_frame,
    update_layer,
    warm_up_text_glyphs,
)
from napari_livecell._qt.layout import short_browse
from napari_livecell._qt.model_picker import (
    chosen_weights,
    device_choices,
    model_choices,
    register_segment_model_picker,
    remember_model,
)
from napari_livecell._qt.proofread_assist import MODEL_KEY, model_record
from napari_livecell._qt.run_controls import BackgroundRun, RunControls
from napari_livecell._qt.segment_worker import (
    TILE_STEPS,
    FrameReady,
    PreparedLayers,
    RunFailure,
    channel_choices,
    check_image_layer,
    choose_channel,
    layer_pixel_size,
    prepare_result_layers,
    segment_generator,
)
from napari_livecell.core.inference.predict import DEFAULT_CONF, DEFAULT_IMGSZ, DEFAULT_IOU, MODALITIES
from napari_livecell.core.models.runtime import available_runtimes
from napari_livecell.core.segmentation import new_label_stack
from napari_livecell.layers import RESULT_KEY, cells_layer_name

if TYPE_CHECKING:
    import napari

STEP_PAUSE_MS = 5  # between the steps that put result layers in place


class SegmentCellsWidget(BackgroundRun, Container):
    """Segment the selected image with a YOLO-seg model; show cells and outlines."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        # torch and Ultralytics load, and napari's layer code warms up, in the first run's worker
        # (inference_stack): opening the dock is quick
        super().__init__(labels=True)
        self._viewer = viewer
        self._adding_layers = False
        # the result Labels layer made empty at Run (a stack fills it frame by frame);
        # removed again if the run does not finish
        self._placeholder = None
        self._backend = None  # the last run's, to say what ran it
        self.confirm_replace: Callable[[str], bool] = self._ask_replace

        self._image = ComboBox(label="image", choices=self._image_layer_choices, nullable=True)
        self._channel = ComboBox(label="channel", choices=self._channel_choices, visible=False)
        self._modality = ComboBox(label="modality", choices=MODALITIES, value="auto")
        self._model = ComboBox(label="model", choices=model_choices)
        self._weights = FileEdit(
            label="weights",
            filter="*.pt *.onnx *.torchscript",
            mode=FileDialogMode.EXISTING_FILE,
            nullable=True,
        )
        self._weights.tooltip = "a model file (.pt, .onnx, .torchscript); empty: the model chosen above"
        self._service = LineEdit(label="service", value="")
        self._service.tooltip = (
            "a napari-livecell service (http://HOST:PORT) or a model on a Triton Inference Server "
            "(triton+http://HOST:PORT/MODEL): see docs/triton.md"
        )
        self._scheduler = LineEdit(label="Dask", value="")
        self._scheduler.tooltip = (
            "a Dask scheduler address (tcp://HOST:PORT), optional: frames run on its cluster"
        )
        self._conf = FloatSlider(label="confidence", value=DEFAULT_CONF, min=0.01, max=1.0, step=0.01)
        self._iou = FloatSlider(label="NMS IoU", value=DEFAULT_IOU, min=0.05, max=1.0, step=0.01)
        self._imgsz = SpinBox(label="image size", value=DEFAULT_IMGSZ, min=64, max=4096, step=32)
        self._device = ComboBox(label="device", choices=device_choices)
        self._runtime = ComboBox(label="runtime", choices=available_runtimes(), value="auto")
        self._runtime.tooltip = (
            "what runs the network on the CPU: auto picks OpenVINO, then ONNX Runtime when installed "
            "(faster than torch, same cells), else torch: see docs/runtime.md"
        )
        self._tile = CheckBox(label="tile large frames", value=True)
        self._pixel_size = FloatSpinBox(label="pixel (µm)", value=0.0, min=0.0, max=1000.0, step=0.001)
        self._pixel_size.tooltip = "micrometres per pixel; 0: from the layer's scale or the file's metadata"
        self._run = PushButton(text="Run")
        self._cancel = PushButton(text="Cancel", enabled=False)
        self._progress = ProgressBar(label="progress", min=0, max=1, value=0)
        self._status = Label(label="status", value="")
        self._min_score = FloatSlider(label="min score", value=0.0, min=0.0, max=1.0, step=0.01)
        self._min_area = SpinBox(label="min area", value=0, min=0, max=10**7)
        self._max_area = SpinBox(label="max area", value=10**7, min=0, max=10**7)
        self._controls = RunControls(self._run, self._cancel, self._status, "segmentation")

        self._advanced = CheckBox(text="advanced settings", value=False)
        self._advanced_controls = [
            self._weights,
            self._service,
            self._scheduler,
            self._iou,
            self._imgsz,
            self._device,
            self._runtime,
            self._tile,
            self._pixel_size,
        ]
        self.extend(
            [
                self._image,
                self._channel,
                self._modality,
                self._model,
                self._conf,
                self._advanced,
                *self._advanced_controls,
                self._run,
                self._cancel,
                self._progress,
                self._status,
                Label(value="<b>filters</b> (live)"),
                self._min_score,
                self._min_area,
                self._max_area,
            ]
        )
        self._advanced.changed.connect(self._show_advanced)
        self._show_advanced(False)
        self._run.changed.connect(self.run)
        self._cancel.changed.connect(self.cancel)
        self._weights.changed.connect(self._on_weights_chosen)
        self._image.changed.connect(self._update_channels)
        for control in (self._min_score, self._min_area, self._max_area):
            control.changed.connect(self.apply_filters)
        viewer.layers.events.inserted.connect(self._image.reset_choices)
        viewer.layers.events.removed.connect(self._image.reset_choices)
        viewer.layers.events.reordered.connect(self._image.reset_choices)
        self._select_first_image()
        short_browse(self._weights)
        fit_dock(self, [self._status])
        register_segment_model_picker(self._model)
        from qtpy.QtCore import QTimer

        QTimer.singleShot(0, lambda: warm_up_text_glyphs(self))  # once docked in napari's window

    def _show_advanced(self, shown: bool) -> None:
        """Rarely changed settings: weights, service, scheduler, IoU, size, device, runtime, tiles..."""
        for control in self._advanced_controls:
            control.visible = bool(shown)

    # choices -------------------------------------------------------------
    def _image_layer_choices(self, _widget=None) -> list:
        from napari.layers import Image

        return [(layer.name, layer) for layer in self._viewer.layers if isinstance(layer, Image)]

    def _channel_choices(self, _widget=None) -> list:
        return channel_choices(self._image.value) or [("all", None)]

    def _update_channels(self, _=None) -> None:
        """Offer a channel choice only for images that have channels to choose from."""
        self._channel.reset_choices()
        self._channel.visible = bool(channel_choices(self._image.value))

    def _select_first_image(self) -> None:
        choices = self._image_layer_choices()
        if choices and self._image.value is None:
            self._image.value = choices[-1][1]

    def _on_weights_chosen(self, path) -> None:
        if path and Path(path).is_file():
            remember_model(str(Path(path).resolve()))
            self._model.reset_choices()
            self._model.value = str(Path(path).resolve())

    # running -------------------------------------------------------------

    def _notify_error(self, message: str) -> None:
        self._controls.notify_error(message)

    def run(self, _=None):
        """Start segmenting the selected image layer; return the worker (or None)."""
        from napari.qt.threading import create_worker

        from napari_livecell.core.inference.predict import PredictSettings
        from napari_livecell.core.inference.run import Backend

        self._image.reset_choices()
        self._select_first_image()
        layer = self._image.value
        self._update_channels()
        try:
            rgb, leading = check_image_layer(layer)
            settings = PredictSettings(
                conf=float(self._conf.value),
                iou=float(self._iou.value),
                imgsz=int(self._imgsz.value),
                modality=str(self._modality.value),
            )
            data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
            channel = self._channel.value if channel_choices(layer) else None
            data, (scale, translate) = choose_channel(layer, data, channel)
            if channel is not None:
                rgb, leading = False, tuple(data.shape[:-2])
        except ValueError as error:
            self._notify_error(str(error))
            return None
        self._warn_if_labels(layer.name, data)
        weights = chosen_weights(self._model.value)
        typed = self._weights.value
        if typed is not None and str(typed).strip() not in ("", "."):
            if not Path(typed).is_file():
                # a model that cannot be loaded is an error, never a silent run of another model
                self._notify_error(f"weights file {str(typed)!r} not found: nothing was run")
                return None
            weights = str(Path(typed).resolve())
        service = str(self._service.value).strip()
        if service:
            from napari_livecell.core.inference.remote import is_service_url
            from napari_livecell.core.models.triton import is_triton_spec

            if not (is_service_url(service) or is_triton_spec(service)):
                self._notify_error(
                    f"{service!r} is neither a service URL (http://HOST:PORT) nor a Triton model "
                    "(triton+http://HOST:PORT/MODEL)"
                )
                return None
            weights = service  # a Triton model runs here, with only its network on the server
        scheduler = str(self._scheduler.value).strip() or None
        if scheduler and service:
            self._notify_error("use either a service URL or a Dask scheduler, not both")
            return None
        backend = Backend(
            weights=weights,
            device=self._device.value,
            tile=None if self._tile.value else False,
            scheduler=scheduler,
            runtime=self._runtime.value,
        )
        self._backend = backend
        common = {
            "scale": scale,
            "translate": translate,
            "metadata": {
                RESULT_KEY: {"source": layer.name, "source_path": _source_path(layer), "edited": False}
            },
        }
        finish = prepare_result_layers(layer.name, common)
        pixel_size = layer_pixel_size(layer, scale, float(self._pixel_size.value))
        # the Proofread dock's model help runs this very model and settings on the result
        common["metadata"][RESULT_KEY][MODEL_KEY] = model_record(
            weights, backend.device, backend.runtime, settings, backend.tile, pixel_size[0]
        )
        frame_shape = data.shape[len(leading) : len(leading) + 2]
        # the stack the worker writes finished frames into, and the filling-in layer shows
        labels_out = new_label_stack((*leading, *frame_shape)) if leading else None
        worker = create_worker(
            loading_first(segment_generator), data, rgb, backend, settings, finish, pixel_size, labels_out
        )
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(self._on_returned)
        worker.aborted.connect(self._on_cancelled)
        worker.finished.connect(self._on_finished)
        self._progress.value = 0
        self._controls.begin(worker, starting_message(f"segmenting {layer.name}..."))
        # inserted after the worker started: napari's 0.15-0.35 s of Labels insertion on this
        # thread overlaps the first frame's forward pass instead of delaying it (the worker's
        # first FrameReady reaches this thread only once this method has returned)
        self._add_placeholder(layer, labels_out, scale, translate)
        return worker

    def _warn_if_labels(self, name: str, data) -> None:
        from napari.utils.notifications import show_warning

        from napari_livecell.core.images import looks_like_labels

        if looks_like_labels(data):
            show_warning(
                f"{name!r} looks like a label image (flat integer regions on 0), not a microscope "
                "image: segmenting it anyway"
            )

    def cancel(self, _=None) -> None:
        """Stop after the frame in progress; the viewer's layers are left as they were."""
        if self._controls.worker is not None:
            self._controls.worker.quit()
            self._status.value = "cancelling after this frame..."

    def _add_placeholder(
        self,
        image_layer,
        labels_out,
        scale: tuple = (),
        translate: tuple = (),
    ) -> None:
        """An empty ``<image> cells`` layer, made at Run when it does not exist yet.

        Its data is ``labels_out``, the stack the worker writes finished frames
        into (``None``: a single frame, no layer to fill). Inserting a Labels
        layer is one of the longest GUI-thread steps of a run, and its first
        paint comes on top: so it is inserted hidden and shown one event-loop
        turn later (benchmarks/README.md has the costs). Existing result layers
        are not touched until the run has finished, so Cancel leaves them as
        they were.
        """
        from napari.layers import Labels
        from qtpy.QtCore import QTimer

        self._discard_placeholder()
        common = {
            "scale": scale or tuple(image_layer.scale),
            "translate": translate or tuple(image_layer.translate),
        }
        cells = cells_layer_name(image_layer.name)
        if labels_out is not None and cells not in self._viewer.layers:
            labels = Labels(labels_out, name=cells, visible=False, **common)
            insert_inactive(self._viewer.layers, len(self._viewer.layers), labels)
            labels.events.paint.connect(lambda _event, layer=labels: mark_edited(layer))
            self._placeholder = labels
            # activated (layer controls rebuilt) and shown in later turns, each apart
            QTimer.singleShot(STEP_PAUSE_MS, lambda: activate(self._viewer.layers, labels))
            QTimer.singleShot(3 * STEP_PAUSE_MS, lambda: setattr(labels, "visible", True))

    def _fill_in(self, ready: FrameReady) -> None:
        target = self._placeholder
        if target is None or target not in self._viewer.layers:
            return  # a re-run: the old result stays untouched until the new one is complete
        # the worker wrote the frame into the layer's data: only the frame on show needs redrawing
        # (a redraw per finished frame took CPU from the run: 1.48x a frame's time, 60 frames)
        if tuple(ready.index) == shown_frame(self._viewer, target):
            target.refresh()

    def _discard_placeholder(self) -> None:
        placeholder, self._placeholder = self._placeholder, None
        if placeholder is not None and placeholder in self._viewer.layers:
            self._viewer.layers.remove(placeholder)

    def _on_progress(self, progress: tuple[int, int] | FrameReady) -> None:
        if isinstance(progress, FrameReady):
            self._fill_in(progress)
            return
        done, total = progress
        self._progress.max = max(total, 1)
        self._progress.value = max(done, 0)
        frames = total // TILE_STEPS
        self._status.value = f"frame {min(frames, done // TILE_STEPS + 1)} of {frames}"

    def _on_cancelled(self) -> None:
        self._discard_placeholder()
        self._status.value = "cancelled; no layers changed"

    def _on_finished(self) -> None:
        if not self._adding_layers:
            self._set_idle()

    def _set_idle(self) -> None:
        self._discard_placeholder()  # still set only when the run did not finish
        self._adding_layers = False
        self._controls.end()

    def _on_returned(self, result: PreparedLayers | RunFailure) -> None:
        if isinstance(result, RunFailure):
            self._notify_error(str(result))
            return
        self._on_done(result)

    def _on_done(self, prepared: PreparedLayers) -> None:
        names = [kwargs["name"] for _, kwargs, _ in prepared.layer_data]
        layers = self._viewer.layers
        edited = [
            name
            for name in names
            if name in layers and layers[name].metadata.get(RESULT_KEY, {}).get("edited")
        ]
        if edited and not self.confirm_replace(", ".join(edited)):
            self._status.value = "kept the edited layers; new result discarded"
            return
        self._placeholder = None  # it is the result layer now
        self._status.value = (
            f"{prepared.n_cells} cells in {prepared.n_frames} frame(s); {prepared.ran_with}; "
            f"{prepared.modality}; {prepared.pixel_size}"
        )
        self._device.reset_choices()  # the GPUs torch sees, now that it is imported
        # one layer per event-loop turn, so that the GUI breathes between them
        steps: list[Callable[[], object]] = [
            partial(self._replace_or_add, data, kwargs, kind) for data, kwargs, kind in prepared.layer_data
        ]
        steps.append(partial(self.apply_filters, only=names))  # earlier results keep their colours
        self._run_steps(steps)

    def _run_steps(self, steps: list[Callable[[], object]]) -> None:
        from qtpy.QtCore import QTimer

        try:
            self.native.objectName()
        except RuntimeError:  # the window closed while result layers were being put in place
            return
        self._adding_layers = True
        rest = steps[1:]
        try:
            follow_up = steps[0]()
        except Exception as error:  # a napari failure must not leave the widget stuck
            self._notify_error(f"could not add the result layers: {error}")
            rest = []
        else:
            if callable(follow_up):  # a step may leave part of its work for the next turn
                rest = [follow_up, *rest]
        if rest:
            # a timer, not a 0 ms call: Qt runs those before paints and other timers are due
            QTimer.singleShot(STEP_PAUSE_MS, lambda: self._run_steps(rest))
        else:
            self._set_idle()

    def _replace_or_add(self, data, kwargs: dict, layer_type: str) -> Callable[[], None] | None:
        from napari.layers import Layer

        name = kwargs["name"]
        old = self._viewer.layers[name] if name in self._viewer.layers else None
        if isinstance(data, Layer):  # made in the worker: only inserted here
            visible = data.visible if old is None else old.visible
            # shown one step later: its first paint builds several GL programs, apart from this
            data.visible = False
            replace_layer(self._viewer.layers, old, data)
            return lambda: setattr(data, "visible", visible)
        if old is not None and layer_kind(old) == layer_type and old.ndim == np.ndim(data):
            update_layer(old, data, kwargs)  # a stack's filled-in placeholder, or a re-run's Labels
            return None
        if old is not None:
            self._viewer.layers.remove(old)
        layer = Layer.create(data, kwargs, layer_type)
        insert_inactive(self._viewer.layers, len(self._viewer.layers), layer)
        if layer_type != "labels":
            return None
        layer.events.paint.connect(lambda _event, layer=layer: mark_edited(layer))
        return lambda: activate(self._viewer.layers, layer)  # proofreading paints on it

    def _ask_replace(self, names: str) -> bool:
        from qtpy.QtWidgets import QMessageBox

        answer = QMessageBox.question(
            self.native,
            "Replace edited layers?",
            f"You edited {names}. Replace them with the new segmentation?",
        )
        return answer == QMessageBox.StandardButton.Yes

    # filters -------------------------------------------------------------
    def apply_filters(self, _=None, only: list[str] | None = None) -> None:
        """Hide cells below the score or outside the area range, in both layers.

        ``only`` names the layers to filter (a run's new layers); by default every result layer.
        """
        filters: dict[str, Any] = {
            "min_score": float(self._min_score.value),
            "min_area": int(self._min_area.value),
            "max_area": int(self._max_area.value),
        }
        for layer in self._viewer.layers:
            if only is not None and layer.name not in only:
                continue
            info = layer.metadata.get(RESULT_KEY) if hasattr(layer, "metadata") else None
            if not info or "score" not in layer.features:
                continue
            if layer_kind(layer) == "labels":
                info["filters"] = filters  # Proofread re-applies them after every edit
            colors = filter_colors(layer, **filters)
            if colors is not None:
                if layer_kind(layer) == "labels":
                    layer.colormap = colors
                else:
                    layer.edge_color = colors


def _source_path(layer) -> str | None:
    """The file an image layer was opened from (exports name it, with its extension)."""
    path = getattr(getattr(layer, "source", None), "path", None)
    return str(path) if path else None
