"""Issue #14's findings, each as the user met it: edits keep labels, table, outlines and exports true."""

import json

import numpy as np
import pytest

from napari_livecell.layers import RESULT_KEY

from .conftest import add_result


@pytest.fixture
def viewer_and_widget(make_napari_viewer, small_frame):
    viewer = make_napari_viewer()
    cells = add_result(viewer, small_frame.labels, image=small_frame.image)
    _, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Proofread cells")
    widget._layer.value = cells
    return viewer, widget


def empty_spot(labels, radius=4):
    for row, col in np.argwhere(labels == 0):
        window = labels[max(0, row - radius) : row + radius + 1, max(0, col - radius) : col + radius + 1]
        if window.shape == (2 * radius + 1, 2 * radius + 1) and (window == 0).all():
            return int(row), int(col)
    raise AssertionError("no empty spot")


def paint_new_cell(cells):
    new_id = int(cells.data.max()) + 1
    cells.brush_size = 5
    cells.paint(empty_spot(cells.data), new_id)
    return new_id


def save_coco(cells, path):
    from napari_livecell.io.write import write_labels_coco

    data, attributes, _ = cells.as_layer_data_tuple()
    write_labels_coco(str(path), data, attributes)
    return json.loads(path.read_text())


def test_a_painted_cell_keeps_the_export_one_class(viewer_and_widget, tmp_path):
    from napari_livecell.io.write import write_labels_yolo

    viewer, widget = viewer_and_widget
    cells = viewer.layers["img cells"]
    new_id = paint_new_cell(cells)
    widget.follower.flush()
    row = cells.features.set_index("index").loc[new_id]
    assert (row["class"], row["status"], row["frame"]) == ("cell", "added", 0)
    assert row["area"] == (cells.data == new_id).sum()
    assert np.isnan(row["score"])
    coco = save_coco(cells, tmp_path / "img.json")
    assert coco["categories"] == [{"supercategory": "cell", "id": 1, "name": "cell"}]
    assert {a["category_id"] for a in coco["annotations"]} == {1}
    added = [a for a in coco["annotations"] if a["label"] == new_id]
    assert added[0]["status"] == "added" and added[0]["score"] is None
    data, attributes, _ = cells.as_layer_data_tuple()
    (txt,) = write_labels_yolo(str(tmp_path / "img.txt"), data, attributes)
    assert {line.split()[0] for line in open(txt).read().splitlines()} == {"0"}


def test_filters_hide_cells_after_an_edit_and_keep_painted_cells(make_napari_viewer, small_frame):
    viewer = make_napari_viewer()
    cells = add_result(viewer, small_frame.labels, image=small_frame.image)
    _, segment = viewer.window.add_plugin_dock_widget("napari-livecell", "Segment cells")
    _, proofread = viewer.window.add_plugin_dock_widget("napari-livecell", "Proofread cells")
    proofread._layer.value = cells
    segment._min_score.value = 0.7  # a filter change must not raise on a painted cell
    outlines = viewer.layers["img outlines"]
    hidden_before = int((outlines.edge_color[:, 3] == 0).sum())
    assert hidden_before > 0
    new_id = paint_new_cell(cells)
    proofread.follower.flush()
    alpha = dict(zip(outlines.features["label"], outlines.edge_color[:, 3]))
    assert alpha[new_id] == 1.0  # no score: drawn by a person, never hidden by the score filter
    low = cells.features.loc[cells.features["score"] < 0.7, "index"].tolist()
    assert all(alpha[cell] == 0 for cell in low)  # the edit did not re-show filtered outlines
    segment._min_score.value = 0.0
    assert (outlines.edge_color[:, 3] == 1).all()


def test_merge_is_one_edited_one_merged_with_no_slit(viewer_and_widget):
    from scipy import ndimage as ndi

    viewer, widget = viewer_and_widget
    cells = viewer.layers["img cells"]
    labels = cells.data
    right = (labels[:, :-1] != labels[:, 1:]) & (labels[:, :-1] > 0) & (labels[:, 1:] > 0)
    row, col = np.argwhere(right)[0]
    a, b = int(labels[row, col]), int(labels[row, col + 1])
    holes_before = [(ndi.binary_fill_holes(labels == c) & ~(labels == c)).sum() for c in (a, b)]
    widget.merge(a, b)
    merged = cells.data == a
    assert (ndi.binary_fill_holes(merged) & ~merged).sum() <= sum(holes_before)
    summary = widget.summary()
    assert (summary.edited, summary.merged, summary.deleted) == (1, 1, 0)
    assert "1 merged" in widget._summary.value


