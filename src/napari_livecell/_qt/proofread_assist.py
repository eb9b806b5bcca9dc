"""The model's help in the Proofread dock: add the cell under the pointer, cycle candidates, re-segment a box.

Each action asks :class:`~napari_livecell.core.analysis.assist.CellAssistant`
for a pixel edit of the shown frame and applies it through the Labels
layer's undoable ``data_setitem``, so one Ctrl+Z takes it back, and the
:class:`~napari_livecell._qt.proofread_widget.CellFollower` brings the table
(status ``added`` or ``edited``), outlines and summary in step; the
candidate's network score goes into its table row. The model is the one the
Segment dock ran for this layer (recorded in the layer's metadata), else the
shipped default, and the status line names it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from napari_livecell.layers import RESULT_KEY, flat_frame

if TYPE_CHECKING:
    from napari_livecell.core.analysis.assist import AssistEdit, CellAssistant
    from napari_livecell.core.inference.recipe import FrameRecipe

ASSIST_KEYS = {"add": "Shift-C", "cycle": "Shift-X", "box": "Shift-B"}
MODEL_KEY = "model"  # the result layer's record of the model and settings that made it


def assist_controls():
    """The dock's controls of the model's help: the click mode, the cycle and the box buttons."""
    from magicgui.widgets import CheckBox, PushButton

    add, cycle, box = ASSIST_KEYS["add"], ASSIST_KEYS["cycle"], ASSIST_KEYS["box"]
    add_mode = CheckBox(text=f"Click adds a cell ({add})")
    add_mode.tooltip = f"a click (or {add} at the cursor) on an empty place adds the model's best cell there"
    other = PushButton(text=f"Next candidate ({cycle})")
    other.tooltip = f"replace the cell under the cursor with the model's next alternative there ({cycle})"
    again = PushButton(text=f"Re-segment box ({box})")
    again.tooltip = f"the model re-segments the last rectangle drawn in a Shapes layer ({box})"
    return add_mode, other, again


def model_record(weights, device, runtime, settings, tile, pixel_size) -> dict:
    """What the Segment dock records with a result layer so that the model's help uses the same model."""
    return {
        "weights": weights,
        "device": device,
        "runtime": runtime,
        "conf": settings.conf,
        "iou": settings.iou,
        "imgsz": settings.imgsz,
        "modality": settings.modality,
        "tile": tile,
        "pixel_size_um": pixel_size,
    }


def recipe_for(record: dict | None) -> tuple[FrameRecipe, str]:
    """The frame recipe of a recorded model (the shipped default, run by ``auto``, when none), and its name.

    Raises
    ------
    ValueError
        A service or Triton model (the candidates need a network that runs here), or weights that
        cannot be loaded.
    """
    from napari_livecell.core.inference.predict import PredictSettings
    from napari_livecell.core.inference.recipe import FrameRecipe
    from napari_livecell.core.models.model import load_model
    from napari_livecell.core.models.source import ModelSource

    record = record or {}
    weights = record.get("weights")
    kind = ModelSource.parse(weights).kind if weights else "file"
    if kind in ("service", "triton"):
        raise ValueError(f"the model's help runs the network here: {weights} is a {kind}, not a model file")
    from napari_livecell.core.models.model import resolve_device

    device, runtime = record.get("device") or "auto", record.get("runtime") or "auto"
    exported = runtime == "torch" and resolve_device(device) == "cpu"
    if exported:
        # the same weights, exported once and cached: on a CPU PyTorch took ~25x as long a window
        # (benchmarks/README.md), past the 0.3 s a key may take; the status line names the runtime
        runtime = "auto"
    model = load_model(weights, device, runtime)
    settings = PredictSettings(
        conf=float(record.get("conf", PredictSettings.conf)),
        iou=float(record.get("iou", PredictSettings.iou)),
        imgsz=int(record.get("imgsz", PredictSettings.imgsz)),
        modality=str(record.get("modality", "auto")),
    )
    recipe = FrameRecipe.plan(model, settings, record.get("pixel_size_um"), "recorded", record.get("tile"))
    name = f"model {model.name}, runtime {model.runtime}" + ("" if record else " (shipped default)")
    if exported and model.runtime != "torch":
        name += " (the .pt's CPU export)"
    return recipe, name


