"""The "Measure cells" dock widget: a sortable per-cell table; a row click goes to its cell.

The numbers come from :mod:`napari_livecell.core.analysis.measure` (``regionprops_table``
per frame). A 2-D layer is measured at once; a stack in a napari thread
worker, one frame per step (progress, Cancel between frames), from a copy of
an in-memory stack so that painting during the run cannot tear a frame.
The table is a ``QTableView`` over the measurements' DataFrame: Qt asks only
for the rows on screen, so tens of thousands of cells show at once, and
sorting reorders the frame instead of Qt items.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from magicgui.widgets import ComboBox, Container, FloatSpinBox, Label, ProgressBar, PushButton
from qtpy.QtCore import QAbstractTableModel, QItemSelectionModel, QModelIndex, Qt
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableView

from napari_livecell._qt.docking import fit_dock
from napari_livecell._qt.layer_updates import follow_layers, is_result_labels, layer_kind
from napari_livecell._qt.run_controls import BackgroundRun, RunControls, notify_error
from napari_livecell.core.analysis.measure import (
    Measurements,
    iter_measure,
    measure_cells,
    summary_path,
    with_image_name,
    write_measurements_csv,
)
from napari_livecell.core.images import check_labels
from napari_livecell.layers import CELLS_SUFFIX, image_layer_for

if TYPE_CHECKING:
    import napari

NO_IMAGE = "(none: no intensity columns)"


class DataFrameModel(QAbstractTableModel):
    """A read-only Qt table model over a DataFrame; sorting reorders the frame (stable)."""

    def __init__(self, frame: pd.DataFrame | None = None) -> None:
        super().__init__()
        self.frame = pd.DataFrame() if frame is None else frame.reset_index(drop=True)

    def set_frame(self, frame: pd.DataFrame) -> None:
        """Show another table."""
        self.beginResetModel()
        self.frame = frame.reset_index(drop=True)
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | None = None) -> int:
        """Rows (none below the top level: a flat table)."""
        return 0 if parent is not None and parent.isValid() else len(self.frame)

    def columnCount(self, parent: QModelIndex | None = None) -> int:
        """Columns."""
        return 0 if parent is not None and parent.isValid() else len(self.frame.columns)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """A cell's text (4 significant digits; empty for NaN)."""
        if not index.isValid() or role != Qt.ItemDataRole.DisplayRole:
            return None
        value = self.frame.iat[index.row(), index.column()]
        if isinstance(value, (float, np.floating)):
            return "" if np.isnan(value) else f"{value:.4g}"
        return str(value)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        """Column names across the top, row numbers down the side."""
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return str(self.frame.columns[section])
        return str(section + 1)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort by a column's values (numbers as numbers; NaN last)."""
        if not 0 <= column < len(self.frame.columns):
            return  # -1: no sort column (the table's own order)
        self.layoutAboutToBeChanged.emit()
        self.frame = self.frame.sort_values(
            self.frame.columns[column],
            ascending=order == Qt.SortOrder.AscendingOrder,
            kind="stable",
            na_position="last",
        ).reset_index(drop=True)
        self.layoutChanged.emit()