def test_relabel_is_one_undoable_step(viewer_and_widget):
    viewer, widget = viewer_and_widget
    cells = viewer.layers["img cells"]
    widget.delete(3)
    widget.accept(5)
    before = np.array(cells.data)
    widget.relabel()
    ids = np.unique(cells.data)[1:]
    assert ids.tolist() == list(range(1, len(ids) + 1))
    assert widget.summary().deleted == 1 and widget.summary().accepted == 1
    accepted = cells.features.loc[cells.features["status"] == "accepted", "index"].item()
    assert (cells.data == accepted).sum() == (before == 5).sum()  # acceptance followed the cell
    cells.undo()
    widget.follower.flush()
    np.testing.assert_array_equal(cells.data, before)
    assert sorted(cells.features["index"]) == np.unique(before)[1:].tolist()  # no duplicate ids
    summary = widget.summary()
    assert (summary.deleted, summary.added, summary.edited, summary.accepted) == (1, 0, 0, 1)


def test_rerun_while_proofreading_reattaches(make_napari_viewer, small_frame, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(small_frame.image, name="img")
    _, segment = viewer.window.add_plugin_dock_widget("napari-livecell", "Segment cells")
    _, proofread = viewer.window.add_plugin_dock_widget("napari-livecell", "Proofread cells")
    segment.confirm_replace = lambda names: True

    def run():
        segment.run()
        qtbot.waitUntil(lambda: not segment.busy, timeout=120_000)

    run()
    cells = viewer.layers["img cells"]
    proofread._layer.value = cells
    proofread.delete(int(cells.features["index"].iloc[0]))
    run()
    assert proofread.summary().deleted == 0  # the new result is the new baseline
    cells.undo()  # the old edit is not replayed onto the new result
    proofread.follower.flush()
    assert proofread.summary().as_dict()["added"] == 0
    new_id = paint_new_cell(viewer.layers["img cells"])
    proofread.follower.flush()
    assert new_id in set(viewer.layers["img outlines"].features["label"])
    assert proofread.summary().added == 1


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda w: w.split(), "draw a line or path across the cell"),
        (lambda w: w.merge(0, 0), "not the background"),
        (lambda w: w.merge(4, 4), "two different cells"),
        (lambda w: w.merge(4, 9999), "cell 9999 does not exist"),
        (lambda w: w.delete(9999), "cell 9999 does not exist"),
        (lambda w: w.accept(0), "no cell 0 to accept"),
    ],
    ids=[
        "split-no-line",
        "merge-background",
        "merge-self",
        "merge-missing",
        "delete-missing",
        "accept-nothing",
    ],
)
def test_bad_proofreading_input_is_one_readable_line(viewer_and_widget, notifications, action, message):
    _, widget = viewer_and_widget
    action(widget)  # must not raise into Qt
    assert any(message in text for text in notifications.messages), notifications.messages
    assert message in widget._status.value


def test_next_with_no_layer_says_so(make_napari_viewer, notifications):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Proofread cells")
    assert widget.next_to_review() is None
    assert any("choose a cells layer first" in text for text in notifications.messages)


def test_next_to_review_on_a_t_by_z_stack_goes_to_the_cell(make_napari_viewer, small_frame):
    from napari_livecell._qt.proofread_widget import _camera

    viewer = make_napari_viewer()
    stack = np.zeros((2, 2, *small_frame.labels.shape), np.int32)
    stack[1, 1] = small_frame.labels  # only frame (t=1, z=1) has cells
    cells = add_result(viewer, stack)
    _, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Proofread cells")
    widget._layer.value = cells
    new_id = paint_new_cell_in(cells, (1, 1))
    widget.follower.flush()
    cell = widget.next_to_review()
    assert cell == int(cells.features.sort_values("score").iloc[0]["index"])
    assert tuple(int(v) for v in viewer.dims.point[:2]) == (1, 1)
    centre = np.argwhere(cells.data[1, 1] == cell).mean(axis=0)
    assert np.allclose(_camera(viewer).center[-2:], centre, atol=1)
    assert cells.selected_label == cell
    outlines = viewer.layers["img outlines"]
    highlighted = outlines.features["label"].to_numpy() == cell
    assert np.allclose(outlines.edge_color[highlighted][:, :3], [0, 1, 1])
    assert new_id in set(cells.features["index"])  # an added cell (no score) does not break review


