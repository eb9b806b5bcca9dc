"""The model's help in the Proofread dock, with the shipped model and a real viewer."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from tests._qt.conftest import add_result


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.count_nonzero(a & b) / np.count_nonzero(a | b))


def _interior(mask: np.ndarray) -> tuple[int, int]:
    depth = ndi.distance_transform_edt(mask)
    return tuple(int(v) for v in np.unravel_index(depth.argmax(), depth.shape))


def _well_found_cell(truth) -> int:
    """A large true cell away from the frame's edge (the model finds such cells)."""
    areas = np.bincount(truth.labels.ravel())
    for cell in np.argsort(areas)[::-1]:
        rows, cols = np.nonzero(truth.labels == cell)
        if cell and rows.min() > 20 and cols.min() > 20 and rows.max() < 236 and cols.max() < 300:
            return int(cell)
    raise AssertionError("no interior cell")


def _dock(make_napari_viewer, labels, image):
    viewer = make_napari_viewer()
    layer = add_result(viewer, labels, image=image)
    _, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Proofread cells")
    widget._layer.value = layer
    return viewer, widget, layer


def _outlined(viewer) -> set[int]:
    return set(viewer.layers["img outlines"].features["label"].astype(int))


def test_add_cell_at_adds_one_cell_that_undo_removes(make_napari_viewer, small_frame, qtbot):
    cell = _well_found_cell(small_frame)
    labels = np.where(small_frame.labels == cell, 0, small_frame.labels).astype(np.int32)
    viewer, widget, layer = _dock(make_napari_viewer, labels, small_frame.image)
    before = np.array(layer.data)
    new = widget.add_cell_at(_interior(small_frame.labels == cell))
    assert new == int(before.max()) + 1
    assert _iou(layer.data == new, small_frame.labels == cell) >= 0.7
    assert np.array_equal(layer.data[before > 0], before[before > 0])  # no other cell touched
    row = layer.features.loc[layer.features["index"] == new].iloc[0]
    assert row["status"] == "added" and 0 < row["score"] < 1
    assert new in _outlined(viewer)
    assert "added cell" in widget._status.value and "model" in widget._status.value
    layer.undo()
    qtbot.waitUntil(lambda: new not in _outlined(viewer), timeout=5000)
    assert np.array_equal(layer.data, before)
    assert new not in set(layer.features["index"])


def test_add_cell_where_nothing_is_says_so_and_changes_nothing(make_napari_viewer, small_frame):
    _viewer, widget, layer = _dock(make_napari_viewer, small_frame.labels, small_frame.image)
    free = ndi.distance_transform_edt(small_frame.labels == 0)
    point = _interior(free > 0)
    before = np.array(layer.data)
    assert widget.add_cell_at(point) is None
    assert np.array_equal(layer.data, before)
    message = widget._status.value
    assert message.startswith("no cell candidate") and "\n" not in message


def _merged(labels: np.ndarray, keep: int) -> tuple[np.ndarray, int]:
    """``labels`` with ``keep`` and its largest touching neighbour made one cell."""
    around = labels[ndi.binary_dilation(labels == keep, iterations=3)]
    counts = np.bincount(around[(around != keep) & (around > 0)])
    if not counts.any():
        raise AssertionError(f"cell {keep} has no neighbour")
    other = int(counts.argmax())
    return np.where(labels == other, keep, labels).astype(np.int32), other


def _touching_pair(truth) -> int:
    for cell in range(1, int(truth.labels.max()) + 1):
        mask = truth.labels == cell
        around = truth.labels[ndi.binary_dilation(mask, iterations=2)]
        if ((around != cell) & (around > 0)).any() and mask.sum() > 150:
            return cell
    raise AssertionError("no touching pair")


def test_next_candidate_splits_a_merged_pair(make_napari_viewer, small_frame):
    keep = _touching_pair(small_frame)
    labels, other = _merged(small_frame.labels, keep)
    _viewer, widget, layer = _dock(make_napari_viewer, labels, small_frame.image)
    point = _interior(small_frame.labels == keep)
    widget.next_candidate_at(point)
    held = [
        int(i)
        for i in np.unique(layer.data[(small_frame.labels == keep) | (small_frame.labels == other)])
        if i
    ]
    assert len(held) >= 2
    statuses = set(layer.features.loc[layer.features["index"].isin(held), "status"])
    assert statuses <= {"edited", "added"} and statuses


def _rectangle(viewer, box):
    r0, c0, r1, c1 = box
    viewer.add_shapes(
        [np.array([[r0, c0], [r0, c1 - 1], [r1 - 1, c1 - 1], [r1 - 1, c0]])], shape_type="rectangle"
    )


def test_box_replaces_only_cells_inside(make_napari_viewer, small_frame):
    box = (60, 80, 180, 220)
    inside = np.zeros(small_frame.labels.shape, bool)
    inside[box[0] : box[2], box[1] : box[3]] = True
    labels = np.where(inside, 0, small_frame.labels).astype(np.int32)  # the box's cells missing
    viewer, widget, layer = _dock(make_napari_viewer, labels, small_frame.image)
    _rectangle(viewer, box)
    before = np.array(layer.data)
    first = widget.resegment_box()
    assert first == int(before.max()) + 1
    new_ids = set(np.unique(layer.data[inside]).tolist()) - set(np.unique(before).tolist())
    assert len(new_ids) >= 3
    # cells mostly outside the box keep every pixel
    for cell in np.unique(before[~inside]):
        if cell and np.count_nonzero((before == cell) & inside) * 2 < np.count_nonzero(before == cell):
            assert np.array_equal(layer.data == cell, before == cell)
    assert set(layer.features.loc[layer.features["index"].isin(new_ids), "status"]) == {"added"}


@pytest.mark.parametrize("action", ["add", "cycle", "box"])
def test_stack_actions_touch_only_the_shown_frame(make_napari_viewer, small_frame, action):
    cell = _well_found_cell(small_frame)
    keep = _touching_pair(small_frame)
    if action == "add":
        plane = np.where(small_frame.labels == cell, 0, small_frame.labels)
    elif action == "cycle":
        plane, _ = _merged(small_frame.labels, keep)
    else:
        plane = small_frame.labels.copy()
        plane[60:180, 80:220] = 0
    stack = np.stack([small_frame.labels, plane, small_frame.labels]).astype(np.int32)
    image = np.stack([small_frame.image] * 3)
    viewer, widget, layer = _dock(make_napari_viewer, stack, image)
    viewer.dims.set_point(0, 1)
    before = np.array(layer.data)
    if action == "add":
        result = widget.add_cell_at((1, *_interior(small_frame.labels == cell)))
    elif action == "cycle":
        result = widget.next_candidate_at((1, *_interior(small_frame.labels == keep)))
    else:
        _rectangle(viewer, (60, 80, 180, 220))
        result = widget.resegment_box()
    assert result is not None
    assert not np.array_equal(layer.data[1], before[1])
    assert np.array_equal(layer.data[0], before[0]) and np.array_equal(layer.data[2], before[2])


def test_the_model_is_the_one_the_segment_dock_ran(make_napari_viewer, small_frame, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(small_frame.image, name="img")
    _, segment = viewer.window.add_plugin_dock_widget("napari-livecell", "Segment cells")
    segment._conf.value = 0.7
    segment._runtime.value = "onnxruntime"
    assert segment.run() is not None
    qtbot.waitUntil(lambda: not segment.busy, timeout=120_000)
    layer = viewer.layers["img cells"]
    record = layer.metadata["napari_livecell"]["model"]
    assert record["runtime"] == "onnxruntime" and record["conf"] == 0.7
    _, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Proofread cells")
    widget._layer.value = layer
    missed = next(
        cell
        for cell in range(1, int(small_frame.labels.max()) + 1)
        if (layer.data[small_frame.labels == cell] == 0).all() and (small_frame.labels == cell).sum() > 100
    )
    new = widget.add_cell_at(_interior(small_frame.labels == missed))
    assert new is not None
    assert "runtime onnxruntime" in widget._status.value and "shipped default" not in widget._status.value
    assert widget._assist.assistant(())[0].recipe.settings.conf == 0.7
