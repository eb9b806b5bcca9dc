"""Proofreading result layers: outlines and the cell table follow every edit; point at cells to fix them.

Edits go through the Labels layer's ``data_setitem``, so napari's own undo
(Ctrl+Z) reverts them like brush strokes. Whatever changed the pixels (a
brush, fill, eraser, one of our operations, undo, redo, a re-run), the
:class:`CellFollower` finds the touched cells by comparing with a snapshot
and brings the outlines, the cell table and the correction summary in step,
for those cells only. Statuses come from the pixels: a cell is ``edited`` or
``added`` against the prediction baseline, so an undo makes it ``predicted``
again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, PushButton, SpinBox

from napari_livecell._qt.docking import fit_dock
from napari_livecell._qt.layer_updates import (
    filter_colors,
    follow_layers,
    is_result_labels,
    mark_edited,
    same_layer,
    shown_frame,
)
from napari_livecell._qt.proofread_assist import ASSIST_KEYS, AssistActions, assist_controls
from napari_livecell.core.analysis.edit import (
    CorrectionSummary,
    PixelEdit,
    cell_centroid,
    correction_summary,
    delete_cell,
    merge_cells,
    split_cell,
)
from napari_livecell.core.segmentation import mask_to_polygons
from napari_livecell.layers import (
    OUTLINE_STYLE,
    RESULT_KEY,
    default_class,
    flat_frame,
    follow_ids,
    outlines_name_for,
    pure_id_changes,
    refresh_cell_rows,
    ring_to_vertices,
)

if TYPE_CHECKING:
    import napari

OUTLINE_DELAY_MS = 300
HIGHLIGHT_COLOR = "cyan"
KEYS = {
    "delete": "Shift-D",
    "accept": "Shift-A",
    "merge": "Shift-M",
    "split": "Shift-S",
    "next": "Shift-N",
}


def ensure_baseline(labels_layer) -> np.ndarray:
    """The prediction baseline of a result layer (its labels now, if none was kept)."""
    info = labels_layer.metadata.setdefault(RESULT_KEY, {})
    baseline = info.get("baseline")
    if baseline is None or np.shape(baseline) != labels_layer.data.shape:
        baseline = np.array(labels_layer.data, dtype=np.int32, copy=True)
        info["baseline"] = baseline
    return baseline


class CellFollower:
    """Keeps ``<image> outlines`` and the cell table in step with any edit of ``<image> cells``."""

    def __init__(self, viewer, labels_layer) -> None:
        from qtpy.QtCore import QTimer

        self.viewer = viewer
        self.labels = labels_layer
        self._baseline = ensure_baseline(labels_layer)
        # edits made before proofreading started are traced at the first flush
        self._snapshot = np.array(self._baseline, copy=True)
        self._memory: dict[tuple[int, int], dict] = {}
        self.highlighted: int | None = None
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(OUTLINE_DELAY_MS)
        self._timer.timeout.connect(self.flush)
        self.on_flush: list[Callable[[], None]] = []
        labels_layer.events.paint.connect(self.schedule)
        labels_layer.events.set_data.connect(self.schedule)

    @property
    def shapes(self):
        """The outlines layer of this Labels layer (looked up by name: a re-run replaces it)."""
        name = outlines_name_for(self.labels.name)
        return self.viewer.layers[name] if name in self.viewer.layers else None

    @property
    def baseline(self) -> np.ndarray:
        """The labels as the model predicted them."""
        return self._baseline

    def schedule(self, _event=None) -> None:
        """Catch up after a short pause (a brush stroke fires many events)."""
        self._timer.start()

    def flush(self) -> None:
        """Bring outlines and table in step with the labels now."""
        self._timer.stop()
        info = self.labels.metadata.setdefault(RESULT_KEY, {})
        if info.get("baseline") is not self._baseline:
            # a re-run (or a new file) replaced the result: start again from its prediction
            self._baseline = ensure_baseline(self.labels)
            self._snapshot = np.array(self._baseline, copy=True)
            self._memory.clear()
        current = np.asarray(self.labels.data)
        if current.shape != self._snapshot.shape:
            self._snapshot = np.zeros_like(current)
        changed = current != self._snapshot
        if not changed.any():
            return
        leading = current.shape[:-2]
        touched: dict[tuple[int, ...], set[int]] = {}
        planes = {}
        free = None  # the first id no cell of the stack has, found once a baseline cell needs one
        for frame in np.ndindex(*leading) if leading else [()]:
            frame_changed = changed[frame]
            if frame_changed.any():
                before, after = self._snapshot[frame], current[frame]
                ids = set(np.unique(before[frame_changed]).tolist()) | set(
                    np.unique(after[frame_changed]).tolist()
                )
                touched[frame] = ids - {0}
                # the prediction follows ids that changed without a pixel moving (tracking, relabel,
                # their undo): its ids stay the cells' ids, and a saved COCO names the same cells
                renamed = pure_id_changes(after, before)
                if renamed:
                    if free is None:
                        free = max(int(self._baseline.max(initial=0)), int(current.max(initial=0))) + 1
                    self._baseline[frame], free = follow_ids(self._baseline[frame], renamed, free)
                planes[frame] = (after, before, self._baseline[frame])
        features = self.labels.features
        self.labels.features = refresh_cell_rows(
            features,
            planes,
            touched,
            leading,
            self._memory,
            baseline_status=str(info.get("baseline_status", "predicted")),
            added_class=default_class(info, features),
        )
        self._snapshot = current.copy()
        mark_edited(self.labels)
        self._redraw_outlines(current, touched)
        for callback in self.on_flush:
            callback()

    def _redraw_outlines(self, current: np.ndarray, touched: dict[tuple[int, ...], set[int]]) -> None:
        import pandas as pd

        shapes = self.shapes
        if shapes is None:
            return
        leading = current.shape[:-2]
        touched_flat = {flat_frame(frame, leading): ids for frame, ids in touched.items()}
        outline_rows = shapes.features[["label", "frame"]].to_numpy() if len(shapes.features) else []
        keep = [
            i
            for i, (label, frame) in enumerate(outline_rows)
            if int(label) not in touched_flat.get(int(frame), ())
        ]
        data = [shapes.data[i] for i in keep]
        features = shapes.features.iloc[keep].reset_index(drop=True)
        table = self.labels.features.set_index(["frame", "index"])
        new_rows = []
        for frame, ids in sorted(touched.items()):
            plane = current[frame]
            flat = flat_frame(frame, leading)
            for cell in sorted(ids):
                mask = plane == cell
                if not mask.any():
                    continue
                rows, cols = np.nonzero(mask)
                window = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
                for ring in mask_to_polygons(window, (rows.min(), cols.min())):
                    data.append(ring_to_vertices(ring, frame))
                    new_rows.append(
                        {
                            "label": cell,
                            "score": float(table.loc[(flat, cell), "score"]),
                            "area": int(table.loc[(flat, cell), "area"]),
                            "frame": flat,
                        }
                    )
        if new_rows:
            features = pd.concat([features, pd.DataFrame(new_rows)], ignore_index=True)
        shapes.data = []
        if data:
            shapes.add(data, **OUTLINE_STYLE)
        shapes.features = features
        self.restyle_outlines()

    def restyle_outlines(self) -> None:
        """Outline colours: the score/area filters (kept in the layer's metadata) and the highlight."""
        shapes = self.shapes
        if shapes is None or not len(shapes.data):
            return
        filters = self.labels.metadata.get(RESULT_KEY, {}).get("filters")
        colors = filter_colors(shapes, **filters) if filters else None
        if filters:
            labels_colors = filter_colors(self.labels, **filters)
            if labels_colors is not None:
                self.labels.colormap = labels_colors
        if colors is None:
            from napari.utils.colormaps.standardize_color import transform_color

            colors = np.repeat(transform_color(OUTLINE_STYLE["edge_color"]), len(shapes.data), axis=0)
        widths = np.full(len(shapes.data), float(OUTLINE_STYLE["edge_width"]))
        if self.highlighted is not None:
            from napari.utils.colormaps.standardize_color import transform_color

            chosen = shapes.features["label"].to_numpy() == self.highlighted
            colors[chosen] = transform_color(HIGHLIGHT_COLOR)[0]
            widths[chosen] = 3.0
        shapes.edge_color = colors
        shapes.edge_width = widths.tolist()


_FOLLOWERS: dict[int, CellFollower] = {}


def follower_for(viewer, labels_layer) -> CellFollower:
    """The one :class:`CellFollower` of a Labels layer, made on first use.

    Shared by the docks that change a result layer (Proofread, Track), so an
    edit is traced once, whichever dock made it or is open.
    """
    key = id(getattr(labels_layer, "__wrapped__", labels_layer))
    follower = _FOLLOWERS.get(key)
    if follower is None or not same_layer(follower.labels, labels_layer):
        follower = _FOLLOWERS[key] = CellFollower(viewer, labels_layer)

        def forget(event, key=key, follower=follower) -> None:
            # a closed layer's follower leaves the registry (which outlives every viewer)
            if same_layer(event.value, follower.labels):
                follower._timer.stop()
                if _FOLLOWERS.get(key) is follower:
                    del _FOLLOWERS[key]

        viewer.layers.events.removed.connect(forget)
    return follower


def _camera(viewer):
    """The viewer's camera (``viewer.scene.camera`` from napari 0.9 on)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


def _set_status(labels_layer, frame: int, ids: set[int], status: str) -> None:
    features = labels_layer.features.copy()
    if "index" not in features:
        return
    rows = features["index"].isin(list(ids))
    if "frame" in features:
        rows &= features["frame"] == frame
    features.loc[rows, "status"] = status
    labels_layer.features = features


def apply_edit(labels_layer, frame: tuple[int, ...], edit: PixelEdit) -> None:
    """Apply a pixel edit through napari's undoable path (emits ``paint``)."""
    if edit.touched == 0:
        return
    leading = tuple(np.full(edit.touched, f, dtype=np.intp) for f in frame)
    labels_layer.data_setitem((*leading, edit.rows, edit.cols), edit.values)


def reports_errors(method):
    """Run a button or key action; a failure becomes one readable line, never a traceback in Qt."""

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception as error:  # every failure of a user action is reported, none escapes into Qt
            message = str(error).strip("'\"") or type(error).__name__
            self.notify_error(message)
            return None

    return run


class ProofreadWidget(Container):
    """Delete, merge, split and accept cells by pointing at them; review the least certain first."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self._attached: list = []
        self._merge_from: int | None = None
        self._layer = ComboBox(label="cells", choices=self._result_layers, nullable=True)
        self._cell = SpinBox(label="cell (click one)", min=0, max=2**31 - 1)
        self._delete = PushButton(text=f"Delete cell ({KEYS['delete']})")
        self._merge = PushButton(text=f"Merge with next click ({KEYS['merge']})")
        self._merge.tooltip = f"merge this cell with the next one clicked (or {KEYS['merge']} on each)"
        self._split = PushButton(text=f"Split along line ({KEYS['split']})")
        self._split.tooltip = "split the cell along the last line drawn in a Shapes layer"
        self._accept = PushButton(text=f"Accept cell ({KEYS['accept']})")
        self._next = PushButton(text=f"Next cell to review ({KEYS['next']})")
        self._relabel = PushButton(text="Relabel 1..N")
        self._assist = AssistActions(self)
        self._add_mode, self._cycle, self._box = assist_controls()
        self._summary = Label(label="corrections", value="")
        self._status = Label(label="status", value="")
        self.extend(
            [
                self._layer,
                self._cell,
                self._delete,
                self._merge,
                self._split,
                self._accept,
                self._next,
                self._relabel,
                self._add_mode,
                self._cycle,
                self._box,
                self._summary,
                self._status,
                Label(value="Keys act on the cell under the cursor; Ctrl+Z undoes."),
            ]
        )
        self._delete.changed.connect(lambda: self.delete(self._cell.value))
        self._merge.changed.connect(lambda: self.start_merge(self._cell.value))
        self._split.changed.connect(lambda: self.split())
        self._accept.changed.connect(lambda: self.accept(self._cell.value))
        self._next.changed.connect(lambda: self.next_to_review())
        self._relabel.changed.connect(lambda: self.relabel())
        self._cycle.changed.connect(lambda: self.next_candidate_at(self._assist.point_under_cursor()))
        self._box.changed.connect(lambda: self.resegment_box())
        self._layer.changed.connect(self._attach)
        fit_dock(self, [self._status])
        self._keep_layer = follow_layers(viewer, self._layer, is_result_labels)
        self.native.destroyed.connect(self._detach)
        self._attach(self._layer.value)

    def reset_choices(self, *args) -> None:
        """Keep the chosen layer through napari's refresh on every layer change (a rename included)."""
        self._keep_layer()
        super().reset_choices(*args)

    # layers ----------------------------------------------------------------
    def _result_layers(self, _widget=None) -> list:
        from napari.layers import Labels

        return [
            (layer.name, layer)
            for layer in self._viewer.layers
            if isinstance(layer, Labels) and RESULT_KEY in layer.metadata
        ]

    def _attach(self, layer) -> None:
        self._attached = [known for known in self._attached if known in self._viewer.layers]
        if layer is None or any(same_layer(known, layer) for known in self._attached):
            self.update_summary()
            return
        self._attached.append(layer)
        follower = follower_for(self._viewer, layer)
        follower.on_flush.append(self.update_summary)
        actions = {
            "delete": lambda: self.delete(self._cell_under_cursor()),
            "accept": lambda: self.accept(self._cell_under_cursor()),
            "merge": lambda: self.start_merge(self._cell_under_cursor()),
            "split": lambda: self.split(),
            "next": lambda: self.next_to_review(),
            "add": lambda: self.add_cell_at(self._assist.point_under_cursor()),
            "cycle": lambda: self.next_candidate_at(self._assist.point_under_cursor()),
            "box": lambda: self.resegment_box(),
        }
        for action, key in {**KEYS, **ASSIST_KEYS}.items():
            layer.bind_key(key, lambda _layer, run=actions[action]: run(), overwrite=True)
        layer.mouse_drag_callbacks.append(self._on_click)
        layer.events.selected_label.connect(self._on_selected_label)
        follower.flush()
        self.update_summary()

    def _detach(self, _object=None) -> None:
        """A closed dock is no longer told about edits (the layers' followers live on)."""
        for follower in _FOLLOWERS.values():
            follower.on_flush[:] = [f for f in follower.on_flush if f != self.update_summary]

    def _on_selected_label(self, _event=None) -> None:
        if self.layer is not None:
            self._cell.value = max(int(self.layer.selected_label), 0)

    def _on_click(self, layer, event):
        if event.type != "mouse_press" or layer.mode not in ("pan_zoom", "transform"):
            return
        cell = int(layer.get_value(event.position, world=True) or 0)
        if self._add_mode.value and not cell and self._merge_from is None:
            self.add_cell_at(layer.world_to_data(event.position))
            return
        self._cell.value = cell
        if self._merge_from is not None and cell:
            self.merge(self._merge_from, cell)

    @property
    def layer(self):
        """The Labels layer being proofread."""
        return self._layer.value

    @property
    def follower(self) -> CellFollower | None:
        """The follower of the layer being proofread."""
        return None if self.layer is None else follower_for(self._viewer, self.layer)

    def notify_error(self, message: str) -> None:
        """Show a problem in the status line and as a napari notification."""
        from napari.utils.notifications import show_error

        self._status.value = message
        show_error(message)

    def _require_layer(self):
        if self.layer is None:
            raise ValueError("choose a cells layer first (run Segment cells, or open a COCO json)")
        return self.layer

    def _cell_under_cursor(self) -> int:
        value = self._require_layer().get_value(self._viewer.cursor.position, world=True)
        return int(value or 0)

    def _frame(self) -> tuple[int, ...]:
        return shown_frame(self._viewer, self._require_layer())

    def _plane(self) -> np.ndarray:
        return np.asarray(self._require_layer().data[self._frame()])

    def _edit(self, edit: PixelEdit) -> None:
        apply_edit(self.layer, self._frame(), edit)
        follower = self.follower
        if follower is not None:
            follower.flush()  # our own edits show at once, not after the brush delay
        self.update_summary()

    # actions -----------------------------------------------------------------
    @reports_errors
    def delete(self, cell: int) -> None:
        """Erase a cell (undo with Ctrl+Z)."""
        self._edit(delete_cell(self._plane(), int(cell)))
        self._status.value = f"deleted cell {int(cell)}"

    @reports_errors
    def start_merge(self, cell: int) -> None:
        """Remember ``cell``; the next cell clicked (or Shift+M'd) is merged into it."""
        self._require_layer()
        if self._merge_from is not None and cell and cell != self._merge_from:
            self.merge(self._merge_from, cell)
            return
        if not cell or not (self._plane() == cell).any():
            raise ValueError("point at the first cell to merge (click it, or press Shift+M over it)")
        self._merge_from = int(cell)
        self._status.value = (
            f"merge: now click the cell to join to cell {cell} (or press {KEYS['merge']} over it)"
        )

    @reports_errors
    def merge(self, keep: int, other: int) -> None:
        """Merge ``other`` into ``keep`` (one cell, no slit between the parts)."""
        self._merge_from = None
        self._edit(merge_cells(self._plane(), int(keep), int(other)))
        self._status.value = f"merged cell {int(other)} into cell {int(keep)}"

    @reports_errors
    def split(self, line: np.ndarray | None = None) -> int:
        """Split the cell crossed by ``line`` (default: last path/line drawn in a Shapes layer)."""
        layer = self._require_layer()
        if line is None:
            line = self._last_drawn_line()
        edit, cell, new_id = split_cell(self._plane(), np.asarray(line)[:, -2:], int(layer.data.max()) + 1)
        self._edit(edit)
        self._status.value = f"split cell {cell}: new cell {new_id}"
        return new_id

    def _last_drawn_line(self) -> np.ndarray:
        from napari.layers import Shapes

        for layer in reversed(list(self._viewer.layers)):
            if isinstance(layer, Shapes) and len(layer.data):
                for data, kind in zip(reversed(layer.data), reversed(layer.shape_type)):
                    if kind in ("line", "path"):
                        return data
        raise ValueError("draw a line or path across the cell in a Shapes layer first")

    @reports_errors
    def accept(self, cell: int) -> None:
        """Mark a cell as checked by a person."""
        layer = self._require_layer()
        cell = int(cell)
        frame = flat_frame(self._frame(), layer.data.shape[:-2])
        features = layer.features
        rows = features[features["index"] == cell]
        if "frame" in rows and len(rows) and not (rows["frame"] == frame).any():
            if len(rows) > 1:
                raise ValueError(f"cell {cell} is not in this frame: go to the frame it is in")
            frame = int(rows["frame"].iloc[0])  # an id of one frame only (an untracked stack)
        if not cell or not len(rows):
            raise ValueError(f"no cell {cell} to accept: point at a cell")
        _set_status(layer, frame, {cell}, "accepted")
        self.update_summary()
        self._status.value = f"accepted cell {cell}"

    @reports_errors
    def next_to_review(self) -> int | None:
        """Show the lowest-score cell not yet accepted: zoomed to, highlighted; return its id."""
        layer = self._require_layer()
        features = layer.features
        if not len(features):
            raise ValueError("no cells to review in this layer")
        waiting = features[features["status"] != "accepted"]
        candidates = waiting.sort_values("score", kind="stable", na_position="last")
        leading = layer.data.shape[:-2]
        for _, row in candidates.iterrows():
            cell = int(row["index"])
            frame = tuple(int(i) for i in np.unravel_index(int(row["frame"]), leading)) if leading else ()
            plane = np.asarray(layer.data[frame])
            centre = cell_centroid(plane, cell)
            if centre is None:
                continue
            self._show_cell(layer, frame, plane == cell, centre)
            self._cell.value = cell
            follower = self.follower
            if follower is not None:
                follower.highlighted = cell
                follower.restyle_outlines()
            layer.selected_label = cell
            self._status.value = f"review cell {cell} (score {row['score']:.2f})"
            return cell
        self._status.value = "every cell is accepted"
        return None

    def _show_cell(self, layer, frame: tuple[int, ...], mask: np.ndarray, centre) -> None:
        world = np.asarray(layer.data_to_world((*frame, *centre)))
        offset = self._viewer.dims.ndim - len(world)
        for axis, value in enumerate(world[:-2]):
            self._viewer.dims.set_point(axis + offset, value)
        camera = _camera(self._viewer)
        camera.center = tuple(world[-2:])
        rows, cols = np.nonzero(mask)
        extent = max(int(np.ptp(rows)), int(np.ptp(cols)), 8) * float(np.max(np.abs(layer.scale[-2:])))
        canvas = _canvas_size(self)
        camera.zoom = min(canvas) / (4.0 * extent)  # the cell fills about a quarter of the view

    @reports_errors
    def relabel(self) -> None:
        """Renumber cells 1..N in one undoable step (table, outlines and summary follow)."""
        from skimage.segmentation import relabel_sequential

        layer = self._require_layer()
        data = np.asarray(layer.data)
        relabelled, _, _ = relabel_sequential(data)
        changed = np.nonzero(relabelled != data)
        if changed[0].size:
            layer.data_setitem(changed, relabelled[changed].astype(data.dtype))
            if self.follower is not None:
                self.follower.flush()
        self.update_summary()
        self._status.value = f"cells numbered 1..{int(relabelled.max())}"

    # the model's help (proofread_assist.py) -----------------------------------------
    @reports_errors
    def add_cell_at(self, point) -> int | None:
        """Add the model's cell at ``point`` (Labels data coordinates, frame first); the new id or None."""
        return self._assist.add_cell_at(point)

    @reports_errors
    def next_candidate_at(self, point) -> int | None:
        """Replace the cell at ``point`` with the model's next alternative there (repeat to cycle)."""
        return self._assist.next_candidate_at(point)

    @reports_errors
    def resegment_box(self, box=None) -> int | None:
        """Re-segment ``box`` (row0, col0, row1, col1) of the shown frame; default: the last rectangle."""
        return self._assist.resegment_box(box)

    # summary -------------------------------------------------------------------
    def summary(self):
        """Correction counts against the model's prediction, from the pixels."""
        layer = self._require_layer()
        return frame_by_frame_summary(layer.features, np.asarray(layer.data), ensure_baseline(layer))

    def update_summary(self) -> None:
        """Refresh the corrections line (and store it with the layer for exports)."""
        if self.layer is None:
            return
        summary = self.summary()
        self.layer.metadata[RESULT_KEY]["corrections"] = summary.as_dict()
        self._summary.value = summary.describe()


def frame_by_frame_summary(features, labels: np.ndarray, baseline: np.ndarray) -> CorrectionSummary:
    """Correction counts of a stack, frame by frame: an id may name a cell in many frames (a track)."""
    frames = labels.reshape(-1, *labels.shape[-2:])
    base_frames = baseline.reshape(-1, *baseline.shape[-2:])
    has_status = "status" in features and len(features)
    accepted = features[features["status"] == "accepted"] if has_status else features.iloc[:0]
    accepted_frames = accepted["frame"] if "frame" in accepted else np.zeros(len(accepted), np.int64)
    total = None
    for index, (plane, base_plane) in enumerate(zip(frames, base_frames)):
        in_frame = np.asarray(accepted_frames) == index if len(frames) > 1 else slice(None)
        ids = accepted["index"][in_frame]
        counts = correction_summary(plane, base_plane, dict.fromkeys(ids.tolist(), "accepted"))
        total = (
            counts
            if total is None
            else CorrectionSummary(
                **{name: value + getattr(counts, name) for name, value in total.as_dict().items()}
            )
        )
    return total if total is not None else correction_summary(labels, baseline, {})


def _canvas_size(widget) -> tuple[int, int]:
    """Pixel size of the canvas of the window a docked widget sits in (500 x 500 if unknown).

    Found through Qt: napari's viewer proxy refuses private attributes to plugins.
    """
    try:
        from napari._qt.qt_viewer import QtViewer

        qt_viewer = widget.native.window().findChild(QtViewer)
        size = qt_viewer.canvas.native.size()
        if size.width() > 0 and size.height() > 0:
            return size.height(), size.width()
    except Exception:  # only the zoom level depends on it
        pass
    return 500, 500