def paint_new_cell_in(cells, frame):
    new_id = int(cells.data.max()) + 1
    row, col = empty_spot(cells.data[frame])
    cells.data_setitem(
        (
            *[np.full(9, f) for f in frame],
            np.repeat(np.arange(row - 1, row + 2), 3),
            np.tile(np.arange(col - 1, col + 2), 3),
        ),
        new_id,
    )
    return new_id


def test_saved_corrections_reopen_with_statuses_and_baseline(viewer_and_widget, tmp_path, make_napari_viewer):
    from napari_livecell.io.read import read_coco_layers

    viewer, widget = viewer_and_widget
    cells = viewer.layers["img cells"]
    widget.delete(2)
    widget.accept(1)
    new_id = paint_new_cell(cells)
    widget.follower.flush()
    summary = widget.summary().as_dict()
    save_coco(cells, tmp_path / "corrected.json")
    layers = read_coco_layers(str(tmp_path / "corrected.json"))
    data, kwargs, _ = next(layer for layer in layers if layer[2] == "labels")
    np.testing.assert_array_equal(data, cells.data)
    info = kwargs["metadata"][RESULT_KEY]
    np.testing.assert_array_equal(info["baseline"], widget.follower.baseline)
    statuses = dict(zip(kwargs["features"]["index"], kwargs["features"]["status"]))
    assert statuses[1] == "accepted" and statuses[new_id] == "added"

    again = make_napari_viewer()
    for layer_data, layer_kwargs, kind in layers:
        getattr(again, f"add_{kind}")(layer_data, **layer_kwargs)
    _, reopened = again.window.add_plugin_dock_widget("napari-livecell", "Proofread cells")
    reopened._layer.value = again.layers["corrected cells"]
    assert reopened.summary().as_dict() == summary


def test_compare_a_truth_stack_with_a_single_frame_prediction(make_napari_viewer, small_frame, notifications):
    viewer = make_napari_viewer()
    viewer.add_labels(np.stack([small_frame.labels] * 3), name="truth")
    viewer.add_labels(small_frame.labels, name="prediction")
    _, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Compare to ground truth")
    widget._truth.value = viewer.layers["truth"]
    widget._predicted.value = viewer.layers["prediction"]
    comparison = widget.compare()
    assert comparison is not None and "differ in size" not in " ".join(notifications.messages)


def test_rerun_with_a_filter_keeps_the_layers_own_colours(make_napari_viewer, small_frame, qtbot):
    from napari_livecell._qt.segment_worker import prepare_result_layers
    from napari_livecell.core.segmentation import Segmentation

    viewer = make_napari_viewer()
    cells = add_result(viewer, small_frame.labels, image=small_frame.image)
    _, segment = viewer.window.add_plugin_dock_widget("napari-livecell", "Segment cells")
    original = cells.colormap
    segment._min_score.value = 0.9
    assert cells.colormap is not original
    finish = prepare_result_layers(
        "img", {"scale": (1.0, 1.0), "translate": (0.0, 0.0), "metadata": {RESULT_KEY: {"source": "img"}}}
    )
    segment.confirm_replace = lambda names: True
    segment._on_done(finish([Segmentation.from_labels(small_frame.labels)], ()))
    qtbot.waitUntil(lambda: not segment._adding_layers, timeout=10_000)
    segment._min_score.value = 0.0
    ids = np.unique(small_frame.labels)[1:]
    np.testing.assert_allclose(viewer.layers["img cells"].colormap.map(ids), original.map(ids))


def test_a_result_with_too_many_cells_gets_no_outlines(monkeypatch, small_frame):
    import napari_livecell.layers as layers
    from napari_livecell.core.segmentation import Segmentation

    monkeypatch.setattr(layers, "MAX_OUTLINES", 5)
    data = layers.result_layer_data(Segmentation.from_labels(small_frame.labels), "img")
    (shapes, kwargs, kind) = data[1]
    assert kind == "shapes" and len(shapes) == 0 and kwargs["name"] == "img outlines"