class AssistActions:
    """The Proofread dock's model-assisted actions on its chosen layer (one CellAssistant per frame)."""

    def __init__(self, dock) -> None:
        self.dock = dock
        self._assistants: dict[tuple, CellAssistant] = {}
        self._recipes: dict[str, tuple[FrameRecipe, str]] = {}

    def _source_plane(self, layer, frame: tuple[int, ...]) -> np.ndarray:
        info = layer.metadata.get(RESULT_KEY, {})
        viewer = self.dock._viewer
        name = info.get("source")
        if not name or name not in viewer.layers:
            raise ValueError(f"the image {name!r} these cells were found in is not open: the model needs it")
        image = viewer.layers[name]
        data = image.data[0] if getattr(image, "multiscale", False) else image.data
        plane = np.asarray(data[frame] if frame else data)
        shape = layer.data.shape[-2:]
        if plane.shape[:2] != tuple(shape):
            raise ValueError(
                f"image {name!r} ({plane.shape[:2]}) and its cells {tuple(shape)} differ in size"
            )
        return plane

    def assistant(self, frame: tuple[int, ...]) -> tuple[CellAssistant, str]:
        """The frame's assistant (kept: its candidates and cycle), and the model's name."""
        from napari_livecell.core.analysis.assist import CellAssistant

        layer = self.dock._require_layer()
        record = layer.metadata.get(RESULT_KEY, {}).get(MODEL_KEY)
        recipe_key = repr(sorted((record or {}).items()))
        if recipe_key not in self._recipes:
            self._recipes[recipe_key] = recipe_for(record)
        recipe, name = self._recipes[recipe_key]
        key = (id(layer), frame, recipe_key)
        if key not in self._assistants:
            if len(self._assistants) > 8:
                self._assistants.clear()
            self._assistants[key] = CellAssistant(self._source_plane(layer, frame), recipe)
        return self._assistants[key], name

    def _split(self, point) -> tuple[tuple[int, ...], tuple[float, float]]:
        layer = self.dock._require_layer()
        point = np.asarray(point, float)
        leading = layer.data.ndim - 2
        if len(point) != layer.data.ndim:
            raise ValueError(
                f"a point of the cells layer has {layer.data.ndim} coordinates, got {len(point)}"
            )
        frame = tuple(round(v) for v in point[:leading])
        return frame, (float(point[-2]), float(point[-1]))

    def _apply(self, frame: tuple[int, ...], change: AssistEdit, name: str) -> int:
        dock = self.dock
        layer = dock.layer
        edit = change.edit
        if edit.touched:  # napari's undoable path, one undo step (as the dock's own edits)
            leading = tuple(np.full(edit.touched, f, dtype=np.intp) for f in frame)
            layer.data_setitem((*leading, edit.rows, edit.cols), edit.values)
        follower = dock.follower
        if follower is not None:
            follower.flush()
            record_scores(layer, follower, flat_frame(frame, layer.data.shape[:-2]), change.scores)
        dock.update_summary()
        dock._status.value = f"{change.message}; {name}"
        return change.cell

    def _refused(self, assistant: CellAssistant) -> None:
        from napari.utils.notifications import show_info

        self.dock._status.value = assistant.reason
        show_info(assistant.reason)

    def add_cell_at(self, point) -> int | None:
        """Add the model's best candidate containing ``point`` (Labels data coordinates); its id or None."""
        frame, where = self._split(point)
        assistant, name = self.assistant(frame)
        layer = self.dock.layer
        change = assistant.add_cell_at(np.asarray(layer.data[frame]), where, int(layer.data.max()) + 1)
        if change is None:
            self._refused(assistant)
            return None
        return self._apply(frame, change, name)

    def next_candidate_at(self, point) -> int | None:
        """Replace the cell(s) at ``point`` with the model's next alternative; the id there or None."""
        frame, where = self._split(point)
        assistant, name = self.assistant(frame)
        layer = self.dock.layer
        change = assistant.next_candidate_at(np.asarray(layer.data[frame]), where, int(layer.data.max()) + 1)
        if change is None:
            self._refused(assistant)
            return None
        return self._apply(frame, change, name)

    def resegment_box(self, box=None, frame: tuple[int, ...] | None = None) -> int | None:
        """Re-segment ``box`` (row0, col0, row1, col1) of the shown frame (default: last rectangle drawn).

        Returns the first new id, or None when nothing changed.
        """
        if box is None:
            box = self._last_rectangle()
        if frame is None:
            frame = self.dock._frame()
        assistant, name = self.assistant(frame)
        layer = self.dock.layer
        box = tuple(round(v) for v in box)
        change = assistant.resegment_box(np.asarray(layer.data[frame]), box, int(layer.data.max()) + 1)
        if change is None:
            self._refused(assistant)
            return None
        return self._apply(frame, change, name)

    def _last_rectangle(self) -> tuple[int, int, int, int]:
        from napari.layers import Shapes

        layer = self.dock._require_layer()
        for shapes in reversed(list(self.dock._viewer.layers)):
            if isinstance(shapes, Shapes) and len(shapes.data):
                for data, kind in zip(reversed(shapes.data), reversed(shapes.shape_type)):
                    if kind == "rectangle":
                        points = np.array([layer.world_to_data(shapes.data_to_world(v)) for v in data])
                        low, high = points[:, -2:].min(axis=0), points[:, -2:].max(axis=0)
                        return (
                            math.floor(low[0]),
                            math.floor(low[1]),
                            int(high[0]) + 1,
                            int(high[1]) + 1,
                        )
        raise ValueError("draw a rectangle over the cells to re-segment in a Shapes layer first")

    def point_under_cursor(self) -> np.ndarray:
        """The cursor in the cells layer's data coordinates (the shown frame first)."""
        layer = self.dock._require_layer()
        return np.asarray(layer.world_to_data(self.dock._viewer.cursor.position))


def record_scores(layer, follower, flat: int, scores: dict[int, float]) -> None:
    """Put each new or replacing cell's network score in the cell table and its outlines' rows."""
    known = {cell: score for cell, score in scores.items() if not math.isnan(score)}
    if not known:
        return
    features = layer.features.copy()
    for cell, score in known.items():
        features.loc[(features["index"] == cell) & (features["frame"] == flat), "score"] = score
    layer.features = features
    shapes = follower.shapes
    if shapes is not None and len(shapes.features):
        outline = shapes.features.copy()
        for cell, score in known.items():
            outline.loc[(outline["label"] == cell) & (outline["frame"] == flat), "score"] = score
        shapes.features = outline