class MeasureCellsWidget(BackgroundRun, Container):
    """Measure a Labels layer's cells; browse, sort and save them; a row click shows its cell."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self._labels_box = ComboBox(label="labels", choices=self._labels_choices)
        self._image = ComboBox(label="image", choices=self._image_choices)
        self._pixel_size = FloatSpinBox(
            label="pixel size (um, 0: layer scale)", value=0.0, min=0.0, max=10_000.0, step=0.01
        )
        self._run = PushButton(text="Measure")
        self._cancel = PushButton(text="Cancel", enabled=False)
        self._progress = ProgressBar(label="progress", min=0, max=1, value=0)
        self._status = Label(label="status", value="")
        self._summary = Label(label="summary", value="")
        self._save = PushButton(text="Save CSV...")
        self._controls = RunControls(self._run, self._cancel, self._status, "measuring")
        self.extend(
            [
                self._labels_box,
                self._image,
                self._pixel_size,
                self._run,
                self._cancel,
                self._progress,
                self._status,
                self._summary,
            ]
        )
        fit_dock(self, [self._status])
        self.model = DataFrameModel()
        self.table = QTableView()
        self.table.setModel(self.model)
        # no sort arrow until the user clicks a header: rows start in frame, label order
        self._header().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setMinimumHeight(240)
        self.native.layout().addWidget(self.table)
        self.append(self._save)
        self.native.setMaximumWidth(520)
        self.measurements: Measurements | None = None
        self.measured_layer: Any = None

        self._run.changed.connect(self.measure)
        self._cancel.changed.connect(self.cancel)
        self._save.changed.connect(lambda: self.save_csv())
        self._labels_box.changed.connect(self._pick_image)
        self._selection().selectionChanged.connect(self._on_selection)
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(self._image.reset_choices)
        self._keep_layer = follow_layers(
            viewer, self._labels_box, is_result_labels, lambda layer: layer_kind(layer) == "labels"
        )
        self._pick_image(self._labels_box.value)

    def reset_choices(self, *args) -> None:
        """Keep the chosen layer through napari's refresh on every layer change (a rename included)."""
        self._keep_layer()
        super().reset_choices(*args)

    # choices -----------------------------------------------------------------
    def _labels_choices(self, _widget=None) -> list:
        from napari.layers import Labels

        return [(layer.name, layer) for layer in self._viewer.layers if isinstance(layer, Labels)]

    def _image_choices(self, _widget=None) -> list:
        from napari.layers import Image

        images = [(layer.name, layer) for layer in self._viewer.layers if isinstance(layer, Image)]
        return [*images, (NO_IMAGE, None)]

    def _pick_image(self, labels: Any) -> None:
        """Choose the image the Labels layer was segmented from (or is named after)."""
        from napari.layers import Image

        if labels is None:
            return
        images = [layer for layer in self._viewer.layers if isinstance(layer, Image)]
        source = image_layer_for(labels, images)
        if source is not None:
            self._image.value = source

    def pixel_size(self, layer: Any) -> tuple[float | None, str]:
        """Micrometres per pixel (typed, else the layer's scale when not 1) and a note on it."""
        if self._pixel_size.value > 0:
            return float(self._pixel_size.value), ""
        scale = np.abs(np.asarray(layer.scale[-2:], dtype=float))
        if np.allclose(scale, 1.0):
            return None, ""
        if not np.isclose(scale[0], scale[1]):
            return None, f"pixels are not square (scale {scale[0]:g} x {scale[1]:g}): measured in px"
        return float(scale[1]), ""

    # measuring ---------------------------------------------------------------

    def _inputs(self) -> tuple[Any, Any, Any, bool]:
        """The chosen Labels layer, its data, the image data and whether it is RGB."""
        layer = self._labels_box.value
        if layer is None:
            raise ValueError("no Labels layer to measure: segment or open one first")
        image_layer = self._image.value
        for chosen in (layer, image_layer):
            if chosen is not None and getattr(chosen, "multiscale", False):
                raise ValueError(f"{chosen.name!r} is multiscale: measuring needs a single-resolution layer")
        data = layer.data
        check_labels(data, repr(layer.name), "choose the Labels layer made by Segment cells")
        # a copy of an in-memory stack: the user may paint while the worker reads it
        if data.ndim > 2 and isinstance(data, np.ndarray):
            data = np.array(data)
        image = None if image_layer is None else image_layer.data
        rgb = bool(image_layer is not None and image_layer.rgb)
        if image is not None:
            image_shape = tuple(image.shape[:-1] if rgb else image.shape)
            if image_shape != tuple(data.shape):
                raise ValueError(
                    f"{image_layer.name!r} has shape {image_shape} but {layer.name!r} has "
                    f"{tuple(data.shape)}: choose the image the labels annotate"
                )
        return layer, data, image, rgb

    def measure(self, _=None) -> Measurements | Any | None:
        """Measure the chosen layer: at once for 2-D (returns the result), else in a worker (returns it)."""
        from napari.qt.threading import create_worker

        try:
            layer, data, image, rgb = self._inputs()
        except ValueError as error:
            notify_error(self._status, str(error))
            return None
        size, note = self.pixel_size(layer)
        features = layer.features.copy() if len(layer.features) else None
        if data.ndim == 2:
            result = measure_cells(data, image, size, features, rgb)
            self._show(layer, result, note)
            return result
        n_frames = int(np.prod(data.shape[:-2]))
        worker = create_worker(iter_measure, data, image, size, features, rgb, _progress={"total": n_frames})
        worker.yielded.connect(self._on_step)
        worker.returned.connect(lambda result: self._show(layer, result, note))
        worker.aborted.connect(lambda: setattr(self._status, "value", "cancelled: the table is unchanged"))
        worker.finished.connect(self._controls.end)
        self._progress.max, self._progress.value = n_frames, 0
        return self._controls.begin(worker, f"measuring {layer.name}...")

    def cancel(self, _=None) -> None:
        """Stop after the frame in progress."""
        if self.worker is not None:
            self.worker.quit()
            self._status.value = "cancelling..."

    def _on_step(self, step: tuple[int, int]) -> None:
        done, total = step
        self._progress.value = min(done, self._progress.max)
        self._status.value = f"measured frame {done}/{total}"

    def _show(self, layer: Any, result: Measurements, note: str = "") -> None:
        self.measurements, self.measured_layer = result, layer
        self.model.set_frame(result.cells)
        header = self._header()
        self.model.sort(header.sortIndicatorSection(), header.sortIndicatorOrder())  # keep the user's sort
        self.table.resizeColumnsToContents()
        summary = result.summary
        unit = "um2" if result.pixel_size_um is not None else "px"
        area = summary.iloc[:, -1].mean() if summary["cell_count"].sum() else float("nan")
        self._summary.value = (
            f"{int(summary['cell_count'].sum())} cells in {len(summary)} frame(s); "
            f"confluence {summary['confluence_percent'].mean():.1f} %, mean area {area:.4g} {unit}"
        )
        self._progress.value = self._progress.max
        self._status.value = note or f"measured {layer.name}; click a row to go to its cell"

    def _header(self) -> QHeaderView:
        header = self.table.horizontalHeader()
        assert header is not None  # a QTableView always has one
        return header

    def _selection(self) -> QItemSelectionModel:
        selection = self.table.selectionModel()
        assert selection is not None  # set with the model in __init__
        return selection

    # browsing ----------------------------------------------------------------
    def _on_selection(self, *_args) -> None:
        rows = self._selection().selectedRows()
        if rows:
            self.show_row(rows[0].row())

    def show_row(self, row: int) -> int | None:
        """Go to the cell of a table row (in its shown order): frame, camera centre, selection."""
        layer = self.measured_layer
        if layer is None or row < 0 or row >= len(self.model.frame):
            return None
        if layer not in self._viewer.layers:
            notify_error(self._status, f"{layer.name!r} was closed: measure again")
            return None
        record = self.model.frame.iloc[row]
        leading = tuple(layer.data.shape[:-2])
        frame = tuple(int(i) for i in np.unravel_index(int(record["frame"]), leading)) if leading else ()
        world = np.asarray(
            layer.data_to_world((*frame, float(record["centroid_y_px"]), float(record["centroid_x_px"]))),
            dtype=float,
        )
        offset = self._viewer.dims.ndim - len(world)
        for axis, value in enumerate(world[:-2]):
            self._viewer.dims.set_point(axis + offset, value)
        _camera(self._viewer).center = tuple(world[-2:])
        cell = int(record["label"])
        layer.selected_label = cell
        self._status.value = f"cell {cell}, frame {int(record['frame'])}"
        return cell

    # saving ------------------------------------------------------------------
    def save_csv(self, path: str | Path | None = None) -> list[Path]:
        """Write the per-cell CSV and ``<stem>_summary.csv`` beside it (asks where when no path)."""
        if self.measurements is None or self.measured_layer is None:
            notify_error(self._status, "nothing measured yet: press Measure first")
            return []
        name = self.measured_layer.name.removesuffix(CELLS_SUFFIX)
        if path is None:
            from qtpy.QtWidgets import QFileDialog

            chosen, _ = QFileDialog.getSaveFileName(
                self.native, "Save measurements", f"{name}_cells.csv", "CSV (*.csv)"
            )
            if not chosen:
                return []
            path = chosen
        path = Path(path)
        try:
            written = [
                write_measurements_csv(path, with_image_name(self.measurements.cells, name)),
                write_measurements_csv(summary_path(path), with_image_name(self.measurements.summary, name)),
            ]
        except OSError as error:
            notify_error(self._status, f"cannot save {path}: {error.strerror or error}")
            return []
        self._status.value = f"saved {written[0].name} and {written[1].name}"
        return written


def _camera(viewer: Any) -> Any:
    """The viewer's camera: ``viewer.scene.camera`` from napari 0.9, ``viewer.camera`` before."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera
