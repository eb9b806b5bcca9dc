"""Proofreading result layers: outlines that follow edits, delete/merge/split/accept, review order.

Edits go through the Labels layer's ``data_setitem``, so napari's own undo
(Ctrl+Z) reverts them like brush strokes. The outlines layer is rebuilt for
the touched cells only, after a short pause in editing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, PushButton, SpinBox

from napari_livecell._qt.layer_updates import mark_edited, shown_frame
from napari_livecell.core.edit import (
    PixelEdit,
    cell_centroid,
    correction_summary,
    delete_cell,
    merge_cells,
    split_cell,
)
from napari_livecell.core.segmentation import mask_to_polygons
from napari_livecell.layers import OUTLINE_STYLE, RESULT_KEY, outlines_name_for, ring_to_vertices

if TYPE_CHECKING:
    import napari

OUTLINE_DELAY_MS = 300


class OutlineFollower:
    """Keeps ``<image> outlines`` in step with any edit of ``<image> cells``.

    It compares the labels with a snapshot taken at the last redraw, so brush
    strokes, fills, our own edits, undo and redo are all caught the same way,
    and only the cells whose pixels changed are traced again.
    """

    def __init__(self, viewer, labels_layer, shapes_layer) -> None:
        from qtpy.QtCore import QTimer

        self.viewer = viewer
        self.labels = labels_layer
        self.shapes = shapes_layer
        self._snapshot = np.array(labels_layer.data, copy=True)
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(OUTLINE_DELAY_MS)
        self._timer.timeout.connect(self.flush)
        labels_layer.events.paint.connect(self.schedule)
        labels_layer.events.set_data.connect(self.schedule)

    def schedule(self, _event=None) -> None:
        """Redraw after a short pause (a brush stroke fires many events)."""
        self._timer.start()

    def flush(self) -> None:
        """Redraw the outlines of every cell whose pixels changed, now."""
        import pandas as pd

        self._timer.stop()
        current = np.asarray(self.labels.data)
        if current.shape != self._snapshot.shape:
            self._snapshot = np.zeros_like(current)
        changed = current != self._snapshot
        if not changed.any() or self.shapes not in self.viewer.layers:
            return
        leading = current.shape[:-2]
        touched: dict[tuple[int, ...], set[int]] = {}
        for frame in np.ndindex(*leading) if leading else [()]:
            frame_changed = changed[frame] if frame else changed
            if frame_changed.any():
                before = (self._snapshot[frame] if frame else self._snapshot)[frame_changed]
                after = (current[frame] if frame else current)[frame_changed]
                touched[frame] = (set(np.unique(before).tolist()) | set(np.unique(after).tolist())) - {0}
        self._snapshot = current.copy()
        all_ids = set().union(*touched.values())
        _mark_edited(self.labels, all_ids)
        labels_column = self.shapes.features["label"].to_numpy() if len(self.shapes.features) else []
        keep = [i for i, label in enumerate(labels_column) if int(label) not in all_ids]
        data = [self.shapes.data[i] for i in keep]
        features = self.shapes.features.iloc[keep].reset_index(drop=True)
        new_rows = []
        for frame, ids in sorted(touched.items()):
            plane = current[frame] if frame else current
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
                            "score": _score_of(self.labels, cell),
                            "area": int(mask.sum()),
                            "frame": frame[0] if frame else 0,
                        }
                    )
        if new_rows:
            features = pd.concat([features, pd.DataFrame(new_rows)], ignore_index=True)
        self.shapes.data = []
        if data:
            self.shapes.add(data, **OUTLINE_STYLE)
        self.shapes.features = features


def _camera(viewer):
    """The viewer's camera (``viewer.scene.camera`` from napari 0.9 on)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


def _score_of(labels_layer, cell: int) -> float:
    features = labels_layer.features
    if "index" in features and "score" in features:
        rows = features.index[features["index"] == cell]
        if len(rows):
            return float(features.loc[rows[0], "score"])
    return 1.0


def _set_status(labels_layer, ids: set[int], status: str, only_from: tuple[str, ...] = ()) -> None:
    import pandas as pd

    features = labels_layer.features.copy()
    if "index" not in features:
        return
    present = set(features["index"].tolist())
    new = [i for i in ids if i not in present and i != 0]
    if new:
        filler = {column: [None] * len(new) for column in features.columns}
        filler.update({"index": new, "score": [1.0] * len(new), "status": ["added"] * len(new)})
        features = pd.concat([features, pd.DataFrame(filler)], ignore_index=True)
    rows = features["index"].isin(list(ids))
    if only_from:
        rows &= features["status"].isin(only_from)
    features.loc[rows, "status"] = status
    labels_layer.features = features


def _mark_edited(labels_layer, ids: set[int]) -> None:
    mark_edited(labels_layer)
    _set_status(labels_layer, ids, "edited", only_from=("predicted", "accepted"))


def apply_edit(labels_layer, frame: tuple[int, ...], edit: PixelEdit) -> None:
    """Apply a pixel edit through napari's undoable path (emits ``paint``)."""
    if edit.touched == 0:
        return
    leading = tuple(np.full(edit.touched, f, dtype=np.intp) for f in frame)
    labels_layer.data_setitem((*leading, edit.rows, edit.cols), edit.values)


class ProofreadWidget(Container):
    """Delete, merge, split and accept cells; review the least certain first."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self._followers: dict[int, OutlineFollower] = {}
        self._layer = ComboBox(label="cells", choices=self._result_layers, nullable=True)
        self._cell_a = SpinBox(label="cell", min=0, max=2**31 - 1)
        self._cell_b = SpinBox(label="other cell", min=0, max=2**31 - 1)
        self._delete = PushButton(text="Delete cell")
        self._merge = PushButton(text="Merge cell + other cell")
        self._split = PushButton(text="Split along the last drawn line")
        self._accept = PushButton(text="Accept cell")
        self._next = PushButton(text="Next cell to review")
        self._relabel = PushButton(text="Relabel 1..N")
        self._summary = Label(label="corrections", value="")
        self.extend(
            [
                self._layer,
                self._cell_a,
                self._cell_b,
                self._delete,
                self._merge,
                self._split,
                self._accept,
                self._next,
                self._relabel,
                self._summary,
                Label(value="keys on the cells layer: Shift+D delete, Shift+A accept (under cursor)"),
            ]
        )
        self._delete.changed.connect(lambda: self.delete(self._cell_a.value))
        self._merge.changed.connect(lambda: self.merge(self._cell_a.value, self._cell_b.value))
        self._split.changed.connect(lambda: self.split())
        self._accept.changed.connect(lambda: self.accept(self._cell_a.value))
        self._next.changed.connect(lambda: self.next_to_review())
        self._relabel.changed.connect(lambda: self.relabel())
        self._layer.changed.connect(self._attach)
        viewer.layers.events.inserted.connect(self._layer.reset_choices)
        viewer.layers.events.removed.connect(self._layer.reset_choices)
        self._attach(self._layer.value)

    def _result_layers(self, _widget=None) -> list:
        from napari.layers import Labels

        return [
            (layer.name, layer)
            for layer in self._viewer.layers
            if isinstance(layer, Labels) and RESULT_KEY in layer.metadata
        ]

    def _attach(self, layer) -> None:
        if layer is None or id(layer) in self._followers:
            return
        outlines_name = outlines_name_for(layer.name)
        if outlines_name in self._viewer.layers:
            shapes = self._viewer.layers[outlines_name]
            self._followers[id(layer)] = OutlineFollower(self._viewer, layer, shapes)
        layer.metadata[RESULT_KEY].setdefault(
            "predicted_ids", np.array(layer.features["index"]) if "index" in layer.features else np.array([])
        )
        layer.bind_key("Shift-D", lambda lyr: self.delete(self._cell_under_cursor()), overwrite=True)
        layer.bind_key("Shift-A", lambda lyr: self.accept(self._cell_under_cursor()), overwrite=True)
        layer.events.selected_label.connect(lambda event: setattr(self._cell_a, "value", int(event.value)))
        self.update_summary()

    @property
    def layer(self):
        """The Labels layer being proofread."""
        return self._layer.value

    def _cell_under_cursor(self) -> int:
        value = self.layer.get_value(self._viewer.cursor.position, world=True)
        return int(value or 0)

    def _frame(self) -> tuple[int, ...]:
        return shown_frame(self._viewer, self.layer)

    def _plane(self) -> np.ndarray:
        frame = self._frame()
        return np.asarray(self.layer.data[frame] if frame else self.layer.data)

    def _edit(self, edit: PixelEdit) -> None:
        apply_edit(self.layer, self._frame(), edit)
        follower = self._followers.get(id(self.layer))
        if follower is not None:
            follower.flush()  # our own edits show at once, not after the brush delay
        self.update_summary()

    def delete(self, cell: int) -> None:
        """Erase a cell (undo with Ctrl+Z)."""
        if cell:
            self._edit(delete_cell(self._plane(), cell))

    def merge(self, keep: int, other: int) -> None:
        """Merge ``other`` into ``keep``."""
        self._edit(merge_cells(self._plane(), keep, other))

    def split(self, line: np.ndarray | None = None) -> int:
        """Split the cell crossed by ``line`` (default: last path/line drawn in a Shapes layer)."""
        if line is None:
            line = self._last_drawn_line()
        edit, _, new_id = split_cell(self._plane(), np.asarray(line)[:, -2:], int(self.layer.data.max()) + 1)
        self._edit(edit)
        _set_status(self.layer, {new_id}, "edited")
        return new_id

    def _last_drawn_line(self) -> np.ndarray:
        from napari.layers import Shapes

        for layer in reversed(list(self._viewer.layers)):
            if isinstance(layer, Shapes) and len(layer.data):
                for data, kind in zip(reversed(layer.data), reversed(layer.shape_type)):
                    if kind in ("line", "path"):
                        return data
        raise ValueError("draw a line or path across the cell in a Shapes layer first")

    def accept(self, cell: int) -> None:
        """Mark a cell as checked by a person."""
        if cell:
            _set_status(self.layer, {cell}, "accepted")
            self.update_summary()

    def next_to_review(self) -> int | None:
        """Centre the view on the lowest-score cell not yet accepted; return its id."""
        features = self.layer.features
        if not len(features):
            return None
        candidates = features[features["status"] != "accepted"].sort_values("score", kind="stable")
        data = self.layer.data
        for _, row in candidates.iterrows():
            cell = int(row["index"])
            frame = (int(row["frame"]),) if self.layer.ndim > 2 and "frame" in row else ()
            plane = np.asarray(data[frame] if frame else data)
            centre = cell_centroid(plane, cell)
            if centre is None:
                continue
            if frame:
                self._viewer.dims.set_point(0, frame[0])
            _camera(self._viewer).center = tuple(self.layer.data_to_world((*frame, *centre)))[-2:]
            self._cell_a.value = cell
            return cell
        return None

    def relabel(self) -> None:
        """Renumber cells 1..N (features follow)."""
        from skimage.segmentation import relabel_sequential

        relabelled, forward, _ = relabel_sequential(np.asarray(self.layer.data))
        features = self.layer.features.copy()
        if "index" in features:
            features["index"] = forward[features["index"].to_numpy()]
            features = features[features["index"] > 0].reset_index(drop=True)
        self.layer.data = relabelled
        self.layer.features = features
        self.update_summary()

    def summary(self):
        """Correction counts against the model's prediction."""
        info = self.layer.metadata.get(RESULT_KEY, {})
        features = self.layer.features
        statuses = dict(zip(features["index"], features["status"])) if "status" in features else {}
        return correction_summary(np.asarray(self.layer.data), info.get("predicted_ids", []), statuses)

    def update_summary(self) -> None:
        """Refresh the corrections line (and store it with the layer for exports)."""
        if self.layer is None:
            return
        summary = self.summary()
        self.layer.metadata[RESULT_KEY]["corrections"] = summary.as_dict()
        self._summary.value = (
            f"{summary.added} added, {summary.deleted} deleted, {summary.edited} edited, "
            f"{summary.accepted} accepted of {summary.predicted}"
        )
