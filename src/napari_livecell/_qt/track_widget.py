"""The "Track cells" dock widget: one id per cell over time, a Tracks layer, review, growth curves.

Tracking runs in a napari thread worker over :func:`napari_livecell.core.tracking.track.iter_track_cells`,
which yields once per frame read and relabelled (Cancel takes effect there;
linking is one short step). The result is applied on the GUI thread:
an in-memory Labels stack is relabelled in place through one
``data_setitem`` call, so that Ctrl+Z undoes the whole tracking in one step;
a lazy (dask) stack, a stack whose dtype cannot hold the new ids, or one
where more than :data:`UNDO_LIMIT` pixels change gets its data replaced
instead (not undoable, said in the status line).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    ProgressBar,
    PushButton,
    SpinBox,
)
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QVBoxLayout, QWidget

from napari_livecell._qt.docking import fit_dock
from napari_livecell._qt.layer_updates import follow_layers, is_result_labels, layer_kind
from napari_livecell._qt.proofread_widget import follower_for
from napari_livecell._qt.run_controls import BackgroundRun, RunControls
from napari_livecell.core.analysis.growth import (
    growth_curves,
    plot_growth,
    write_growth_csv,
    write_growth_png,
)
from napari_livecell.core.images import check_labels
from napari_livecell.core.tracking.edits import TrackCorrection, correct_track_id
from napari_livecell.core.tracking.track import TrackingResult, iter_track_cells, review_flags

if TYPE_CHECKING:
    import napari
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
    from matplotlib.figure import Figure

# pixels whose id may change in one undoable step: napari keeps their indices
# (3 x 8 bytes) and old and new values in the undo history, ~0.6 GB at this size
UNDO_LIMIT = 20_000_000
GROWTH_DELAY_MS = 300


@dataclass
class TrackOutcome:
    """What the worker hands back to the GUI thread."""

    result: TrackingResult | None = None
    changed: tuple[np.ndarray, ...] | None = None
    values: np.ndarray | None = None
    flags: pd.DataFrame = field(default_factory=pd.DataFrame)
    growth: pd.DataFrame | None = None
    error: str = ""


def tracking_run(data: Any, options: dict) -> Generator[tuple[str, int, int], None, TrackOutcome]:
    """Track ``data`` (no Qt; runs in the worker thread); failures come back as one line."""
    try:
        result = yield from iter_track_cells(data, **options)
        outcome = TrackOutcome(result=result, flags=review_flags(result.table))
        if isinstance(data, np.ndarray) and isinstance(result.labels, np.ndarray):
            fits = result.labels.size == 0 or result.labels.max() <= np.iinfo(data.dtype).max
            changed = np.nonzero(data != result.labels) if fits else None
            if changed is not None and changed[0].size <= UNDO_LIMIT:
                outcome.changed, outcome.values = changed, result.labels[changed]
        outcome.growth = growth_curves(result.labels)
        return outcome
    except Exception as error:  # shown as one line in napari, never as a traceback
        return TrackOutcome(error=f"tracking failed: {error}")


def is_stack(layer: Any) -> bool:
    """A Labels layer of three axes: a (T, Y, X) stack to track."""
    return layer_kind(layer) == "labels" and layer.ndim == 3


def is_result_stack(layer: Any) -> bool:
    """A result Labels stack (made by Segment cells, or read from a COCO file)."""
    return is_stack(layer) and is_result_labels(layer)


def notify_error(status: Any, message: str) -> None:
    """A problem as one line: the status label and a napari error notification."""
    from napari.utils.notifications import show_error

    status.value = message
    show_error(message)


class TrackCellsWidget(BackgroundRun, Container):
    """Link the cells of a Labels stack over time, review the tracks, plot growth curves."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self._layer = ComboBox(label="labels", choices=self._labels_choices, nullable=True)
        self._layer.tooltip = "a stack of label images, (T, Y, X)"
        self._max_distance = FloatSpinBox(label="max move", value=0.0, min=0.0, max=10_000.0)
        self._max_distance.tooltip = "the farthest a cell moves between frames, in pixels; 0: estimated"
        self._max_gap = SpinBox(label="max gap", value=1, min=0, max=10)
        self._max_gap.tooltip = "frames in a row a cell may be missed and still keep its track"
        self._divisions = CheckBox(text="find divisions", value=True)
        self._run = PushButton(text="Track")
        self._cancel = PushButton(text="Cancel", enabled=False)
        self._progress = ProgressBar(label="progress", min=0, max=1, value=0)
        self._status = Label(label="status", value="")
        self._next = PushButton(text="Next track to review")
        self._review = Label(label="review", value="")
        self._new_id = SpinBox(label="right id", value=1, min=1, max=2**31 - 1)
        self._correct = PushButton(text="Set this id from here on")
        self._correct.tooltip = "give the selected cell the right id from this frame on"
        self._undo_correct = PushButton(text="Undo last correction", enabled=False)
        self._save_csv = PushButton(text="Save growth CSV...")
        self._save_png = PushButton(text="Save growth PNG...")
        self._controls = RunControls(self._run, self._cancel, self._status, "tracking")
        self.extend(
            [
                self._layer,
                self._max_distance,
                self._max_gap,
                self._divisions,
                self._run,
                self._cancel,
                self._progress,
                self._status,
                self._next,
                self._review,
                self._new_id,
                self._correct,
                self._undo_correct,
            ]
        )
        # the plot's canvas is made when there is something to plot: importing matplotlib's Qt
        # backend would be most of the dock's opening time
        self._plot_area = QWidget()
        self._plot_area.setMinimumHeight(320)
        self._plot_layout = QVBoxLayout(self._plot_area)
        self._plot_layout.setContentsMargins(0, 0, 0, 0)
        self.native.layout().addWidget(self._plot_area)
        self._figure: Figure | None = None
        self._canvas: FigureCanvasQTAgg | None = None
        self.extend([self._save_csv, self._save_png])
        fit_dock(self, [self._status])
        # a narrow dock leaves the canvas most of the window
        self.native.setMaximumWidth(460)
        self.growth: pd.DataFrame | None = None
        self.result: TrackingResult | None = None
        self.flags = pd.DataFrame()
        self._review_index = -1
        self._reviewed_layer: Any = None
        self.corrections: list[TrackCorrection] = []
        self._watched: Any = None
        # parented: the timer goes with the dock, never firing into a deleted widget
        self._growth_timer = QTimer(self.native)
        self._growth_timer.setSingleShot(True)
        self._growth_timer.setInterval(GROWTH_DELAY_MS)
        self._growth_timer.timeout.connect(self.update_growth)

        self._run.changed.connect(self.run)
        self._cancel.changed.connect(self.cancel)
        self._next.changed.connect(self.next_review)
        self._correct.changed.connect(lambda: self.correct_id())
        self._undo_correct.changed.connect(lambda: self.undo_correction())
        self._save_csv.changed.connect(lambda: self.save_growth_csv())
        self._save_png.changed.connect(lambda: self.save_growth_png())
        self._layer.changed.connect(self._watch)
        # a result stack first, else any stack; a 2-D layer (a ground truth frame) only by hand
        self._keep_layer = follow_layers(viewer, self._layer, is_result_stack, is_stack)
        self.native.destroyed.connect(lambda: self._watch(None))
        self._watch(self._layer.value)

    @property
    def figure(self) -> Figure:
        """The growth plot's figure (made, with its canvas, on first use)."""
        if self._figure is None:
            from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
            from matplotlib.figure import Figure

            self._figure = Figure(figsize=(4, 4.5), dpi=90)
            self._canvas = FigureCanvasQTAgg(self._figure)
            self._plot_layout.addWidget(self._canvas)
        return self._figure

    @property
    def canvas(self) -> FigureCanvasQTAgg:
        """The Qt canvas that shows :attr:`figure`."""
        if self._canvas is None:
            self.figure  # noqa: B018 (the figure's first use makes the canvas too)
        assert self._canvas is not None
        return self._canvas

    def reset_choices(self, *args) -> None:
        """Keep the chosen layer through napari's refresh on every layer change (a rename included)."""
        self._keep_layer()
        super().reset_choices(*args)

    # choices and growth ------------------------------------------------------
    def _labels_choices(self, _widget=None) -> list:
        from napari.layers import Labels

        return [(layer.name, layer) for layer in self._viewer.layers if isinstance(layer, Labels)]

    def _watch(self, layer: Any) -> None:
        """Follow the chosen layer's edits: the growth curves are redrawn after a pause."""
        if self._watched is not None:
            for name in ("data", "paint", "labels_update"):
                getattr(self._watched.events, name).disconnect(self._schedule_growth)
        self._watched = layer
        if layer is not None:
            for name in ("data", "paint", "labels_update"):
                getattr(layer.events, name).connect(self._schedule_growth)
            self._schedule_growth()

    def _schedule_growth(self, _event=None) -> None:
        # a paint stroke sends many events: redraw once, after a pause
        self._growth_timer.start()

    def update_growth(self, table: pd.DataFrame | None = None) -> pd.DataFrame | None:
        """Recompute (for an in-memory stack) and redraw the growth curves of the chosen layer."""
        layer = self._layer.value
        if table is None:
            if layer is None or not isinstance(layer.data, np.ndarray) or layer.data.ndim not in (2, 3):
                return self.growth  # a lazy stack is measured by a tracking run, not on the GUI thread
            table = growth_curves(layer.data)
        self.growth = table
        plot_growth(self.figure, table, title=layer.name if layer is not None else "")
        self.canvas.draw_idle()
        return table

    def save_growth_csv(self, path: str | Path | None = None) -> Path | None:
        """Write the growth curves as CSV (asks where when no path is given)."""
        path = path or self._ask_path("Save growth curves", "CSV (*.csv)", ".csv")
        if path is None or self.growth is None:
            return None
        return write_growth_csv(path, self.growth)

    def save_growth_png(self, path: str | Path | None = None) -> Path | None:
        """Write the growth curves as a PNG (asks where when no path is given)."""
        path = path or self._ask_path("Save growth plot", "PNG (*.png)", ".png")
        if path is None or self.growth is None:
            return None
        layer = self._layer.value
        return write_growth_png(path, self.growth, title=layer.name if layer is not None else "")

    def _ask_path(self, title: str, kinds: str, suffix: str) -> Path | None:
        from qtpy.QtWidgets import QFileDialog

        if self.growth is None:
            notify_error(self._status, "no growth curves yet: choose a Labels stack")
            return None
        layer = self._layer.value
        start = f"{layer.name if layer is not None else 'growth'}_growth{suffix}"
        chosen, _ = QFileDialog.getSaveFileName(self.native, title, start, kinds)
        return Path(chosen) if chosen else None

    # running -----------------------------------------------------------------

    def _input(self) -> tuple[Any, Any]:
        """The chosen layer and the data to track; raises ValueError for a wrong choice."""
        layer = self._layer.value
        if layer is None:
            raise ValueError("no Labels layer to track: open or segment a time-lapse first")
        if getattr(layer, "multiscale", False):
            raise ValueError(f"{layer.name!r} is multiscale: tracking needs a single-resolution stack")
        if layer.data.ndim != 3:
            raise ValueError(f"{layer.name!r} is {layer.data.ndim}-D: tracking needs a (T, Y, X) stack")
        data = layer.data
        check_labels(data, repr(layer.name), "choose a Labels stack made by Segment cells")
        # a copy of an in-memory stack: the user may go on painting while the worker reads it
        return layer, np.array(data) if isinstance(data, np.ndarray) else data

    def run(self, _=None):
        """Start tracking the chosen layer; return the worker (None when the choice is wrong)."""
        from napari.qt.threading import create_worker

        try:
            layer, data = self._input()
        except ValueError as error:
            notify_error(self._status, str(error))
            return None
        options = {
            "max_distance": float(self._max_distance.value) or None,
            "max_gap": int(self._max_gap.value),
            "divisions": bool(self._divisions.value),
        }
        n_frames = data.shape[0]
        # progress counts frames: each pass over the stack (measuring, relabelling) runs 0..T
        worker = create_worker(tracking_run, data, options, _progress={"total": n_frames, "desc": "tracking"})
        pbar = getattr(worker, "pbar", None)
        if pbar is not None:
            worker.yielded.disconnect(pbar.increment_with_overflow)
        worker.yielded.connect(self._on_step)
        worker.returned.connect(lambda outcome: self._on_returned(layer, outcome))
        worker.aborted.connect(lambda: setattr(self._status, "value", "cancelled: the layer is unchanged"))
        worker.finished.connect(self._controls.end)
        self._progress.max, self._progress.value = n_frames, 0
        return self._controls.begin(worker, f"tracking {layer.name}...")

    def cancel(self, _=None) -> None:
        """Stop after the frame in progress (linking, one step, runs to its end); nothing changes."""
        if self.worker is not None:
            self.worker.quit()
            self._status.value = "cancelling..."

    def _on_step(self, step: tuple[str, int, int]) -> None:
        stage, done, total = step
        frames = self._progress.max
        value = {"measuring": done, "linking": frames * done, "relabelling": done}[stage]
        self._progress.value = min(value, frames)
        self._status.value = f"{stage} {done}/{total} frames" if stage != "linking" else "linking..."
        pbar = getattr(self.worker, "pbar", None)
        if pbar is not None:
            pbar.set_description(stage)
            pbar.update(min(value, frames) - pbar.n)

    def _on_returned(self, layer: Any, outcome: TrackOutcome) -> None:
        if outcome.error or outcome.result is None:
            notify_error(self._status, outcome.error or "tracking failed")
            return
        result = self.result = outcome.result
        # a result layer's table, statuses and prediction follow the new ids (and an undo) as any edit
        follower = follower_for(self._viewer, layer) if is_result_labels(layer) else None
        if outcome.changed is not None:
            layer.data_setitem(outcome.changed, outcome.values)
            how = "relabelled in place (Ctrl+Z undoes it)"
        else:
            layer.data = result.labels
            how = "data replaced (not undoable: lazy, too large or ids beyond its dtype)"
        if follower is not None and isinstance(layer.data, np.ndarray):
            follower.flush()
        self._show_tracks(layer, result)
        self.flags, self._review_index, self._reviewed_layer = outcome.flags, -1, layer
        self.corrections.clear()  # they refer to the tracks replaced
        self._undo_correct.enabled = False
        if outcome.growth is not None and self._layer.value is layer:
            self.update_growth(outcome.growth)
        n_tracks = result.table["track_id"].nunique() if not result.table.empty else 0
        divisions = len({parents[0] for parents in result.graph.values()})
        self._progress.value = self._progress.max
        self._status.value = f"{n_tracks} tracks, {divisions} divisions, {len(self.flags)} to review; {how}"

    def _show_tracks(self, layer: Any, result: TrackingResult) -> Any:
        """Add or update the ``<name> tracks`` layer, in the labels' world coordinates."""
        from napari.layers import Tracks

        name = f"{layer.name} tracks"
        per_track = result.features.drop(columns=["first_frame", "last_frame"], errors="ignore")
        features = result.table[["track_id", "t", "area"]].merge(per_track, on="track_id", how="left")
        features = features.drop(columns=["mean_area"], errors="ignore")
        data = result.napari_tracks
        if name in self._viewer.layers and isinstance(self._viewer.layers[name], Tracks):
            tracks = self._viewer.layers[name]
            tracks.graph = {}
            tracks.data = data
            tracks.graph = result.graph
            tracks.features = features
            return tracks
        return self._viewer.add_tracks(
            data,
            graph=result.graph,
            features=features,
            name=name,
            scale=layer.scale,
            translate=layer.translate,
            tail_length=10,
        )

    # corrections -------------------------------------------------------------
    def correct_id(
        self, track_id: int | None = None, new_id: int | None = None, t: int | None = None
    ) -> TrackCorrection | None:
        """From frame ``t`` on, give track ``track_id`` the id ``new_id`` (and ``new_id`` the old one).

        Defaults: the Labels layer's selected label, the "right id" box, the
        frame shown. Only the two tracks' pixels from ``t`` on change (one
        undoable ``data_setitem``), their rows of the Tracks layer, lineage
        and features; nothing is tracked again.
        """
        layer = self._reviewed_layer
        try:
            if layer is None or self.result is None:
                raise ValueError("track a stack first: corrections apply to the tracked layer")
            if not isinstance(layer.data, np.ndarray):
                raise ValueError(f"{layer.name!r} is lazy: correct ids in an in-memory stack")
            if t is None:
                t = round(float(layer.world_to_data(self._viewer.dims.point)[-3]))
            track_id = int(layer.selected_label if track_id is None else track_id)
            new_id = int(self._new_id.value if new_id is None else new_id)
            correction = correct_track_id(layer.data, self.result, t, track_id, new_id)
        except ValueError as error:
            notify_error(self._status, f"correction refused: {error}")
            return None
        layer.data_setitem(correction.changed, correction.after)
        self._use_corrected(layer, correction.result)
        self.corrections.append(correction)
        self._undo_correct.enabled = True
        self._status.value = (
            f"track {track_id} is {new_id} from frame {t} on (and {new_id} is {track_id}); "
            f"{len(correction.before)} pixels, {len(correction.touched_tracks)} tracks re-linked"
        )
        return correction

    def undo_correction(self) -> TrackCorrection | None:
        """Undo the last correction: ids, Tracks layer, lineage and features as they were."""
        if not self.corrections:
            self._status.value = "no correction to undo"
            return None
        correction = self.corrections.pop()
        layer = self._reviewed_layer
        layer.data_setitem(correction.changed, correction.before)
        self._use_corrected(layer, correction.previous)
        self._undo_correct.enabled = bool(self.corrections)
        a, b = correction.tracks
        self._status.value = f"correction of tracks {a} and {b} undone"
        return correction

    def _use_corrected(self, layer: Any, result: TrackingResult) -> None:
        """Show corrected (or restored) tracks; the growth curves follow the layer's edit event."""
        self.result = TrackingResult(
            labels=layer.data, table=result.table, graph=result.graph, features=result.features
        )
        self._show_tracks(layer, self.result)
        self.flags, self._review_index = review_flags(self.result.table), -1

    # review ------------------------------------------------------------------
    def next_review(self, _=None) -> pd.Series | None:
        """Go to the next flagged track: set the time slider to its frame and centre the camera on it."""
        if self.flags.empty or self._reviewed_layer is None:
            tracked = self._reviewed_layer is not None
            self._review.value = "no track flagged in this stack" if tracked else "track a stack first"
            return None
        self._review_index = (self._review_index + 1) % len(self.flags)
        flag = self.flags.iloc[self._review_index]
        layer = self._reviewed_layer
        world = np.asarray(layer.data_to_world((flag["t"], flag["y"], flag["x"])), dtype=float)
        time_axis = self._viewer.dims.ndim - 3
        self._viewer.dims.set_point(time_axis, world[0])
        _camera(self._viewer).center = (float(world[1]), float(world[2]))
        self._review.value = (
            f"{self._review_index + 1}/{len(self.flags)}: track {flag['track_id']} "
            f"{flag['kind']} at frame {flag['t']} ({flag['detail']})"
        )
        return flag


def _camera(viewer: Any) -> Any:
    """The viewer's camera: ``viewer.scene.camera`` from napari 0.9, ``viewer.camera`` before."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera
